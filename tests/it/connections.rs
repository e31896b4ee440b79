//! Herald's connections over plain TCP and TLS: a connection that sends nothing, or not a whole request head,
//! is closed after `server.header_read_timeout`; a keep-alive connection after `server.idle_timeout` without a
//! request (and not after the header timeout); at `server.max_connections` the connection idle the longest makes
//! room, and with none idle the reserve still answers `/-/healthy`, `/-/ready` and `/metrics` (503 for the rest).
//! Each closing is waited for as it happens, with a generous bound; timeouts that must not fire are an hour.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald::config::Settings;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Herald, metric, settings};
use crate::pki::TestPki;

const HOUR: Duration = Duration::from_secs(3600);
/// How long a test waits for herald to close a connection before it fails.
const GENEROUS: Duration = Duration::from_secs(60);

fn connection_settings(
    dir: &Path,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: Option<usize>,
) -> Settings {
    let mut settings = settings(&dir.join("conn.db"), "conn-rcv");
    settings.server.header_read_timeout = header_read_timeout;
    settings.server.idle_timeout = idle_timeout;
    settings.server.max_connections = max_connections;
    settings
}

/// Sends `GET path` (keep-alive) and reads the answer: its status and head.
async fn get<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> (u16, String) {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: herald\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_answer(stream).await
}

/// Reads one answer (head and `content-length` body); returns its status and head.
async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(GENEROUS, stream.read(&mut byte))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(
            read,
            1,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, head.to_ascii_lowercase())
}

/// Waits until herald closes `stream` (end of stream, or a reset), failing after a generous bound.
async fn closed_by_herald<S: AsyncRead + Unpin>(stream: &mut S, what: &str) {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(GENEROUS, stream.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!(
            "{what}: herald sent {:?} instead of closing",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(_) => panic!("{what}: herald did not close the connection"),
    }
}

async fn connect(herald: &Herald) -> TcpStream {
    TcpStream::connect(herald.addr).await.unwrap()
}

/// `GET /metrics` on a connection of its own; the counter of connections closed for `reason`.
async fn closed_total<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, reason: &str) -> f64 {
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    metric(
        &text,
        "herald_http_connections_closed_total",
        &[("reason", reason)],
    )
}

/// Waits until the counter of connections closed for `reason` reaches `at_least`, failing after a generous bound
/// (a connection is counted just after it is closed).
async fn wait_closed_total(herald: &Herald, reason: &str, at_least: f64) {
    for _ in 0..600 {
        if closed_total(&mut connect(herald).await, reason).await >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("herald_http_connections_closed_total{{reason={reason:?}}} never reached {at_least}");
}

/// Starts a request whose body herald waits for: once its `100 Continue` arrives, the connection is serving it
/// (neither idle nor waiting for a head) until the body comes or the connection closes.
async fn hold_busy<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    stream
        .write_all(
            b"POST /api/v2/alerts HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, head) = read_answer(stream).await;
    assert_eq!(status, 100, "{head}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_header_read_timeout_an_idle_keep_alive_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(connection_settings(
        dir.path(),
        Duration::from_secs(1),
        HOUR,
        None,
    ))
    .await;
    let before = closed_total(&mut connect(&herald).await, "header_timeout").await;

    let mut keep_alive = connect(&herald).await;
    assert_eq!(get(&mut keep_alive, "/-/healthy").await.0, 200);
    // Opened once the keep-alive connection was answered, so closed once that one has idled for longer.
    let mut silent = connect(&herald).await;
    let mut partial = connect(&herald).await;
    partial
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: her")
        .await
        .unwrap();
    closed_by_herald(&mut silent, "a connection that sent nothing").await;
    closed_by_herald(&mut partial, "a connection that sent half a head").await;

    let (status, head) = get(&mut keep_alive, "/-/ready").await;
    assert_eq!(
        status, 200,
        "idle for longer than the header timeout, still served"
    );
    assert!(!head.contains("connection: close"), "{head}");
    wait_closed_total(&herald, "header_timeout", before + 2.0).await;
    herald.stop().await;
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_after_idle_timeout_a_fresh_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(connection_settings(
        dir.path(),
        HOUR,
        Duration::from_millis(300),
        None,
    ))
    .await;
    let before = closed_total(&mut connect(&herald).await, "idle_timeout").await;

    // Opened before the keep-alive connection's answer, so it waits longer than that one's idle timeout.
    let mut fresh = connect(&herald).await;
    let mut keep_alive = connect(&herald).await;
    for _ in 0..3 {
        assert_eq!(get(&mut keep_alive, "/-/healthy").await.0, 200);
    }
    closed_by_herald(&mut keep_alive, "an idle keep-alive connection").await;

    assert_eq!(
        get(&mut fresh, "/-/healthy").await.0,
        200,
        "a connection yet to send its first request waits for header_read_timeout, not idle_timeout"
    );
    closed_by_herald(&mut fresh, "idle once answered").await;
    wait_closed_total(&herald, "idle_timeout", before + 2.0).await;
    herald.stop().await;
}

