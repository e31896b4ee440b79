//! The outbox's stored shapes: deliveries, their attempts, and what callers ask of them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::Fingerprint;

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for `next_attempt_at` (and its destination's rate limit).
    Pending,
    /// Being sent; `lease_until` says when another start may take it back.
    InFlight,
    Delivered,
    /// Given up on (permanent error, too many attempts, too old); kept with its reason for replay.
    Dead,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::InFlight,
        DeliveryState::Delivered,
        DeliveryState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::InFlight => "in_flight",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown delivery state {s:?}: expected pending, in_flight, delivered or dead"
                )
            })
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notification for one integration config, to be queued.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// Its id, reserved with `Store::delivery_ids`: known before it is stored, so it may be sent meanwhile.
    pub id: i64,
    pub receiver: String,
    /// The integration's kind (`webhook`).
    pub integration: String,
    /// Which config of the receiver (`webhook/0`).
    pub integration_key: String,
    /// The rate-limit key of its destination.
    pub destination: String,
    pub group_key: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub alert_count: usize,
    /// The notification as JSON.
    pub payload: std::sync::Arc<str>,
    /// Claimed at once, until then: the delivery engine has a free send slot for it, so it is stored in flight
    /// and sent without a claim of its own.
    pub claim_until: Option<DateTime<Utc>>,
}

impl NewDelivery {
    /// Its record as stored at `now`: in flight when claimed at once, pending otherwise.
    pub fn record(&self, now: DateTime<Utc>) -> DeliveryRecord {
        DeliveryRecord {
            id: self.id,
            receiver: self.receiver.clone(),
            integration: self.integration.clone(),
            integration_key: self.integration_key.clone(),
            destination: self.destination.clone(),
            group_key: self.group_key.clone(),
            status: self.status.clone(),
            alert_count: self.alert_count,
            state: match self.claim_until {
                Some(_) => DeliveryState::InFlight,
                None => DeliveryState::Pending,
            },
            attempts: 0,
            created_at: now,
            queued_at: now,
            next_attempt_at: now,
            lease_until: self.claim_until,
            updated_at: now,
            last_error: None,
        }
    }
}

/// A delivery as queued, with its integration's state for its group when it was claimed at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub record: DeliveryRecord,
    /// `Some` when claimed at once: what the integration kept about the group (JSON), if anything.
    pub claimed: Option<Option<String>>,
}

/// What a notification told an integration about a group: the alerts it listed as firing and as resolved, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Told {
    pub firing: Vec<Fingerprint>,
    pub resolved: Vec<Fingerprint>,
    pub at: DateTime<Utc>,
}

/// The integration key of a log entry kept for a whole receiver, by a herald that logged per receiver: at start the
/// dispatcher copies it to each integration the receiver has (`Dispatched::adopted`).
pub const RECEIVER_ENTRY: &str = "";

/// The notification log's entry for one integration of a receiver and one group, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub receiver: String,
    /// Which config of the receiver (`webhook/0`), or [`RECEIVER_ENTRY`].
    pub integration_key: String,
    pub group_key: String,
    /// What its last notification told.
    pub told: Told,
    /// The delivery that carries that notification, if one does.
    pub delivery: Option<i64>,
    /// That delivery is dead: the integration was not told `told`.
    pub dead: bool,
    /// What it had been told before `told` (`None`: nothing); what it has while `dead`.
    pub had: Option<Told>,
}

/// A notification's log entry, recorded for each integration it was queued for.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub receiver: String,
    pub group_key: String,
    pub told: Told,
    /// The integrations whose entry it becomes, each with the index of its delivery in the notification's
    /// `deliveries` (`None`: recorded without one, as a resolve an integration without `send_resolved` does not get).
    pub integrations: Vec<(String, Option<usize>)>,
}

/// One notification to queue: its deliveries (one per integration that takes it) and the notification-log entry
/// that says it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub deliveries: Vec<NewDelivery>,
    pub sent: Option<Logged>,
}

/// A change that settling or replaying a delivery made to the notification log. The store tells them in the order
/// it committed them, so whoever keeps the log in memory stays in step.
#[derive(Debug, Clone, PartialEq)]
pub struct LogChange {
    pub receiver: String,
    pub integration_key: String,
    pub group_key: String,
    /// The delivery the entry was recorded with.
    pub delivery: i64,
    pub kind: LogChangeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LogChangeKind {
    /// The delivery died: the integration was not told what it carries, and has what it was told before (`None`:
    /// nothing).
    Dead { had: Option<Told> },
    /// The dead delivery was queued again: what it carries counts as told again.
    Replayed,
}

/// A stored delivery, without its payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub receiver: String,
    pub integration: String,
    pub integration_key: String,
    pub destination: String,
    pub group_key: String,
    pub status: String,
    pub alert_count: usize,
    pub state: DeliveryState,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// One try at sending a delivery, as kept in the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRecord {
    pub started_at: DateTime<Utc>,
    pub duration_seconds: f64,
    /// `delivered`, `retryable`, `rate_limited` or `permanent`.
    pub outcome: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The first KiB of the response, secrets redacted.
    pub response: Option<String>,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Settle {
    Delivered,
    /// Back to pending, to be tried at `next_attempt_at`.
    Retry {
        next_attempt_at: DateTime<Utc>,
        error: String,
    },
    Dead {
        error: String,
    },
}

/// The result of an attempt, to store in one transaction: the attempt, the delivery's new state, a pause of its
/// destination, and its integration's new state for the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub id: i64,
    pub attempt: AttemptRecord,
    pub settle: Settle,
    /// The destination and until when it must not be sent to.
    pub pause: Option<(String, DateTime<Utc>)>,
    /// What the integration keeps about the delivery's group (JSON), replacing what it kept.
    pub state: Option<String>,
    pub now: DateTime<Utc>,
    /// Whether the attempt counts against the delivery's `max_attempts`: a probe of a down destination sent ahead
    /// of the delivery's own retry time is kept in its audit trail but spends nothing.
    pub spent: bool,
}

/// Which claimed deliveries a claim reads the notification of: the caller holds the others' in memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PayloadRead {
    /// Every one's.
    All,
    /// None.
    #[default]
    None,
    /// Only these deliveries'.
    Only(HashSet<i64>),
}

impl PayloadRead {
    /// Whether the claim reads the notification of delivery `id`.
    pub fn wants(&self, id: i64) -> bool {
        match self {
            PayloadRead::All => true,
            PayloadRead::None => false,
            PayloadRead::Only(ids) => ids.contains(&id),
        }
    }
}

/// A delivery taken to be sent, with what its attempt needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub input: AttemptInput,
}

/// What an attempt reads before it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptInput {
    /// The notification as JSON, when the claim was asked to read it.
    pub payload: Option<String>,
    /// The integration's state for the delivery's group (JSON), when it kept one.
    pub state: Option<String>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub state: Option<DeliveryState>,
    pub receiver: Option<String>,
    /// Only deliveries with a smaller id (paging backwards from the newest).
    pub before: Option<i64>,
    pub limit: usize,
}

/// A delivery with its payload and every attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryDetail {
    pub delivery: DeliveryRecord,
    pub payload: String,
    pub attempts: Vec<AttemptRecord>,
}

/// Which deliveries an operator asks to send again.
#[derive(Debug, Clone)]
pub enum RetrySelection {
    One(i64),
    /// Every delivery in `state` (dead or pending), of `receiver` when given.
    All {
        state: DeliveryState,
        receiver: Option<String>,
    },
}

/// What became of a request to discard a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    Deleted,
    NotFound,
    /// Being sent right now; try again when it settles.
    InFlight,
}
