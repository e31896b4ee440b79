//! The outbox in SQLite: queueing deliveries (with the notification log entries of their integrations, in one
//! transaction), claiming them with a lease, settling attempts (a delivery that dies marks its log entry as not
//! told), replays (which count it as told again) and discards, and the queries the engine and operators read.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::rows::{from_micros, json_column, json_text, to_micros, unavailable};
use crate::store::StoreError;
use crate::store::delivery::{
    AttemptInput, AttemptRecord, Claimed, DeliveryDetail, DeliveryQuery, DeliveryRecord,
    DeliveryState, Discard, Enqueued, Finished, LogChange, LogChangeKind, Logged, PayloadRead,
    Queued, RECEIVER_ENTRY, RetrySelection, SentRecord, Settle, Told,
};

pub(super) const DELIVERY_COLUMNS: &str = "id, receiver, integration, integration_key, destination, group_key, \
     status, alert_count, state, attempts, created_at, queued_at, next_attempt_at, lease_until, updated_at, last_error";

fn conversion(index: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, message.into())
}

/// Reads a row selected with `DELIVERY_COLUMNS`.
pub(super) fn read_delivery(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let state: String = row.get(8)?;
    Ok(DeliveryRecord {
        id: row.get(0)?,
        receiver: row.get(1)?,
        integration: row.get(2)?,
        integration_key: row.get(3)?,
        destination: row.get(4)?,
        group_key: row.get(5)?,
        status: row.get(6)?,
        alert_count: row.get::<_, i64>(7)? as usize,
        state: state.parse().map_err(|error| conversion(8, error))?,
        attempts: row.get::<_, i64>(9)? as u32,
        created_at: from_micros(row.get(10)?)?,
        queued_at: from_micros(row.get(11)?)?,
        next_attempt_at: from_micros(row.get(12)?)?,
        lease_until: row
            .get::<_, Option<i64>>(13)?
            .map(from_micros)
            .transpose()?,
        updated_at: from_micros(row.get(14)?)?,
        last_error: row.get(15)?,
    })
}

fn select_by_ids(connection: &Connection, ids: &[i64]) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
        ))
        .map_err(unavailable)?;
    let mut records = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(record) = statement
            .query_row(params![id], read_delivery)
            .optional()
            .map_err(unavailable)?
        {
            records.push(record);
        }
    }
    Ok(records)
}

/// The first delivery id never used: past the highest ever stored (`AUTOINCREMENT` keeps it in `sqlite_sequence`,
/// deleted rows included).
pub(super) fn next_id(connection: &Connection) -> rusqlite::Result<i64> {
    let used: i64 = connection.query_row(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'deliveries'), 0), \
         coalesce((SELECT max(id) FROM deliveries), 0))",
        [],
        |row| row.get(0),
    )?;
    Ok(used.saturating_add(1))
}

pub(super) fn enqueue(
    connection: &Connection,
    notifications: Vec<Arc<Queued>>,
    now: DateTime<Utc>,
) -> Result<Vec<Enqueued>, StoreError> {
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO deliveries (id, receiver, integration, integration_key, destination, group_key, status, \
             alert_count, state, attempts, created_at, queued_at, next_attempt_at, lease_until, updated_at) \
             VALUES (?11, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?9, ?10, ?9)",
        )
        .map_err(unavailable)?;
    let mut insert_payload = connection
        .prepare_cached("INSERT INTO delivery_payloads (delivery_id, payload) VALUES (?1, ?2)")
        .map_err(unavailable)?;
    let micros = to_micros(now);
    let mut enqueued = Vec::new();
    for queued in notifications {
        let Queued { deliveries, sent } = &*queued;
        let mut ids = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let record = delivery.record(now);
            insert
                .execute(params![
                    delivery.receiver,
                    delivery.integration,
                    delivery.integration_key,
                    delivery.destination,
                    delivery.group_key,
                    delivery.status,
                    delivery.alert_count as i64,
                    record.state.as_str(),
                    micros,
                    delivery.claim_until.map(to_micros),
                    delivery.id,
                ])
                .map_err(unavailable)?;
            let id = delivery.id;
            ids.push(id);
            insert_payload
                .execute(params![id, &*delivery.payload])
                .map_err(unavailable)?;
            let claimed = match delivery.claim_until {
                Some(_) => Some(
                    integration_state(
                        connection,
                        &delivery.receiver,
                        &delivery.integration_key,
                        &delivery.group_key,
                    )
                    .map_err(unavailable)?,
                ),
                None => None,
            };
            enqueued.push(Enqueued { record, claimed });
        }
        if let Some(sent) = sent {
            record_sent(connection, sent, &ids)?;
        }
    }
    Ok(enqueued)
}

