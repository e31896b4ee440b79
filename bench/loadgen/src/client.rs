//! The HTTP side: one pooled HTTP/1.1 client that posts JSON bodies to the target and reports, for each request,
//! either the status code or why no status came back. Every request is bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::target::Target;

/// What one request ended with.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The server answered with this status (the body was read to the end).
    Status(u16),
    /// No answer: connection refused or reset, protocol error, or timeout.
    Failed(Failure),
}

/// Why a request got no answer; `kind` is a short, bounded name for counting, `detail` a message for humans.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) kind: &'static str,
    pub(crate) detail: String,
}

impl Outcome {
    /// True for a 2xx answer, the only one that means the alerts were accepted.
    pub(crate) fn is_success(&self) -> bool {
        matches!(self, Self::Status(code) if (200..300).contains(code))
    }
}

/// A cheap-to-clone client bound to one target.
#[derive(Clone)]
pub(crate) struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    alerts: Uri,
    timeout: Duration,
}

impl Client {
    pub(crate) fn new(target: &Target, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner,
            alerts: target.alerts.clone(),
            timeout,
        }
    }

    /// `POST`s `body` as `application/json` to the alerts endpoint.
    pub(crate) async fn post_alerts(&self, body: Bytes) -> Outcome {
        match tokio::time::timeout(self.timeout, self.send(body)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed(Failure {
                kind: "timeout",
                detail: format!(
                    "no complete answer within {}",
                    humantime::format_duration(self.timeout)
                ),
            }),
        }
    }

    async fn send(&self, body: Bytes) -> Outcome {
        let request = match Request::post(self.alerts.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
        {
            Ok(request) => request,
            Err(error) => {
                return Outcome::Failed(Failure {
                    kind: "request",
                    detail: error.to_string(),
                });
            }
        };
        let response = match self.inner.request(request).await {
            Ok(response) => response,
            Err(error) => {
                let kind = if error.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                return Outcome::Failed(Failure {
                    kind,
                    detail: error_chain(&error),
                });
            }
        };
        let status = response.status().as_u16();
        // Read the body to the end so the connection goes back to the pool.
        match response.into_body().collect().await {
            Ok(_) => Outcome::Status(status),
            Err(error) => Outcome::Failed(Failure {
                kind: "transport",
                detail: error_chain(&error),
            }),
        }
    }
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
