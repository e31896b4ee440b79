//! The single writer: receives write commands, folds those already queued into one transaction (group commit),
//! commits once, then answers each; keeps the timing cache in step with what was committed, and tells the changes
//! its commits made to the notification log, in commit order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::HealthState;
use super::outbox;
use super::rows::{ALERT_COLUMNS, json_text, key, read_alert, state_code, to_micros, unavailable};
use super::sync::Waiting;
use super::timing::{Pending, TimingIndex, View};
use crate::alert::{Alert, Status};
use crate::store::delivery::{
    Claimed, DeliveryRecord, Discard, Enqueued, Finished, LogChange, PayloadRead, RetrySelection,
};
use crate::store::{
    Dispatched, Existing, GroupRecord, Health, SilenceRecord, StateChange, StoreError, merge,
};

/// Most commands of each lane folded into one transaction.
const MAX_BATCH: usize = 256;

/// Most alerts of ingest commands folded into one transaction (a larger command goes alone): a transaction stays
/// short however deep the ingest queue is, so the commands that move notifications along, taken first, never wait
/// long for one.
const MAX_BATCH_ALERTS: usize = 1_000;

/// How often a writer whose last commit failed checks whether the database takes writes again.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// SQLite's message for `SQLITE_FULL`: the disk (or `max_page_count`) has no room for what a commit writes.
const DISK_FULL: &str = "database or disk is full";

/// The writer's state callers read without a round trip to its thread.
#[derive(Debug)]
pub(super) struct Shared {
    /// Transactions committed or attempted.
    pub(super) commits: AtomicU64,
    /// The earliest end (microseconds) of a committed firing alert, `i64::MAX` when none has one: a sweep before it
    /// has nothing to resolve.
    pub(super) earliest_expiry: AtomicI64,
    /// Committed alerts announced firing and resolved.
    pub(super) firing: AtomicU64,
    pub(super) resolved: AtomicU64,
}

impl Shared {
    pub(super) fn new(timing: &TimingIndex) -> Self {
        let shared = Shared {
            commits: AtomicU64::new(0),
            earliest_expiry: AtomicI64::new(i64::MAX),
            firing: AtomicU64::new(0),
            resolved: AtomicU64::new(0),
        };
        shared.committed(timing);
        shared
    }

