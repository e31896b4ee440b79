//! How a re-sent alert combines with the stored one (Alertmanager's rules), independent of the storage backend.

use chrono::{DateTime, Utc};

use crate::alert::{Alert, Status, status_at};

/// What the store knows of an alert that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub ends_at_defaulted: bool,
    /// The status last announced for it.
    pub state: Status,
}

fn end_or_max(end: Option<DateTime<Utc>>) -> DateTime<Utc> {
    end.unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether the incoming alert's active range overlaps the stored one, so it continues the same incident.
fn overlaps(old: &Existing, new: &Alert) -> bool {
    let (old_start, old_end) = (old.starts_at, end_or_max(old.ends_at));
    let new_end = end_or_max(new.ends_at);
    (new_end > old_start && new_end < old_end)
        || (new.starts_at > old_start && new.starts_at < old_end)
}

/// Merges `incoming` (always the younger report) into what is stored: the earliest start wins; a later explicit end
/// wins over the incoming one unless it was only a default (Alertmanager's `Alert.Merge`). Without overlap the
/// incoming alert starts a new incident and replaces the old one.
pub fn merge(existing: Option<&Existing>, mut incoming: Alert, now: DateTime<Utc>) -> Alert {
    let Some(old) = existing else {
        return incoming;
    };
    if !overlaps(old, &incoming) {
        return incoming;
    }
    if old.starts_at < incoming.starts_at {
        incoming.starts_at = old.starts_at;
    }
    let old_end = end_or_max(old.ends_at);
    let new_end = end_or_max(incoming.ends_at);
    let old_resolved = status_at(old.ends_at, now) == Status::Resolved;
    if incoming.status_at(now) == Status::Resolved {
        if old_resolved && old_end > new_end {
            incoming.ends_at = old.ends_at;
        }
    } else if old_end > new_end && !old.ends_at_defaulted {
        incoming.ends_at = old.ends_at;
        incoming.ends_at_defaulted = false;
    }
    incoming
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, Source};
    use chrono::Duration;

    fn t(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minute * 60, 0).unwrap()
    }

    fn alert(start: i64, end: Option<i64>, defaulted: bool) -> Alert {
        Alert {
            labels: Labels::from([("alertname".to_string(), "A".to_string())]),
            annotations: Default::default(),
            starts_at: t(start),
            ends_at: end.map(t),
            ends_at_defaulted: defaulted,
            generator_url: String::new(),
            source: Source::Prometheus,
            extra: Default::default(),
        }
    }

    fn existing(start: i64, end: Option<i64>, defaulted: bool, state: Status) -> Existing {
        Existing {
            starts_at: t(start),
            ends_at: end.map(t),
            ends_at_defaulted: defaulted,
            state,
        }
    }

    #[test]
    fn new_alert_is_taken_as_is() {
        let incoming = alert(0, Some(5), false);
        assert_eq!(merge(None, incoming.clone(), t(1)), incoming);
    }

    #[test]
    fn resend_keeps_earliest_start_and_extends_end() {
        let old = existing(0, Some(5), false, Status::Firing);
        let merged = merge(Some(&old), alert(1, Some(4), false), t(2));
        assert_eq!(merged.starts_at, t(0));
        assert_eq!(merged.ends_at, Some(t(5)), "later explicit end wins");
        let merged = merge(Some(&old), alert(1, Some(8), false), t(2));
        assert_eq!(merged.ends_at, Some(t(8)));
    }

    #[test]
    fn defaulted_end_does_not_hold_back_an_explicit_one() {
        let old = existing(0, Some(10), true, Status::Firing);
        let merged = merge(Some(&old), alert(1, Some(4), false), t(2));
        assert_eq!(merged.ends_at, Some(t(4)));
    }

    #[test]
    fn resolve_inside_the_range_resolves() {
        let old = existing(0, Some(10), false, Status::Firing);
        let merged = merge(Some(&old), alert(0, Some(2), false), t(3));
        assert_eq!(merged.ends_at, Some(t(2)));
        assert_eq!(merged.status_at(t(3)), Status::Resolved);
    }

    #[test]
    fn firing_after_resolution_starts_a_new_incident() {
        let old = existing(0, Some(2), false, Status::Resolved);
        let merged = merge(Some(&old), alert(5, Some(9), false), t(6));
        assert_eq!(merged.starts_at, t(5));
        assert_eq!(merged.status_at(t(6)), Status::Firing);
    }

    #[test]
    fn open_ended_alert_is_resolved_by_a_webhook_resolve() {
        let old = existing(0, None, false, Status::Firing);
        let merged = merge(
            Some(&old),
            alert(0, Some(3), false),
            t(3) + Duration::seconds(1),
        );
        assert_eq!(merged.ends_at, Some(t(3)));
    }
}