#[tokio::test]
async fn at_max_connections_the_connection_idle_the_longest_makes_room() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(connection_settings(dir.path(), HOUR, HOUR, Some(8))).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(&herald).await;
        assert_eq!(get(&mut stream, "/-/healthy").await.0, 200);
        idle.push(stream);
    }
    // Whatever else was open (the harness's own client) was idle before these, so made room first.
    let mut health = connect(&herald).await;
    let (status, head) = get(&mut health, "/-/healthy").await;
    assert_eq!(status, 200);
    assert!(
        !head.contains("connection: close"),
        "served as usual: {head}"
    );
    assert_eq!(get(&mut health, "/-/ready").await.0, 200);
    closed_by_herald(&mut idle[0], "the connection idle the longest").await;
    for (n, stream) in idle.iter_mut().enumerate().skip(1) {
        assert_eq!(get(stream, "/-/healthy").await.0, 200, "connection {n}");
    }
    herald.stop().await;
}

#[tokio::test]
async fn at_max_connections_with_none_idle_health_is_answered_from_the_reserve() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::start(connection_settings(dir.path(), HOUR, HOUR, Some(8))).await;
    let mut busy = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(&herald).await;
        hold_busy(&mut stream).await;
        busy.push(stream);
    }
    for path in ["/-/healthy", "/-/ready"] {
        let mut stream = connect(&herald).await;
        let (status, head) = get(&mut stream, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("connection: close"), "{path}: {head}");
        closed_by_herald(&mut stream, "answered from the reserve").await;
    }
    let mut stream = connect(&herald).await;
    let (status, head) = get(&mut stream, "/api/v2/status").await;
    assert_eq!(status, 503);
    assert!(head.contains("retry-after: 1"), "{head}");

    let mut stream = connect(&herald).await;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: herald\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "metrics from the reserve: {text}"
    );
    assert!(
        metric(&text, "herald_http_connections", &[]) >= 9.0,
        "{text}"
    );
    wait_closed_total(&herald, "over_limit", 2.0).await;

    // Once a busy one ends, new connections are served as usual again.
    drop(busy.pop());
    let mut stream = connect(&herald).await;
    for _ in 0..600 {
        let (status, head) = get(&mut stream, "/-/healthy").await;
        assert_eq!(status, 200);
        if !head.contains("connection: close") {
            break;
        }
        stream = connect(&herald).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(&mut stream, "/-/ready").await.0, 200, "kept alive");
    drop(busy);
    herald.stop().await;
}

/// herald serving HTTPS with the test PKI's certificate; its web configuration has no users.
async fn https_herald(
    pki: &TestPki,
    dir: &Path,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: Option<usize>,
) -> Herald {
    let mut settings = connection_settings(dir, header_read_timeout, idle_timeout, max_connections);
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            pki.server_cert_file.display(),
            pki.server_key_file.display()
        ),
    )
    .unwrap();
    settings.server.web = Some(Arc::new(herald::config::load_web_config(&web).unwrap()));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_file).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    Herald::start_https(settings, client).await
}

async fn connect_tls(herald: &Herald, pki: &TestPki) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    connector
        .connect(
            "localhost".try_into().unwrap(),
            TcpStream::connect(herald.addr).await.unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn over_tls_a_connection_without_a_handshake_or_a_head_is_closed_after_header_read_timeout() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let herald = https_herald(&pki, dir.path(), Duration::from_secs(2), HOUR, None).await;
    let mut keep_alive = connect_tls(&herald, &pki).await;
    assert_eq!(get(&mut keep_alive, "/-/healthy").await.0, 200);
    let mut silent = connect(&herald).await;
    closed_by_herald(&mut silent, "no TLS handshake").await;
    let mut no_request = connect_tls(&herald, &pki).await;
    closed_by_herald(&mut no_request, "a TLS handshake and no request").await;
    assert_eq!(
        get(&mut keep_alive, "/-/ready").await.0,
        200,
        "idle for longer than the header timeout, still served"
    );
    herald.stop().await;
}

#[tokio::test]
async fn over_tls_a_keep_alive_connection_is_closed_after_idle_timeout() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let herald = https_herald(&pki, dir.path(), HOUR, Duration::from_millis(300), None).await;
    let mut keep_alive = connect_tls(&herald, &pki).await;
    for _ in 0..3 {
        assert_eq!(get(&mut keep_alive, "/-/healthy").await.0, 200);
    }
    closed_by_herald(&mut keep_alive, "an idle keep-alive TLS connection").await;
    herald.stop().await;
}

#[tokio::test]
async fn over_tls_at_max_connections_health_is_still_answered() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let herald = https_herald(&pki, dir.path(), HOUR, HOUR, Some(4)).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_tls(&herald, &pki).await;
        assert_eq!(get(&mut stream, "/-/healthy").await.0, 200);
        idle.push(stream);
    }
    let mut health = connect_tls(&herald, &pki).await;
    assert_eq!(get(&mut health, "/-/healthy").await.0, 200);
    closed_by_herald(&mut idle[0], "the TLS connection idle the longest").await;

    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_tls(&herald, &pki).await;
        hold_busy(&mut stream).await;
        busy.push(stream);
    }
    let mut reserve = connect_tls(&herald, &pki).await;
    let (status, head) = get(&mut reserve, "/-/healthy").await;
    assert_eq!(status, 200);
    assert!(head.contains("connection: close"), "{head}");
    drop(busy);
    herald.stop().await;
}
