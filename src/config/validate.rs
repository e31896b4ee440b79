//! Validation: turns raw configuration into `Settings`, checking every value and collecting every problem (not just
//! the first) with its key path; fills in route inheritance the way Alertmanager does.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod chat;
mod email;
mod http;
mod integrations;
mod services;
mod tokens;
mod web;

use std::sync::Arc;

use crate::inhibit::InhibitRule;
use crate::matcher::{MatchType, Matcher, Matchers, parse_matchers};
use crate::template::Templates;

use super::Issue;
use super::duration::{format_duration, parse_duration};
use super::raw::{
    RawConfig, RawIngest, RawInhibitRule, RawPeriod, RawReceiver, RawRoute, RawServer, RawStorage,
    RawTimeInterval, RawTimeRange,
};
use super::secret::{EnvLookup, resolve_secret};
use super::settings::{
    DeliverySettings, GrafanaSignature, GroupBy, IngestSettings, Receiver, Route, ServerSettings,
    Settings, StorageBackend, StorageSettings,
};
use crate::timeinterval::{
    Period, Range, TimeInterval, TimeRange, parse_day_of_month_range, parse_location,
    parse_month_range, parse_time_of_day, parse_weekday_range, parse_year_range,
};

/// Alertmanager's defaults for the root route's timers.
const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 60 * 60);

/// What validation found: the settings if every check passed, and the problems and warnings with key paths.
pub(crate) struct Outcome {
    pub settings: Option<Settings>,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

/// Validates `raw` (whose origin is `origin`), resolving secrets with `env`.
pub(crate) fn validate(raw: &RawConfig, origin: &str, env: EnvLookup<'_>) -> Outcome {
    let mut check = Checker {
        errors: Vec::new(),
        warnings: Vec::new(),
        env,
        templates: Templates::new(),
    };
    check.template_files(raw.templates.as_deref().unwrap_or_default());
    let server = check.server(&raw.server);
    let storage = check.storage(&raw.storage);
    let ingest = check.ingest(&raw.ingest);
    let delivery = check.delivery(&raw.delivery);
    // Receivers are checked even when `delivery` is not valid, against fallback defaults, so every problem shows.
    let defaults = delivery
        .clone()
        .unwrap_or_else(integrations::fallback_delivery);
    let receivers = check.receivers(raw.receivers.as_deref().unwrap_or_default(), &defaults);
    let defined: HashSet<&str> = receivers
        .iter()
        .map(|receiver| receiver.name.as_str())
        .collect();
    let time_intervals = check.time_intervals(raw);
    let route = check.route(&raw.route, "route", None, &defined);
    let interval_names: HashSet<&str> = time_intervals.iter().map(TimeInterval::name).collect();
    check.time_interval_refs(&route, "route", &interval_names);
    let inhibit_rules = check.inhibit_rules(raw.inhibit_rules.as_deref().unwrap_or_default());
    let settings = match (server, storage, ingest, delivery) {
        (Some(server), Some(storage), Some(ingest), Some(delivery)) if check.errors.is_empty() => {
            Some(Settings {
                origin: origin.to_owned(),
                server,
                storage,
                ingest,
                route,
                receivers,
                time_intervals,
                inhibit_rules,
                delivery,
                templates: Arc::new(check.templates.clone()),
            })
        }
        _ => None,
    };
    Outcome {
        settings,
        errors: check.errors,
        warnings: check.warnings,
    }
}

struct Checker<'a> {
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    env: EnvLookup<'a>,
    /// Every template seen so far, compiled.
    templates: Templates,
}

