//! The `herald` command line: `serve` runs the daemon, `check-config` validates a configuration, `route-test` shows
//! where alerts go, `deliveries` inspects and replays the outbox of a running herald, `send-test` tries a receiver's
//! integrations, `healthcheck` asks a running herald whether it is ready.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

/// mimalloc instead of the system allocator: herald allocates many small, short-lived objects on several threads
/// (parsed alerts, notifications, HTTP requests), where glibc's malloc spent a quarter of the delivery path's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

mod cli;

/// Prints a line on stdout; a reader that went away (`herald check-config | head -1`) is no error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Alert-routing daemon: receives Prometheus, Alertmanager and Grafana \
    alerts, stores them durably and delivers notifications"
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HERALD_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace, or a filter such as `herald=debug`); overrides HERALD_LOG.
    /// `--log.level`, as Alertmanager spells it, is accepted too.
    #[arg(long = "log-level", alias = "log.level", global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    Serve {
        /// Configuration file; default: $HERALD_CONFIG, else /etc/herald/herald.yaml when present, else the
        /// embedded default. `--config.file`, as Alertmanager spells it, is accepted too.
        #[arg(short, long, alias = "config.file")]
        config: Option<PathBuf>,
        /// Listen address, replacing `server.listen` (Alertmanager's `--web.listen-address`).
        #[arg(long = "listen", alias = "web.listen-address")]
        listen: Option<std::net::SocketAddr>,
        /// External URL, replacing `server.external_url` (Alertmanager's `--web.external-url`).
        #[arg(long = "external-url", alias = "web.external-url")]
        external_url: Option<String>,
    },
    /// Validate a configuration: print a summary and exit 0, or print every error and exit 1.
    CheckConfig {
        /// Configuration file (same lookup as `serve`).
        #[arg(short, long, alias = "config.file")]
        config: Option<PathBuf>,
        /// Check everything but secrets whose `${VAR}` is not set in this environment (CI, a laptop), and list
        /// those variables instead of failing on them.
        #[arg(long)]
        allow_unset_secrets: bool,
    },
    /// Print the receivers an alert with the given labels reaches (like `amtool config routes test`), or the tree.
    RouteTest {
        /// Configuration file (same lookup as `serve`).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Print the route tree instead of testing labels.
        #[arg(long)]
        tree: bool,
        /// Exit 1 unless the receivers are exactly these, in this order (comma-separated).
        #[arg(long, value_delimiter = ',')]
        verify_receivers: Option<Vec<String>>,
        /// The alert's labels, as name=value (the value may be double-quoted).
        labels: Vec<String>,
    },
    /// Inspect, retry or discard deliveries (the outbox) of a running herald.
    Deliveries(cli::deliveries::DeliveriesArgs),
    /// Send a test notification, firing then resolved, through every integration of a receiver and print what each
    /// answered (checks credentials, URLs and channels).
    SendTest(cli::send_test::SendTestArgs),
    /// Exit 0 when a running herald answers 200 on /-/ready, else 1 (the container image's HEALTHCHECK).
    Healthcheck(cli::healthcheck::HealthcheckArgs),
}

/// `name=value` or `name="value"` arguments as a label set.
fn parse_labels(args: &[String]) -> Result<herald::alert::Labels, String> {
    let mut labels = herald::alert::Labels::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(format!("label {arg:?}: expected name=value"));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("label {arg:?}: the name is empty"));
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        labels.insert(name.to_string(), value.to_string());
    }
    Ok(labels)
}

