//! `herald deliveries list|show|retry|discard`: the outbox of a running herald through its operator API
//! (`/api/herald/v1/deliveries`), printed as tables and summaries for people or as the API's JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use herald::store::delivery::DeliveryState;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{Api, ClientArgs, Output, first_line, json, table, truncate};

const DELIVERIES: &str = "/api/herald/v1/deliveries";

/// Characters of a delivery's last error shown in the list.
const LIST_ERROR_CHARS: usize = 60;
/// Characters of an attempt's response shown by `show`.
const RESPONSE_CHARS: usize = 120;

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// List deliveries, newest first.
    List(ListArgs),
    /// Show one delivery with its notification and every attempt.
    Show {
        /// The delivery's id.
        id: i64,
    },
    /// Queue deliveries to be sent again now: one by id, or all dead (or pending) ones with --all.
    Retry(RetryArgs),
    /// Remove a delivery from the outbox without sending it.
    Discard {
        /// The delivery's id.
        id: i64,
    },
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only deliveries in this state.
    #[arg(long, value_enum)]
    state: Option<StateArg>,
    /// Only deliveries of this receiver.
    #[arg(long)]
    receiver: Option<String>,
    /// At most this many (herald's default: 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Only deliveries older than this id (the next page, as the list's footer says).
    #[arg(long)]
    before: Option<i64>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
struct RetryArgs {
    /// The delivery's id.
    id: Option<i64>,
    /// Every delivery in --state (dead unless given), of --receiver when given.
    #[arg(long)]
    all: bool,
    /// With --all: the state of the deliveries to send again.
    #[arg(long, value_enum, conflicts_with = "id")]
    state: Option<RetryState>,
    /// With --all: only deliveries of this receiver.
    #[arg(long, conflicts_with = "id")]
    receiver: Option<String>,
}

/// A delivery state as an option value.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum StateArg {
    Pending,
    #[value(name = "in_flight")]
    InFlight,
    Delivered,
    Dead,
}

impl From<StateArg> for DeliveryState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Pending => DeliveryState::Pending,
            StateArg::InFlight => DeliveryState::InFlight,
            StateArg::Delivered => DeliveryState::Delivered,
            StateArg::Dead => DeliveryState::Dead,
        }
    }
}

/// The states `retry --all` can send again.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RetryState {
    Dead,
    Pending,
}

impl From<RetryState> for DeliveryState {
    fn from(state: RetryState) -> Self {
        match state {
            RetryState::Dead => DeliveryState::Dead,
            RetryState::Pending => DeliveryState::Pending,
        }
    }
}

fn state_param(state: Option<impl Into<DeliveryState>>) -> String {
    state
        .map(|state| state.into().as_str().to_owned())
        .unwrap_or_default()
}

