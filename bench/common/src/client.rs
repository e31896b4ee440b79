//! The HTTP side towards herald (or Alertmanager, which takes the same requests): one pooled HTTP/1.1 client (cheap
//! to clone) bound to a [`Target`], that posts alert batches and reads `/metrics`. Every request is bounded by a
//! timeout, connection included; the answer is the status with the body read to the end (so the connection goes back
//! to the pool), or why no answer came back.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, RETRY_AFTER};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::target::Target;

/// Why a request got no answer: `kind` is a short, bounded name for counting (`connect`, `transport`, `timeout`,
/// `request`), `detail` a message for humans.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// How a request ended: the status and the body, or why no answer came back.
pub type Answer = Result<(u16, Bytes), Failure>;

/// An answer with what a retry needs: the status, the body and the server's `Retry-After` (delta-seconds only; an
/// HTTP date is ignored).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub retry_after: Option<Duration>,
}

impl Reply {
    /// The status and body, as [`Answer`] holds them.
    pub fn answer(result: Result<Self, Failure>) -> Answer {
        result.map(|reply| (reply.status, reply.body))
    }
}

/// True for a 2xx answer, the only one that means herald stored the alerts.
pub fn accepted(answer: &Answer) -> bool {
    matches!(answer, Ok((code, _)) if (200..300).contains(code))
}

/// A cheap-to-clone client bound to one herald.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    target: Target,
    timeout: Duration,
}

impl Client {
    pub fn new(target: &Target, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner,
            target: target.clone(),
            timeout,
        }
    }

    /// `POST`s `body`, a JSON array of alerts, to the alerts endpoint.
    pub async fn post_alerts(&self, body: Bytes) -> Answer {
        Reply::answer(self.post_alerts_reply(body).await)
    }

    /// [`Client::post_alerts`], keeping the server's `Retry-After`.
    pub async fn post_alerts_reply(&self, body: Bytes) -> Result<Reply, Failure> {
        let request = Request::post(self.target.alerts.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        self.send(request).await
    }

    /// `GET`s the server's metrics.
    pub async fn get_metrics(&self) -> Answer {
        let request = Request::get(self.target.metrics.clone()).body(Full::new(Bytes::new()));
        Reply::answer(self.send(request).await)
    }

    async fn send(
        &self,
        request: hyper::http::Result<Request<Full<Bytes>>>,
    ) -> Result<Reply, Failure> {
        let request = request.map_err(|error| Failure {
            kind: "request",
            detail: error.to_string(),
        })?;
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(Failure {
                kind: "timeout",
                detail: format!(
                    "no complete answer within {}",
                    humantime::format_duration(self.timeout)
                ),
            }),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Reply, Failure> {
        let response = self.inner.request(request).await.map_err(|error| Failure {
            kind: if error.is_connect() {
                "connect"
            } else {
                "transport"
            },
            detail: error_chain(&error),
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| Failure {
                kind: "transport",
                detail: error_chain(&error),
            })?
            .to_bytes();
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }
}

/// `Retry-After` as delta-seconds (a whole or decimal number); `None` for an HTTP date or anything else.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// An error and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_is_accepted() {
        assert!(accepted(&Ok((200, Bytes::new()))));
        assert!(accepted(&Ok((202, Bytes::new()))));
        assert!(!accepted(&Ok((503, Bytes::from_static(b"busy")))));
        let failure = Failure {
            kind: "timeout",
            detail: "slow".into(),
        };
        assert_eq!(failure.to_string(), "timeout: slow");
        assert!(!accepted(&Err(failure)));
    }

    #[test]
    fn reads_retry_after_in_seconds() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        // Bind and drop a listener so the port is (almost certainly) closed.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let target = Target::parse(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let client = Client::new(&target, Duration::from_secs(5));
        let failure = client.get_metrics().await.unwrap_err();
        assert_eq!(failure.kind, "connect", "{failure}");
    }
}
