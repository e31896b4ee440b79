//! The SQLite backend: WAL with synchronous commits, embedded migrations, one writer thread that folds concurrent
//! writes into shared transactions (group commit), and a separate connection for reads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use tokio::sync::oneshot;

use super::{
    AlertCounts, AlertQuery, Existing, Health, StateChange, Store, StoreError, StoredAlert, merge,
};
use crate::alert::{Alert, Fingerprint, Status};

/// Schema versions, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_alerts.sql")];

/// Most commands folded into one transaction.
const MAX_BATCH: usize = 256;

/// How often a writer whose last commit failed checks whether the database takes writes again.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

enum Op {
    Upsert(Vec<Alert>, DateTime<Utc>),
    ResolveExpired(DateTime<Utc>),
    Purge(DateTime<Utc>),
}

enum Outcome {
    Changes(Vec<StateChange>),
    Count(u64),
}

struct Command {
    op: Op,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

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
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    reader: Arc<Mutex<Connection>>,
    health: Arc<HealthState>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn to_micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn from_micros(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            "timestamp out of range".into(),
        )
    })
}

fn state_code(status: Status) -> i64 {
    match status {
        Status::Firing => 0,
        Status::Resolved => 1,
    }
}

fn state_from_code(code: i64) -> Status {
    if code == 0 {
        Status::Firing
    } else {
        Status::Resolved
    }
}

fn json_column<T: serde::de::DeserializeOwned>(index: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(error),
        )
    })
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

const ALERT_COLUMNS: &str = "fingerprint, labels, annotations, starts_at, ends_at, ends_at_defaulted, \
     generator_url, source, extra, updated_at";

fn read_alert(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
    let fingerprint = Fingerprint(row.get::<_, i64>(0)? as u64);
    let source: String = row.get(7)?;
    let alert = Alert {
        labels: json_column(1, &row.get::<_, String>(1)?)?,
        annotations: json_column(2, &row.get::<_, String>(2)?)?,
        starts_at: from_micros(row.get(3)?)?,
        ends_at: row.get::<_, Option<i64>>(4)?.map(from_micros).transpose()?,
        ends_at_defaulted: row.get(5)?,
        generator_url: row.get(6)?,
        source: source.parse().map_err(|error: String| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, error.into())
        })?,
        extra: json_column(8, &row.get::<_, String>(8)?)?,
    };
    Ok(StoredAlert {
        fingerprint,
        alert,
        updated_at: from_micros(row.get(9)?)?,
    })
}