impl Checker<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Issue::new(path, message));
    }

    /// Records an error for a value that must be set (only possible if the defaults were overridden badly).
    fn required<'v>(&mut self, path: &str, value: Option<&'v str>) -> Option<&'v str> {
        if value.is_none() {
            self.error(path, "must be set");
        }
        value
    }

    /// Runs `parse` on a required value; records its error under `path`.
    fn parse<T>(
        &mut self,
        path: &str,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.required(path, value)?;
        parse(value)
            .map_err(|message| self.error(path, message))
            .ok()
    }

    fn duration(&mut self, path: &str, value: Option<&str>) -> Option<Duration> {
        self.parse(path, value, parse_duration)
    }

    fn positive_duration(&mut self, path: &str, value: Option<&str>) -> Option<Duration> {
        self.parse(path, value, |value| {
            let duration = parse_duration(value)?;
            if duration.is_zero() {
                return Err("must be greater than 0".to_owned());
            }
            Ok(duration)
        })
    }

    fn count(&mut self, path: &str, value: Option<&str>) -> Option<usize> {
        self.parse(path, value, |value| match value.parse::<usize>() {
            Ok(0) => Err("must be greater than 0".to_owned()),
            Ok(count) => Ok(count),
            Err(_) => Err(format!(
                "invalid number {value:?}: expected a positive integer"
            )),
        })
    }

    fn server(&mut self, raw: &RawServer) -> Option<ServerSettings> {
        let listen = self.parse("server.listen", raw.listen.as_deref(), parse_listen);
        let max_body_bytes = self.parse(
            "server.max_body_bytes",
            raw.max_body_bytes.as_deref(),
            parse_size,
        );
        let external_url = match raw.external_url.as_deref() {
            Some(url) => check_external_url(url)
                .map_err(|message| self.error("server.external_url", message))
                .ok(),
            None => Some(()),
        };
        let shutdown_timeout =
            self.duration("server.shutdown_timeout", raw.shutdown_timeout.as_deref());
        let header_read_timeout = self.positive_duration(
            "server.header_read_timeout",
            raw.header_read_timeout.as_deref(),
        );
        let idle_timeout =
            self.positive_duration("server.idle_timeout", raw.idle_timeout.as_deref());
        let max_connections = match raw.max_connections.as_deref() {
            Some(value) => self.count("server.max_connections", Some(value)).map(Some),
            None => Some(None),
        };
        let admin_tokens = self.tokens(
            "admin_tokens",
            raw.admin_tokens.as_deref(),
            raw.admin_tokens_file.as_deref(),
        );
        let ingest_tokens = self.tokens(
            "ingest_tokens",
            raw.ingest_tokens.as_deref(),
            raw.ingest_tokens_file.as_deref(),
        );
        let read_tokens = self.tokens(
            "read_tokens",
            raw.read_tokens.as_deref(),
            raw.read_tokens_file.as_deref(),
        );
        let web = match raw.web_config_file.as_deref() {
            Some(file) => Some(Arc::new(self.web_config(file)?)),
            None => None,
        };
        Some(ServerSettings {
            admin_tokens,
            ingest_tokens,
            read_tokens,
            web,
            listen: listen?,
            max_body_bytes: max_body_bytes?,
            external_url: external_url.and(raw.external_url.clone()),
            shutdown_timeout: shutdown_timeout?,
            header_read_timeout: header_read_timeout?,
            idle_timeout: idle_timeout?,
            max_connections: max_connections?,
        })
    }

    fn storage(&mut self, raw: &RawStorage) -> Option<StorageSettings> {
        let backend = match resolve_secret(
            raw.url.as_deref(),
            raw.url_file.as_deref(),
            "storage.url",
            self.env,
        ) {
            Ok(Some(url)) => {
                let path = if raw.url.is_some() {
                    "storage.url"
                } else {
                    "storage.url_file"
                };
                parse_storage_url(url.expose())
                    .map_err(|message| self.error(path, message))
                    .ok()
            }
            Ok(None) => {
                self.error("storage.url", "must be set (or storage.url_file)");
                None
            }
            Err(issue) => {
                self.errors.push(issue);
                None
            }
        };
        let busy_timeout = self.duration("storage.busy_timeout", raw.busy_timeout.as_deref());
        let resolved_retention = self.duration(
            "storage.resolved_retention",
            raw.resolved_retention.as_deref(),
        );
        Some(StorageSettings {
            backend: backend?,
            busy_timeout: busy_timeout?,
            resolved_retention: resolved_retention?,
        })
    }

    fn ingest(&mut self, raw: &RawIngest) -> Option<IngestSettings> {
        let secret = self.secret_pair(
            "ingest.grafana_hmac_secret",
            raw.grafana_hmac_secret.as_deref(),
            raw.grafana_hmac_secret_file.as_deref(),
        );
        let timestamp_header = raw
            .grafana_timestamp_header
            .clone()
            .filter(|header| !header.trim().is_empty());
        if let Some(header) = &timestamp_header
            && axum::http::HeaderName::try_from(header.as_str()).is_err()
        {
            self.error(
                "ingest.grafana_timestamp_header",
                format!("{header:?} is not a valid HTTP header name"),
            );
        }
        if timestamp_header.is_some() && secret.is_none() {
            self.error(
                "ingest.grafana_timestamp_header",
                "needs ingest.grafana_hmac_secret",
            );
        }
        if secret
            .as_ref()
            .is_some_and(|secret| secret.expose().is_empty())
        {
            self.error("ingest.grafana_hmac_secret", "must not be empty");
        }
        let grafana_signature = secret.map(|secret| GrafanaSignature {
            secret,
            timestamp_header,
        });
        let resolve_timeout =
            self.positive_duration("ingest.resolve_timeout", raw.resolve_timeout.as_deref());
        let max_labels_per_alert = self.count(
            "ingest.max_labels_per_alert",
            raw.max_labels_per_alert.as_deref(),
        );
        let max_alerts_per_request = self.count(
            "ingest.max_alerts_per_request",
            raw.max_alerts_per_request.as_deref(),
        );
        Some(IngestSettings {
            resolve_timeout: resolve_timeout?,
            max_labels_per_alert: max_labels_per_alert?,
            max_alerts_per_request: max_alerts_per_request?,
            grafana_signature,
        })
    }

    fn receivers(&mut self, raw: &[RawReceiver], delivery: &DeliverySettings) -> Vec<Receiver> {
        let mut seen = HashSet::new();
        let mut receivers = Vec::with_capacity(raw.len());
        for (i, receiver) in raw.iter().enumerate() {
            let path = format!("receivers[{i}].name");
            let name = receiver.name.clone().unwrap_or_default();
            if name.is_empty() {
                self.error(path, "receiver name must be set and not empty");
            } else if !seen.insert(name.clone()) {
                self.error(path, format!("duplicate receiver name {name:?}"));
            }
            let log_configs = receiver
                .log_configs
                .iter()
                .flatten()
                .enumerate()
                .map(|(j, log)| {
                    self.log_config(&format!("receivers[{i}].log_configs[{j}]"), log, delivery)
                })
                .collect();
            let webhook_configs = receiver
                .webhook_configs
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, webhook)| {
                    self.webhook_config(
                        &format!("receivers[{i}].webhook_configs[{j}]"),
                        webhook,
                        delivery,
                    )
                })
                .collect();
            let max_alerts = match receiver.max_alerts.as_deref() {
                None => None,
                Some(value) => self.parse(&format!("receivers[{i}].max_alerts"), Some(value), |value| {
                    value.parse::<usize>().map_err(|_| {
                        format!("invalid number {value:?}: expected a non-negative integer (0: no limit)")
                    })
                }),
            }
            .filter(|limit| *limit > 0);
            let slack_configs = receiver
                .slack_configs
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, slack)| {
                    self.slack_config(
                        &format!("receivers[{i}].slack_configs[{j}]"),
                        slack,
                        delivery,
                    )
                })
                .collect();
            let jira_configs = receiver
                .jira_configs
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, jira)| {
                    self.jira_config(&format!("receivers[{i}].jira_configs[{j}]"), jira, delivery)
                })
                .collect();
            let pagerduty_configs = receiver
                .pagerduty_configs
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, pagerduty)| {
                    self.pagerduty_config(
                        &format!("receivers[{i}].pagerduty_configs[{j}]"),
                        pagerduty,
                        delivery,
                    )
                })
                .collect();
            let wecom_configs = receiver
                .wecom_configs
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, wecom)| {
                    self.wecom_config(
                        &format!("receivers[{i}].wecom_configs[{j}]"),
                        wecom,
                        delivery,
                    )
                })
                .collect();
            let msteamsv2_configs = receiver
                .msteamsv2_configs
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, teams)| {
                    self.msteamsv2_config(
                        &format!("receivers[{i}].msteamsv2_configs[{j}]"),
                        teams,
                        delivery,
                    )
                })
                .collect();
            let email_configs = receiver
                .email_configs
                .iter()
                .flatten()
                .enumerate()
                .filter_map(|(j, email)| {
                    self.email_config(
                        &format!("receivers[{i}].email_configs[{j}]"),
                        email,
                        delivery,
                    )
                })
                .collect();
            receivers.push(Receiver {
                name,
                max_alerts,
                log_configs,
                webhook_configs,
                slack_configs,
                jira_configs,
                pagerduty_configs,
                wecom_configs,
                msteamsv2_configs,
                email_configs,
            });
        }
        receivers
    }

    /// Validates one route node at `path` and its children; unset values are inherited from `parent` (or are
    /// Alertmanager's defaults at the root). Returns a usable tree even when it records errors.
    fn route(
        &mut self,
        raw: &RawRoute,
        path: &str,
        parent: Option<&Route>,
        defined: &HashSet<&str>,
    ) -> Route {
        let receiver = match (
            raw.receiver.as_deref().filter(|name| !name.is_empty()),
            parent,
        ) {
            (Some(name), _) => {
                if !defined.contains(name) {
                    self.error(
                        format!("{path}.receiver"),
                        format!("receiver {name:?} is not defined"),
                    );
                }
                name.to_owned()
            }
            (None, Some(parent)) => parent.receiver.clone(),
            (None, None) => {
                self.error(
                    format!("{path}.receiver"),
                    "the root route must have a receiver",
                );
                String::new()
            }
        };
        let group_by = match &raw.group_by {
            Some(labels) => self.group_by(&format!("{path}.group_by"), labels),
            None => parent.map_or(GroupBy::Labels(Vec::new()), |parent| {
                parent.group_by.clone()
            }),
        };
        let group_wait = self.timer(path, "group_wait", raw.group_wait.as_deref(), false);
        let group_interval =
            self.timer(path, "group_interval", raw.group_interval.as_deref(), true);
        let repeat_interval = self.timer(
            path,
            "repeat_interval",
            raw.repeat_interval.as_deref(),
            true,
        );
        let mut route = Route {
            receiver,
            group_by,
            group_wait: group_wait
                .or(parent.map(|p| p.group_wait))
                .unwrap_or(DEFAULT_GROUP_WAIT),
            group_interval: group_interval
                .or(parent.map(|p| p.group_interval))
                .unwrap_or(DEFAULT_GROUP_INTERVAL),
            repeat_interval: repeat_interval
                .or(parent.map(|p| p.repeat_interval))
                .unwrap_or(DEFAULT_REPEAT_INTERVAL),
            matchers: raw.matchers.clone().unwrap_or_default(),
            match_equal: raw.match_equal.clone().unwrap_or_default(),
            match_re: raw.match_re.clone().unwrap_or_default(),
            continue_matching: raw.continue_matching.unwrap_or(false),
            mute_time_intervals: raw.mute_time_intervals.clone().unwrap_or_default(),
            active_time_intervals: raw.active_time_intervals.clone().unwrap_or_default(),
            routes: Vec::new(),
        };
        self.route_matchers(path, &route);
        if parent.is_none() {
            self.root_rules(path, &route);
        }
        let sets_timers =
            parent.is_none() || raw.group_interval.is_some() || raw.repeat_interval.is_some();
        if sets_timers && route.repeat_interval < route.group_interval {
            self.warnings.push(Issue::new(
                format!("{path}.repeat_interval"),
                format!(
                    "repeat_interval {} is shorter than group_interval {}: notifications repeat only at the next \
                     group_interval",
                    format_duration(route.repeat_interval),
                    format_duration(route.group_interval)
                ),
            ));
        }
        for (i, child) in raw.routes.iter().flatten().enumerate() {
            let child = self.route(child, &format!("{path}.routes[{i}]"), Some(&route), defined);
            route.routes.push(child);
        }
        route
    }

    /// A timer set at this node, or `None` to inherit; `positive` timers must not be 0 (Alertmanager's rule).
    fn timer(
        &mut self,
        path: &str,
        key: &str,
        value: Option<&str>,
        positive: bool,
    ) -> Option<Duration> {
        let value = value?;
        let path = format!("{path}.{key}");
        if positive {
            self.positive_duration(&path, Some(value))
        } else {
            self.duration(&path, Some(value))
        }
    }

    fn group_by(&mut self, path: &str, labels: &[String]) -> GroupBy {
        if labels.iter().any(|label| label == "...") {
            if labels.len() > 1 {
                self.error(path, "\"...\" (group by all labels) must be the only entry");
            }
            return GroupBy::All;
        }
        let mut seen = HashSet::new();
        for (i, label) in labels.iter().enumerate() {
            if !super::is_identifier(label) {
                self.error(
                    format!("{path}[{i}]"),
                    format!("invalid label name {label:?}"),
                );
            } else if !seen.insert(label) {
                self.error(
                    format!("{path}[{i}]"),
                    format!("duplicate label name {label:?}"),
                );
            }
        }
        GroupBy::Labels(labels.to_vec())
    }

    /// Parses every `matchers` line and compiles `match` and `match_re` as Alertmanager does; the route tree builds
    /// its matchers from the same strings later.
    fn route_matchers(&mut self, path: &str, route: &Route) {
        for (i, line) in route.matchers.iter().enumerate() {
            let path = format!("{path}.matchers[{i}]");
            if line.trim().is_empty() {
                self.error(path, "matcher must not be empty");
            } else if let Err(error) = parse_matchers(line) {
                self.error(path, format!("invalid matcher {line:?}: {error}"));
            }
        }
        for (key, kind, map) in [
            ("match", MatchType::Equal, &route.match_equal),
            ("match_re", MatchType::Regex, &route.match_re),
        ] {
            for (label, value) in map {
                if let Err(error) = Matcher::new(label.as_str(), kind, value.as_str()) {
                    let path = if label.is_empty() {
                        format!("{path}.{key}")
                    } else {
                        format!("{path}.{key}.{label}")
                    };
                    self.error(path, error.to_string());
                }
            }
        }
    }

    /// Alertmanager's rules for the root route: it matches every alert, so it takes no matchers, no `continue` and
    /// no time intervals.
    fn root_rules(&mut self, path: &str, route: &Route) {
        let forbidden = [
            ("matchers", !route.matchers.is_empty()),
            ("match", !route.match_equal.is_empty()),
            ("match_re", !route.match_re.is_empty()),
            ("continue", route.continue_matching),
            ("mute_time_intervals", !route.mute_time_intervals.is_empty()),
            (
                "active_time_intervals",
                !route.active_time_intervals.is_empty(),
            ),
        ];
        for (key, set) in forbidden {
            if set {
                self.error(
                    format!("{path}.{key}"),
                    format!("the root route must not have {key} (it matches every alert)"),
                );
            }
        }
    }

    /// `time_intervals` and the deprecated `mute_time_intervals`: one name space, each name defined once.
    fn time_intervals(&mut self, raw: &RawConfig) -> Vec<TimeInterval> {
        let mut seen = HashSet::new();
        let mut intervals = Vec::new();
        let lists = [
            ("time_intervals", &raw.time_intervals),
            ("mute_time_intervals", &raw.mute_time_intervals),
        ];
        for (key, list) in lists {
            for (i, interval) in list.iter().flatten().enumerate() {
                let path = format!("{key}[{i}]");
                intervals.push(self.time_interval(&path, interval, &mut seen));
            }
        }
        intervals
    }

    fn time_interval(
        &mut self,
        path: &str,
        raw: &RawTimeInterval,
        seen: &mut HashSet<String>,
    ) -> TimeInterval {
        let name = raw.name.clone().unwrap_or_default();
        if name.is_empty() {
            self.error(
                format!("{path}.name"),
                "time interval name must be set and not empty",
            );
        } else if !seen.insert(name.clone()) {
            self.error(
                format!("{path}.name"),
                format!("duplicate time interval name {name:?}"),
            );
        }
        let periods: Vec<Period> = raw
            .time_intervals
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, period)| self.period(&format!("{path}.time_intervals[{i}]"), period))
            .collect();
        if periods.is_empty() {
            self.warnings.push(Issue::new(
                format!("{path}.time_intervals"),
                format!(
                    "time interval {name:?} has no entries, so it never applies: routes muted during it always \
                     notify and routes active during it never do"
                ),
            ));
        }
        TimeInterval::new(name, periods)
    }

    /// One entry of a time interval's `time_intervals`, with every bad value recorded under its path.
    fn period(&mut self, path: &str, raw: &RawPeriod) -> Period {
        let times = raw.times.as_ref().map(|times| {
            times
                .iter()
                .enumerate()
                .filter_map(|(i, range)| self.time_range(&format!("{path}.times[{i}]"), range))
                .collect()
        });
        let location = match raw.location.as_deref() {
            Some(location) => parse_location(location)
                .map_err(|message| self.error(format!("{path}.location"), message))
                .unwrap_or_default(),
            None => Default::default(),
        };
        Period {
            times,
            weekdays: self.ranges(path, "weekdays", &raw.weekdays, parse_weekday_range),
            days_of_month: self.ranges(
                path,
                "days_of_month",
                &raw.days_of_month,
                parse_day_of_month_range,
            ),
            months: self.ranges(path, "months", &raw.months, parse_month_range),
            years: self.ranges(path, "years", &raw.years, parse_year_range),
            location,
        }
    }

    fn time_range(&mut self, path: &str, raw: &RawTimeRange) -> Option<TimeRange> {
        let start = self.parse(
            &format!("{path}.start_time"),
            raw.start_time.as_deref(),
            parse_time_of_day,
        );
        let end = self.parse(
            &format!("{path}.end_time"),
            raw.end_time.as_deref(),
            parse_time_of_day,
        );
        TimeRange::new(start?, end?)
            .map_err(|message| self.error(path, message))
            .ok()
    }

    /// A list of ranges at `{path}.{key}`, each parsed by `parse`; `None` when the key is not set.
    fn ranges(
        &mut self,
        path: &str,
        key: &str,
        values: &Option<Vec<String>>,
        parse: fn(&str) -> Result<Range, String>,
    ) -> Option<Vec<Range>> {
        let values = values.as_ref()?;
        let ranges = values
            .iter()
            .enumerate()
            .filter_map(|(i, value)| {
                parse(value)
                    .map_err(|message| self.error(format!("{path}.{key}[{i}]"), message))
                    .ok()
            })
            .collect();
        Some(ranges)
    }

    /// Every `mute_time_intervals` and `active_time_intervals` name in the routes below `parent` must name a
    /// defined time interval. (The root takes none: `root_rules` reports them there.)
    fn time_interval_refs(&mut self, parent: &Route, path: &str, defined: &HashSet<&str>) {
        for (i, route) in parent.routes.iter().enumerate() {
            let path = format!("{path}.routes[{i}]");
            let lists = [
                ("mute_time_intervals", &route.mute_time_intervals),
                ("active_time_intervals", &route.active_time_intervals),
            ];
            for (key, names) in lists {
                for (j, name) in names.iter().enumerate() {
                    if !defined.contains(name.as_str()) {
                        self.error(
                            format!("{path}.{key}[{j}]"),
                            format!("time interval {name:?} is not defined"),
                        );
                    }
                }
            }
            self.time_interval_refs(route, &path, defined);
        }
    }

    /// `inhibit_rules`, each at `inhibit_rules[i]`: matchers compiled, `equal` label names checked.
    fn inhibit_rules(&mut self, raw: &[RawInhibitRule]) -> Vec<InhibitRule> {
        raw.iter()
            .enumerate()
            .map(|(i, rule)| self.inhibit_rule(&format!("inhibit_rules[{i}]"), rule))
            .collect()
    }

    /// One inhibit rule. As in Alertmanager, a side with no matchers at all matches every alert, and `equal` is a
    /// set (a name listed twice counts once).
    fn inhibit_rule(&mut self, path: &str, raw: &RawInhibitRule) -> InhibitRule {
        let source = self.inhibit_matchers(
            path,
            "source",
            raw.source_matchers.as_deref(),
            raw.source_match.as_ref(),
            raw.source_match_re.as_ref(),
        );
        let target = self.inhibit_matchers(
            path,
            "target",
            raw.target_matchers.as_deref(),
            raw.target_match.as_ref(),
            raw.target_match_re.as_ref(),
        );
        let mut equal: Vec<String> = Vec::new();
        for (i, name) in raw.equal.iter().flatten().enumerate() {
            if name.is_empty() {
                self.error(format!("{path}.equal[{i}]"), "label name must not be empty");
            } else if !equal.contains(name) {
                equal.push(name.clone());
            }
        }
        InhibitRule {
            source,
            target,
            equal,
        }
    }

    /// One side of an inhibit rule: the deprecated `{side}_match` and `{side}_match_re` maps and every
    /// `{side}_matchers` line, all of which must match, sorted in Alertmanager's order. Bad entries are recorded and
    /// left out.
    fn inhibit_matchers(
        &mut self,
        path: &str,
        side: &str,
        lines: Option<&[String]>,
        match_equal: Option<&BTreeMap<String, String>>,
        match_re: Option<&BTreeMap<String, String>>,
    ) -> Matchers {
        let mut matchers = Vec::new();
        let maps = [
            ("match", MatchType::Equal, match_equal),
            ("match_re", MatchType::Regex, match_re),
        ];
        for (key, kind, map) in maps {
            for (label, value) in map.into_iter().flatten() {
                match Matcher::new(label.as_str(), kind, value.as_str()) {
                    Ok(matcher) => matchers.push(matcher),
                    Err(error) => {
                        let path = if label.is_empty() {
                            format!("{path}.{side}_{key}")
                        } else {
                            format!("{path}.{side}_{key}.{label}")
                        };
                        self.error(path, error.to_string());
                    }
                }
            }
        }
        for (i, line) in lines.unwrap_or_default().iter().enumerate() {
            let path = format!("{path}.{side}_matchers[{i}]");
            if line.trim().is_empty() {
                self.error(path, "matcher must not be empty");
                continue;
            }
            match parse_matchers(line) {
                Ok(parsed) => matchers.extend(parsed),
                Err(error) => self.error(path, format!("invalid matcher {line:?}: {error}")),
            }
        }
        let mut matchers = Matchers(matchers);
        matchers.sort();
        matchers
    }
}

