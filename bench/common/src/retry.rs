//! Posting a batch until the server takes it, within bounds: a batch answered 429 or 5xx, or that got no answer, is
//! posted again after the server's `Retry-After` (or, without one, a backoff that doubles from `initial_wait`), each
//! wait at most `max_wait`, at most `attempts` times in all, and never past a deadline. Posting alerts is idempotent
//! (an upsert by label set), so a retry after a lost answer does no harm. This is what a well-behaved sender such
//! as Prometheus does when a receiver cannot keep up; Prometheus itself re-sends its firing alerts every
//! evaluation instead.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{Answer, Client, Failure, Reply, accepted};

/// How a refused post is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Posts of one batch at most, the first included (1: never retry).
    pub attempts: u32,
    /// The wait before the first retry when the server gave no `Retry-After`; it doubles with each retry.
    pub initial_wait: Duration,
    /// The longest wait before a retry, whatever the server asked for.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 10,
            initial_wait: Duration::from_millis(250),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// Every attempt at posting one batch.
#[derive(Debug)]
pub struct Attempts {
    /// The answer to each post, in order (at least one).
    pub answers: Vec<Answer>,
    /// When the last post was sent.
    pub last_sent: Instant,
    /// Time spent waiting between posts.
    pub waited: Duration,
}

impl Attempts {
    /// The last answer: the one that decides whether the batch was taken.
    pub fn last(&self) -> Option<&Answer> {
        self.answers.last()
    }

    /// True when the batch was finally taken (2xx).
    pub fn accepted(&self) -> bool {
        self.last().is_some_and(accepted)
    }

    /// Posts after the first.
    pub fn retries(&self) -> u64 {
        self.answers.len().saturating_sub(1) as u64
    }
}

/// Worth posting again: 429, 5xx, or no answer (except a request that could not even be built).
pub fn retryable(result: &Result<Reply, Failure>) -> bool {
    match result {
        Ok(reply) => reply.status == 429 || reply.status >= 500,
        Err(failure) => failure.kind != "request",
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first) after `reply`: its `Retry-After` if it had one, else
    /// the doubling backoff; at most `max_wait`.
    pub fn wait(&self, retry: u32, result: &Result<Reply, Failure>) -> Duration {
        let asked = result.as_ref().ok().and_then(|reply| reply.retry_after);
        let backoff = self
            .initial_wait
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        asked.unwrap_or(backoff).min(self.max_wait)
    }

    /// Posts `body` until it is taken, the answer is not worth a retry, the attempts are used up, or the next wait
    /// would end after `deadline`.
    pub async fn post(&self, client: &Client, body: Bytes, deadline: Option<Instant>) -> Attempts {
        let mut answers = Vec::new();
        let mut waited = Duration::ZERO;
        loop {
            let last_sent = Instant::now();
            let result = client.post_alerts_reply(body.clone()).await;
            let attempt = answers.len() as u32 + 1;
            let again = retryable(&result) && attempt < self.attempts.max(1);
            let wait = self.wait(attempt, &result);
            answers.push(Reply::answer(result));
            let in_time = deadline.is_none_or(|deadline| Instant::now() + wait < deadline);
            if !again || !in_time {
                return Attempts {
                    answers,
                    last_sent,
                    waited,
                };
            }
            tokio::time::sleep(wait).await;
            waited += wait;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, retry_after: Option<u64>) -> Result<Reply, Failure> {
        Ok(Reply {
            status,
            body: Bytes::new(),
            retry_after: retry_after.map(Duration::from_secs),
        })
    }

    #[test]
    fn retries_refusals_and_lost_answers_only() {
        assert!(retryable(&reply(503, Some(1))));
        assert!(retryable(&reply(429, None)));
        assert!(retryable(&reply(500, None)));
        assert!(!retryable(&reply(200, None)));
        assert!(!retryable(&reply(400, None)));
        let lost = Err(Failure {
            kind: "timeout",
            detail: "slow".into(),
        });
        assert!(retryable(&lost));
        let unbuilt = Err(Failure {
            kind: "request",
            detail: "bad uri".into(),
        });
        assert!(!retryable(&unbuilt));
    }

    #[test]
    fn waits_as_asked_within_bounds() {
        let policy = RetryPolicy {
            attempts: 5,
            initial_wait: Duration::from_millis(100),
            max_wait: Duration::from_secs(5),
        };
        assert_eq!(policy.wait(1, &reply(503, Some(2))), Duration::from_secs(2));
        assert_eq!(
            policy.wait(1, &reply(503, Some(60))),
            Duration::from_secs(5)
        );
        assert_eq!(
            policy.wait(1, &reply(503, None)),
            Duration::from_millis(100)
        );
        assert_eq!(
            policy.wait(3, &reply(503, None)),
            Duration::from_millis(400)
        );
        assert_eq!(policy.wait(40, &reply(503, None)), Duration::from_secs(5));
    }

    /// Serves HTTP/1.1 on loopback, answering the n-th request (one per connection) with `answers[n]`.
    async fn serve(answers: Vec<&'static str>) -> crate::target::Target {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for answer in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Read the head and the (small, Content-Length) body of one request.
                while !request.ends_with(b"]") {
                    let n = stream.read(&mut buffer).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buffer[..n]);
                }
                let response =
                    format!("{answer}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                stream.write_all(response.as_bytes()).await.unwrap();
            }
        });
        crate::target::Target::parse(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn posts_again_after_retry_after_until_taken() {
        let target = serve(vec![
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0.05",
            "HTTP/1.1 429 Too Many Requests",
            "HTTP/1.1 200 OK",
        ])
        .await;
        let client = Client::new(&target, Duration::from_secs(5));
        let policy = RetryPolicy {
            attempts: 5,
            initial_wait: Duration::from_millis(10),
            max_wait: Duration::from_secs(1),
        };
        let attempts = policy.post(&client, Bytes::from_static(b"[]"), None).await;
        assert!(attempts.accepted(), "{:?}", attempts.answers);
        assert_eq!(attempts.retries(), 2);
        // Retry-After 0.05 s, then no Retry-After: the backoff of a second retry, 2 x 10 ms.
        assert_eq!(attempts.waited, Duration::from_millis(70));
    }

    #[tokio::test]
    async fn gives_up_after_the_attempts() {
        let target = serve(vec!["HTTP/1.1 503 Service Unavailable"; 2]).await;
        let client = Client::new(&target, Duration::from_secs(5));
        let policy = RetryPolicy {
            attempts: 2,
            initial_wait: Duration::from_millis(10),
            max_wait: Duration::from_secs(1),
        };
        let attempts = policy.post(&client, Bytes::from_static(b"[]"), None).await;
        assert!(!attempts.accepted());
        assert_eq!(attempts.retries(), 1);
        assert!(matches!(attempts.last(), Some(Ok((503, _)))));
    }

    #[test]
    fn counts_attempts() {
        let attempts = Attempts {
            answers: vec![Ok((503, Bytes::new())), Ok((200, Bytes::new()))],
            last_sent: Instant::now(),
            waited: Duration::from_secs(1),
        };
        assert!(attempts.accepted());
        assert_eq!(attempts.retries(), 1);
    }
}
