//! Where a benchmark talks to: herald's base URL and, for a benchmark that serves herald, its listen address. Both
//! must be on this machine (plain HTTP on a loopback address); anything else is refused, so a benchmark can only
//! ever load a server on this machine.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail, ensure};
use hyper::Uri;

/// A validated loopback herald.
#[derive(Debug, Clone)]
pub struct Target {
    /// `POST` endpoint for alerts (Alertmanager's v2 API).
    pub alerts: Uri,
    /// herald's Prometheus metrics.
    pub metrics: Uri,
}

impl Target {
    /// Parses a base URL such as `http://127.0.0.1:9095` (a path prefix is kept) and checks that its host is a
    /// loopback address: an IP literal in 127.0.0.0/8 or `::1`, or `localhost` resolving only to such addresses.
    pub async fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid --url {url:?}"))?;
        ensure!(
            uri.scheme_str() == Some("http"),
            "--url must start with http:// (TLS is not supported): {url}"
        );
        ensure!(
            uri.query().is_none(),
            "--url must not carry a query string: {url}"
        );
        let authority = uri
            .authority()
            .with_context(|| format!("--url has no host: {url}"))?;
        ensure!(
            !authority.as_str().contains('@'),
            "--url must not carry credentials"
        );
        check_loopback(authority.host(), authority.port_u16().unwrap_or(80)).await?;
        let prefix = uri.path().trim_end_matches('/');
        let endpoint = |path: &str| -> Result<Uri> {
            format!("http://{authority}{prefix}{path}")
                .parse()
                .with_context(|| format!("cannot build a URL from {url}"))
        };
        Ok(Self {
            alerts: endpoint("/api/v2/alerts")?,
            metrics: endpoint("/metrics")?,
        })
    }
}

/// Fails unless `host` can only mean this machine.
async fn check_loopback(host: &str, port: u16) -> Result<()> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        ensure!(
            ip.is_loopback(),
            "refusing non-loopback target {ip}: benchmarks only load servers on this machine"
        );
        return Ok(());
    }
    if !host.eq_ignore_ascii_case("localhost") {
        bail!("refusing target host {host:?}: use 127.0.0.1, [::1] or localhost");
    }
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    ensure!(!addrs.is_empty(), "{host} resolves to no address");
    if let Some(outside) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!(
            "refusing target: {host} resolves to non-loopback {}",
            outside.ip()
        );
    }
    Ok(())
}

/// Parses a `--listen` address: IP:PORT with a loopback IP (port 0 picks a free one).
pub fn loopback_listen(text: &str) -> Result<SocketAddr> {
    let address: SocketAddr = text
        .parse()
        .with_context(|| format!("--listen must be IP:PORT, got {text:?}"))?;
    ensure!(
        address.ip().is_loopback(),
        "refusing to listen on non-loopback {}: the receiver only serves this machine",
        address.ip()
    );
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_loopback_and_builds_the_endpoints() {
        let t = Target::parse("http://127.0.0.1:9095").await.unwrap();
        assert_eq!(t.alerts.to_string(), "http://127.0.0.1:9095/api/v2/alerts");
        assert_eq!(t.metrics.to_string(), "http://127.0.0.1:9095/metrics");
        let t = Target::parse("http://127.1.2.3:80/herald/").await.unwrap();
        assert_eq!(
            t.alerts.to_string(),
            "http://127.1.2.3:80/herald/api/v2/alerts"
        );
        let t = Target::parse("http://[::1]:9095/herald/").await.unwrap();
        assert_eq!(
            t.alerts.to_string(),
            "http://[::1]:9095/herald/api/v2/alerts"
        );
        let t = Target::parse("http://[::1]:9095/").await.unwrap();
        assert_eq!(t.alerts.to_string(), "http://[::1]:9095/api/v2/alerts");
    }

    #[tokio::test]
    async fn refuses_anything_off_this_machine() {
        for url in [
            "http://10.0.0.1:9095",
            "http://192.168.1.5:9095",
            "http://8.8.8.8",
            "http://example.com:9095",
            "https://127.0.0.1:9095",
            "http://127.0.0.1:9095/?x=1",
            "http://user:pw@127.0.0.1:9095",
            "127.0.0.1:9095",
        ] {
            assert!(Target::parse(url).await.is_err(), "{url} should be refused");
        }
    }

    #[test]
    fn listens_on_loopback_only() {
        assert!(loopback_listen("127.0.0.1:0").is_ok());
        assert!(loopback_listen("[::1]:8080").is_ok());
        assert!(loopback_listen("0.0.0.0:8080").is_err());
        assert!(loopback_listen("localhost:8080").is_err());
    }
}