/// `IP:PORT`, or `:PORT` for every IPv4 address.
fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let address = match value.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => value.to_owned(),
    };
    address.parse().map_err(|_| {
        format!("invalid listen address {value:?}: expected host:port such as 127.0.0.1:9095")
    })
}

/// Bytes as an integer, or a size with a unit: `B`, `KB`/`MB`/`GB` (powers of 1000), `KiB`/`MiB`/`GiB` (of 1024).
fn parse_size(value: &str) -> Result<usize, String> {
    let invalid = || {
        format!(
            "invalid size {value:?}: expected a number of bytes or a size such as 4MiB, 512KiB, 1MB"
        )
    };
    let digits = value.len() - value.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let number: u64 = value[..digits].parse().map_err(|_| invalid())?;
    let unit: u64 = match value[digits..].trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(invalid()),
    };
    let bytes = number
        .checked_mul(unit)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(invalid)?;
    if bytes == 0 {
        return Err("must be greater than 0".to_owned());
    }
    Ok(bytes)
}

/// An absolute `http://` or `https://` URL with a host.
fn check_external_url(value: &str) -> Result<(), String> {
    integrations::check_http_url(value).map_err(|_| {
        format!(
            "invalid external URL {value:?}: expected an absolute http:// or https:// URL such as https://herald.example.com"
        )
    })
}

