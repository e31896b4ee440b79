//! `herald healthcheck`: asks a running herald's `GET /-/ready` and exits 0 when it answers 200, else 1. It is the
//! container image's HEALTHCHECK, so the image needs no curl or shell; by default it asks the `server.listen` of the
//! configuration `serve` would read, over HTTPS when its `server.web_config_file` has `tls_server_config`. Asked
//! that way, the certificate is not verified: the check talks to the local herald, sends no credential and reads
//! only the status (`/-/ready` is open, auth or not). A herald that requires client certificates
//! (`RequireAndVerifyClientCert`) cannot be asked this way; check it with `--url` through a proxy or use
//! `VerifyClientCertIfGiven`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args;
use reqwest::Url;

/// How long the whole check may take, connecting included.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Configuration file (same lookup as `serve`); herald is asked at its `server.listen`.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Ask herald at this base URL instead (no configuration is read).
    #[arg(long)]
    url: Option<Url>,
}

/// Where a herald listening on `listen` is reached from the same host: the loopback address of the same family when
/// it listens on every address.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `/-/ready` under `base` (which may have a path, behind a proxy).
fn ready_url(base: &Url) -> Url {
    let path = format!("{}/-/ready", base.path().trim_end_matches('/'));
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(None);
    url
}

/// The base URL, and whether it is the configured local listener serving HTTPS (whose certificate, made for the
/// names clients use, is not checked).
fn base_url(args: &HealthcheckArgs) -> anyhow::Result<(Url, bool)> {
    if let Some(url) = &args.url {
        return Ok((url.clone(), false));
    }
    let path = herald::config::resolve_path(args.config.as_deref());
    let settings = herald::config::load(path.as_deref())
        .map_err(|errors| anyhow!("the configuration is invalid:\n{errors}"))?
        .settings;
    let address = local_address(settings.server.listen);
    let tls = settings
        .server
        .web
        .as_ref()
        .is_some_and(|web| web.tls.is_some());
    let scheme = if tls { "https" } else { "http" };
    let url = Url::parse(&format!("{scheme}://{address}"))
        .context("cannot make a URL of server.listen")?;
    Ok((url, tls))
}

pub async fn run(args: HealthcheckArgs) -> anyhow::Result<String> {
    let (base, local_tls) = base_url(&args)?;
    let url = ready_url(&base);
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .danger_accept_invalid_certs(local_tls)
        .build()
        .context("cannot set up the HTTP client")?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|error| anyhow!("{url}: {}", super::root_cause(&error)))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let answer = super::first_line(&body, 200);
    if status.is_success() {
        Ok(format!("{url}: {status} {answer}\n"))
    } else {
        Err(anyhow!("{url}: {status} {answer}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_address_is_asked_on_loopback_of_its_family() {
        let cases = [
            ("0.0.0.0:9095", "127.0.0.1:9095"),
            ("[::]:9095", "[::1]:9095"),
            ("127.0.0.1:9095", "127.0.0.1:9095"),
            ("10.1.2.3:80", "10.1.2.3:80"),
            ("[fd00::1]:9095", "[fd00::1]:9095"),
        ];
        for (listen, asked) in cases {
            assert_eq!(
                local_address(listen.parse().unwrap()).to_string(),
                asked,
                "{listen}"
            );
        }
    }

    #[test]
    fn ready_path_follows_the_base_path() {
        for (base, url) in [
            ("http://127.0.0.1:9095", "http://127.0.0.1:9095/-/ready"),
            ("http://h:1/herald/", "http://h:1/herald/-/ready"),
            ("http://h:1/herald?x=1", "http://h:1/herald/-/ready"),
        ] {
            assert_eq!(
                ready_url(&Url::parse(base).unwrap()).as_str(),
                url,
                "{base}"
            );
        }
    }
}
