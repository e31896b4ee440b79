//! The HTTP side towards herald: one pooled HTTP/1.1 client that posts alert batches and reads `/metrics`. Every
//! request is bounded by a timeout; the result says whether a 2xx came back and, if not, why.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Uri};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A cheap-to-clone client.
#[derive(Clone)]
pub(crate) struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

/// How a request ended: a status with the body, or a short reason why no answer came back.
pub(crate) type Answer = Result<(u16, Bytes), String>;

/// True for a 2xx answer, the only one that means herald stored the alerts.
pub(crate) fn accepted(answer: &Answer) -> bool {
    matches!(answer, Ok((code, _)) if (200..300).contains(code))
}

impl Client {
    pub(crate) fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self { inner, timeout }
    }

    /// `POST`s `body` as `application/json` to `uri`.
    pub(crate) async fn post_json(&self, uri: &Uri, body: Bytes) -> Answer {
        let request = Request::post(uri.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|error| format!("request: {error}"))?;
        self.send(request).await
    }

    /// `GET`s `uri`.
    pub(crate) async fn get(&self, uri: &Uri) -> Answer {
        let request = Request::get(uri.clone())
            .body(Full::new(Bytes::new()))
            .map_err(|error| format!("request: {error}"))?;
        self.send(request).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|error| format!("transport: {}", error_chain(&error)))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| format!("transport: {}", error_chain(&error)))?
                .to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "timeout: no complete answer within {}",
                humantime::format_duration(self.timeout)
            )),
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

/// Counts of requests that were not accepted, by reason, and the first one seen.
#[derive(Default, Debug)]
pub(crate) struct Problems {
    pub(crate) non_2xx: u64,
    pub(crate) errors: u64,
    pub(crate) first: Option<String>,
}

impl Problems {
    pub(crate) fn record(&mut self, answer: &Answer) {
        match answer {
            Ok((code, _)) if (200..300).contains(code) => {}
            Ok((code, body)) => {
                self.non_2xx += 1;
                self.first.get_or_insert_with(|| {
                    format!("HTTP {code}: {}", String::from_utf8_lossy(body).trim())
                });
            }
            Err(reason) => {
                self.errors += 1;
                self.first.get_or_insert_with(|| reason.clone());
            }
        }
    }
}