/// The storage backend named by a storage URL. Errors never repeat the URL: it may carry a password.
fn parse_storage_url(url: &str) -> Result<StorageBackend, String> {
    const EXPECTED: &str = "expected sqlite://PATH such as sqlite://data/herald.db";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("invalid storage URL: {EXPECTED}"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" if rest.is_empty() => Err(format!("the SQLite URL has no path: {EXPECTED}")),
        "sqlite" => Ok(StorageBackend::Sqlite {
            path: PathBuf::from(rest),
        }),
        "postgres" | "postgresql" => {
            Err("PostgreSQL backend is not supported yet: use sqlite://PATH".to_owned())
        }
        scheme
            if scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Err(format!(
                "unsupported storage URL scheme {scheme:?}: {EXPECTED}"
            ))
        }
        _ => Err(format!("invalid storage URL: {EXPECTED}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_errors;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:9095"),
            Ok("127.0.0.1:9095".parse().unwrap())
        );
        assert_eq!(parse_listen(":9095"), Ok("0.0.0.0:9095".parse().unwrap()));
        assert_eq!(
            parse_listen("[::1]:9095"),
            Ok("[::1]:9095".parse().unwrap())
        );
        assert_eq!(
            parse_listen("abc"),
            Err(
                "invalid listen address \"abc\": expected host:port such as 127.0.0.1:9095"
                    .to_owned()
            )
        );
        for bad in ["127.0.0.1", ":", ":99999", "localhost:9095", ""] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4194304"), Ok(4_194_304));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2 kb"), Ok(2000));
        assert_eq!(parse_size("0"), Err("must be greater than 0".to_owned()));
        for bad in ["", "MiB", "4XB", "-1", "1.5MiB", "99999999999999999999"] {
            assert!(
                parse_size(bad).unwrap_err().starts_with("invalid size"),
                "{bad}"
            );
        }
    }

    #[test]
    fn external_urls() {
        assert!(check_external_url("https://herald.example.com").is_ok());
        assert!(check_external_url("http://10.0.0.1:9095/herald/").is_ok());
        for bad in [
            "herald.example.com",
            "https://",
            "ftp://x",
            "/herald",
            "https://a b",
        ] {
            assert!(check_external_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn storage_urls() {
        assert_eq!(
            parse_storage_url("sqlite://data/herald.db"),
            Ok(StorageBackend::Sqlite {
                path: PathBuf::from("data/herald.db")
            })
        );
        assert_eq!(
            parse_storage_url("sqlite:///var/lib/herald/herald.db"),
            Ok(StorageBackend::Sqlite {
                path: PathBuf::from("/var/lib/herald/herald.db")
            })
        );
        for url in [
            "postgres://herald:hunter2@db/herald",
            "postgresql://herald:hunter2@db/herald",
        ] {
            let error = parse_storage_url(url).unwrap_err();
            assert!(
                error.contains("PostgreSQL backend is not supported yet"),
                "{error}"
            );
            assert!(!error.contains("hunter2"), "{error}");
        }
        assert!(
            parse_storage_url("mysql://u:hunter2@db")
                .unwrap_err()
                .contains("\"mysql\"")
        );
        assert!(
            !parse_storage_url("u:hunter2@db")
                .unwrap_err()
                .contains("hunter2")
        );
        assert!(parse_storage_url("sqlite://").is_err());
    }

    #[test]
    fn route_matchers_are_parsed_and_regexes_compiled() {
        let yaml = r#"
route:
  receiver: log
  routes:
    - matchers: ['team="db"', 'sev=~"("']
    - matchers: ['{severity=~"warning|critical", "service.name"="api",}', 'instance=~".+:9100"']
      match: {team: db, "service.name": api}
      match_re: {service: "pg.*", env: '\d+'}
    - matchers: ['foo bar', '  ']
      match_re: {team: "db|(", env: ".*"}
"#;
        assert_eq!(
            load_errors(yaml),
            [
                "herald.yaml: route.routes[0].matchers[1]: invalid matcher \"sev=~\\\"(\\\"\": invalid regex \"(\": \
                 unclosed group at position 6",
                "herald.yaml: route.routes[2].matchers[0]: invalid matcher \"foo bar\": expected an operator (=, !=, \
                 =~, !~) after \"foo\", found \"bar\" at position 4",
                "herald.yaml: route.routes[2].matchers[1]: matcher must not be empty",
                "herald.yaml: route.routes[2].match_re.team: invalid regex \"db|(\": unclosed group at position 3",
            ]
        );
    }

    #[test]
    fn valid_route_matchers_load_unchanged() {
        let yaml = r#"
route:
  receiver: log
  routes:
    - matchers: ['{severity=~"warning|critical", "service.name"="api"}', 'env=~"\d+"']
      match: {"service.name": api}
      match_re: {service: "pg.*"}
"#;
        let loaded = crate::config::load_str(yaml, "herald.yaml").unwrap();
        let route = &loaded.settings.route.routes[0];
        assert_eq!(
            route.matchers,
            [
                "{severity=~\"warning|critical\", \"service.name\"=\"api\"}",
                "env=~\"\\d+\"",
            ]
        );
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn match_and_match_re_need_label_names() {
        let yaml = "route:\n  routes:\n    - match: {'': x}\n      match_re: {'': '('}\n";
        assert_eq!(
            load_errors(yaml),
            [
                "herald.yaml: route.routes[0].match: label name must not be empty",
                "herald.yaml: route.routes[0].match_re: label name must not be empty",
            ]
        );
    }

    #[test]
    fn inhibit_rules_load_with_compiled_matchers() {
        let yaml = r#"
inhibit_rules:
  - name: critical-mutes-warning
    source_matchers: ['severity="critical"', '{team=~"db|infra", env!="dev"}']
    target_matchers: ['severity=~"warning|info"']
    equal: [alertname, cluster, alertname, "service.name"]
  - source_match: {alertname: NodeDown}
    source_match_re: {instance: '.+:\d+'}
    target_match_re: {alertname: "Node.+"}
    target_matchers: ['severity!="critical"']
  - {}
"#;
        let loaded = crate::config::load_str(yaml, "herald.yaml").unwrap();
        assert!(loaded.warnings.is_empty());
        let rules = &loaded.settings.inhibit_rules;
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0].source.to_string(),
            "{env!=\"dev\",severity=\"critical\",team=~\"db|infra\"}"
        );
        assert_eq!(rules[0].target.to_string(), "{severity=~\"warning|info\"}");
        // `equal` is a set, as in Alertmanager; any non-empty name is allowed.
        assert_eq!(rules[0].equal, ["alertname", "cluster", "service.name"]);
        assert_eq!(
            rules[1].source.to_string(),
            "{alertname=\"NodeDown\",instance=~\".+:\\\\d+\"}"
        );
        assert_eq!(
            rules[1].target.to_string(),
            "{alertname=~\"Node.+\",severity!=\"critical\"}"
        );
        assert!(rules[1].equal.is_empty());
        // A rule without matchers is allowed (Alertmanager's rule: no matchers match every alert).
        assert!(rules[2].source.is_empty() && rules[2].target.is_empty());
    }

    #[test]
    fn inhibit_rule_problems_are_reported_together_with_paths() {
        let yaml = r#"
inhibit_rules:
  - source_matchers: ['severity="critical"', 'foo bar']
    target_matchers: ['sev=~"("', '  ']
    equal: [alertname, '']
    equl: [cluster]
  - source_match_re: {team: "db|(", '': x}
    source_match: {'': y}
    target_match_re: {service: "a**"}
    targetmatchers: []
"#;
        assert_eq!(
            load_errors(yaml),
            [
                "herald.yaml: inhibit_rules[0].equl: unknown key",
                "herald.yaml: inhibit_rules[1].targetmatchers: unknown key",
                "herald.yaml: inhibit_rules[0].source_matchers[1]: invalid matcher \"foo bar\": expected an operator \
                 (=, !=, =~, !~) after \"foo\", found \"bar\" at position 4",
                "herald.yaml: inhibit_rules[0].target_matchers[0]: invalid matcher \"sev=~\\\"(\\\"\": invalid regex \
                 \"(\": unclosed group at position 6",
                "herald.yaml: inhibit_rules[0].target_matchers[1]: matcher must not be empty",
                "herald.yaml: inhibit_rules[0].equal[1]: label name must not be empty",
                "herald.yaml: inhibit_rules[1].source_match: label name must not be empty",
                "herald.yaml: inhibit_rules[1].source_match_re: label name must not be empty",
                "herald.yaml: inhibit_rules[1].source_match_re.team: invalid regex \"db|(\": unclosed group at \
                 position 3",
                "herald.yaml: inhibit_rules[1].target_match_re.service: invalid regex \"a**\": invalid nested \
                 repetition operator at position 2",
            ]
        );
    }

    #[test]
    fn inhibit_rules_must_be_a_list_of_maps() {
        assert_eq!(
            load_errors("inhibit_rules: [5]\n"),
            [
                "herald.yaml: inhibit_rules[0]: invalid type: an integer, expected an inhibit rule (a map with \
                 source_matchers, target_matchers and equal)"
            ]
        );
        assert_eq!(
            load_errors("inhibit_rules:\n  - source_matchers: 'a=\"b\"'\n"),
            [
                "herald.yaml: inhibit_rules[0].source_matchers: invalid type: a string, expected a sequence"
            ]
        );
    }

    #[test]
    fn max_alerts_is_optional_zero_means_no_limit() {
        let yaml = "route: {receiver: a}\nreceivers: [{name: a, max_alerts: 5}, {name: b, max_alerts: 0}, {name: c}]\n";
        let settings = crate::config::load_str(yaml, "m.yaml").unwrap().settings;
        let limits: Vec<_> = settings.receivers.iter().map(|r| r.max_alerts).collect();
        assert_eq!(limits, [Some(5), None, None]);
        let bad = crate::config::load_str("receivers: [{name: log, max_alerts: many}]\n", "m.yaml")
            .unwrap_err();
        assert!(
            bad.to_string()
                .contains("receivers[0].max_alerts: invalid number \"many\""),
            "{bad}"
        );
    }
}
