//! The one-screen human summary of a loaded configuration printed by `herald check-config`. Never prints secrets.

use std::fmt::Write as _;

use super::Loaded;
use super::duration::format_duration;
use super::settings::{GroupBy, Route, StorageBackend};
use crate::inhibit::InhibitRule;
use crate::timeinterval::TimeInterval;

/// Summarises `loaded`: origin, listen address, storage, ingest limits, the route tree as an indented outline,
/// receivers with their integration counts, time intervals, inhibit rules, and warnings.
pub fn summary(loaded: &Loaded) -> String {
    let settings = &loaded.settings;
    let mut out = String::new();
    let _ = writeln!(out, "config: {}", settings.origin);
    if !loaded.env_overrides.is_empty() {
        let _ = writeln!(
            out,
            "environment overrides: {}",
            loaded.env_overrides.join(", ")
        );
    }
    let server = &settings.server;
    let _ = writeln!(out, "listen: {}", server.listen);
    let _ = writeln!(
        out,
        "server: max body {}, shutdown timeout {}, external URL {}",
        format_size(server.max_body_bytes),
        format_duration(server.shutdown_timeout),
        server.external_url.as_deref().unwrap_or("(unset)")
    );
    let _ = writeln!(
        out,
        "connections: header read timeout {}, idle timeout {}, at most {}",
        format_duration(server.header_read_timeout),
        format_duration(server.idle_timeout),
        server.max_connections.map_or_else(
            || "(from the open-file limit)".to_owned(),
            |max| max.to_string()
        )
    );
    let storage = &settings.storage;
    let backend = match &storage.backend {
        StorageBackend::Sqlite { path } => format!("sqlite {}", path.display()),
    };
    let _ = writeln!(
        out,
        "storage: {backend} (busy timeout {}, resolved alerts kept {})",
        format_duration(storage.busy_timeout),
        format_duration(storage.resolved_retention)
    );
    let ingest = &settings.ingest;
    let _ = writeln!(
        out,
        "ingest: resolve timeout {}, at most {} labels per alert, at most {} alerts per request",
        format_duration(ingest.resolve_timeout),
        ingest.max_labels_per_alert,
        ingest.max_alerts_per_request
    );
    out.push_str("route tree:\n");
    route_outline(&mut out, &settings.route, 1);
    let _ = writeln!(out, "receivers ({}):", settings.receivers.len());
    for receiver in &settings.receivers {
        let count = receiver.integration_count();
        let plural = if count == 1 { "" } else { "s" };
        let _ = write!(out, "  {}: {count} integration{plural}", receiver.name);
        let kinds: Vec<String> = [
            ("log", receiver.log_configs.len()),
            ("webhook", receiver.webhook_configs.len()),
            ("slack", receiver.slack_configs.len()),
            ("jira", receiver.jira_configs.len()),
            ("pagerduty", receiver.pagerduty_configs.len()),
            ("wecom", receiver.wecom_configs.len()),
            ("msteamsv2", receiver.msteamsv2_configs.len()),
            ("email", receiver.email_configs.len()),
        ]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .map(|(kind, count)| format!("{kind}: {count}"))
        .collect();
        if !kinds.is_empty() {
            let _ = write!(out, " ({})", kinds.join(", "));
        }
        out.push('\n');
        integration_lines(&mut out, receiver);
    }
    let delivery = &settings.delivery;
    let retry = &delivery.retry;
    let _ = writeln!(
        out,
        "delivery: concurrency {} per receiver, timeout {}, retry backoff {} to {}, dead after {} attempts or {}, \
         drain {}, kept {}",
        delivery.concurrency,
        format_duration(delivery.timeout),
        format_duration(retry.initial_backoff),
        format_duration(retry.max_backoff),
        retry.max_attempts,
        format_duration(retry.max_age),
        format_duration(delivery.drain_timeout),
        format_duration(delivery.retention)
    );
    let _ = writeln!(out, "access: {}", access_line(server));
    time_intervals(&mut out, &settings.time_intervals);
    inhibit_rules(&mut out, &settings.inhibit_rules);
    if loaded.warnings.is_empty() {
        out.push_str("warnings: none\n");
    } else {
        let _ = writeln!(out, "warnings ({}):", loaded.warnings.len());
        for warning in &loaded.warnings {
            let _ = writeln!(out, "  {warning}");
        }
    }
    out
}

