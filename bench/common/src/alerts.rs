//! The envelope of an alert as Alertmanager's v2 API (`POST /api/v2/alerts`) takes it, and the request body of a
//! batch. The label and annotation sets are each benchmark's own (structs serialised in field order).

use std::borrow::Cow;

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::Serialize;

/// One alert; `starts_at` and `ends_at` are RFC 3339 times.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert<'a, L, A> {
    pub labels: L,
    pub annotations: A,
    pub starts_at: Cow<'a, str>,
    pub ends_at: &'a str,
    #[serde(rename = "generatorURL")]
    pub generator_url: Cow<'a, str>,
}

/// The request body of a batch: the JSON array of `alerts`.
pub fn body<T: Serialize>(alerts: &[T]) -> Result<Bytes> {
    serde_json::to_vec(alerts)
        .map(Bytes::from)
        .context("cannot serialise alerts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Labels {
        alertname: &'static str,
        job: &'static str,
    }

    #[derive(Serialize)]
    struct Annotations {
        summary: String,
    }

    #[test]
    fn renders_a_v2_array_in_field_order() {
        let alert = PostableAlert {
            labels: Labels {
                alertname: "InstanceDown",
                job: "node",
            },
            annotations: Annotations {
                summary: "down".into(),
            },
            starts_at: Cow::Borrowed("2024-01-01T00:00:00Z"),
            ends_at: "2024-01-01T01:00:00Z",
            generator_url: Cow::Owned("http://prometheus:9090/graph".into()),
        };
        assert_eq!(
            body(&[alert]).unwrap(),
            Bytes::from_static(
                br#"[{"labels":{"alertname":"InstanceDown","job":"node"},"annotations":{"summary":"down"},"startsAt":"2024-01-01T00:00:00Z","endsAt":"2024-01-01T01:00:00Z","generatorURL":"http://prometheus:9090/graph"}]"#
            )
        );
    }
}