/// A delivery as the API lists it (the fields shown here).
#[derive(Debug, Deserialize)]
struct Delivery {
    id: i64,
    receiver: String,
    integration: String,
    integration_key: String,
    destination: String,
    group_key: String,
    status: String,
    alert_count: usize,
    state: DeliveryState,
    attempts: u32,
    created_at: DateTime<Utc>,
    queued_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    last_error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Page {
    deliveries: Vec<Delivery>,
    next_before: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Attempt {
    started_at: DateTime<Utc>,
    duration_seconds: f64,
    outcome: String,
    status_code: Option<u16>,
    error: Option<String>,
    response: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Detail {
    delivery: Delivery,
    notification: Value,
    attempts: Vec<Attempt>,
}

/// Runs the command; returns what to print.
pub async fn run(args: DeliveriesArgs) -> anyhow::Result<String> {
    let api = Api::new(&args.client)?;
    let output = args.client.output;
    match args.command {
        DeliveriesCommand::List(list) => list_deliveries(&api, output, list).await,
        DeliveriesCommand::Show { id } => show(&api, output, id).await,
        DeliveriesCommand::Retry(retry) => retry_deliveries(&api, output, retry).await,
        DeliveriesCommand::Discard { id } => discard(&api, output, id).await,
    }
}

/// The API's JSON, or the text `render` makes of it (parsed as `T`).
fn present<T: serde::de::DeserializeOwned>(
    output: Output,
    answer: Value,
    render: impl FnOnce(T) -> String,
) -> anyhow::Result<String> {
    match output {
        Output::Json => json(&answer),
        Output::Text => {
            let parsed = serde_json::from_value(answer)
                .map_err(|error| anyhow::anyhow!("unexpected answer from herald: {error}"))?;
            Ok(render(parsed))
        }
    }
}

async fn list_deliveries(api: &Api, output: Output, args: ListArgs) -> anyhow::Result<String> {
    let query = [
        ("state", state_param(args.state)),
        ("receiver", args.receiver.unwrap_or_default()),
        (
            "limit",
            args.limit.map(|n| n.to_string()).unwrap_or_default(),
        ),
        (
            "before",
            args.before.map(|n| n.to_string()).unwrap_or_default(),
        ),
    ];
    let answer = api.call(Method::GET, api.url(DELIVERIES, &query)).await?;
    present(output, answer, render_list)
}

async fn show(api: &Api, output: Output, id: i64) -> anyhow::Result<String> {
    let url = api.url(&format!("{DELIVERIES}/{id}"), &[]);
    let answer = api.call(Method::GET, url).await?;
    present(output, answer, render_detail)
}

async fn retry_deliveries(api: &Api, output: Output, args: RetryArgs) -> anyhow::Result<String> {
    let url = match args.id {
        Some(id) => api.url(&format!("{DELIVERIES}/{id}/retry"), &[]),
        None => api.url(
            &format!("{DELIVERIES}/retry"),
            &[
                ("state", state_param(args.state)),
                ("receiver", args.receiver.unwrap_or_default()),
            ],
        ),
    };
    let answer = api.call(Method::POST, url).await?;
    let id = args.id;
    present(output, answer, |retried: Retried| {
        retried_text(id, retried.retried)
    })
}

#[derive(Debug, Deserialize)]
struct Retried {
    retried: usize,
}

fn retried_text(id: Option<i64>, count: usize) -> String {
    match (id, count) {
        (Some(id), _) => format!("queued delivery {id} again\n"),
        (None, 1) => "queued 1 delivery again\n".to_owned(),
        (None, count) => format!("queued {count} deliveries again\n"),
    }
}

async fn discard(api: &Api, output: Output, id: i64) -> anyhow::Result<String> {
    let url = api.url(&format!("{DELIVERIES}/{id}"), &[]);
    let answer = api.call(Method::DELETE, url).await?;
    present(output, answer, |discarded: Discarded| {
        format!("discarded delivery {}\n", discarded.discarded)
    })
}

#[derive(Debug, Deserialize)]
struct Discarded {
    discarded: i64,
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// When a pending delivery is due; when anything else last changed.
fn next_or_updated(delivery: &Delivery) -> DateTime<Utc> {
    match delivery.state {
        DeliveryState::Pending => delivery.next_attempt_at,
        _ => delivery.updated_at,
    }
}

fn or_dash(value: Option<&str>) -> String {
    value.map_or_else(|| "-".to_owned(), str::to_owned)
}

fn render_list(page: Page) -> String {
    if page.deliveries.is_empty() {
        return "no deliveries\n".to_owned();
    }
    let header = [
        "ID",
        "STATE",
        "RECEIVER",
        "INTEGRATION",
        "STATUS",
        "ALERTS",
        "ATTEMPTS",
        "NEXT/UPDATED",
        "LAST ERROR",
    ];
    let rows: Vec<Vec<String>> = page.deliveries.iter().map(list_row).collect();
    let mut out = table(&header, &rows);
    if let Some(before) = page.next_before {
        out.push_str(&format!("more: --before {before}\n"));
    }
    out
}

fn list_row(delivery: &Delivery) -> Vec<String> {
    vec![
        delivery.id.to_string(),
        delivery.state.to_string(),
        delivery.receiver.clone(),
        delivery.integration_key.clone(),
        delivery.status.clone(),
        delivery.alert_count.to_string(),
        delivery.attempts.to_string(),
        time(next_or_updated(delivery)),
        delivery
            .last_error
            .as_deref()
            .map_or_else(|| "-".to_owned(), |error| truncate(error, LIST_ERROR_CHARS)),
    ]
}

/// `name: value` lines with the values aligned.
fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(name, _)| name.len() + 1)
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(name, value)| format!("{:<width$}  {value}\n", format!("{name}:")))
        .collect()
}

fn render_detail(detail: Detail) -> String {
    let mut out = delivery_fields(&detail.delivery);
    out.push_str("\nnotification\n");
    out.push_str(&notification_fields(&detail.notification));
    if detail.attempts.is_empty() {
        out.push_str("\nno attempts yet\n");
    }
    for (number, attempt) in detail.attempts.iter().enumerate() {
        out.push('\n');
        out.push_str(&attempt_text(number + 1, attempt));
    }
    out
}

fn delivery_fields(delivery: &Delivery) -> String {
    fields(&[
        ("id", delivery.id.to_string()),
        ("state", delivery.state.to_string()),
        ("receiver", delivery.receiver.clone()),
        (
            "integration",
            format!("{} ({})", delivery.integration_key, delivery.integration),
        ),
        ("destination", delivery.destination.clone()),
        ("group key", delivery.group_key.clone()),
        ("status", delivery.status.clone()),
        ("alerts", delivery.alert_count.to_string()),
        ("attempts", delivery.attempts.to_string()),
        ("created", time(delivery.created_at)),
        ("queued", time(delivery.queued_at)),
        ("next attempt", time(delivery.next_attempt_at)),
        (
            "lease until",
            or_dash(delivery.lease_until.map(time).as_deref()),
        ),
        ("updated", time(delivery.updated_at)),
        ("last error", or_dash(delivery.last_error.as_deref())),
    ])
}

/// The notification's group key, status and alert names (each name once, in order).
fn notification_fields(notification: &Value) -> String {
    let text = |key: &str| or_dash(notification.get(key).and_then(Value::as_str));
    let mut names: Vec<&str> = Vec::new();
    let alerts = notification.get("alerts").and_then(Value::as_array);
    for alert in alerts.into_iter().flatten() {
        let name = alert
            .pointer("/alert/labels/alertname")
            .and_then(Value::as_str)
            .unwrap_or("(no alertname)");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    fields(&[
        ("group key", text("group_key")),
        ("status", text("status")),
        ("reason", text("reason")),
        ("alert names", names.join(", ")),
    ])
}

fn attempt_text(number: usize, attempt: &Attempt) -> String {
    let status = attempt
        .status_code
        .map_or_else(|| "no status".to_owned(), |code| format!("status {code}"));
    let mut out = format!(
        "attempt {number}: {}  {:.0} ms  {}  {status}\n",
        time(attempt.started_at),
        attempt.duration_seconds * 1000.0,
        attempt.outcome,
    );
    if let Some(error) = &attempt.error {
        out.push_str(&format!("  error:     {error}\n"));
    }
    if let Some(response) = attempt.response.as_deref().filter(|r| !r.trim().is_empty()) {
        out.push_str(&format!(
            "  response:  {}\n",
            first_line(response, RESPONSE_CHARS)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: DeliveriesArgs,
    }

    fn parse(args: &[&str]) -> Result<DeliveriesArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("deliveries").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    fn delivery(id: i64, state: &str, last_error: Option<&str>) -> Value {
        json!({
            "id": id, "receiver": "team-db", "integration": "webhook", "integration_key": "webhook/0",
            "destination": "hooks.example.com", "group_key": "{}:{alertname=\"Disk\"}", "status": "firing",
            "alert_count": 2, "state": state, "attempts": 3,
            "created_at": "2025-03-01T10:00:00.123456Z", "queued_at": "2025-03-01T10:00:00Z",
            "next_attempt_at": "2025-03-01T10:05:00Z", "lease_until": null,
            "updated_at": "2025-03-01T10:01:00Z", "last_error": last_error,
        })
    }

    #[test]
    fn retry_takes_exactly_one_of_an_id_or_all() {
        assert!(parse(&["retry"]).is_err());
        assert!(parse(&["retry", "3", "--all"]).is_err());
        assert!(parse(&["retry", "3", "--state", "dead"]).is_err());
        assert!(parse(&["retry", "3"]).is_ok());
        assert!(parse(&["retry", "--all", "--state", "pending", "--receiver", "x"]).is_ok());
        assert!(parse(&["retry", "--all", "--state", "delivered"]).is_err());
    }

    #[test]
    fn common_options_follow_the_subcommand() {
        let args = parse(&["list", "--url", "http://h:1", "-o", "json", "--token", "t"]).unwrap();
        assert_eq!(args.client.url.as_str(), "http://h:1/");
        assert_eq!(args.client.output, Output::Json);
        assert_eq!(format!("{:?}", args.client.token), "Some(<redacted>)");
        assert!(parse(&["list", "--state", "in_flight"]).is_ok());
    }

    #[test]
    fn the_list_is_an_aligned_table_with_a_footer_for_more() {
        let long = "permanent error: HTTP 400: ".to_owned() + &"x".repeat(100);
        let page = serde_json::from_value(json!({
            "deliveries": [delivery(12, "dead", Some(&long)), delivery(7, "pending", None)],
            "next_before": 7,
        }))
        .unwrap();
        let text = render_list(page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID  STATE    RECEIVER  INTEGRATION  STATUS  ALERTS  ATTEMPTS  NEXT/UPDATED          LAST ERROR"
        );
        assert!(lines[1].starts_with(
            "12  dead     team-db   webhook/0    firing  2       3         2025-03-01T10:01:00Z  permanent error: HTTP 400: xxx"
        ));
        assert!(lines[1].ends_with("x..."), "{}", lines[1]);
        assert_eq!(
            lines[1].split("  ").last().unwrap().chars().count(),
            LIST_ERROR_CHARS
        );
        assert!(
            lines[2].ends_with("2025-03-01T10:05:00Z  -"),
            "pending shows when it is due: {}",
            lines[2]
        );
        assert_eq!(lines[3], "more: --before 7");
        let empty = serde_json::from_value(json!({ "deliveries": [] })).unwrap();
        assert_eq!(render_list(empty), "no deliveries\n");
    }

    #[test]
    fn show_lists_fields_the_notification_and_attempts() {
        let detail = serde_json::from_value(json!({
            "delivery": delivery(12, "dead", Some("permanent error: HTTP 400: invalid_payload")),
            "notification": {
                "group_key": "{}:{alertname=\"Disk\"}", "status": "firing", "reason": "first",
                "alerts": [
                    {"alert": {"labels": {"alertname": "Disk", "instance": "a"}}},
                    {"alert": {"labels": {"alertname": "Disk", "instance": "b"}}},
                ],
            },
            "attempts": [{
                "started_at": "2025-03-01T10:00:00Z", "duration_seconds": 0.0123, "outcome": "permanent",
                "status_code": 400, "error": "permanent error: HTTP 400: invalid_payload",
                "response": "invalid_payload\nsecond line",
            }],
        }))
        .unwrap();
        let text = render_detail(detail);
        for expected in [
            "id:            12\n",
            "integration:   webhook/0 (webhook)\n",
            "lease until:   -\n",
            "created:       2025-03-01T10:00:00Z\n",
            "last error:    permanent error: HTTP 400: invalid_payload\n",
            "\nnotification\n",
            "alert names:  Disk\n",
            "attempt 1: 2025-03-01T10:00:00Z  12 ms  permanent  status 400\n",
            "  error:     permanent error: HTTP 400: invalid_payload\n",
            "  response:  invalid_payload\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn retry_says_what_was_queued() {
        assert_eq!(retried_text(Some(3), 1), "queued delivery 3 again\n");
        assert_eq!(retried_text(None, 1), "queued 1 delivery again\n");
        assert_eq!(retried_text(None, 4), "queued 4 deliveries again\n");
    }
}