/// What an integration keeps about a group, if anything.
fn integration_state(
    connection: &Connection,
    receiver: &str,
    integration_key: &str,
    group_key: &str,
) -> rusqlite::Result<Option<String>> {
    connection
        .prepare_cached(
            "SELECT state FROM integration_state WHERE receiver = ?1 AND integration_key = ?2 \
             AND group_key = ?3",
        )?
        .query_row(params![receiver, integration_key, group_key], |row| {
            row.get(0)
        })
        .optional()
}

/// Writes one integration's log entry, replacing its last one: that one becomes what it had before (unless its
/// delivery died: what it had before stays).
fn write_entry(
    connection: &Connection,
    (receiver, group_key, integration_key): (&str, &str, &str),
    (firing, resolved, at): (&str, &str, i64),
    delivery: Option<i64>,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO integration_log (receiver, group_key, integration_key, firing, resolved, sent_at, \
             delivery_id, dead) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0) \
             ON CONFLICT (receiver, group_key, integration_key) DO UPDATE SET \
             had_firing = CASE WHEN dead THEN had_firing ELSE firing END, \
             had_resolved = CASE WHEN dead THEN had_resolved ELSE resolved END, \
             had_at = CASE WHEN dead THEN had_at ELSE sent_at END, \
             firing = excluded.firing, resolved = excluded.resolved, sent_at = excluded.sent_at, \
             delivery_id = excluded.delivery_id, dead = 0",
        )
        .map_err(unavailable)?
        .execute(params![
            receiver,
            group_key,
            integration_key,
            firing,
            resolved,
            at,
            delivery
        ])
        .map_err(unavailable)?;
    Ok(())
}

/// Records what a notification told each integration it was queued for (the notification log entries), with the
/// delivery that carries it; `ids` are the notification's deliveries, in order.
fn record_sent(connection: &Connection, logged: &Logged, ids: &[i64]) -> Result<(), StoreError> {
    let (firing, resolved) = (
        json_text(&logged.told.firing)?,
        json_text(&logged.told.resolved)?,
    );
    let at = to_micros(logged.told.at);
    for (integration_key, delivery) in &logged.integrations {
        write_entry(
            connection,
            (&logged.receiver, &logged.group_key, integration_key),
            (&firing, &resolved, at),
            delivery.and_then(|index| ids.get(index).copied()),
        )?;
    }
    Ok(())
}

