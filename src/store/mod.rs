//! The store: the `Store` trait every caller uses, its shared types and errors; backends live beside it.

pub mod delivery;
mod merge;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::alert::{Alert, Fingerprint, Labels, Status};
use crate::config::{StorageBackend, StorageSettings};
use crate::store::delivery::{
    Claimed, DeliveryDetail, DeliveryQuery, DeliveryRecord, DeliveryState, Discard, Enqueued,
    Finished, PayloadRead, Queued, RetrySelection,
};

pub use delivery::{LogChange, LogChangeKind, SentRecord, Told};
pub use merge::{Existing, merge};
pub use sqlite::SqliteStore;

/// An alert as a write left it, with the status announced before and after: new (`previous` is `None`), resolved,
/// firing again, or the same status with a new version (a re-send).
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub fingerprint: Fingerprint,
    pub alert: Alert,
    /// The status announced before; `None` for an alert the store did not have.
    pub previous: Option<Status>,
    pub status: Status,
    /// When the change was stored: group timers count from here, however late the dispatcher sees it.
    pub at: DateTime<Utc>,
}

/// An alert as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub fingerprint: Fingerprint,
    pub alert: Alert,
    pub updated_at: DateTime<Utc>,
}

/// An aggregation group's durable part: identity and the time its schedule derives from (its members are derived
/// from the stored alerts). Written when the group is created, when its first flush moves and when it first
/// flushes; never for later flushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: String,
    pub key: String,
    pub route_id: String,
    pub receiver: String,
    pub labels: Labels,
    /// When it flushes first, or, once `flushed`, when it first flushed (later flushes tick every
    /// `group_interval` from there).
    pub first_flush: DateTime<Utc>,
    pub flushed: bool,
}

/// What a round of the dispatcher stores in one transaction: group records that changed or were dropped, the
/// notifications it queued with their log entries, log entries it forgot, by (receiver, group key), and entries of
/// whole receivers it copied to their integrations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dispatched {
    pub groups: Vec<GroupRecord>,
    pub dropped: Vec<String>,
    /// Shared, so the dispatcher keeps them to store again when this transaction fails.
    pub queued: Vec<Arc<Queued>>,
    pub forgotten: Vec<(String, String)>,
    /// Per-integration copies of receivers' entries (`delivery::RECEIVER_ENTRY`), which they replace.
    pub adopted: Vec<SentRecord>,
}

/// One matcher of a stored silence, in the v2 API's shape (`name`, `value`, `isRegex`, `isEqual`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatcherRecord {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    pub is_equal: bool,
}

/// A silence as stored: plain fields, so the store does not depend on the routing model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRecord {
    pub id: String,
    pub matchers: Vec<MatcherRecord>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    pub updated_at: DateTime<Utc>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Copy)]
pub struct AlertQuery {
    pub now: DateTime<Utc>,
    /// Include alerts whose end has passed (kept until `storage.resolved_retention`).
    pub include_resolved: bool,
}

/// Number of stored alerts per status at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertCounts {
    pub firing: u64,
    pub resolved: u64,
}

/// Whether the store can take writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    NotReady(String),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not commit (locked, disk full, read-only, I/O error); worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// The store could not be opened or migrated.
    #[error("cannot open store: {0}")]
    Open(String),
    /// Data in the store could not be read back.
    #[error("store data is invalid: {0}")]
    Corrupt(String),
}