fn configure(connection: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    connection.busy_timeout(busy_timeout)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
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
        max_pages: Option<u64>,
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
        let open_error = |error: rusqlite::Error| StoreError::Open(format!("{place}: {error}"));
        let mut writer = Connection::open(&path).map_err(open_error)?;
        configure(&writer, busy_timeout).map_err(open_error)?;
        migrate(&mut writer).map_err(|error| StoreError::Open(format!("{place}: {error}")))?;
        if let Some(pages) = max_pages {
            writer
                .pragma_update(None, "max_page_count", pages as i64)
                .map_err(open_error)?;
        }
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(open_error)?;
        reader.busy_timeout(busy_timeout).map_err(open_error)?;

        let health = Arc::new(HealthState::default());
        health.set(Ok(()));
        let (sender, receiver) = mpsc::channel();
        let writer_health = Arc::clone(&health);
        let handle = std::thread::Builder::new()
            .name("herald-store-writer".to_string())
            .spawn(move || writer_loop(writer, receiver, &writer_health))
            .map_err(|error| StoreError::Open(format!("cannot start writer thread: {error}")))?;
        Ok(SqliteStore {
            path,
            sender: Mutex::new(Some(sender)),
            reader: Arc::new(Mutex::new(reader)),
            health,
            writer: Mutex::new(Some(handle)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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

/// Receives commands, folds those already queued into one transaction, commits once and then answers each.
fn writer_loop(
    mut connection: Connection,
    receiver: mpsc::Receiver<Command>,
    health: &HealthState,
) {
    loop {
        let first = if matches!(health.get(), Health::Ready) {
            match receiver.recv() {
                Ok(command) => command,
                Err(mpsc::RecvError) => break,
            }
        } else {
            match receiver.recv_timeout(PROBE_INTERVAL) {
                Ok(command) => command,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let probed = probe(&mut connection);
                    health.set(probed.as_ref().map(|_| ()));
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        run_batch(&mut connection, batch, health);
    }
    if let Err(error) =
        connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA optimize;")
    {
        tracing::warn!(%error, "store checkpoint on close failed");
    }
}

fn probe(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    transaction
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'probe'",
            params![Utc::now().to_rfc3339()],
        )
        .map_err(unavailable)?;
    transaction.commit().map_err(unavailable)
}

fn run_batch(connection: &mut Connection, batch: Vec<Command>, health: &HealthState) {
    let (ops, replies): (Vec<Op>, Vec<_>) = batch
        .into_iter()
        .map(|command| (command.op, command.reply))
        .unzip();
    let committed = (|| -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        let mut transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for op in ops {
            let outcome = run_isolated(&mut transaction, op);
            if let Err(error) = &outcome
                && transaction.is_autocommit()
            {
                // SQLite rolled the whole transaction back (disk full, I/O error): every command of it is lost.
                return Err(error.clone());
            }
            outcomes.push(outcome);
        }
        transaction.commit().map_err(unavailable)?;
        Ok(outcomes)
    })();
    metrics::counter!("herald_store_commits_total").increment(1);
    metrics::counter!("herald_store_writes_total").increment(replies.len() as u64);
    match committed {
        Ok(outcomes) => {
            let failed = outcomes.iter().find_map(|outcome| match outcome {
                Err(error @ StoreError::Unavailable(_)) => Some(error.clone()),
                _ => None,
            });
            health.set(failed.as_ref().map_or(Ok(()), Err));
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            tracing::error!(%error, "store commit failed");
            health.set(Err(&error));
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// Runs one command inside a savepoint, so its failure leaves the others of the batch intact.
fn run_isolated(transaction: &mut Transaction<'_>, op: Op) -> Result<Outcome, StoreError> {
    let savepoint = transaction.savepoint().map_err(unavailable)?;
    let outcome = match op {
        Op::Upsert(alerts, now) => upsert(&savepoint, alerts, now).map(Outcome::Changes),
        Op::ResolveExpired(now) => resolve_expired(&savepoint, now).map(Outcome::Changes),
        Op::Purge(before) => purge(&savepoint, before).map(Outcome::Count),
    }?;
    savepoint.commit().map_err(unavailable)?;
    Ok(outcome)
}

fn upsert(
    connection: &Connection,
    alerts: Vec<Alert>,
    now: DateTime<Utc>,
) -> Result<Vec<StateChange>, StoreError> {
    let mut select = connection
        .prepare_cached("SELECT starts_at, ends_at, ends_at_defaulted, state FROM alerts WHERE fingerprint = ?1")
        .map_err(unavailable)?;
    let mut write = connection
        .prepare_cached(
            "INSERT INTO alerts (fingerprint, labels, annotations, starts_at, ends_at, ends_at_defaulted, \
             generator_url, source, extra, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (fingerprint) DO UPDATE SET labels = excluded.labels, annotations = excluded.annotations, \
             starts_at = excluded.starts_at, ends_at = excluded.ends_at, \
             ends_at_defaulted = excluded.ends_at_defaulted, generator_url = excluded.generator_url, \
             source = excluded.source, extra = excluded.extra, state = excluded.state, \
             updated_at = excluded.updated_at",
        )
        .map_err(unavailable)?;
    let mut changes = Vec::new();
    for incoming in alerts {
        let fingerprint = incoming.fingerprint();
        let key = fingerprint.0 as i64;
        let existing = select
            .query_row(params![key], |row| {
                Ok(Existing {
                    starts_at: from_micros(row.get(0)?)?,
                    ends_at: row.get::<_, Option<i64>>(1)?.map(from_micros).transpose()?,
                    ends_at_defaulted: row.get(2)?,
                    state: state_from_code(row.get(3)?),
                })
            })
            .optional()
            .map_err(unavailable)?;
        let alert = merge(existing.as_ref(), incoming, now);
        let status = alert.status_at(now);
        write
            .execute(params![
                key,
                json_text(&alert.labels)?,
                json_text(&alert.annotations)?,
                to_micros(alert.starts_at),
                alert.ends_at.map(to_micros),
                alert.ends_at_defaulted,
                alert.generator_url,
                alert.source.as_str(),
                json_text(&alert.extra)?,
                state_code(status),
                to_micros(now),
            ])
            .map_err(unavailable)?;
        let previous = existing.map(|existing| existing.state);
        if previous != Some(status) {
            changes.push(StateChange {
                fingerprint,
                alert,
                previous,
                status,
            });
        }
    }
    Ok(changes)
}

fn resolve_expired(
    connection: &Connection,
    now: DateTime<Utc>,
) -> Result<Vec<StateChange>, StoreError> {
    let cutoff = to_micros(now);
    let mut select = connection
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 0 AND ends_at IS NOT NULL AND ends_at <= ?1"
        ))
        .map_err(unavailable)?;
    let expired = select
        .query_map(params![cutoff], read_alert)
        .map_err(unavailable)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(unavailable)?;
    connection
        .prepare_cached(
            "UPDATE alerts SET state = 1 WHERE state = 0 AND ends_at IS NOT NULL AND ends_at <= ?1",
        )
        .and_then(|mut update| update.execute(params![cutoff]))
        .map_err(unavailable)?;
    Ok(expired
        .into_iter()
        .map(|stored| StateChange {
            fingerprint: stored.fingerprint,
            alert: stored.alert,
            previous: Some(Status::Firing),
            status: Status::Resolved,
        })
        .collect())
}

fn purge(connection: &Connection, ended_before: DateTime<Utc>) -> Result<u64, StoreError> {
    let deleted = connection
        .prepare_cached(
            "DELETE FROM alerts WHERE state = 1 AND ends_at IS NOT NULL AND ends_at < ?1",
        )
        .and_then(|mut delete| delete.execute(params![to_micros(ended_before)]))
        .map_err(unavailable)?;
    Ok(deleted as u64)
}

fn expect_changes(outcome: Outcome) -> Result<Vec<StateChange>, StoreError> {
    match outcome {
        Outcome::Changes(changes) => Ok(changes),
        Outcome::Count(_) => Err(StoreError::Corrupt(
            "writer answered a count where changes were due".into(),
        )),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_alerts(
        &self,
        alerts: Vec<Alert>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StateChange>, StoreError> {
        expect_changes(self.submit(Op::Upsert(alerts, now)).await?)
    }

    async fn resolve_expired(&self, now: DateTime<Utc>) -> Result<Vec<StateChange>, StoreError> {
        expect_changes(self.submit(Op::ResolveExpired(now)).await?)
    }

    async fn purge_resolved(&self, ended_before: DateTime<Utc>) -> Result<u64, StoreError> {
        match self.submit(Op::Purge(ended_before)).await? {
            Outcome::Count(count) => Ok(count),
            Outcome::Changes(_) => Err(StoreError::Corrupt(
                "writer answered changes where a count was due".into(),
            )),
        }
    }

    async fn alerts(&self, query: AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        let now = to_micros(query.now);
        self.read(move |connection| {
            let sql = if query.include_resolved {
                format!("SELECT {ALERT_COLUMNS} FROM alerts ORDER BY fingerprint")
            } else {
                format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE ends_at IS NULL OR ends_at > ?1 ORDER BY fingerprint")
            };
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = if query.include_resolved {
                statement.query_map([], read_alert)?
            } else {
                statement.query_map(params![now], read_alert)?
            };
            let mut alerts = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            // Signed storage orders fingerprints with the high bit first; answer in unsigned (hex) order.
            alerts.sort_by_key(|stored| stored.fingerprint);
            Ok(alerts)
        })
        .await
    }

    async fn alert_counts(&self, now: DateTime<Utc>) -> Result<AlertCounts, StoreError> {
        let now = to_micros(now);
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT COUNT(*) FILTER (WHERE ends_at IS NULL OR ends_at > ?1), \
                 COUNT(*) FILTER (WHERE ends_at IS NOT NULL AND ends_at <= ?1) FROM alerts",
            )?;
            statement.query_row(params![now], |row| {
                Ok(AlertCounts {
                    firing: row.get::<_, i64>(0)? as u64,
                    resolved: row.get::<_, i64>(1)? as u64,
                })
            })
        })
        .await
    }

    fn health(&self) -> Health {
        self.health.get()
    }

    async fn close(&self) -> Result<(), StoreError> {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut writer| writer.take());
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|error| StoreError::Unavailable(error.to_string()))?
                .map_err(|_| StoreError::Unavailable("store writer thread panicked".into()))?;
        }
        self.health.set(Err(&StoreError::Closed));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, Source};

    fn t(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    fn alert(name: &str, start: i64, end: Option<i64>) -> Alert {
        Alert {
            labels: Labels::from([("alertname".to_string(), name.to_string())]),
            annotations: [("summary".to_string(), format!("{name} is broken"))].into(),
            starts_at: t(start),
            ends_at: end.map(t),
            ends_at_defaulted: false,
            generator_url: "http://prometheus/graph".to_string(),
            source: Source::Prometheus,
            extra: Default::default(),
        }
    }

    async fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(
            &dir.path().join("nested/herald.db"),
            Duration::from_millis(200),
        )
        .await
        .unwrap()
    }

    fn all(now: DateTime<Utc>) -> AlertQuery {
        AlertQuery {
            now,
            include_resolved: true,
        }
    }

    #[tokio::test]
    async fn upsert_dedupes_resends_and_reports_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let changes = store
            .upsert_alerts(vec![alert("A", 0, Some(300))], t(10))
            .await
            .unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].previous, changes[0].status),
            (None, Status::Firing)
        );

        let changes = store
            .upsert_alerts(
                vec![alert("A", 0, Some(360)), alert("A", 0, Some(360))],
                t(70),
            )
            .await
            .unwrap();
        assert!(changes.is_empty(), "re-sends change nothing: {changes:?}");
        let stored = store.alerts(all(t(70))).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].alert.ends_at, Some(t(360)));
        assert_eq!(stored[0].updated_at, t(70));

        let changes = store
            .upsert_alerts(vec![alert("A", 0, Some(80))], t(90))
            .await
            .unwrap();
        assert_eq!(
            (changes[0].previous, changes[0].status),
            (Some(Status::Firing), Status::Resolved)
        );
        assert_eq!(
            store.alert_counts(t(90)).await.unwrap(),
            AlertCounts {
                firing: 0,
                resolved: 1
            }
        );
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn alerts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        store
            .upsert_alerts(vec![alert("A", 0, None), alert("B", 0, Some(100))], t(1))
            .await
            .unwrap();
        store.close().await.unwrap();
        assert!(matches!(
            store.upsert_alerts(vec![alert("C", 0, None)], t(2)).await,
            Err(StoreError::Closed)
        ));

        let store = open(&dir).await;
        let stored = store.alerts(all(t(2))).await.unwrap();
        let names: Vec<_> = stored.iter().map(|s| s.alert.name().to_string()).collect();
        assert_eq!(stored.len(), 2, "{names:?}");
        let a = stored.iter().find(|s| s.alert.name() == "A").unwrap();
        assert_eq!(a.alert, alert("A", 0, None));
        assert_eq!(a.fingerprint, a.alert.fingerprint());
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn expired_alerts_resolve_once_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        store
            .upsert_alerts(vec![alert("A", 0, Some(100)), alert("B", 0, None)], t(1))
            .await
            .unwrap();
        assert!(store.resolve_expired(t(99)).await.unwrap().is_empty());
        let changes = store.resolve_expired(t(100)).await.unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].alert.name(), "A");
        assert_eq!(changes[0].status, Status::Resolved);
        assert!(
            store.resolve_expired(t(200)).await.unwrap().is_empty(),
            "resolved only once"
        );
        let active = store
            .alerts(AlertQuery {
                now: t(200),
                include_resolved: false,
            })
            .await
            .unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(store.purge_resolved(t(100)).await.unwrap(), 0);
        assert_eq!(store.purge_resolved(t(101)).await.unwrap(), 1);
        assert_eq!(store.alerts(all(t(200))).await.unwrap().len(), 1);
        store.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_all_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(&dir).await);
        let mut tasks = Vec::new();
        for writer in 0..64 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let batch = (0..20)
                    .map(|i| alert(&format!("W{writer}-{i}"), 0, None))
                    .collect();
                store
                    .upsert_alerts(batch, t(1))
                    .await
                    .map(|changes| changes.len())
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), 20);
        }
        assert_eq!(store.alert_counts(t(1)).await.unwrap().firing, 64 * 20);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn locked_database_is_unavailable_then_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let blocker = Connection::open(store.path()).unwrap();
        blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let error = store
            .upsert_alerts(vec![alert("A", 0, None)], t(1))
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(matches!(store.health(), Health::NotReady(reason) if reason.contains("locked")));
        assert!(
            store.alerts(all(t(1))).await.unwrap().is_empty(),
            "nothing was stored"
        );

        blocker.execute_batch("ROLLBACK").unwrap();
        let mut waited = 0;
        while store.health() != Health::Ready {
            assert!(waited < 600, "store never became ready again");
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += 1;
        }
        store
            .upsert_alerts(vec![alert("A", 0, None)], t(2))
            .await
            .unwrap();
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn full_disk_fails_the_write_and_keeps_earlier_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.db");
        let store = tokio::task::spawn_blocking(move || {
            SqliteStore::open_blocking(path, Duration::from_millis(200), Some(8))
        })
        .await
        .unwrap()
        .unwrap();
        store
            .upsert_alerts(vec![alert("kept", 0, None)], t(1))
            .await
            .unwrap();
        let big: Vec<Alert> = (0..500)
            .map(|i| {
                let mut a = alert(&format!("big-{i}"), 0, None);
                a.annotations.insert("description".into(), "x".repeat(2000));
                a
            })
            .collect();
        let error = store.upsert_alerts(big, t(2)).await.unwrap_err();
        assert!(error.to_string().contains("full"), "{error}");
        let stored = store.alerts(all(t(2))).await.unwrap();
        assert_eq!(stored.len(), 1, "the failed batch left nothing behind");
        assert_eq!(stored[0].alert.name(), "kept");
        store.close().await.unwrap();
    }
}
