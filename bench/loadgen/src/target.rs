//! The server under test: parses `--url` and refuses anything that is not a plain-HTTP loopback address, so a
//! benchmark can only ever load a server on this machine.

use std::net::IpAddr;

use anyhow::{Context, Result, bail, ensure};
use hyper::Uri;

/// Path of Alertmanager's v2 ingest endpoint, appended to the base URL.
const ALERTS_PATH: &str = "/api/v2/alerts";

/// A validated loopback target.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `POST` endpoint for alerts.
    pub(crate) alerts: Uri,
}

impl Target {
    /// Parses a base URL such as `http://127.0.0.1:9095` (a path prefix is kept) and checks that its host is a
    /// loopback address: an IP literal in 127.0.0.0/8 or `::1`, or `localhost` resolving only to such addresses.
    pub(crate) async fn parse(url: &str) -> Result<Self> {
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
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        check_loopback(host, port).await?;

        let prefix = uri.path().trim_end_matches('/');
        let alerts = format!("http://{authority}{prefix}{ALERTS_PATH}")
            .parse()
            .with_context(|| format!("cannot build the alerts URL from {url}"))?;
        Ok(Self { alerts })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepts_loopback_and_appends_the_alerts_path() {
        let t = Target::parse("http://127.0.0.1:9095").await.unwrap();
        assert_eq!(t.alerts.to_string(), "http://127.0.0.1:9095/api/v2/alerts");
        let t = Target::parse("http://127.1.2.3:80/herald/").await.unwrap();
        assert_eq!(
            t.alerts.to_string(),
            "http://127.1.2.3:80/herald/api/v2/alerts"
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
            "127.0.0.1:9095",
        ] {
            assert!(Target::parse(url).await.is_err(), "{url} should be refused");
        }
    }
}