fn route_test(
    config: Option<PathBuf>,
    tree: bool,
    verify: Option<Vec<String>>,
    labels: &[String],
) -> ExitCode {
    let settings = match load(config) {
        Ok(loaded) => loaded.settings,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let routes = match herald::route::tree::RouteNode::build(&settings.route) {
        Ok(routes) => routes,
        Err(error) => {
            eprintln!("route: {error}");
            return ExitCode::FAILURE;
        }
    };
    if tree {
        print!("{}", routes.outline());
        return ExitCode::SUCCESS;
    }
    let labels = match parse_labels(labels) {
        Ok(labels) => labels,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let receivers = routes.receivers(&labels);
    out!("{}", receivers.join(","));
    match verify {
        Some(expected) if expected != receivers => {
            eprintln!(
                "receivers differ: expected {}, got {}",
                expected.join(","),
                receivers.join(",")
            );
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Log level from `--log-level`, else HERALD_LOG, else RUST_LOG, else info.
fn init_logging(format: LogFormat, level: Option<String>) {
    let spec = level.map(|level| ("--log-level", level)).or_else(|| {
        [
            ("HERALD_LOG", std::env::var("HERALD_LOG")),
            ("RUST_LOG", std::env::var("RUST_LOG")),
        ]
        .into_iter()
        .find_map(|(name, value)| value.ok().map(|value| (name, value)))
    });
    let filter = match spec {
        None => EnvFilter::new("info"),
        Some((name, value)) => EnvFilter::try_new(&value).unwrap_or_else(|error| {
            eprintln!("herald: ignoring {name}={value:?} ({error}); logging at info");
            EnvFilter::new("info")
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

fn load(config: Option<PathBuf>) -> Result<herald::config::Loaded, herald::config::ConfigErrors> {
    let path = herald::config::resolve_path(config.as_deref());
    herald::config::load(path.as_deref())
}

/// Whether `error` only says that a `${VAR}` is not set.
fn unset_variable(error: &herald::config::ConfigError) -> bool {
    error.message.starts_with("environment variable ") && error.message.ends_with(" is not set")
}

fn check_config(config: Option<PathBuf>, allow_unset_secrets: bool) -> ExitCode {
    match load(config) {
        Ok(loaded) => {
            out!("{}", herald::config::summary(&loaded));
            ExitCode::SUCCESS
        }
        Err(errors) if allow_unset_secrets && errors.errors.iter().all(unset_variable) => {
            out!(
                "configuration valid, apart from secrets whose environment variables are not set here:"
            );
            for error in &errors.errors {
                out!("  {error}");
            }
            ExitCode::SUCCESS
        }
        Err(mut errors) => {
            if allow_unset_secrets {
                errors.errors.retain(|error| !unset_variable(error));
            }
            let count = errors.errors.len();
            eprintln!("{errors}");
            eprintln!(
                "configuration invalid: {count} error{}",
                if count == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

/// Cancels `token` on the first SIGTERM or SIGINT.
fn watch_signals(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
        token.cancel();
    });
    Ok(())
}

/// Values given on `serve`'s command line, which replace the configuration's at start and at every reload.
#[derive(Debug, Clone, Default)]
struct Overrides {
    listen: Option<std::net::SocketAddr>,
    external_url: Option<String>,
}

impl Overrides {
    fn apply(&self, mut loaded: herald::config::Loaded) -> herald::config::Loaded {
        if let Some(listen) = self.listen {
            loaded.settings.server.listen = listen;
        }
        if let Some(url) = &self.external_url {
            loaded.settings.server.external_url = Some(url.trim_end_matches('/').to_owned());
        }
        loaded
    }
}

async fn serve(config: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let listen_given = overrides.listen.is_some();
    let load = move |config: Option<PathBuf>| load(config).map(|loaded| overrides.apply(loaded));
    let loaded = match load(config.clone()) {
        Ok(loaded) => loaded,
        Err(errors) => anyhow::bail!("configuration invalid:\n{errors}"),
    };
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "configuration");
    }
    let settings = loaded.settings;
    let listen = settings.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            if listen_given {
                format!("cannot listen on {listen} (--listen)")
            } else if std::env::var_os("HERALD__SERVER__LISTEN").is_some() {
                format!("cannot listen on {listen} (environment HERALD__SERVER__LISTEN)")
            } else {
                format!(
                    "cannot listen on {listen} (server.listen in {})",
                    settings.origin
                )
            }
        })?;
    let shutdown = CancellationToken::new();
    watch_signals(shutdown.clone())?;
    let source: herald::reload::ConfigSource = Arc::new(move || load(config.clone()));
    herald::run_with_reload(
        settings,
        listener,
        shutdown,
        Arc::new(herald::clock::SystemClock),
        Some(source),
    )
    .await
    .context("herald stopped with an error")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_level);
    match cli.command {
        Command::CheckConfig {
            config,
            allow_unset_secrets,
        } => check_config(config, allow_unset_secrets),
        Command::RouteTest {
            config,
            tree,
            verify_receivers,
            labels,
        } => route_test(config, tree, verify_receivers, &labels),
        Command::Deliveries(args) => cli::run(cli::deliveries::run(args)),
        Command::SendTest(args) => cli::run(cli::send_test::run(args)),
        Command::Healthcheck(args) => cli::run(cli::healthcheck::run(args)),
        Command::Serve {
            config,
            listen,
            external_url,
        } => {
            let runtime = match cli::runtime(true) {
                Ok(runtime) => runtime,
                Err(code) => return code,
            };
            let overrides = Overrides {
                listen,
                external_url,
            };
            match runtime.block_on(serve(config, overrides)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
