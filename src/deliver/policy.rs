//! The retry policy: exponential backoff with full jitter, Retry-After, and when a delivery is given up on.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::RetryPolicy;
use crate::sinks::SinkError;
use crate::store::delivery::Settle;

/// The backoff before the attempt after `failures` failed ones: a random share (`unit` in [0, 1)) of a ceiling that
/// starts at `initial_backoff` and doubles per failure up to `max_backoff` ("full jitter").
pub(crate) fn backoff(policy: &RetryPolicy, failures: u32, unit: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    let ceiling = policy
        .initial_backoff
        .saturating_mul(1u32 << doublings.min(31))
        .min(policy.max_backoff);
    // Whole milliseconds, so the time kept in memory equals the one stored.
    let wait = ceiling.mul_f64(unit.clamp(0.0, 1.0));
    Duration::from_millis(wait.as_millis().try_into().unwrap_or(u64::MAX))
}

/// What to do after a failed attempt: the delivery's new state, and until when its destination must wait (for a
/// rate limit). `attempts` counts every attempt made, this one included.
pub(crate) fn after_failure(
    policy: &RetryPolicy,
    error: &SinkError,
    attempts: u32,
    queued_at: DateTime<Utc>,
    now: DateTime<Utc>,
    unit: f64,
) -> (Settle, Option<DateTime<Utc>>) {
    let reason = error.to_string();
    if let SinkError::Permanent { .. } = error {
        return (
            Settle::Dead {
                error: format!("permanent error: {reason}"),
            },
            None,
        );
    }
    if attempts >= policy.max_attempts {
        return (
            Settle::Dead {
                error: format!("gave up after {attempts} attempts: {reason}"),
            },
            None,
        );
    }
    let age = (now - queued_at).to_std().unwrap_or_default();
    if age >= policy.max_age {
        return (
            Settle::Dead {
                error: format!(
                    "gave up after {} (max_age): {reason}",
                    crate::config::format_duration(policy.max_age)
                ),
            },
            None,
        );
    }
    let (wait, pause) = match error {
        SinkError::RateLimited {
            retry_after: Some(wait),
            ..
        } => (*wait, true),
        SinkError::RateLimited {
            retry_after: None, ..
        } => (
            backoff(policy, attempts, unit).max(policy.initial_backoff),
            true,
        ),
        _ => (backoff(policy, attempts, unit), false),
    };
    let at = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    (
        Settle::Retry {
            next_attempt_at: at,
            error: reason,
        },
        pause.then_some(at),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_jitters_below_it() {
        let p = policy();
        assert_eq!(backoff(&p, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(&p, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(&p, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&p, 7, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&p, 1000, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&p, 4, 0.5), Duration::from_secs(4));
        assert_eq!(backoff(&p, 4, 0.0), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_honoured_and_pauses_the_destination() {
        let now = Utc::now();
        let error = SinkError::RateLimited {
            retry_after: Some(Duration::from_secs(2)),
            response: None,
        };
        let (settle, pause) = after_failure(&policy(), &error, 1, now, now, 0.0);
        let at = now + chrono::Duration::seconds(2);
        assert_eq!(pause, Some(at));
        assert!(matches!(settle, Settle::Retry { next_attempt_at, .. } if next_attempt_at == at));
    }

    #[test]
    fn retryable_errors_back_off_without_pausing() {
        let now = Utc::now();
        let (settle, pause) = after_failure(
            &policy(),
            &SinkError::retryable("HTTP 500"),
            3,
            now,
            now,
            1.0,
        );
        assert_eq!(pause, None);
        assert_eq!(
            settle,
            Settle::Retry {
                next_attempt_at: now + chrono::Duration::seconds(4),
                error: "HTTP 500".into()
            }
        );
    }

    #[test]
    fn permanent_errors_too_many_attempts_and_old_age_are_dead() {
        let now = Utc::now();
        let p = policy();
        let dead = |settle: Settle| match settle {
            Settle::Dead { error } => error,
            other => panic!("not dead: {other:?}"),
        };
        let (settle, _) =
            after_failure(&p, &SinkError::permanent("HTTP 400: bad"), 1, now, now, 0.5);
        assert_eq!(dead(settle), "permanent error: HTTP 400: bad");
        let (settle, _) = after_failure(&p, &SinkError::retryable("HTTP 503"), 5, now, now, 0.5);
        assert_eq!(dead(settle), "gave up after 5 attempts: HTTP 503");
        let queued = now - chrono::Duration::hours(2);
        let (settle, _) = after_failure(&p, &SinkError::retryable("refused"), 2, queued, now, 0.5);
        assert_eq!(dead(settle), "gave up after 1h (max_age): refused");
    }
}