/// Who may use the HTTP API, counting credentials by kind (never showing one).
fn access_line(server: &super::settings::ServerSettings) -> String {
    let web = server.web.as_deref();
    let users = web.map_or(0, |web| web.basic_auth_users.len());
    let scheme = if web.is_some_and(|web| web.tls.is_some()) {
        "HTTPS"
    } else {
        "HTTP"
    };
    if !server.auth_enabled() {
        return format!(
            "{scheme}, open to anyone who can reach it (no tokens or basic auth users)"
        );
    }
    let counts = [
        (server.admin_tokens.len(), "admin token"),
        (server.ingest_tokens.len(), "ingest token"),
        (server.read_tokens.len(), "read token"),
        (users, "basic auth user"),
    ];
    let parts: Vec<String> = counts
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}{}", if *count == 1 { "" } else { "s" }))
        .collect();
    format!(
        "{scheme}, every endpoint but /-/healthy and /-/ready needs a credential ({})",
        parts.join(", ")
    )
}

/// One line per webhook and email integration with its settings, secrets shown as `<secret>`.
fn integration_lines(out: &mut String, receiver: &super::settings::Receiver) {
    let lines = receiver
        .webhook_configs
        .iter()
        .enumerate()
        .map(|(i, hook)| (format!("webhook/{i}"), super::shown::webhook(hook, true)))
        .chain(
            receiver
                .email_configs
                .iter()
                .enumerate()
                .map(|(i, mail)| (format!("email/{i}"), super::shown::email(mail, true))),
        );
    for (key, shown) in lines {
        let _ = writeln!(out, "    {key}: {shown}");
    }
}

