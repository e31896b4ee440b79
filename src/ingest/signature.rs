//! Grafana's webhook signature: HMAC-SHA256 (hex) of the body, or of `timestamp:body` when a timestamp header is
//! configured, in `X-Grafana-Alerting-Signature` (or `X-Grafana-Alert-Signature`, which some versions' UI names).

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header names Grafana signs in, in the order they are looked for.
pub const SIGNATURE_HEADERS: [&str; 2] =
    ["x-grafana-alerting-signature", "x-grafana-alert-signature"];

/// How far a signed timestamp may be from herald's clock, either way.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Why a request's signature was refused; safe to show the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "missing signature: send X-Grafana-Alerting-Signature (ingest.grafana_hmac_secret is set)"
    )]
    Missing,
    #[error("missing timestamp header {0} (ingest.grafana_timestamp_header)")]
    MissingTimestamp(String),
    #[error("timestamp {0:?} is not Unix seconds or milliseconds within 5 minutes of now")]
    Stale(String),
    #[error("signature does not match the body (check the contact point's HMAC secret)")]
    Mismatch,
}

/// What the request carried.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    pub signature: Option<&'a str>,
    /// The timestamp header's value, when a timestamp header is configured.
    pub timestamp: Option<&'a str>,
}

fn timestamp_ok(value: &str, now: DateTime<Utc>) -> bool {
    let Ok(number) = value.trim().parse::<i64>() else {
        return false;
    };
    // Seconds, or milliseconds for numbers too large to be seconds.
    let at = if number > 100_000_000_000 {
        DateTime::from_timestamp_millis(number)
    } else {
        DateTime::from_timestamp(number, 0)
    };
    at.is_some_and(|at| (now - at).abs() <= MAX_SKEW)
}

/// Checks `signed` against `body` with `secret`. `timestamp_header` names the timestamp header when one is
/// configured (its value is then signed as `timestamp:body`).
pub fn verify(
    secret: &[u8],
    timestamp_header: Option<&str>,
    signed: Signed<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let presented = signed.signature.ok_or(SignatureError::Missing)?;
    let presented = presented.trim();
    let presented = presented.strip_prefix("sha256=").unwrap_or(presented);
    let presented = hex::decode(presented).map_err(|_| SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    if let Some(header) = timestamp_header {
        let timestamp = signed
            .timestamp
            .ok_or_else(|| SignatureError::MissingTimestamp(header.to_owned()))?;
        if !timestamp_ok(timestamp, now) {
            return Err(SignatureError::Stale(timestamp.to_owned()));
        }
        mac.update(timestamp.trim().as_bytes());
        mac.update(b":");
    }
    mac.update(body);
    mac.verify_slice(&presented)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(message: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    fn signed<'a>(signature: Option<&'a str>, timestamp: Option<&'a str>) -> Signed<'a> {
        Signed {
            signature,
            timestamp,
        }
    }

    #[test]
    fn body_signatures() {
        let now = Utc::now();
        let body = br#"{"alerts":[]}"#;
        let good = sign(body);
        assert_eq!(
            verify(b"s3cret", None, signed(Some(&good), None), body, now),
            Ok(())
        );
        let upper = good.to_uppercase();
        assert_eq!(
            verify(b"s3cret", None, signed(Some(&upper), None), body, now),
            Ok(())
        );
        assert_eq!(
            verify(b"other", None, signed(Some(&good), None), body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", None, signed(Some(&good), None), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", None, signed(Some("zz"), None), body, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", None, signed(None, None), body, now),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn timestamped_signatures_and_their_skew() {
        let now = Utc::now();
        let body = br#"{"alerts":[]}"#;
        let seconds = now.timestamp().to_string();
        let good = sign(format!("{seconds}:{}", String::from_utf8_lossy(body)).as_bytes());
        let header = Some("X-Grafana-Alerting-Timestamp");
        assert_eq!(
            verify(
                b"s3cret",
                header,
                signed(Some(&good), Some(&seconds)),
                body,
                now
            ),
            Ok(())
        );
        assert_eq!(
            verify(b"s3cret", header, signed(Some(&good), None), body, now),
            Err(SignatureError::MissingTimestamp(
                "X-Grafana-Alerting-Timestamp".into()
            ))
        );
        let old = (now - chrono::Duration::minutes(10))
            .timestamp()
            .to_string();
        let replayed = sign(format!("{old}:{}", String::from_utf8_lossy(body)).as_bytes());
        assert_eq!(
            verify(
                b"s3cret",
                header,
                signed(Some(&replayed), Some(&old)),
                body,
                now
            ),
            Err(SignatureError::Stale(old.clone()))
        );
        let millis = now.timestamp_millis().to_string();
        let in_millis = sign(format!("{millis}:{}", String::from_utf8_lossy(body)).as_bytes());
        assert_eq!(
            verify(
                b"s3cret",
                header,
                signed(Some(&in_millis), Some(&millis)),
                body,
                now
            ),
            Ok(())
        );
        // The body alone is not what was signed when a timestamp header is configured.
        let body_only = sign(body);
        assert_eq!(
            verify(
                b"s3cret",
                header,
                signed(Some(&body_only), Some(&seconds)),
                body,
                now
            ),
            Err(SignatureError::Mismatch)
        );
    }
}