/// Durable state. Every method returns only after its effect is committed.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Inserts or merges alerts in one transaction (shared with concurrent callers) and returns each alert as stored,
    /// with its announced status before and after.
    async fn upsert_alerts(
        &self,
        alerts: Vec<Alert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, StoreError>;

    /// Like `upsert_alerts`, but hands the changes to `committed` as soon as the transaction is committed (they may
    /// not be durable yet), and returns once they are, with how many there were.
    async fn upsert_alerts_then(
        &self,
        alerts: Vec<Alert>,
        now: DateTime<Utc>,
        committed: Box<dyn FnOnce(Vec<StateChange>) + Send>,
    ) -> Result<u64, StoreError> {
        let changes = self.upsert_alerts(alerts, now).await?;
        let count = changes.len() as u64;
        committed(changes);
        Ok(count)
    }

    /// Marks firing alerts whose end has passed by `now` as resolved and returns those changes.
    async fn resolve_expired(&self, now: DateTime<Utc>) -> Result<Vec<StateChange>, StoreError>;

    /// Deletes resolved alerts that ended before `ended_before`; returns how many.
    async fn purge_resolved(&self, ended_before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Lists stored alerts, ordered by fingerprint.
    async fn alerts(&self, query: AlertQuery) -> Result<Vec<StoredAlert>, StoreError>;

    /// The stored alerts with these fingerprints (those not stored are left out), ordered by fingerprint.
    async fn alerts_by_fingerprint(
        &self,
        fingerprints: Vec<Fingerprint>,
    ) -> Result<Vec<StoredAlert>, StoreError>;

    /// Every stored group.
    async fn groups(&self) -> Result<Vec<GroupRecord>, StoreError>;

    /// The whole notification log.
    async fn sent(&self) -> Result<Vec<SentRecord>, StoreError>;

    /// The changes settling and replaying deliveries make to the notification log (a delivery that dies was not
    /// told; one replayed counts as told again), in the order they are committed, from now on. There is one such
    /// stream: the first caller takes it, later ones get `None`.
    fn log_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<LogChange>>;

    /// Stores silences (new ones or new versions of stored ones, by id) in one transaction.
    async fn save_silences(&self, silences: Vec<SilenceRecord>) -> Result<(), StoreError>;

    /// Stores one silence.
    async fn save_silence(&self, silence: SilenceRecord) -> Result<(), StoreError> {
        self.save_silences(vec![silence]).await
    }

    /// Deletes silences that ended before `ended_before`; returns how many.
    async fn purge_silences(&self, ended_before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Every stored silence, ordered by id.
    async fn silences(&self) -> Result<Vec<SilenceRecord>, StoreError>;

    /// Reserves `count` consecutive delivery ids and returns the first: ids are known before their deliveries are
    /// stored (`NewDelivery::id`), and never reused.
    fn delivery_ids(&self, count: usize) -> i64;

    /// Stores group records, forgets dropped groups, queues notifications' deliveries and records their
    /// notification-log entries, all in one transaction: all of it is stored, or none. Returns the queued
    /// deliveries.
    async fn dispatch(
        &self,
        dispatched: Dispatched,
        now: DateTime<Utc>,
    ) -> Result<Vec<Enqueued>, StoreError>;

    /// Moves pending deliveries (and in-flight ones whose lease has passed) to in flight until `lease_until`, in one
    /// transaction; returns those it took with what their attempts need (their notifications as `read` asks).
    async fn claim(
        &self,
        ids: Vec<i64>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        read: PayloadRead,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Stores attempts and what became of their deliveries (and pauses of their destinations), all in one
    /// transaction.
    async fn finish(&self, finished: Vec<Finished>) -> Result<(), StoreError>;

    /// Returns in-flight deliveries to pending, due at `now`; returns how many.
    async fn release(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Sends deliveries again: back to pending now, with a fresh attempt budget and age. In-flight ones are left
    /// alone. Returns those it changed.
    async fn retry_deliveries(
        &self,
        selection: RetrySelection,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Deletes a delivery and its attempts, unless it is in flight.
    async fn discard_delivery(&self, id: i64) -> Result<Discard, StoreError>;

    /// Deletes delivered and dead deliveries, and integration state, last changed before `before`; returns how
    /// many deliveries.
    async fn purge_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Pending and in-flight deliveries with ids from `from` on, at most `limit`, in id order: the work to resume
    /// at start, read in pages.
    async fn open_deliveries(
        &self,
        from: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Deliveries, newest first.
    async fn deliveries(&self, query: DeliveryQuery) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// One delivery with its payload and attempts.
    async fn delivery(&self, id: i64) -> Result<Option<DeliveryDetail>, StoreError>;

    /// Number of deliveries per state (states with none are left out).
    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError>;

    /// When the oldest pending or in-flight delivery was queued, if any is.
    async fn oldest_open_delivery(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Destinations told to wait beyond `now`, and until when.
    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;

    /// Counts stored alerts by their announced status (an alert whose end passed is announced resolved by the next
    /// sweep, at most a second later).
    async fn alert_counts(&self, now: DateTime<Utc>) -> Result<AlertCounts, StoreError>;

    /// Ready once opened and migrated, and while writes succeed.
    fn health(&self) -> Health;

    /// Finishes queued writes and closes; later calls fail with `Closed`.
    async fn close(&self) -> Result<(), StoreError>;
}

/// Opens the backend the settings name.
pub async fn open(settings: &StorageSettings) -> Result<Arc<dyn Store>, StoreError> {
    match &settings.backend {
        StorageBackend::Sqlite { path } => {
            let store = SqliteStore::open(path, settings.busy_timeout).await?;
            Ok(Arc::new(store))
        }
    }
}
