//! The outbox in SQLite: queueing deliveries (with the notification log entry, in one transaction), claiming them
//! with a lease, settling attempts, replays and discards, and the queries the engine and operators read.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::rows::{from_micros, json_text, to_micros, unavailable};
use crate::store::delivery::{
    AttemptInput, AttemptRecord, Claimed, DeliveryDetail, DeliveryQuery, DeliveryRecord,
    DeliveryState, Discard, Enqueued, Finished, Queued, RetrySelection, Settle,
};
use crate::store::{SentRecord, StoreError};

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

pub(super) fn enqueue(
    connection: &Connection,
    notifications: Vec<Queued>,
    now: DateTime<Utc>,
) -> Result<Vec<Enqueued>, StoreError> {
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO deliveries (receiver, integration, integration_key, destination, group_key, status, \
             alert_count, state, attempts, created_at, queued_at, next_attempt_at, lease_until, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?9, ?9, ?10, ?9)",
        )
        .map_err(unavailable)?;
    let mut insert_payload = connection
        .prepare_cached("INSERT INTO delivery_payloads (delivery_id, payload) VALUES (?1, ?2)")
        .map_err(unavailable)?;
    let micros = to_micros(now);
    let mut enqueued = Vec::new();
    for Queued { deliveries, sent } in notifications {
        for delivery in deliveries {
            let state = match delivery.claim_until {
                Some(_) => DeliveryState::InFlight,
                None => DeliveryState::Pending,
            };
            insert
                .execute(params![
                    delivery.receiver,
                    delivery.integration,
                    delivery.integration_key,
                    delivery.destination,
                    delivery.group_key,
                    delivery.status,
                    delivery.alert_count as i64,
                    state.as_str(),
                    micros,
                    delivery.claim_until.map(to_micros),
                ])
                .map_err(unavailable)?;
            let id = connection.last_insert_rowid();
            insert_payload
                .execute(params![id, delivery.payload])
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
            enqueued.push(Enqueued {
                record: DeliveryRecord {
                    id,
                    receiver: delivery.receiver,
                    integration: delivery.integration,
                    integration_key: delivery.integration_key,
                    destination: delivery.destination,
                    group_key: delivery.group_key,
                    status: delivery.status,
                    alert_count: delivery.alert_count,
                    state,
                    attempts: 0,
                    created_at: now,
                    queued_at: now,
                    next_attempt_at: now,
                    lease_until: delivery.claim_until,
                    updated_at: now,
                    last_error: None,
                },
                claimed,
            });
        }
        if let Some(sent) = sent {
            record_sent(connection, sent)?;
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

/// Records what a receiver was told about a group (the notification log entry), replacing the last one.
fn record_sent(connection: &Connection, record: SentRecord) -> Result<(), StoreError> {
    let (firing, resolved) = (json_text(&record.firing)?, json_text(&record.resolved)?);
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO notification_log (receiver, group_key, firing, resolved, sent_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (receiver, group_key) DO UPDATE SET firing = excluded.firing, resolved = excluded.resolved, \
             sent_at = excluded.sent_at",
        )
        .map_err(unavailable)?;
    statement
        .execute(params![
            record.receiver,
            record.group_key,
            firing,
            resolved,
            to_micros(record.at)
        ])
        .map_err(unavailable)?;
    Ok(())
}

/// Deletes notification log entries by (receiver, group key).
pub(super) fn forget_sent(
    connection: &Connection,
    forgotten: Vec<(String, String)>,
) -> Result<(), StoreError> {
    let mut delete = connection
        .prepare_cached("DELETE FROM notification_log WHERE receiver = ?1 AND group_key = ?2")
        .map_err(unavailable)?;
    for (receiver, group_key) in forgotten {
        delete
            .execute(params![receiver, group_key])
            .map_err(unavailable)?;
    }
    Ok(())
}

/// Moves pending deliveries (and in-flight ones whose lease ended) to in flight; returns those it took, with their
/// notification and their integration's state for their group.
pub(super) fn claim(
    connection: &Connection,
    ids: Vec<i64>,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    read_payloads: bool,
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
                attempt_input(connection, id, read_payloads).map_err(unavailable)?
        {
            claimed.push(Claimed { id, input });
        }
    }
    Ok(claimed)
}

pub(super) fn finish(connection: &Connection, finished: Finished) -> Result<(), StoreError> {
    let Finished {
        id,
        attempt,
        settle,
        pause,
        state,
        now,
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
            "UPDATE deliveries SET state = ?2, attempts = attempts + 1, lease_until = NULL, updated_at = ?3, \
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
    Ok(())
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

pub(super) fn retry(
    connection: &Connection,
    selection: RetrySelection,
    now: DateTime<Utc>,
) -> Result<Vec<DeliveryRecord>, StoreError> {
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
    for id in ids {
        if update.execute(params![id, now]).map_err(unavailable)? == 1 {
            retried.push(id);
        }
    }
    select_by_ids(connection, &retried)
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
