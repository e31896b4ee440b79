//! The SQLite backend: WAL, embedded migrations, one writer thread with group commit, a syncer thread that makes
//! commits durable before what must be is answered, a checkpointer thread, and a separate connection for reads.

mod checkpoint;
mod lock;
mod outbox;
mod rows;
mod sync;
mod timing;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use self::rows::{
    ALERT_COLUMNS, from_micros, json_column, key, read_alert, to_micros, unavailable,
};
use self::timing::TimingIndex;
use self::writer::{Command, Op, Outcome, Shared, Writer};
use super::{
    AlertCounts, AlertQuery, Dispatched, GroupRecord, Health, LogChange, SentRecord, SilenceRecord,
    StateChange, Store, StoreError, StoredAlert,
};
use crate::alert::{Alert, Fingerprint};
use crate::store::delivery::{
    Claimed, DeliveryDetail, DeliveryQuery, DeliveryRecord, DeliveryState, Discard, Enqueued,
    Finished, PayloadRead, RetrySelection,
};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_alerts.sql"),
    include_str!("../migrations/0002_drop_expiry_index.sql"),
    include_str!("../migrations/0003_groups_and_notification_log.sql"),
    include_str!("../migrations/0004_silences.sql"),
    include_str!("../migrations/0005_deliveries.sql"),
    include_str!("../migrations/0006_integration_state.sql"),
    include_str!("../migrations/0007_group_first_flush.sql"),
    include_str!("../migrations/0008_delivery_payloads.sql"),
    include_str!("../migrations/0009_integration_log.sql"),
];

/// Page size for new databases, in bytes.
const PAGE_SIZE: i64 = 2048;

/// SQLite page cache per connection, in KiB. Small on purpose: a commit whose b-tree rebalancing renumbered pages
/// (most commits that insert) makes SQLite walk its whole page cache, so a large cache costs every commit more than
/// its hits save; pages it misses come from the operating system's cache (measured in BENCHMARKS.md).
const CACHE_KIB: i64 = 4 * 1024;

/// WAL size, in pages (about 512 MiB), at which the writer checkpoints by itself after a commit. The checkpointer
/// thread copies pages back and starts the WAL over long before (see `checkpoint::RESTART_FRAMES`); this only bounds
/// the WAL should it fall behind, as a checkpoint on the writer holds up every write while it runs.
const AUTOCHECKPOINT_PAGES: i64 = 262_144;

/// Whether the store takes writes, shared by the writer (which sets it) and callers (who read it).
#[derive(Debug, Default)]
struct HealthState {
    ready: AtomicBool,
    reason: Mutex<String>,
}

impl HealthState {
    fn set(&self, result: Result<(), &StoreError>) {
        match result {
            Ok(()) => self.ready.store(true, Ordering::SeqCst),
            Err(error) => {
                if let Ok(mut reason) = self.reason.lock() {
                    *reason = error.to_string();
                }
                self.ready.store(false, Ordering::SeqCst);
            }
        }
    }

    fn get(&self) -> Health {
        if self.ready.load(Ordering::SeqCst) {
            return Health::Ready;
        }
        let reason = self.reason.lock().map(|r| r.clone()).unwrap_or_default();
        Health::NotReady(reason)
    }
}

/// SQLite-backed `Store`.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    reader: Arc<Mutex<Connection>>,
    health: Arc<HealthState>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// This process's lock on the store, released when the store closes.
    lock: Mutex<Option<std::fs::File>>,
    /// The changes the writer commits to the notification log, until someone takes them.
    log_changes: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<LogChange>>>,
    /// The next delivery id to reserve: past every id the database has used.
    next_delivery_id: AtomicI64,
}

/// Prepared statements kept per connection: more than herald's writer uses, so none is prepared twice.
const STATEMENT_CACHE: usize = 64;

