//! Operator commands that talk to a running herald over its HTTP API: the options they share (`--url`, `--token`,
//! `--output`), the client that turns herald's answers and failures into readable errors, and running a command to
//! an exit code with its output on stdout.

pub mod deliveries;
pub mod healthcheck;
pub mod send_test;

use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use herald::config::Secret;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach herald and how to print its answers; global, so they may follow the subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the running herald.
    #[arg(
        long,
        global = true,
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:9095"
    )]
    pub url: Url,
    /// Admin token (one of server.admin_tokens), sent as Authorization: Bearer.
    #[arg(
        long,
        global = true,
        env = "HERALD_TOKEN",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub token: Option<Secret>,
    /// Output: text for people, or json for herald's answer as it is (pretty-printed).
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

/// A client of herald's HTTP API at one base URL.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: Option<Secret>,
}

impl Api {
    pub fn new(args: &ClientArgs) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Api {
            http,
            base: args.url.clone(),
            token: args.token.clone(),
        })
    }

    /// `path` under the base URL (which may itself have a path, behind a proxy), with the non-empty `query` pairs.
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{path}", self.base.path().trim_end_matches('/'));
        url.set_path(&joined);
        url.set_query(None);
        let query: Vec<_> = query
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .collect();
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        url
    }

    /// Sends a request without a body; returns herald's JSON answer, or an error saying what went wrong.
    pub async fn call(&self, method: Method, url: Url) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|error| self.unreachable(&error))?;
        if !status.is_success() {
            return Err(refused(status, &body));
        }
        serde_json::from_str(&body).map_err(|_| {
            anyhow!(
                "herald answered {status} with a body that is not JSON ({}); does --url point at herald?",
                first_line(&body, 100)
            )
        })
    }

    /// Why no answer came, with where it was asked.
    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        let base = &self.base;
        if error.is_timeout() {
            return anyhow!(
                "herald at {base} did not answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            );
        }
        anyhow!(
            "cannot reach herald at {base}: {}; is it running there? Point --url or HERALD_URL at it",
            root_cause(error)
        )
    }
}

/// The innermost cause of an error (`Connection refused (os error 111)` rather than `error sending request`).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A non-2xx answer as an error: herald's `{"error": ...}` text, else the body's first line.
fn refused(status: StatusCode, body: &str) -> anyhow::Error {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|value| value.get("error")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| first_line(body, 200));
    let hint = if status == StatusCode::UNAUTHORIZED {
        "; pass --token or set HERALD_TOKEN"
    } else {
        ""
    };
    if message.is_empty() {
        anyhow!("herald answered {status}{hint}")
    } else {
        anyhow!("herald answered {status}: {message}{hint}")
    }
}

/// The first line of `text`, cut to `max` characters (marked with `...` when cut).
pub fn first_line(text: &str, max: usize) -> String {
    truncate(text.trim().lines().next().unwrap_or_default(), max)
}

/// `text` on one line (line breaks become spaces), cut to `max` characters (marked with `...` when cut).
pub fn truncate(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let kept: String = flat.chars().take(max.saturating_sub(3)).collect();
    format!("{}...", kept.trim_end())
}

/// Rows as columns aligned by padding, two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|name| name.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|name| (*name).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `value` as pretty JSON, with a final newline.
pub fn json(value: &Value) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value).context("cannot print herald's answer")?;
    text.push('\n');
    Ok(text)
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!("cannot write to stdout: {error}"))
        }
        _ => Ok(()),
    }
}

/// An async runtime: multi-threaded for the daemon, one thread for a client command. On failure, says so on stderr
/// and gives the exit code.
pub fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|error| {
        eprintln!("herald: cannot start the async runtime: {error}");
        ExitCode::FAILURE
    })
}

/// Runs a client command to its end: what it returns goes to stdout; an error goes to stderr and exits 1.
pub fn run(command: impl Future<Output = anyhow::Result<String>>) -> ExitCode {
    let runtime = match runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(command).and_then(|text| print(&text)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("herald: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> Api {
        Api::new(&ClientArgs {
            url: base.parse().unwrap(),
            token: None,
            output: Output::Text,
        })
        .unwrap()
    }

    #[test]
    fn urls_keep_the_base_path_and_skip_empty_query_values() {
        let url = api("http://h:1/herald/").url(
            "/api/herald/v1/deliveries",
            &[("state", "dead".into()), ("receiver", String::new())],
        );
        assert_eq!(
            url.as_str(),
            "http://h:1/herald/api/herald/v1/deliveries?state=dead"
        );
        let url = api("http://h:1").url("/api/herald/v1/deliveries/3", &[]);
        assert_eq!(url.as_str(), "http://h:1/api/herald/v1/deliveries/3");
    }

    #[test]
    fn a_refusal_shows_herald_s_error_text() {
        let error = refused(
            StatusCode::CONFLICT,
            r#"{"error":"delivery 3 is being sent; retry it when it settles"}"#,
        );
        assert_eq!(
            error.to_string(),
            "herald answered 409 Conflict: delivery 3 is being sent; retry it when it settles"
        );
        let error = refused(StatusCode::BAD_GATEWAY, "<html>\nbad gateway");
        assert_eq!(error.to_string(), "herald answered 502 Bad Gateway: <html>");
        let error = refused(StatusCode::UNAUTHORIZED, r#"{"error":"needs a token"}"#);
        assert!(
            error
                .to_string()
                .ends_with("pass --token or set HERALD_TOKEN")
        );
    }

    #[test]
    fn truncation_marks_the_cut_and_flattens_lines() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a\nb", 10), "a b");
        assert_eq!(truncate("abcdefghijkl", 8), "abcde...");
    }

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let text = table(
            &["ID", "NAME", "NOTE"],
            &[
                vec!["1".into(), "long name".into(), String::new()],
                vec!["22".into(), "x".into(), "note".into()],
            ],
        );
        assert_eq!(
            text,
            "ID  NAME       NOTE\n1   long name\n22  x          note\n"
        );
    }
}