/// `4MiB`, `512KiB`, or `1000 bytes`: the largest binary unit that divides the size exactly.
fn format_size(bytes: usize) -> String {
    match bytes {
        0 => "0 bytes".to_owned(),
        b if b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Each time interval's name, then one line per entry.
fn time_intervals(out: &mut String, intervals: &[TimeInterval]) {
    if intervals.is_empty() {
        out.push_str("time intervals: none\n");
        return;
    }
    let _ = writeln!(out, "time intervals ({}):", intervals.len());
    for interval in intervals {
        if interval.periods().is_empty() {
            let _ = writeln!(out, "  {}: never (no entries)", interval.name());
            continue;
        }
        let _ = writeln!(out, "  {}:", interval.name());
        for period in interval.periods() {
            let _ = writeln!(out, "    - {period}");
        }
    }
}

/// One line per inhibit rule: `{source} inhibits {target} when equal [labels]`.
fn inhibit_rules(out: &mut String, rules: &[InhibitRule]) {
    if rules.is_empty() {
        out.push_str("inhibit rules: none\n");
        return;
    }
    let _ = writeln!(out, "inhibit rules ({}):", rules.len());
    for rule in rules {
        let _ = writeln!(out, "  - {rule}");
    }
}

/// One line per route: what it matches, then receiver, group_by and timers; children indented below.
fn route_outline(out: &mut String, route: &Route, depth: usize) {
    let indent = "  ".repeat(depth);
    let mut conditions: Vec<String> = route.matchers.clone();
    conditions.extend(
        route
            .match_equal
            .iter()
            .map(|(label, value)| format!("{label}={value:?}")),
    );
    conditions.extend(
        route
            .match_re
            .iter()
            .map(|(label, regex)| format!("{label}=~{regex:?}")),
    );
    let matches = if depth == 1 {
        "root".to_owned()
    } else if conditions.is_empty() {
        "all".to_owned()
    } else {
        format!("{{{}}}", conditions.join(", "))
    };
    let group_by = match &route.group_by {
        GroupBy::All => "...".to_owned(),
        GroupBy::Labels(labels) => labels.join(", "),
    };
    let _ = write!(
        out,
        "{indent}- {matches} -> receiver {}, group_by [{group_by}], wait {}, interval {}, repeat {}",
        route.receiver,
        format_duration(route.group_wait),
        format_duration(route.group_interval),
        format_duration(route.repeat_interval)
    );
    if route.continue_matching {
        out.push_str(", continue");
    }
    if !route.mute_time_intervals.is_empty() {
        let _ = write!(
            out,
            ", muted during [{}]",
            route.mute_time_intervals.join(", ")
        );
    }
    if !route.active_time_intervals.is_empty() {
        let _ = write!(
            out,
            ", active during [{}]",
            route.active_time_intervals.join(", ")
        );
    }
    out.push('\n');
    for child in &route.routes {
        route_outline(out, child, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;

    #[test]
    fn summarises_the_default() {
        let loaded = load_str("", "empty.yaml").unwrap();
        let text = summary(&loaded);
        assert!(text.contains("config: empty.yaml"), "{text}");
        assert!(text.contains("listen: 127.0.0.1:9095"), "{text}");
        assert!(text.contains("max body 4MiB"), "{text}");
        assert!(text.contains("storage: sqlite data/herald.db"), "{text}");
        assert!(
            text.contains("- root -> receiver log, group_by [], wait 30s, interval 5m, repeat 4h"),
            "{text}"
        );
        assert!(text.contains("  log: 1 integration (log: 1)"), "{text}");
        assert!(text.contains("time intervals: none"), "{text}");
        assert!(text.contains("inhibit rules: none"), "{text}");
        assert!(text.contains("warnings: none"), "{text}");
    }

    #[test]
    fn outlines_the_route_tree_and_lists_warnings() {
        let yaml = r#"
route:
  receiver: log
  group_by: [alertname]
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_wait: 10s
      continue: true
      routes:
        - match: {team: db}
          repeat_interval: 1m
receivers:
  - name: log
    log_configs: [{}]
  - name: pager
"#;
        let loaded = load_str(yaml, "tree.yaml").unwrap();
        let text = summary(&loaded);
        assert!(
            text.contains("  - root -> receiver log, group_by [alertname], wait 30s"),
            "{text}"
        );
        assert!(
            text.contains(
                "    - {severity=\"critical\"} -> receiver pager, group_by [alertname], wait 10s, interval 5m, repeat 4h, continue"
            ),
            "{text}"
        );
        assert!(text.contains("      - {team=\"db\"} -> receiver pager, group_by [alertname], wait 10s, interval 5m, repeat 1m"), "{text}");
        assert!(text.contains("  pager: 0 integrations"), "{text}");
        assert!(text.contains("warnings (1):"), "{text}");
    }

    #[test]
    fn lists_time_intervals_and_where_routes_use_them() {
        let yaml = r#"
time_intervals:
  - name: business_hours
    time_intervals:
      - times: [{start_time: "09:00", end_time: "17:00"}]
        weekdays: ["monday:friday"]
        location: Europe/Berlin
      - {}
mute_time_intervals:
  - name: never
route:
  routes:
    - matchers: ['team="db"']
      mute_time_intervals: [never]
      active_time_intervals: [business_hours]
"#;
        let loaded = load_str(yaml, "intervals.yaml").unwrap();
        let text = summary(&loaded);
        assert!(
            text.contains(
                "time intervals (2):\n  business_hours:\n    - times [09:00-17:00], weekdays [monday:friday], \
                 location Europe/Berlin\n    - always\n  never: never (no entries)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(", muted during [never], active during [business_hours]"),
            "{text}"
        );
        assert!(text.contains("warnings (1):"), "{text}");
    }

    #[test]
    fn lists_inhibit_rules() {
        let yaml = r#"
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity=~"warning|info"']
    equal: [alertname, cluster]
  - source_match: {alertname: NodeDown}
"#;
        let loaded = load_str(yaml, "inhibit.yaml").unwrap();
        let text = summary(&loaded);
        assert!(
            text.contains(
                "inhibit rules (2):\n  - {severity=\"critical\"} inhibits {severity=~\"warning|info\"} when equal \
                 [alertname, cluster]\n  - {alertname=\"NodeDown\"} inhibits {}\n"
            ),
            "{text}"
        );
    }

    /// An Alertmanager receiver with `email_configs` and `webhook_configs` with `http_config`, as written for
    /// Alertmanager.
    const ALERTMANAGER_RECEIVER: &str = r#"
route:
  receiver: team
receivers:
  - name: team
    email_configs:
      - to: team@example.com
        from: alertmanager@example.com
        smarthost: smtp.example.com:587
        hello: alertmanager.example.com
        auth_username: alertmanager@example.com
        auth_password: sm7p-s3cret
        auth_identity: alertmanager@example.com
        require_tls: true
        tls_config: {insecure_skip_verify: false}
        headers: {Subject: Alerts for the team}
        send_resolved: true
    webhook_configs:
      - url: https://hooks.example.com/alerts/w3bhook-url-t0ken
        send_resolved: true
        max_alerts: 10
        timeout: 10s
        http_config:
          authorization: {type: Bearer, credentials: w3bhook-cred}
          tls_config: {min_version: TLS12}
          proxy_url: http://user:pr0xy-pass@proxy.example.com:3128
          follow_redirects: true
          enable_http2: true
          http_headers: {X-Source: {values: [alertmanager], secrets: [h3ader-s3cret]}}
      - url: https://hooks.example.com/oauth
        http_config:
          oauth2:
            client_id: alertmanager
            client_secret: cl1ent-s3cret
            token_url: https://auth.example.com/oauth2/token
            scopes: [alerts]
"#;

    #[test]
    fn an_alertmanager_receiver_loads_and_is_shown_without_its_secrets() {
        let loaded = load_str(ALERTMANAGER_RECEIVER, "am.yaml").unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let text = summary(&loaded);
        assert!(
            text.contains("  team: 3 integrations (webhook: 2, email: 1)"),
            "{text}"
        );
        assert!(text.contains("    webhook/0: {\"http_config\":{"), "{text}");
        assert!(
            text.contains("\"url\":\"https://hooks.example.com/<secret>\""),
            "{text}"
        );
        assert!(
            text.contains("\"authorization\":{\"credentials\":\"<secret>\",\"type\":\"Bearer\"}"),
            "{text}"
        );
        assert!(
            text.contains("\"proxy_url\":\"http://user:%3Csecret%3E@proxy.example.com:3128/\""),
            "{text}"
        );
        assert!(
            text.contains(
                "\"X-Source\":{\"secrets\":[\"<secret>\"],\"values\":[\"alertmanager\"]}"
            ),
            "{text}"
        );
        assert!(text.contains("    webhook/1: "), "{text}");
        assert!(text.contains("\"client_secret\":\"<secret>\""), "{text}");
        assert!(text.contains("    email/0: {"), "{text}");
        assert!(text.contains("\"auth_password\":\"<secret>\""), "{text}");
        assert!(
            text.contains("\"smarthost\":\"smtp.example.com:587\""),
            "{text}"
        );
        for secret in [
            "sm7p-s3cret",
            "w3bhook",
            "pr0xy-pass",
            "h3ader-s3cret",
            "cl1ent-s3cret",
        ] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        let shown = serde_json::to_string(&super::super::shown::receiver(
            &loaded.settings.receivers[0],
        ))
        .unwrap();
        assert!(shown.contains("\"email_configs\""), "{shown}");
        for secret in [
            "sm7p-s3cret",
            "w3bhook",
            "pr0xy-pass",
            "h3ader-s3cret",
            "cl1ent-s3cret",
        ] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
    }
}