/// Writes the per-integration copies of receivers' entries, each replacing the receiver's entry it copies.
pub(super) fn adopt_sent(
    connection: &Connection,
    adopted: Vec<SentRecord>,
) -> Result<(), StoreError> {
    let mut delete = connection
        .prepare_cached(
            "DELETE FROM integration_log WHERE receiver = ?1 AND group_key = ?2 AND integration_key = ?3",
        )
        .map_err(unavailable)?;
    for record in adopted {
        let (firing, resolved) = (
            json_text(&record.told.firing)?,
            json_text(&record.told.resolved)?,
        );
        write_entry(
            connection,
            (&record.receiver, &record.group_key, &record.integration_key),
            (&firing, &resolved, to_micros(record.told.at)),
            None,
        )?;
        delete
            .execute(params![record.receiver, record.group_key, RECEIVER_ENTRY])
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Deletes the notification log entries of groups, by (receiver, group key): every integration's.
pub(super) fn forget_sent(
    connection: &Connection,
    forgotten: Vec<(String, String)>,
) -> Result<(), StoreError> {
    let mut delete = connection
        .prepare_cached("DELETE FROM integration_log WHERE receiver = ?1 AND group_key = ?2")
        .map_err(unavailable)?;
    for (receiver, group_key) in forgotten {
        delete
            .execute(params![receiver, group_key])
            .map_err(unavailable)?;
    }
    Ok(())
}

/// The whole notification log.
pub(super) fn sent(connection: &Connection) -> rusqlite::Result<Vec<SentRecord>> {
    let mut statement = connection.prepare_cached(
        "SELECT receiver, group_key, integration_key, firing, resolved, sent_at, delivery_id, dead, had_firing, \
         had_resolved, had_at FROM integration_log ORDER BY receiver, group_key, integration_key",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(SentRecord {
            receiver: row.get(0)?,
            group_key: row.get(1)?,
            integration_key: row.get(2)?,
            told: Told {
                firing: json_column(3, &row.get::<_, String>(3)?)?,
                resolved: json_column(4, &row.get::<_, String>(4)?)?,
                at: from_micros(row.get(5)?)?,
            },
            delivery: row.get(6)?,
            dead: row.get(7)?,
            had: read_had(row, 8)?,
        })
    })?;
    rows.collect()
}

/// What an entry had before (columns `had_firing`, `had_resolved`, `had_at` from `first` on), if anything.
fn read_had(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Told>> {
    let Some(at) = row.get::<_, Option<i64>>(first + 2)? else {
        return Ok(None);
    };
    let firing: Option<String> = row.get(first)?;
    let resolved: Option<String> = row.get(first + 1)?;
    Ok(Some(Told {
        firing: json_column(first, firing.as_deref().unwrap_or("[]"))?,
        resolved: json_column(first + 1, resolved.as_deref().unwrap_or("[]"))?,
        at: from_micros(at)?,
    }))
}

/// The (receiver, group key, integration key) of a delivery.
fn delivery_entry(
    connection: &Connection,
    id: i64,
) -> Result<Option<(String, String, String)>, StoreError> {
    connection
        .prepare_cached("SELECT receiver, group_key, integration_key FROM deliveries WHERE id = ?1")
        .map_err(unavailable)?
        .query_row(params![id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .map_err(unavailable)
}

/// A delivery died: when its integration's log entry is the one it carries, that entry no longer counts as told.
fn log_dead(connection: &Connection, id: i64) -> Result<Option<LogChange>, StoreError> {
    let Some((receiver, group_key, integration_key)) = delivery_entry(connection, id)? else {
        return Ok(None);
    };
    let had = connection
        .prepare_cached(
            "UPDATE integration_log SET dead = 1 WHERE receiver = ?1 AND group_key = ?2 AND integration_key = ?3 \
             AND delivery_id = ?4 AND dead = 0 RETURNING had_firing, had_resolved, had_at",
        )
        .map_err(unavailable)?
        .query_row(
            params![receiver, group_key, integration_key, id],
            |row| read_had(row, 0),
        )
        .optional()
        .map_err(unavailable)?;
    Ok(had.map(|had| LogChange {
        receiver,
        integration_key,
        group_key,
        delivery: id,
        kind: LogChangeKind::Dead { had },
    }))
}

/// A dead delivery is queued again: when its integration's log entry is the one it carries, it counts as told again.
fn log_replayed(connection: &Connection, id: i64) -> Result<Option<LogChange>, StoreError> {
    let Some((receiver, group_key, integration_key)) = delivery_entry(connection, id)? else {
        return Ok(None);
    };
    let changed = connection
        .prepare_cached(
            "UPDATE integration_log SET dead = 0 WHERE receiver = ?1 AND group_key = ?2 AND integration_key = ?3 \
             AND delivery_id = ?4 AND dead = 1",
        )
        .map_err(unavailable)?
        .execute(params![receiver, group_key, integration_key, id])
        .map_err(unavailable)?;
    Ok((changed == 1).then_some(LogChange {
        receiver,
        integration_key,
        group_key,
        delivery: id,
        kind: LogChangeKind::Replayed,
    }))
}

/// Moves pending deliveries (and in-flight ones whose lease ended) to in flight; returns those it took, with their
/// notification and their integration's state for their group.
pub(super) fn claim(
    connection: &Connection,
    ids: Vec<i64>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    read: &PayloadRead,
) -> Result<Vec<Claimed>, StoreError> {
    let mut update = connection
        .prepare_cached(
            "UPDATE deliveries SET state = 'in_flight', lease_until = ?2, updated_at = ?3 \
             WHERE id = ?1 AND (state = 'pending' OR (state = 'in_flight' AND lease_until <= ?3))",
        )
        .map_err(unavailable)?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        if update
            .execute(params![id, to_micros(lease_until), to_micros(now)])
            .map_err(unavailable)?
            == 1
            && let Some(input) =
                attempt_input(connection, id, read.wants(id)).map_err(unavailable)?
        {
            claimed.push(Claimed { id, input });
        }
    }
    Ok(claimed)
}

/// Stores an attempt and what became of its delivery; returns the change to the notification log when it died.
pub(super) fn finish(
    connection: &Connection,
    finished: Finished,
) -> Result<Option<LogChange>, StoreError> {
    let Finished {
        id,
        attempt,
        settle,
        pause,
        state,
        now,
        spent,
    } = finished;
    if let Some(state) = state {
        connection
            .prepare_cached(
                "INSERT INTO integration_state (receiver, integration_key, group_key, state, updated_at) \
                 SELECT receiver, integration_key, group_key, ?2, ?3 FROM deliveries WHERE id = ?1 \
                 ON CONFLICT (receiver, integration_key, group_key) DO UPDATE SET state = excluded.state, \
                 updated_at = excluded.updated_at",
            )
            .map_err(unavailable)?
            .execute(params![id, state, to_micros(now)])
            .map_err(unavailable)?;
    }
    connection
        .prepare_cached(
            "INSERT INTO delivery_attempts (delivery_id, started_at, duration_us, outcome, status_code, error, \
             response) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(unavailable)?
        .execute(params![
            id,
            to_micros(attempt.started_at),
            (attempt.duration_seconds * 1e6) as i64,
            attempt.outcome,
            attempt.status_code,
            attempt.error,
            attempt.response,
        ])
        .map_err(unavailable)?;
    let died = matches!(settle, Settle::Dead { .. });
    let (state, next, error) = match settle {
        Settle::Delivered => (DeliveryState::Delivered, None, None),
        Settle::Retry {
            next_attempt_at,
            error,
        } => (DeliveryState::Pending, Some(next_attempt_at), Some(error)),
        Settle::Dead { error } => (DeliveryState::Dead, None, Some(error)),
    };
    connection
        .prepare_cached(
            "UPDATE deliveries SET state = ?2, attempts = attempts + ?6, lease_until = NULL, updated_at = ?3, \
             next_attempt_at = COALESCE(?4, next_attempt_at), \
             last_error = CASE WHEN ?2 = 'delivered' THEN NULL ELSE COALESCE(?5, last_error) END \
             WHERE id = ?1",
        )
        .map_err(unavailable)?
        .execute(params![
            id,
            state.as_str(),
            to_micros(now),
            next.map(to_micros),
            error,
            i64::from(spent),
        ])
        .map_err(unavailable)?;
    if let Some((destination, until)) = pause {
        connection
            .prepare_cached(
                "INSERT INTO destination_pauses (destination, until) VALUES (?1, ?2) \
                 ON CONFLICT (destination) DO UPDATE SET until = MAX(until, excluded.until)",
            )
            .map_err(unavailable)?
            .execute(params![destination, to_micros(until)])
            .map_err(unavailable)?;
    }
    if died {
        return log_dead(connection, id);
    }
    Ok(None)
}

/// Returns in-flight deliveries to pending, due at `now` (a drain that ran out of time).
pub(super) fn release(
    connection: &Connection,
    ids: Vec<i64>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut update = connection
        .prepare_cached(
            "UPDATE deliveries SET state = 'pending', lease_until = NULL, next_attempt_at = ?2, updated_at = ?2 \
             WHERE id = ?1 AND state = 'in_flight'",
        )
        .map_err(unavailable)?;
    let mut count = 0;
    for id in ids {
        count += update
            .execute(params![id, to_micros(now)])
            .map_err(unavailable)? as u64;
    }
    Ok(count)
}

/// Queues deliveries again; returns them, and the log entries that count as told again.
pub(super) fn retry(
    connection: &Connection,
    selection: RetrySelection,
    now: DateTime<Utc>,
) -> Result<(Vec<DeliveryRecord>, Vec<LogChange>), StoreError> {
    let now = to_micros(now);
    let ids: Vec<i64> = match selection {
        RetrySelection::One(id) => vec![id],
        RetrySelection::All { state, receiver } => {
            let mut statement = connection
                .prepare_cached(
                    "SELECT id FROM deliveries WHERE state = ?1 AND (?2 IS NULL OR receiver = ?2) ORDER BY id",
                )
                .map_err(unavailable)?;
            statement
                .query_map(params![state.as_str(), receiver], |row| row.get(0))
                .map_err(unavailable)?
                .collect::<rusqlite::Result<_>>()
                .map_err(unavailable)?
        }
    };
    let mut update = connection
        .prepare_cached(
            "UPDATE deliveries SET state = 'pending', attempts = 0, queued_at = ?2, next_attempt_at = ?2, \
             lease_until = NULL, updated_at = ?2 WHERE id = ?1 AND state != 'in_flight'",
        )
        .map_err(unavailable)?;
    let mut retried = Vec::with_capacity(ids.len());
    let mut changes = Vec::new();
    for id in ids {
        if update.execute(params![id, now]).map_err(unavailable)? == 1 {
            retried.push(id);
            changes.extend(log_replayed(connection, id)?);
        }
    }
    Ok((select_by_ids(connection, &retried)?, changes))
}

pub(super) fn discard(connection: &Connection, id: i64) -> Result<Discard, StoreError> {
    let state: Option<String> = connection
        .prepare_cached("SELECT state FROM deliveries WHERE id = ?1")
        .map_err(unavailable)?
        .query_row(params![id], |row| row.get(0))
        .optional()
        .map_err(unavailable)?;
    match state.as_deref() {
        None => Ok(Discard::NotFound),
        Some("in_flight") => Ok(Discard::InFlight),
        Some(_) => {
            connection
                .prepare_cached("DELETE FROM deliveries WHERE id = ?1")
                .map_err(unavailable)?
                .execute(params![id])
                .map_err(unavailable)?;
            Ok(Discard::Deleted)
        }
    }
}

/// Deletes delivered and dead deliveries (and their attempts) last changed before `before`, and pauses that ended.
pub(super) fn purge(connection: &Connection, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let before = to_micros(before);
    let count = connection
        .prepare_cached(
            "DELETE FROM deliveries WHERE state IN ('delivered', 'dead') AND updated_at < ?1",
        )
        .map_err(unavailable)?
        .execute(params![before])
        .map_err(unavailable)?;
    connection
        .prepare_cached("DELETE FROM integration_state WHERE updated_at < ?1")
        .map_err(unavailable)?
        .execute(params![before])
        .map_err(unavailable)?;
    connection
        .prepare_cached("DELETE FROM destination_pauses WHERE until < ?1")
        .map_err(unavailable)?
        .execute(params![before])
        .map_err(unavailable)?;
    Ok(count as u64)
}

pub(super) fn open_deliveries(
    connection: &Connection,
    from: i64,
    limit: usize,
) -> rusqlite::Result<Vec<DeliveryRecord>> {
    // One ordered index range per state, each cut at the limit, so a page costs its size, not the backlog's.
    let mut statement = connection.prepare_cached(&format!(
        "SELECT * FROM (SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = 'pending' AND id >= ?1 \
         ORDER BY id LIMIT ?2) UNION ALL SELECT * FROM (SELECT {DELIVERY_COLUMNS} FROM deliveries \
         WHERE state = 'in_flight' AND id >= ?1 ORDER BY id LIMIT ?2) ORDER BY id LIMIT ?2"
    ))?;
    statement
        .query_map(
            params![from, i64::try_from(limit).unwrap_or(i64::MAX)],
            read_delivery,
        )?
        .collect()
}

fn attempt_input(
    connection: &Connection,
    id: i64,
    read_payload: bool,
) -> rusqlite::Result<Option<AttemptInput>> {
    let sql = if read_payload {
        "SELECT p.payload, s.state FROM deliveries d JOIN delivery_payloads p ON p.delivery_id = d.id \
         LEFT JOIN integration_state s \
         ON s.receiver = d.receiver AND s.integration_key = d.integration_key AND s.group_key = d.group_key \
         WHERE d.id = ?1"
    } else {
        "SELECT NULL, s.state FROM deliveries d LEFT JOIN integration_state s \
         ON s.receiver = d.receiver AND s.integration_key = d.integration_key AND s.group_key = d.group_key \
         WHERE d.id = ?1"
    };
    connection
        .prepare_cached(sql)?
        .query_row(params![id], |row| {
            Ok(AttemptInput {
                payload: row.get(0)?,
                state: row.get(1)?,
            })
        })
        .optional()
}

fn payload(connection: &Connection, id: i64) -> rusqlite::Result<Option<String>> {
    connection
        .prepare_cached("SELECT payload FROM delivery_payloads WHERE delivery_id = ?1")?
        .query_row(params![id], |row| row.get(0))
        .optional()
}

pub(super) fn list(
    connection: &Connection,
    query: &DeliveryQuery,
) -> rusqlite::Result<Vec<DeliveryRecord>> {
    let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1");
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(state) = query.state {
        values.push(state.as_str().to_owned().into());
        sql.push_str(&format!(" AND state = ?{}", values.len()));
    }
    if let Some(receiver) = &query.receiver {
        values.push(receiver.clone().into());
        sql.push_str(&format!(" AND receiver = ?{}", values.len()));
    }
    if let Some(before) = query.before {
        values.push(before.into());
        sql.push_str(&format!(" AND id < ?{}", values.len()));
    }
    values.push((query.limit as i64).into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
    let mut statement = connection.prepare_cached(&sql)?;
    statement
        .query_map(params_from_iter(values), read_delivery)?
        .collect()
}

pub(super) fn detail(connection: &Connection, id: i64) -> rusqlite::Result<Option<DeliveryDetail>> {
    let Some(delivery) = connection
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?1"
        ))?
        .query_row(params![id], read_delivery)
        .optional()?
    else {
        return Ok(None);
    };
    let payload = payload(connection, id)?.unwrap_or_default();
    let mut statement = connection.prepare_cached(
        "SELECT started_at, duration_us, outcome, status_code, error, response FROM delivery_attempts \
         WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let attempts = statement
        .query_map(params![id], |row| {
            Ok(AttemptRecord {
                started_at: from_micros(row.get(0)?)?,
                duration_seconds: row.get::<_, i64>(1)? as f64 / 1e6,
                outcome: row.get(2)?,
                status_code: row.get(3)?,
                error: row.get(4)?,
                response: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(DeliveryDetail {
        delivery,
        payload,
        attempts,
    }))
}

pub(super) fn counts(connection: &Connection) -> rusqlite::Result<Vec<(DeliveryState, u64)>> {
    let mut statement =
        connection.prepare_cached("SELECT state, COUNT(*) FROM deliveries GROUP BY state")?;
    let rows = statement.query_map([], |row| {
        let state: String = row.get(0)?;
        Ok((
            state.parse().map_err(|error| conversion(0, error))?,
            row.get::<_, i64>(1)? as u64,
        ))
    })?;
    rows.collect()
}

pub(super) fn oldest_open(connection: &Connection) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let oldest: Option<i64> = connection
        .prepare_cached(
            "SELECT MIN(queued_at) FROM deliveries WHERE state IN ('pending', 'in_flight')",
        )?
        .query_row([], |row| row.get(0))?;
    oldest.map(from_micros).transpose()
}

pub(super) fn pauses(
    connection: &Connection,
    now: DateTime<Utc>,
) -> rusqlite::Result<Vec<(String, DateTime<Utc>)>> {
    let mut statement = connection
        .prepare_cached("SELECT destination, until FROM destination_pauses WHERE until > ?1")?;
    let rows = statement.query_map(params![to_micros(now)], |row| {
        Ok((row.get(0)?, from_micros(row.get(1)?)?))
    })?;
    rows.collect()
}