    fn committed(&self, timing: &TimingIndex) {
        let (firing, resolved) = timing.counts();
        self.firing.store(firing, Ordering::Relaxed);
        self.resolved.store(resolved, Ordering::Relaxed);
        self.earliest_expiry.store(
            timing.earliest_expiry().unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Takes the changes of a write as soon as it is committed, on the writer's thread.
pub(super) type Committed = Box<dyn FnOnce(Vec<StateChange>) + Send>;

pub(super) enum Op {
    /// Alerts to store, and what to do with their changes once committed (before they are durable).
    Upsert(Vec<Alert>, DateTime<Utc>, Option<Committed>),
    ResolveExpired(DateTime<Utc>),
    Purge(DateTime<Utc>),

    SaveSilences(Vec<SilenceRecord>),
    PurgeSilences(DateTime<Utc>),
    Dispatch(Box<Dispatched>, DateTime<Utc>),
    Claim(Vec<i64>, DateTime<Utc>, DateTime<Utc>, PayloadRead),
    Finish(Vec<Finished>),
    Release(Vec<i64>, DateTime<Utc>),
    Retry(RetrySelection, DateTime<Utc>),
    Discard(i64),
    PurgeDeliveries(DateTime<Utc>),
}

impl Op {
    /// Whether this moves notifications along: the dispatcher's and the delivery engine's work, and operators'
    /// actions on deliveries.
    fn moves_notifications(&self) -> bool {
        matches!(
            self,
            Op::Dispatch(..)
                | Op::Claim(..)
                | Op::Finish(..)
                | Op::Release(..)
                | Op::Retry(..)
                | Op::Discard(..)
                | Op::PurgeDeliveries(..)
        )
    }

    /// The alerts this command writes (at least 1, for its cost in a transaction).
    fn alerts(&self) -> usize {
        match self {
            Op::Upsert(alerts, ..) => alerts.len().max(1),
            _ => 1,
        }
    }

    /// Whether this is answered only once durable (synced by the syncer): what is acknowledged to a sender or an
    /// operator (alerts, silences, replays, discards). The dispatcher's and the delivery engine's progress is
    /// answered at commit: lost by a power failure (never by a crash of the process, as the write reached the
    /// operating system), it is rebuilt at the next start from synced facts (stored alerts rejoin their groups, and
    /// what the notification log had not recorded is notified again), so at worst a notification is sent once more.
    /// The next sync covers it anyway. So notifications move at the pace of writes, not of fsyncs.
    fn must_sync(&self) -> bool {
        !matches!(
            self,
            Op::Dispatch(..)
                | Op::Claim(..)
                | Op::Finish(..)
                | Op::Purge(..)
                | Op::PurgeDeliveries(..)
        )
    }
}

/// Commands waiting for the writer, in two lanes each kept in arrival order: the dispatcher's and the delivery
/// engine's (and operators' actions on deliveries), which go first, and the rest (alerts, silences, sweeps), which
/// fill each transaction up to `MAX_BATCH_ALERTS`. So a flood of ingest neither holds up notifications nor is held up
/// by them: each transaction carries some of both.
#[derive(Default)]
struct Lanes {
    progress: VecDeque<Command>,
    ingest: VecDeque<Command>,
}

impl Lanes {
    fn is_empty(&self) -> bool {
        self.progress.is_empty() && self.ingest.is_empty()
    }

    fn push(&mut self, command: Command) {
        if command.op.moves_notifications() {
            self.progress.push_back(command);
        } else {
            self.ingest.push_back(command);
        }
    }

    /// The commands of the next transaction: waiting progress first (up to `MAX_BATCH`), then ingest commands (at
    /// least one if any waits, up to `MAX_BATCH` commands and `MAX_BATCH_ALERTS` alerts).
    fn next_batch(&mut self) -> Vec<Command> {
        let take = self.progress.len().min(MAX_BATCH);
        let mut batch: Vec<Command> = self.progress.drain(..take).collect();
        let mut alerts = 0;
        let mut taken = 0;
        while taken < MAX_BATCH
            && let Some(next) = self.ingest.front()
        {
            let weight = next.op.alerts();
            if taken > 0 && alerts + weight > MAX_BATCH_ALERTS {
                break;
            }
            let Some(command) = self.ingest.pop_front() else {
                break;
            };
            alerts += weight;
            taken += 1;
            batch.push(command);
        }
        batch
    }
}

pub(super) enum Outcome {
    Changes(Vec<StateChange>),
    /// Changes to hand over once the transaction is committed (then answered as their count).
    Handed(Vec<StateChange>, Committed),
    Count(u64),
    Deliveries(Vec<DeliveryRecord>),
    Claimed(Vec<Claimed>),
    Enqueued(Vec<Enqueued>),
    Discard(Discard),
}

pub(super) struct Command {
    pub(super) op: Op,
    pub(super) reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

pub(super) struct Writer {
    pub(super) connection: Connection,
    pub(super) timing: TimingIndex,
    /// What callers may read of the writer's state without asking it.
    pub(super) shared: Arc<Shared>,
    /// Told after each commit, so WAL checkpoints happen off this thread.
    pub(super) committed: mpsc::SyncSender<()>,
    /// Where committed requests that must be durable wait for the syncer.
    pub(super) sync: mpsc::Sender<Vec<Waiting>>,
    /// Whether each command runs in a savepoint of its own (see `run_batch`).
    pub(super) isolate: bool,
    /// Where the changes committed to the notification log go (see `Store::log_changes`).
    pub(super) log_changes: tokio::sync::mpsc::UnboundedSender<LogChange>,
    /// Set when a commit found the disk full: until a checkpoint has emptied the WAL, no write is tried (each would
    /// grow the WAL into whatever room is freed, leaving none for the checkpoint that must copy it back). Holds when
    /// the next checkpoint is tried.
    pub(super) full: Option<std::time::Instant>,
    /// How long a write waits for the database's write lock (held briefly by a checkpoint starting the WAL over).
    pub(super) busy_timeout: Duration,
}

thread_local! {
    /// The writer thread's `busy_timeout`, for `wait_for_lock`.
    static BUSY_TIMEOUT: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Waits for a locked database in 1 ms steps (SQLite's own waits grow to 100 ms), so a write resumes as soon as a
/// checkpoint's short hold on the write lock ends. `tries` counts the calls so far; after 100 of them the steps are
/// 10 ms. Gives up once `BUSY_TIMEOUT` has passed.
fn wait_for_lock(tries: i32) -> bool {
    let tries = u64::try_from(tries).unwrap_or(0);
    let waited = Duration::from_millis(tries.min(100) + tries.saturating_sub(100) * 10);
    if waited >= BUSY_TIMEOUT.with(std::cell::Cell::get) {
        return false;
    }
    std::thread::sleep(Duration::from_millis(if tries < 100 { 1 } else { 10 }));
    true
}

impl Writer {
    /// Runs until every sender is gone, then closes (which ends the checkpointer, who truncates the WAL).
    pub(super) fn run(mut self, receiver: mpsc::Receiver<Command>, health: &HealthState) {
        BUSY_TIMEOUT.with(|timeout| timeout.set(self.busy_timeout));
        if let Err(error) = self.connection.busy_handler(Some(wait_for_lock)) {
            tracing::warn!(%error, "store: cannot set the writer's wait for locks; SQLite's is used");
        }
        let mut lanes = Lanes::default();
        loop {
            if lanes.is_empty() {
                let first = if matches!(health.get(), Health::Ready) {
                    match receiver.recv() {
                        Ok(command) => command,
                        Err(mpsc::RecvError) => break,
                    }
                } else {
                    match receiver.recv_timeout(PROBE_INTERVAL) {
                        Ok(command) => command,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if self.full.is_some() {
                                self.make_room(health);
                            } else {
                                health.set(self.probe().as_ref().map(|_| ()));
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                };
                lanes.push(first);
            }
            while let Ok(command) = receiver.try_recv() {
                lanes.push(command);
            }
            let batch = lanes.next_batch();
            self.run_batch(batch, health);
        }
        if let Err(error) = self.connection.execute_batch("PRAGMA optimize;") {
            tracing::warn!(%error, "store optimize on close failed");
        }
    }

    /// With the disk full, tries to make room: a checkpoint that copies the whole WAL back into the database and
    /// truncates it. When it completes, writes resume (the WAL starts again from nothing); otherwise the next try is
    /// `PROBE_INTERVAL` later. Returns whether writes may resume.
    fn make_room(&mut self, health: &HealthState) -> bool {
        let checkpoint = self
            .connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            });
        match checkpoint {
            Ok(0) => {
                tracing::info!(
                    "the store has room again: the WAL is checkpointed and writes resume"
                );
                self.full = None;
                health.set(Ok(()));
                true
            }
            Ok(_) => {
                tracing::debug!(
                    "checkpoint to make room was blocked by a reader; trying again shortly"
                );
                self.full = Some(std::time::Instant::now() + PROBE_INTERVAL);
                false
            }
            Err(error) => {
                tracing::debug!(%error, "checkpoint to make room failed; trying again shortly");
                self.full = Some(std::time::Instant::now() + PROBE_INTERVAL);
                false
            }
        }
    }

    /// Answers a batch without touching the disk, while it is full and no checkpoint made room yet.
    fn refuse_while_full(&self, batch: Vec<Command>) {
        let error = StoreError::Unavailable(format!(
            "{DISK_FULL}: nothing is written until the WAL can be checkpointed into the room freed"
        ));
        for command in batch {
            let _ = command.reply.send(Err(error.clone()));
        }
    }

    fn probe(&mut self) -> Result<(), StoreError> {
        let transaction = self
            .connection
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

    fn run_batch(&mut self, batch: Vec<Command>, health: &HealthState) {
        if let Some(next) = self.full
            && (std::time::Instant::now() < next || !self.make_room(health))
        {
            self.refuse_while_full(batch);
            return;
        }
        let (ops, replies): (Vec<Op>, Vec<_>) = batch
            .into_iter()
            .map(|command| (command.op, command.reply))
            .unzip();
        metrics::counter!("herald_store_commits_total").increment(1);
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("herald_store_writes_total").increment(replies.len() as u64);
        let must_sync: Vec<bool> = ops.iter().map(Op::must_sync).collect();
        let timing = &self.timing;
        // Commands run straight in the transaction while they all succeed, which spares SQLite copying every page a
        // command touches into a statement journal. When one fails, the transaction is rolled back whole and the
        // batches that follow run each command in a savepoint of its own, so a command that keeps failing (a full
        // disk refusing new alerts) fails alone while the others go on; the first batch without a failure ends that.
        let isolate = self.isolate;
        let mut log_changes = Vec::new();
        let committed = (|| -> Result<(Vec<Result<Outcome, StoreError>>, Pending), Failure> {
            let mut transaction = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|error| Failure::all(unavailable(error)))?;
            let mut outcomes = Vec::with_capacity(ops.len());
            let mut pending = Pending::new();
            for (index, op) in ops.into_iter().enumerate() {
                let mut view = View {
                    base: timing,
                    pending: &pending,
                    local: Pending::new(),
                };
                let mut changed = Vec::new();
                let outcome = if isolate {
                    run_isolated(&mut transaction, &mut view, op, &mut changed)
                } else {
                    run(&transaction, &mut view, op, &mut changed)
                };
                if outcome.is_ok() {
                    log_changes.append(&mut changed);
                }
                let local = view.local;
                match &outcome {
                    Err(error) if transaction.is_autocommit() => {
                        // SQLite rolled the whole transaction back (disk full, I/O error): all of it is lost.
                        return Err(Failure::all(error.clone()));
                    }
                    // Not isolated: what the command wrote before it failed is undone with the whole transaction
                    // (dropped uncommitted, it rolls back).
                    Err(error) if !isolate => {
                        return Err(Failure {
                            error: error.clone(),
                            at: Some(index),
                        });
                    }
                    Ok(_) => pending.extend(local),
                    Err(_) => {}
                }
                outcomes.push(outcome);
            }
            transaction
                .commit()
                .map_err(|error| Failure::all(unavailable(error)))?;
            Ok((outcomes, pending))
        })();
        self.isolate = match &committed {
            Ok((outcomes, _)) => outcomes.iter().any(Result::is_err),
            Err(_) => true,
        };
        match committed {
            Ok((outcomes, pending)) => {
                for change in log_changes {
                    // Nobody listening (the dispatcher stopped): the store has it anyway.
                    let _ = self.log_changes.send(change);
                }
                self.timing.apply(pending);
                self.shared.committed(&self.timing);
                let _ = self.committed.try_send(());
                let failed = outcomes.iter().find_map(|outcome| match outcome {
                    Err(error @ StoreError::Unavailable(_)) => Some(error.clone()),
                    _ => None,
                });
                health.set(failed.as_ref().map_or(Ok(()), Err));
                let mut waiting = Vec::new();
                for ((reply, outcome), sync) in replies.into_iter().zip(outcomes).zip(must_sync) {
                    // Committed: changes go on at once; the answer waits for the sync.
                    let outcome = match outcome {
                        Ok(Outcome::Handed(changes, committed)) => {
                            let count = changes.len() as u64;
                            committed(changes);
                            Ok(Outcome::Count(count))
                        }
                        outcome => outcome,
                    };
                    match outcome {
                        Ok(outcome) if sync => waiting.push((reply, outcome)),
                        outcome => {
                            let _ = reply.send(outcome);
                        }
                    }
                }
                if !waiting.is_empty()
                    && let Err(mpsc::SendError(waiting)) = self.sync.send(waiting)
                {
                    for (reply, _) in waiting {
                        let _ = reply.send(Err(StoreError::Closed));
                    }
                }
            }
            Err(Failure { error, at: None }) => {
                tracing::error!(%error, "store commit failed");
                self.note_full(&error);
                health.set(Err(&error));
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            Err(Failure {
                error,
                at: Some(failed),
            }) => {
                tracing::warn!(%error, "store write failed; its transaction was rolled back");
                self.note_full(&error);
                if matches!(error, StoreError::Unavailable(_)) {
                    health.set(Err(&error));
                }
                let undone = StoreError::Unavailable(format!(
                    "not written: another write of the same transaction failed ({error})"
                ));
                for (index, reply) in replies.into_iter().enumerate() {
                    let outcome = if index == failed {
                        error.clone()
                    } else {
                        undone.clone()
                    };
                    let _ = reply.send(Err(outcome));
                }
            }
        }
    }
}

impl Writer {
    /// Enters the full-disk mode when `error` says the disk is full (see `full`).
    fn note_full(&mut self, error: &StoreError) {
        if self.full.is_none() && error.to_string().contains(DISK_FULL) {
            tracing::error!(
                "the store's disk is full: writes are refused until a checkpoint makes room (free space on its volume)"
            );
            self.full = Some(std::time::Instant::now() + PROBE_INTERVAL);
        }
    }
}

/// Why a batch's transaction was not committed: every command failed with `error`, or the command at `at` failed
/// and the others were undone with it.
struct Failure {
    error: StoreError,
    at: Option<usize>,
}

impl Failure {
    fn all(error: StoreError) -> Self {
        Failure { error, at: None }
    }
}

/// Runs one command inside a savepoint, so its failure leaves the others of the batch intact.
fn run_isolated(
    transaction: &mut Transaction<'_>,
    view: &mut View<'_>,
    op: Op,
    log_changes: &mut Vec<LogChange>,
) -> Result<Outcome, StoreError> {
    let savepoint = transaction.savepoint().map_err(unavailable)?;
    let outcome = run(&savepoint, view, op, log_changes)?;
    savepoint.commit().map_err(unavailable)?;
    Ok(outcome)
}

/// Runs one command on `savepoint` (the transaction itself, or a savepoint of it); the changes it makes to the
/// notification log go to `log_changes`, to be told once committed.
fn run(
    savepoint: &Connection,
    view: &mut View<'_>,
    op: Op,
    log_changes: &mut Vec<LogChange>,
) -> Result<Outcome, StoreError> {
    match op {
        Op::Upsert(alerts, now, committed) => {
            upsert(savepoint, view, alerts, now).map(|changes| match committed {
                Some(committed) => Outcome::Handed(changes, committed),
                None => Outcome::Changes(changes),
            })
        }
        Op::ResolveExpired(now) => resolve_expired(savepoint, view, now).map(Outcome::Changes),
        Op::Purge(before) => purge(savepoint, view, before).map(Outcome::Count),
        Op::SaveSilences(silences) => save_silences(savepoint, silences).map(Outcome::Count),
        Op::PurgeSilences(before) => purge_silences(savepoint, before).map(Outcome::Count),
        Op::Dispatch(dispatched, now) => {
            let Dispatched {
                groups,
                dropped,
                queued,
                forgotten,
                adopted,
            } = *dispatched;
            save_groups(savepoint, groups, dropped)?;
            outbox::forget_sent(savepoint, forgotten)?;
            outbox::adopt_sent(savepoint, adopted)?;
            outbox::enqueue(savepoint, queued, now).map(Outcome::Enqueued)
        }
        Op::Claim(ids, now, lease, read) => {
            outbox::claim(savepoint, ids, now, lease, &read).map(Outcome::Claimed)
        }
        Op::Finish(finished) => {
            let count = finished.len() as u64;
            for finished in finished {
                log_changes.extend(outbox::finish(savepoint, finished)?);
            }
            Ok(Outcome::Count(count))
        }
        Op::Release(ids, now) => outbox::release(savepoint, ids, now).map(Outcome::Count),
        Op::Retry(selection, now) => {
            let (retried, replayed) = outbox::retry(savepoint, selection, now)?;
            log_changes.extend(replayed);
            Ok(Outcome::Deliveries(retried))
        }
        Op::Discard(id) => outbox::discard(savepoint, id).map(Outcome::Discard),
        Op::PurgeDeliveries(before) => outbox::purge(savepoint, before).map(Outcome::Count),
    }
}

fn upsert(
    connection: &Connection,
    view: &mut View<'_>,
    alerts: Vec<Alert>,
    now: DateTime<Utc>,
) -> Result<Vec<StateChange>, StoreError> {
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
    let mut changes = Vec::with_capacity(alerts.len());
    for incoming in alerts {
        let fingerprint = incoming.fingerprint();
        let row = key(fingerprint);
        let existing = view.get(row);
        let alert = merge(existing.as_ref(), incoming, now);
        let status = alert.status_at(now);
        write
            .execute(params![
                row,
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
        view.set(
            row,
            Some(Existing {
                starts_at: alert.starts_at,
                ends_at: alert.ends_at,
                ends_at_defaulted: alert.ends_at_defaulted,
                state: status,
            }),
        );
        changes.push(StateChange {
            fingerprint,
            alert,
            previous: existing.map(|existing| existing.state),
            status,
            at: now,
        });
    }
    Ok(changes)
}

fn resolve_expired(
    connection: &Connection,
    view: &mut View<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<StateChange>, StoreError> {
    let cutoff = to_micros(now);
    let mut read = connection
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE fingerprint = ?1"
        ))
        .map_err(unavailable)?;
    let mut update = connection
        .prepare_cached("UPDATE alerts SET state = 1 WHERE fingerprint = ?1")
        .map_err(unavailable)?;
    let mut changes = Vec::new();
    for row in view.expiry_candidates(cutoff) {
        let Some(mut timing) = view.get(row) else {
            continue;
        };
        let expired = timing.state == Status::Firing
            && timing.ends_at.is_some_and(|end| to_micros(end) <= cutoff);
        if !expired {
            continue;
        }
        let stored = read
            .query_row(params![row], read_alert)
            .map_err(unavailable)?;
        update.execute(params![row]).map_err(unavailable)?;
        timing.state = Status::Resolved;
        view.set(row, Some(timing));
        changes.push(StateChange {
            fingerprint: stored.fingerprint,
            alert: stored.alert,
            previous: Some(Status::Firing),
            status: Status::Resolved,
            at: now,
        });
    }
    Ok(changes)
}

fn purge(
    connection: &Connection,
    view: &mut View<'_>,
    ended_before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut delete = connection
        .prepare_cached("DELETE FROM alerts WHERE fingerprint = ?1")
        .map_err(unavailable)?;
    let keys: Vec<i64> = view.base.resolved_before(to_micros(ended_before)).collect();
    let mut deleted = 0;
    for row in keys {
        // Only what is still resolved and old in this transaction's view (a re-fire may have revived it).
        let old = view.get(row).is_some_and(|timing| {
            timing.state == Status::Resolved && timing.ends_at.is_some_and(|end| end < ended_before)
        });
        if old {
            deleted += delete.execute(params![row]).map_err(unavailable)? as u64;
            view.set(row, None);
        }
    }
    Ok(deleted)
}

fn save_groups(
    connection: &Connection,
    changed: Vec<GroupRecord>,
    deleted: Vec<String>,
) -> Result<u64, StoreError> {
    let mut upsert = connection
        .prepare_cached(
            "INSERT INTO groups (id, group_key, route_id, receiver, labels, first_flush, flushed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET first_flush = excluded.first_flush, \
             flushed = excluded.flushed",
        )
        .map_err(unavailable)?;
    let mut delete = connection
        .prepare_cached("DELETE FROM groups WHERE id = ?1")
        .map_err(unavailable)?;
    let mut count = 0;
    for group in changed {
        count += upsert
            .execute(params![
                group.id,
                group.key,
                group.route_id,
                group.receiver,
                json_text(&group.labels)?,
                to_micros(group.first_flush),
                group.flushed,
            ])
            .map_err(unavailable)? as u64;
    }
    for id in deleted {
        count += delete.execute(params![id]).map_err(unavailable)? as u64;
    }
    Ok(count)
}

fn save_silences(connection: &Connection, silences: Vec<SilenceRecord>) -> Result<u64, StoreError> {
    let mut upsert = connection
        .prepare_cached(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, \
             starts_at = excluded.starts_at, ends_at = excluded.ends_at, created_by = excluded.created_by, \
             comment = excluded.comment, updated_at = excluded.updated_at",
        )
        .map_err(unavailable)?;
    let mut count = 0;
    for silence in silences {
        count += upsert
            .execute(params![
                silence.id,
                json_text(&silence.matchers)?,
                to_micros(silence.starts_at),
                to_micros(silence.ends_at),
                silence.created_by,
                silence.comment,
                to_micros(silence.updated_at),
            ])
            .map_err(unavailable)? as u64;
    }
    Ok(count)
}

fn purge_silences(connection: &Connection, ended_before: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut delete = connection
        .prepare_cached("DELETE FROM silences WHERE ends_at < ?1")
        .map_err(unavailable)?;
    let deleted = delete
        .execute(params![to_micros(ended_before)])
        .map_err(unavailable)?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, Source};

    fn command(op: Op) -> Command {
        let (reply, _) = oneshot::channel();
        Command { op, reply }
    }

    fn upsert(alerts: usize) -> Command {
        let now = Utc::now();
        let alert = Alert {
            labels: Labels::from([("alertname".to_string(), "Up".to_string())]),
            annotations: Default::default(),
            starts_at: now,
            ends_at: None,
            ends_at_defaulted: false,
            generator_url: String::new(),
            source: Source::Prometheus,
            extra: Default::default(),
        };
        command(Op::Upsert(vec![alert; alerts], now, None))
    }

    fn claim() -> Command {
        let now = Utc::now();
        command(Op::Claim(Vec::new(), now, now, PayloadRead::None))
    }

    fn kinds(batch: &[Command]) -> Vec<usize> {
        batch
            .iter()
            .map(|command| {
                if command.op.moves_notifications() {
                    0
                } else {
                    command.op.alerts()
                }
            })
            .collect()
    }

    #[test]
    fn a_locked_database_is_waited_for_in_short_steps_until_the_busy_timeout() {
        BUSY_TIMEOUT.with(|timeout| timeout.set(Duration::from_millis(50)));
        assert!(wait_for_lock(0));
        assert!(wait_for_lock(49));
        assert!(!wait_for_lock(50));
        BUSY_TIMEOUT.with(|timeout| timeout.set(Duration::from_secs(1)));
        assert!(wait_for_lock(100), "100 ms waited of 1 s");
        assert!(wait_for_lock(189));
        assert!(!wait_for_lock(190), "100 steps of 1 ms and 90 of 10 ms");
    }

    #[test]
    fn progress_goes_first_and_ingest_fills_up_to_the_alert_bound() {
        let mut lanes = Lanes::default();
        for _ in 0..50 {
            lanes.push(upsert(100));
        }
        lanes.push(claim());
        lanes.push(claim());
        let first = lanes.next_batch();
        let mut expected = vec![0, 0];
        expected.extend(std::iter::repeat_n(100, MAX_BATCH_ALERTS / 100));
        assert_eq!(kinds(&first), expected);
        lanes.push(claim());
        let per_batch = MAX_BATCH_ALERTS / 100;
        let mut second = vec![0];
        second.extend(std::iter::repeat_n(100, per_batch));
        assert_eq!(kinds(&lanes.next_batch()), second);
        let mut left = 50 - 2 * per_batch;
        while left > 0 {
            let batch = lanes.next_batch();
            assert_eq!(batch.len(), left.min(per_batch));
            left -= batch.len();
        }
        assert!(lanes.is_empty());
    }

    /// A writer on a new database in `dir`, with the syncer's queue.
    fn writer(dir: &std::path::Path) -> (Writer, mpsc::Receiver<Vec<Waiting>>) {
        let mut connection = Connection::open(dir.join("herald.db")).unwrap();
        super::super::configure(&connection, Duration::from_millis(200)).unwrap();
        super::super::migrate(&mut connection).unwrap();
        let timing = TimingIndex::load(&connection).unwrap();
        let shared = Arc::new(Shared::new(&timing));
        let (committed, _) = mpsc::sync_channel(1);
        let (sync, syncing) = mpsc::channel();
        let writer = Writer {
            connection,
            timing,
            shared,
            committed,
            sync,
            isolate: false,
            log_changes: tokio::sync::mpsc::unbounded_channel().0,
            full: None,
            busy_timeout: Duration::from_secs(5),
        };
        (writer, syncing)
    }

    /// Settles a delivery that does not exist: its attempt row breaks a foreign key, so the command fails while the
    /// transaction goes on.
    fn failing() -> Op {
        let now = Utc::now();
        Op::Finish(vec![Finished {
            id: 424_242,
            attempt: crate::store::delivery::AttemptRecord {
                started_at: now,
                duration_seconds: 0.1,
                outcome: "delivered".into(),
                status_code: Some(200),
                error: None,
                response: None,
            },
            settle: crate::store::delivery::Settle::Delivered,
            pause: None,
            state: None,
            now,
            spent: true,
        }])
    }

    fn stored_alerts(writer: &Writer) -> i64 {
        writer
            .connection
            .query_row("SELECT COUNT(*) FROM alerts", [], |row| row.get(0))
            .unwrap()
    }

    /// Runs `ops` as one batch and returns each answer (a write that must be durable is answered as synced).
    fn run_batch(
        writer: &mut Writer,
        syncing: &mpsc::Receiver<Vec<Waiting>>,
        ops: Vec<Op>,
    ) -> Vec<Result<(), String>> {
        let (commands, mut replies): (Vec<_>, Vec<_>) = ops
            .into_iter()
            .map(|op| {
                let (reply, answer) = oneshot::channel();
                (Command { op, reply }, answer)
            })
            .unzip();
        writer.run_batch(commands, &HealthState::default());
        while let Ok(waiting) = syncing.try_recv() {
            for (reply, outcome) in waiting {
                let _ = reply.send(Ok(outcome));
            }
        }
        replies
            .iter_mut()
            .map(|answer| match answer.try_recv().unwrap() {
                Ok(_) => Ok(()),
                Err(error) => Err(error.to_string()),
            })
            .collect()
    }

    #[test]
    fn a_failed_write_undoes_its_batch_then_fails_alone_until_a_batch_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, syncing) = writer(dir.path());
        let alert = || upsert(1).op;

        // Straight in the transaction: the failure rolls the whole batch back.
        let answers = run_batch(&mut writer, &syncing, vec![alert(), failing(), alert()]);
        assert!(
            answers[1].as_ref().unwrap_err().contains("FOREIGN KEY"),
            "{answers:?}"
        );
        for undone in [&answers[0], &answers[2]] {
            assert!(
                undone.as_ref().unwrap_err().contains("not written"),
                "{answers:?}"
            );
        }
        assert_eq!(stored_alerts(&writer), 0, "nothing of the batch is kept");
        assert!(writer.isolate);

        // Each in its savepoint: the failing write fails alone.
        let answers = run_batch(&mut writer, &syncing, vec![alert(), failing(), alert()]);
        assert_eq!(answers[0], Ok(()));
        assert!(
            answers[1].as_ref().unwrap_err().contains("FOREIGN KEY"),
            "{answers:?}"
        );
        assert_eq!(answers[2], Ok(()));
        assert_eq!(stored_alerts(&writer), 1);
        assert!(writer.isolate, "a batch with a failure keeps isolating");

        let answers = run_batch(&mut writer, &syncing, vec![alert()]);
        assert_eq!(answers, vec![Ok(())]);
        assert!(!writer.isolate, "a clean batch ends isolation");
        let answers = run_batch(&mut writer, &syncing, vec![alert(), alert()]);
        assert_eq!(answers, vec![Ok(()), Ok(())]);
    }

    #[test]
    fn a_command_larger_than_the_bound_goes_alone_and_nothing_waits_forever() {
        let mut lanes = Lanes::default();
        lanes.push(upsert(MAX_BATCH_ALERTS * 2));
        lanes.push(upsert(1));
        assert_eq!(kinds(&lanes.next_batch()), vec![MAX_BATCH_ALERTS * 2]);
        assert_eq!(kinds(&lanes.next_batch()), vec![1]);
        assert!(lanes.is_empty());
        assert!(lanes.next_batch().is_empty());
    }
}
