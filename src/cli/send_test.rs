//! `herald send-test -c FILE --receiver NAME`: sends a synthetic firing and then resolved notification through
//! every integration of a receiver, straight to the destinations (not through the outbox), and prints what each
//! answered: the way to check credentials, URLs and channels before alerts depend on them.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::Args;
use herald::alert::Status;
use herald::clock::{Clock, SystemClock};
use herald::config::{Settings, format_duration};
use herald::notification::Notification;
use herald::sinks::integrations::{Integration, Integrations};
use herald::sinks::{Context, Receipt, SinkError};

#[derive(Debug, Args)]
pub struct SendTestArgs {
    /// Configuration file (same lookup as `serve`).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// The receiver whose integrations to try.
    #[arg(long)]
    receiver: String,
}

fn notification(settings: &Settings, receiver: &str, status: Status) -> Notification {
    Notification::synthetic(
        receiver,
        status,
        SystemClock.now(),
        settings.server.external_url.clone(),
    )
}

/// One line about what the destination answered.
fn answered(result: &Result<Receipt, SinkError>) -> String {
    let shown = |response: Option<&herald::sinks::Response>| {
        response.map_or_else(String::new, |response| {
            let status = response
                .status
                .map_or_else(String::new, |code| format!("HTTP {code}"));
            let body = super::first_line(&response.body, 120);
            match (status.is_empty(), body.is_empty()) {
                (false, false) => format!(" ({status}: {body})"),
                (false, true) => format!(" ({status})"),
                (true, false) => format!(" ({body})"),
                (true, true) => String::new(),
            }
        })
    };
    match result {
        Ok(receipt) => format!("ok{}", shown(receipt.response.as_ref())),
        Err(error) => format!(
            "FAILED, {}: {error}{}",
            error.reason(),
            shown(error.response())
        ),
    }
}

async fn try_one(
    integration: &Integration,
    notification: &Notification,
    context: &Context,
) -> Result<Receipt, SinkError> {
    let timeout = integration.options.timeout;
    match tokio::time::timeout(timeout, integration.sink.send(notification, context)).await {
        Ok(result) => result,
        Err(_) => Err(SinkError::retryable(format!(
            "no answer within {} (timeout)",
            format_duration(timeout)
        ))),
    }
}

pub async fn run(args: SendTestArgs) -> anyhow::Result<String> {
    let path = herald::config::resolve_path(args.config.as_deref());
    let settings = herald::config::load(path.as_deref())
        .map_err(|errors| anyhow!("the configuration is invalid:\n{errors}"))?
        .settings;
    let Some(receiver) = settings.receiver(&args.receiver) else {
        let known: Vec<&str> = settings.receivers.iter().map(|r| r.name.as_str()).collect();
        return Err(anyhow!(
            "no receiver {:?}; the configuration has: {}",
            args.receiver,
            known.join(", ")
        ));
    };
    let client = herald::sinks::http::client().context("cannot build the HTTP client")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let integrations = Integrations::build(&settings, &client, &clock);
    let Some(built) = integrations.receiver(&receiver.name) else {
        return Err(anyhow!("receiver {:?} has no integrations", receiver.name));
    };
    let mut out = format!(
        "receiver {}: {} integration{}\n",
        receiver.name,
        built.integrations.len(),
        if built.integrations.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    let mut failed = 0;
    for integration in &built.integrations {
        let kind = integration.sink.integration();
        let mut context = Context::default();
        for status in [Status::Firing, Status::Resolved] {
            if status == Status::Resolved && !integration.sink.send_resolved() {
                let _ = writeln!(
                    out,
                    "{} ({kind}) resolved: skipped (send_resolved: false)",
                    integration.key
                );
                continue;
            }
            let result = try_one(
                integration,
                &notification(&settings, &receiver.name, status),
                &context,
            )
            .await;
            let _ = writeln!(
                out,
                "{} ({kind}) {status}: {}",
                integration.key,
                answered(&result)
            );
            match result {
                Ok(receipt) => context.state = receipt.state.or(context.state),
                Err(_) => failed += 1,
            }
        }
    }
    if failed > 0 {
        return Err(anyhow!(
            "{out}{failed} send{} failed",
            if failed == 1 { "" } else { "s" }
        ));
    }
    Ok(out)
}
