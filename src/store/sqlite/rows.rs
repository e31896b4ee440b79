//! Row codec for the SQLite backend: timestamps as microseconds, maps as JSON text, status as 0/1.

use chrono::{DateTime, Utc};

use crate::alert::{Alert, Fingerprint, Status};
use crate::store::{StoreError, StoredAlert};

pub(super) fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

pub(super) fn to_micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub(super) fn from_micros(micros: i64) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            "timestamp out of range".into(),
        )
    })
}

/// The fingerprint's bits as SQLite's signed 64-bit integer key.
pub(super) fn key(fingerprint: Fingerprint) -> i64 {
    fingerprint.0 as i64
}

pub(super) fn state_code(status: Status) -> i64 {
    match status {
        Status::Firing => 0,
        Status::Resolved => 1,
    }
}

pub(super) fn state_from_code(code: i64) -> Status {
    if code == 0 {
        Status::Firing
    } else {
        Status::Resolved
    }
}

pub(super) fn json_column<T: serde::de::DeserializeOwned>(
    index: usize,
    text: &str,
) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(error),
        )
    })
}

pub(super) fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(super) const ALERT_COLUMNS: &str = "fingerprint, labels, annotations, starts_at, ends_at, ends_at_defaulted, \
     generator_url, source, extra, updated_at";

/// Reads a row selected with `ALERT_COLUMNS`.
pub(super) fn read_alert(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAlert> {
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