fn configure(connection: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    connection.busy_timeout(busy_timeout)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans that do not depend on bound values: otherwise a cached statement whose plan SQLite marked as
    // value-dependent is compiled again at every use (the cache clears its bindings, which expires it).
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // Each re-sent alert rewrites the page that holds it, so smaller pages write less per alert; 2 KiB measured best
    // (bench/). Takes effect when the database is created.
    connection.pragma_update(None, "page_size", PAGE_SIZE)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // Commits reach the operating system at once; the syncer makes them durable before what must be is answered.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Only the hottest pages in SQLite's own cache (see CACHE_KIB).
    connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
    connection.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let open_error =
        |error: rusqlite::Error| StoreError::Open(format!("migration failed: {error}"));
    let applied: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(open_error)?;
    let known = MIGRATIONS.len() as i64;
    if applied > known {
        return Err(StoreError::Open(format!(
            "database schema version {applied} is newer than this herald knows ({known}); upgrade herald"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        transaction.execute_batch(sql).map_err(open_error)?;
        transaction
            .pragma_update(None, "user_version", index as i64 + 1)
            .map_err(open_error)?;
        transaction.commit().map_err(open_error)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path`, applies migrations and starts the writer.
    pub async fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, busy_timeout, None))
            .await
            .map_err(|error| StoreError::Open(error.to_string()))?
    }

    /// `max_pages` caps the database size (SQLite's `max_page_count`), to exercise a full disk in tests.
    fn open_blocking(
        path: PathBuf,
        busy_timeout: Duration,
        max_pages: Option<i64>,
    ) -> Result<Self, StoreError> {
        let place = path.display().to_string();
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Open(format!(
                    "cannot create directory {}: {error}",
                    parent.display()
                ))
            })?;
        }
        let lock = lock::acquire(&path)?;
        let open_error = |error: rusqlite::Error| StoreError::Open(format!("{place}: {error}"));
        let mut connection = Connection::open(&path).map_err(open_error)?;
        configure(&connection, busy_timeout).map_err(open_error)?;
        migrate(&mut connection).map_err(|error| StoreError::Open(format!("{place}: {error}")))?;
        if let Some(pages) = max_pages {
            connection
                .pragma_update(None, "max_page_count", pages)
                .map_err(open_error)?;
        }
        let timing = TimingIndex::load(&connection).map_err(open_error)?;
        let next_delivery_id = outbox::next_id(&connection).map_err(open_error)?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(open_error)?;
        reader.busy_timeout(busy_timeout).map_err(open_error)?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        reader
            .pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(open_error)?;

        let (committed, commits) = mpsc::sync_channel(1);
        let checkpointer = checkpoint::start(&path, busy_timeout, commits)?;
        let health = Arc::new(HealthState::default());
        health.set(Ok(()));
        let (sender, receiver) = mpsc::channel();
        let (sync, syncer) = sync::start(&path)?;
        let shared = Arc::new(Shared::new(&timing));
        let (log_sender, log_changes) = tokio::sync::mpsc::unbounded_channel();
        let writer = Writer {
            connection,
            timing,
            shared: Arc::clone(&shared),
            committed,
            sync,
            isolate: false,
            log_changes: log_sender,
            full: None,
            busy_timeout,
        };
        let writer_health = Arc::clone(&health);
        let writer = std::thread::Builder::new()
            .name("herald-store-writer".to_string())
            .spawn(move || writer.run(receiver, &writer_health))
            .map_err(|error| StoreError::Open(format!("cannot start writer thread: {error}")))?;
        Ok(SqliteStore {
            path,
            shared,
            sender: Mutex::new(Some(sender)),
            reader: Arc::new(Mutex::new(reader)),
            health,
            threads: Mutex::new(vec![writer, syncer, checkpointer]),
            lock: Mutex::new(Some(lock)),
            log_changes: Mutex::new(Some(log_changes)),
            next_delivery_id: AtomicI64::new(next_delivery_id),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transactions the writer committed or attempted since the store was opened.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    async fn submit(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        {
            let sender = self.sender.lock().map_err(|_| StoreError::Closed)?;
            let sender = sender.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(Command { op, reply })
                .map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let connection = reader.lock().map_err(|_| StoreError::Closed)?;
            query(&connection).map_err(|error| match error {
                rusqlite::Error::FromSqlConversionFailure(..) => {
                    StoreError::Corrupt(error.to_string())
                }
                other => unavailable(other),
            })
        })
        .await
        .map_err(|error| StoreError::Unavailable(error.to_string()))?
    }
}

fn mismatch<T>(due: &str) -> Result<T, StoreError> {
    Err(StoreError::Corrupt(format!(
        "writer answered something else where {due} was due"
    )))
}

fn expect_count(outcome: Outcome) -> Result<u64, StoreError> {
    match outcome {
        Outcome::Count(count) => Ok(count),
        _ => mismatch("a count"),
    }
}

fn expect_changes(outcome: Outcome) -> Result<Vec<StateChange>, StoreError> {
    match outcome {
        Outcome::Changes(changes) => Ok(changes),
        _ => mismatch("changes"),
    }
}

fn expect_deliveries(outcome: Outcome) -> Result<Vec<DeliveryRecord>, StoreError> {
    match outcome {
        Outcome::Deliveries(deliveries) => Ok(deliveries),
        _ => mismatch("deliveries"),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_alerts(
        &self,
        alerts: Vec<Alert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, StoreError> {
        expect_changes(self.submit(Op::Upsert(alerts, now, None)).await?)
    }

    async fn upsert_alerts_then(
        &self,
        alerts: Vec<Alert>,
        now: DateTime<Utc>,
        committed: Box<dyn FnOnce(Vec<StateChange>) + Send>,
    ) -> Result<u64, StoreError> {
        expect_count(
            self.submit(Op::Upsert(alerts, now, Some(committed)))
                .await?,
        )
    }

    async fn resolve_expired(&self, now: DateTime<Utc>) -> Result<Vec<StateChange>, StoreError> {
        // Nothing ends before the earliest end: no transaction at all.
        if self.shared.earliest_expiry.load(Ordering::Relaxed) > to_micros(now) {
            return Ok(Vec::new());
        }
        expect_changes(self.submit(Op::ResolveExpired(now)).await?)
    }

    async fn purge_resolved(&self, ended_before: DateTime<Utc>) -> Result<u64, StoreError> {
        expect_count(self.submit(Op::Purge(ended_before)).await?)
    }

    async fn alerts(&self, query: AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        let now = to_micros(query.now);
        self.read(move |connection| {
            let mut alerts = if query.include_resolved {
                let mut statement =
                    connection.prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts"))?;
                statement
                    .query_map([], read_alert)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            } else {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE ends_at IS NULL OR ends_at > ?1"
                ))?;
                statement
                    .query_map(params![now], read_alert)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            // Keys are signed; answer in the fingerprints' unsigned (hex) order.
            alerts.sort_by_key(|stored| stored.fingerprint);
            Ok(alerts)
        })
        .await
    }

    async fn alerts_by_fingerprint(
        &self,
        fingerprints: Vec<Fingerprint>,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ?1"
            ))?;
            let mut alerts = Vec::with_capacity(fingerprints.len());
            for fingerprint in fingerprints {
                if let Some(stored) = statement
                    .query_row(params![key(fingerprint)], read_alert)
                    .optional()?
                {
                    alerts.push(stored);
                }
            }
            alerts.sort_by_key(|stored| stored.fingerprint);
            Ok(alerts)
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, group_key, route_id, receiver, labels, first_flush, flushed FROM groups ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(GroupRecord {
                    id: row.get(0)?,
                    key: row.get(1)?,
                    route_id: row.get(2)?,
                    receiver: row.get(3)?,
                    labels: json_column(4, &row.get::<_, String>(4)?)?,
                    first_flush: from_micros(row.get(5)?)?,
                    flushed: row.get(6)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn sent(&self) -> Result<Vec<SentRecord>, StoreError> {
        self.read(outbox::sent).await
    }

    fn log_changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<LogChange>> {
        self.log_changes.lock().ok()?.take()
    }

    async fn save_silences(&self, silences: Vec<SilenceRecord>) -> Result<(), StoreError> {
        expect_count(self.submit(Op::SaveSilences(silences)).await?).map(|_| ())
    }

    async fn purge_silences(&self, ended_before: DateTime<Utc>) -> Result<u64, StoreError> {
        expect_count(self.submit(Op::PurgeSilences(ended_before)).await?)
    }

    async fn silences(&self) -> Result<Vec<SilenceRecord>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, matchers, starts_at, ends_at, created_by, comment, updated_at FROM silences \
                 ORDER BY id",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(SilenceRecord {
                    id: row.get(0)?,
                    matchers: json_column(1, &row.get::<_, String>(1)?)?,
                    starts_at: from_micros(row.get(2)?)?,
                    ends_at: from_micros(row.get(3)?)?,
                    created_by: row.get(4)?,
                    comment: row.get(5)?,
                    updated_at: from_micros(row.get(6)?)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn alert_counts(&self, _now: DateTime<Utc>) -> Result<AlertCounts, StoreError> {
        // Kept by the writer as it commits: no scan of the table, however many alerts there are.
        Ok(AlertCounts {
            firing: self.shared.firing.load(Ordering::Relaxed),
            resolved: self.shared.resolved.load(Ordering::Relaxed),
        })
    }

    fn delivery_ids(&self, count: usize) -> i64 {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.next_delivery_id.fetch_add(count, Ordering::Relaxed)
    }

    async fn dispatch(
        &self,
        dispatched: Dispatched,
        now: DateTime<Utc>,
    ) -> Result<Vec<Enqueued>, StoreError> {
        match self.submit(Op::Dispatch(Box::new(dispatched), now)).await? {
            Outcome::Enqueued(enqueued) => Ok(enqueued),
            _ => mismatch("queued deliveries"),
        }
    }

    async fn claim(
        &self,
        ids: Vec<i64>,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        read: PayloadRead,
    ) -> Result<Vec<Claimed>, StoreError> {
        match self.submit(Op::Claim(ids, now, lease_until, read)).await? {
            Outcome::Claimed(claimed) => Ok(claimed),
            _ => mismatch("claimed deliveries"),
        }
    }

    async fn finish(&self, finished: Vec<Finished>) -> Result<(), StoreError> {
        if finished.is_empty() {
            return Ok(());
        }
        expect_count(self.submit(Op::Finish(finished)).await?).map(|_| ())
    }

    async fn release(&self, ids: Vec<i64>, now: DateTime<Utc>) -> Result<u64, StoreError> {
        expect_count(self.submit(Op::Release(ids, now)).await?)
    }

    async fn retry_deliveries(
        &self,
        selection: RetrySelection,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        expect_deliveries(self.submit(Op::Retry(selection, now)).await?)
    }

    async fn discard_delivery(&self, id: i64) -> Result<Discard, StoreError> {
        match self.submit(Op::Discard(id)).await? {
            Outcome::Discard(discard) => Ok(discard),
            _ => mismatch("a discard"),
        }
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        expect_count(self.submit(Op::PurgeDeliveries(before)).await?)
    }

    async fn open_deliveries(
        &self,
        from: i64,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read(move |connection| outbox::open_deliveries(connection, from, limit))
            .await
    }

    async fn deliveries(&self, query: DeliveryQuery) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read(move |connection| outbox::list(connection, &query))
            .await
    }

    async fn delivery(&self, id: i64) -> Result<Option<DeliveryDetail>, StoreError> {
        self.read(move |connection| outbox::detail(connection, id))
            .await
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        self.read(outbox::counts).await
    }

    async fn oldest_open_delivery(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(outbox::oldest_open).await
    }

    async fn pauses(&self, now: DateTime<Utc>) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.read(move |connection| outbox::pauses(connection, now))
            .await
    }

    fn health(&self) -> Health {
        self.health.get()
    }

    async fn close(&self) -> Result<(), StoreError> {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut threads| std::mem::take(&mut *threads))
            .unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            // The writer goes first: it closes the syncer's and the checkpointer's channels when it ends.
            for thread in threads {
                thread
                    .join()
                    .map_err(|_| StoreError::Unavailable("store thread panicked".into()))?;
            }
            Ok::<(), StoreError>(())
        })
        .await
        .map_err(|error| StoreError::Unavailable(error.to_string()))??;
        self.health.set(Err(&StoreError::Closed));
        // Everything is written: another process may take the store.
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
        Ok(())
    }
}

#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod tests;
