//! Validation of the paging and chat integrations: `pagerduty_configs` (Events API v2), `wecom_configs` (WeCom group
//! robots) and `msteamsv2_configs` (Teams Workflows webhooks), with each service's default rate limit.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Checker;
use crate::config::Issue;
use crate::config::Secret;
use crate::config::raw::{
    RawMsTeamsV2Config, RawPagerDutyConfig, RawPagerDutyImage, RawPagerDutyLink, RawWeComConfig,
};
use crate::config::settings::{
    DeliverySettings, MsTeamsV2Config, PagerDutyConfig, PagerDutyImage, PagerDutyLink, RateLimit,
    WeComConfig, WeComMessageType,
};
use crate::template::TemplateField;

/// The Events API v2 endpoint when `url` is not set.
pub(crate) const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty takes about 120 events a minute per routing key; one every half second never overruns it.
const PAGERDUTY_RATE: RateLimit = RateLimit {
    limit: 120,
    period: Duration::from_secs(60),
    burst: 1,
};

/// A WeCom robot takes 20 messages a minute; one every three seconds never overruns it.
const WECOM_RATE: RateLimit = RateLimit {
    limit: 20,
    period: Duration::from_secs(60),
    burst: 1,
};

/// How long PagerDuty integration keys are.
const ROUTING_KEY_CHARS: usize = 32;

/// The severities PagerDuty takes.
pub(crate) const PAGERDUTY_SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// The `details` every PagerDuty event carries unless the config replaces them, with their default templates.
const PAGERDUTY_DETAILS: [(&str, &str); 4] = [
    ("firing", "pagerduty.firing"),
    ("resolved", "pagerduty.resolved"),
    ("num_firing", "pagerduty.num_firing"),
    ("num_resolved", "pagerduty.num_resolved"),
];

impl Checker<'_> {
    /// A required secret URL and its `_file` twin at `{path}.{key}`: set, and an absolute http(s) URL. Messages never
    /// repeat the URL.
    fn secret_url(
        &mut self,
        path: &str,
        key: &str,
        value: Option<&str>,
        file: Option<&str>,
    ) -> Option<Secret> {
        let Some(url) = self.secret_pair(&format!("{path}.{key}"), value, file) else {
            // Given but not resolved (an unset variable, an unreadable file): that was reported.
            if value.is_none() && file.is_none() {
                self.error(
                    format!("{path}.{key}"),
                    format!("must be set (or {key}_file)"),
                );
            }
            return None;
        };
        match super::integrations::check_http_url(url.expose()) {
            Ok(()) => Some(url),
            Err(message) => {
                let key = if value.is_some() {
                    key.to_owned()
                } else {
                    format!("{key}_file")
                };
                self.error(format!("{path}.{key}"), message);
                None
            }
        }
    }

    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Issue::new(path, message));
    }

    fn pagerduty_key(&mut self, path: &str, raw: &RawPagerDutyConfig) -> Option<Secret> {
        let legacy = [
            ("service_key", raw.service_key.is_some()),
            ("service_key_file", raw.service_key_file.is_some()),
        ];
        for (key, set) in legacy {
            if set {
                self.error(
                    format!("{path}.{key}"),
                    "the Events API v1 is not supported; use routing_key (an Events API v2 integration key)",
                );
            }
        }
        let key = self.secret_pair(
            &format!("{path}.routing_key"),
            raw.routing_key.as_deref(),
            raw.routing_key_file.as_deref(),
        );
        let which = if raw.routing_key.is_some() {
            "routing_key"
        } else {
            "routing_key_file"
        };
        match key {
            None if legacy.iter().any(|(_, set)| *set) => None,
            // Given but not resolved (an unset variable, an unreadable file): that was reported.
            None if raw.routing_key.is_some() || raw.routing_key_file.is_some() => None,
            None => {
                self.error(
                    format!("{path}.routing_key"),
                    "must be set (or routing_key_file)",
                );
                None
            }
            Some(key) if key.expose().trim().is_empty() => {
                self.error(format!("{path}.{which}"), "must not be empty");
                None
            }
            Some(key) => {
                let chars = key.expose().chars().count();
                if chars != ROUTING_KEY_CHARS {
                    self.warning(
                        format!("{path}.{which}"),
                        format!(
                            "PagerDuty integration keys are {ROUTING_KEY_CHARS} characters; this one has {chars}"
                        ),
                    );
                }
                Some(key)
            }
        }
    }

    /// A templated field that herald fills in when it is not set (`default.empty` renders nothing).
    fn optional_field(&mut self, path: &str, key: &str, source: Option<&str>) -> TemplateField {
        self.template_field(path, key, source, "default.empty")
    }

    fn pagerduty_links(&mut self, path: &str, raw: &[RawPagerDutyLink]) -> Vec<PagerDutyLink> {
        let mut links = Vec::with_capacity(raw.len());
        for (i, link) in raw.iter().enumerate() {
            let key = format!("links[{i}]");
            if link
                .href
                .as_deref()
                .is_none_or(|href| href.trim().is_empty())
            {
                self.error(format!("{path}.{key}.href"), "must be set");
                continue;
            }
            links.push(PagerDutyLink {
                href: self.optional_field(path, &format!("{key}.href"), link.href.as_deref()),
                text: self.optional_field(path, &format!("{key}.text"), link.text.as_deref()),
            });
        }
        links
    }

    fn pagerduty_images(&mut self, path: &str, raw: &[RawPagerDutyImage]) -> Vec<PagerDutyImage> {
        let mut images = Vec::with_capacity(raw.len());
        for (i, image) in raw.iter().enumerate() {
            let key = format!("images[{i}]");
            if image.src.as_deref().is_none_or(|src| src.trim().is_empty()) {
                self.error(format!("{path}.{key}.src"), "must be set");
                continue;
            }
            images.push(PagerDutyImage {
                src: self.optional_field(path, &format!("{key}.src"), image.src.as_deref()),
                href: self.optional_field(path, &format!("{key}.href"), image.href.as_deref()),
                alt: self.optional_field(path, &format!("{key}.alt"), image.alt.as_deref()),
            });
        }
        images
    }

    /// herald's default details, then the configured ones (added, or replacing a default of the same name).
    fn pagerduty_details(
        &mut self,
        path: &str,
        raw: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, TemplateField> {
        let mut details: BTreeMap<String, TemplateField> = PAGERDUTY_DETAILS
            .iter()
            .map(|(name, template)| ((*name).to_owned(), TemplateField::default_only(template)))
            .collect();
        for (name, source) in raw.into_iter().flatten() {
            let field = self.optional_field(path, &format!("details.{name}"), Some(source));
            details.insert(name.clone(), field);
        }
        details
    }

    pub(super) fn pagerduty_config(
        &mut self,
        path: &str,
        raw: &RawPagerDutyConfig,
        defaults: &DeliverySettings,
    ) -> Option<PagerDutyConfig> {
        let routing_key = self.pagerduty_key(path, raw);
        let url = raw
            .url
            .as_deref()
            .map(str::trim)
            .unwrap_or(PAGERDUTY_URL)
            .to_owned();
        let url = match super::integrations::check_http_url(&url) {
            Ok(()) => Some(url),
            Err(message) => {
                self.error(format!("{path}.url"), message);
                None
            }
        };
        if let Some(severity) = raw.severity.as_deref()
            && !severity.contains("{{")
            && !severity.contains("{%")
            && !PAGERDUTY_SEVERITIES.contains(&severity.trim())
            && crate::alert::Severity::parse(severity).is_none()
        {
            self.warning(
                format!("{path}.severity"),
                format!(
                    "{severity:?} is not a PagerDuty severity (critical, error, warning, info); events will be sent \
                     as error"
                ),
            );
        }
        let description = self.template_field(
            path,
            "description",
            raw.description.as_deref(),
            "default.title",
        );
        let severity = self.optional_field(path, "severity", raw.severity.as_deref());
        let source = self.template_field(path, "source", raw.source.as_deref(), "pagerduty.source");
        let class = self.optional_field(path, "class", raw.class.as_deref());
        let component = self.optional_field(path, "component", raw.component.as_deref());
        let group = self.optional_field(path, "group", raw.group.as_deref());
        let client = self.template_field(path, "client", raw.client.as_deref(), "pagerduty.client");
        let client_url = self.template_field(
            path,
            "client_url",
            raw.client_url.as_deref(),
            "pagerduty.client_url",
        );
        let details = self.pagerduty_details(path, raw.details.as_ref());
        let links = self.pagerduty_links(path, raw.links.as_deref().unwrap_or_default());
        let images = self.pagerduty_images(path, raw.images.as_deref().unwrap_or_default());
        let delivery = self.service_options(
            path,
            raw.retry.as_ref(),
            raw.rate_limit.as_ref(),
            raw.timeout.as_deref(),
            defaults,
            Some(PAGERDUTY_RATE),
        );
        Some(PagerDutyConfig {
            routing_key: routing_key?,
            url: url?,
            description,
            severity,
            source,
            class,
            component,
            group,
            client,
            client_url,
            details,
            links,
            images,
            send_resolved: raw.send_resolved.unwrap_or(true),
            delivery,
        })
    }

    pub(super) fn wecom_config(
        &mut self,
        path: &str,
        raw: &RawWeComConfig,
        defaults: &DeliverySettings,
    ) -> Option<WeComConfig> {
        let url = self.secret_url(path, "url", raw.url.as_deref(), raw.url_file.as_deref());
        if let Some(url) = &url
            && !url.expose().contains("key=")
        {
            self.warning(
                format!("{path}.url"),
                "has no key= parameter; a WeCom robot's URL ends in /cgi-bin/webhook/send?key=<the robot's key>",
            );
        }
        let msg_type = match raw.msg_type.as_deref().map(str::trim) {
            None | Some("markdown") => Some(WeComMessageType::Markdown),
            Some("text") => Some(WeComMessageType::Text),
            Some(other) => {
                self.error(
                    format!("{path}.msg_type"),
                    format!("unknown msg_type {other:?}: expected markdown or text"),
                );
                None
            }
        };
        let mentioned_list = raw.mentioned_list.clone().unwrap_or_default();
        let mentioned_mobile_list = raw.mentioned_mobile_list.clone().unwrap_or_default();
        if msg_type == Some(WeComMessageType::Markdown) {
            for (key, list) in [
                ("mentioned_list", &mentioned_list),
                ("mentioned_mobile_list", &mentioned_mobile_list),
            ] {
                if !list.is_empty() {
                    self.warning(
                        format!("{path}.{key}"),
                        "WeCom mentions people in text messages only; set msg_type: text",
                    );
                }
            }
        }
        let title = self.template_field(path, "title", raw.title.as_deref(), "default.title");
        let default_text = match msg_type {
            Some(WeComMessageType::Text) => "wecom.text",
            _ => "wecom.markdown",
        };
        let text = self.template_field(path, "text", raw.text.as_deref(), default_text);
        let delivery = self.service_options(
            path,
            raw.retry.as_ref(),
            raw.rate_limit.as_ref(),
            raw.timeout.as_deref(),
            defaults,
            Some(WECOM_RATE),
        );
        Some(WeComConfig {
            url: url?,
            msg_type: msg_type?,
            mentioned_list,
            mentioned_mobile_list,
            title,
            text,
            send_resolved: raw.send_resolved.unwrap_or(true),
            delivery,
        })
    }

    pub(super) fn msteamsv2_config(
        &mut self,
        path: &str,
        raw: &RawMsTeamsV2Config,
        defaults: &DeliverySettings,
    ) -> Option<MsTeamsV2Config> {
        let webhook_url = self.secret_url(
            path,
            "webhook_url",
            raw.webhook_url.as_deref(),
            raw.webhook_url_file.as_deref(),
        );
        let title = self.template_field(path, "title", raw.title.as_deref(), "default.title");
        let text = self.template_field(path, "text", raw.text.as_deref(), "msteams.text");
        let delivery = self.service_options(
            path,
            raw.retry.as_ref(),
            raw.rate_limit.as_ref(),
            raw.timeout.as_deref(),
            defaults,
            None,
        );
        Some(MsTeamsV2Config {
            webhook_url: webhook_url?,
            title,
            text,
            send_resolved: raw.send_resolved.unwrap_or(true),
            delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::settings::WeComMessageType;
    use crate::config::{load_errors, load_str};

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    const DEFAULT_YAML: &str = include_str!("../../../config/herald.yaml");

    /// The commented `{key}:` example of the embedded default, uncommented (its commented-out keys left out).
    fn example(key: &str) -> String {
        let start = DEFAULT_YAML.find(&format!("    # {key}:")).unwrap();
        DEFAULT_YAML[start..]
            .lines()
            .enumerate()
            .take_while(|(i, line)| {
                line.trim_start().starts_with('#')
                    && (*i == 0 || !line.starts_with("    # ") || line.starts_with("    #  "))
            })
            .map(|(_, line)| line.replacen("# ", "", 1))
            .filter(|line| !line.trim_start().starts_with('#'))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    #[test]
    fn the_documented_examples_load() {
        let yaml = receiver(&format!(
            "{}{}{}",
            example("pagerduty_configs"),
            example("wecom_configs"),
            example("msteamsv2_configs")
        ))
        .replace("${PAGERDUTY_ROUTING_KEY}", KEY)
        .replace("${WECOM_ROBOT_KEY}", "robot-key")
        .replace("${TEAMS_WEBHOOK_URL}", "https://teams.example/hook");
        let loaded = load_str(&yaml, "h.yaml").unwrap_or_else(|errors| panic!("{errors}\n{yaml}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let receiver = &loaded.settings.receivers[0];
        let pagerduty = &receiver.pagerduty_configs[0];
        assert_eq!(pagerduty.url, super::PAGERDUTY_URL);
        assert!(pagerduty.class.custom.is_some() && pagerduty.source.custom.is_none());
        assert_eq!(pagerduty.links.len(), 1);
        assert!(pagerduty.details.contains_key("runbook"));
        assert_eq!(
            receiver.wecom_configs[0].msg_type,
            WeComMessageType::Markdown
        );
        assert!(receiver.msteamsv2_configs[0].title.custom.is_some());
    }

    fn receiver(integrations: &str) -> String {
        format!("route: {{receiver: team}}\nreceivers:\n  - name: team\n{integrations}")
    }

    #[test]
    fn an_alertmanager_pagerduty_block_loads_with_defaults_filled_in() {
        let yaml = receiver(&format!(
            "    pagerduty_configs:\n      - routing_key: {KEY}\n        severity: critical\n        \
             client: herald\n        client_url: 'https://herald.example'\n        \
             description: '{{{{ common_labels.alertname }}}} on {{{{ common_labels.instance }}}}'\n        \
             details: {{firing: '{{{{ firing | length }}}}', team: db}}\n        \
             links: [{{href: 'https://runbooks.example', text: Runbook}}]\n        \
             images: [{{src: 'https://img.example/g.png', alt: graph}}]\n        \
             class: disk\n        component: postgres\n        group: db\n        send_resolved: true\n"
        ));
        let loaded = load_str(&yaml, "h.yaml").unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let pd = &loaded.settings.receivers[0].pagerduty_configs[0];
        assert_eq!(pd.routing_key.expose(), KEY);
        assert_eq!(pd.url, super::PAGERDUTY_URL);
        assert!(pd.description.custom.is_some());
        assert_eq!(
            pd.details.keys().collect::<Vec<_>>(),
            ["firing", "num_firing", "num_resolved", "resolved", "team"]
        );
        assert!(pd.details["firing"].custom.is_some(), "replaced");
        assert_eq!(pd.details["resolved"].default, "pagerduty.resolved");
        assert_eq!(pd.links.len(), 1);
        assert_eq!(pd.images.len(), 1);
        let limit = pd.delivery.rate_limit.unwrap();
        assert_eq!(
            (limit.limit, limit.period, limit.burst),
            (120, Duration::from_secs(60), 1)
        );
        assert_eq!(
            crate::config::summary(&loaded)
                .lines()
                .find(|line| line.contains("team:"))
                .unwrap(),
            "  team: 1 integration (pagerduty: 1)"
        );
    }

    #[test]
    fn wecom_and_teams_blocks_load() {
        let yaml = receiver(
            "    wecom_configs:\n      - url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-123'\n      \
             - url: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc-456'\n        msg_type: text\n        \
             mentioned_list: ['@all']\n        mentioned_mobile_list: ['13800000000']\n        \
             rate_limit: {limit: 10, period: 1m}\n    msteamsv2_configs:\n      \
             - webhook_url: 'https://example.webhook.office.com/workflows/1/triggers/manual/paths/invoke?sig=x'\n        \
             title: '{{ status }}'\n        send_resolved: false\n",
        );
        let loaded = load_str(&yaml, "h.yaml").unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let receiver = &loaded.settings.receivers[0];
        let markdown = &receiver.wecom_configs[0];
        assert_eq!(markdown.msg_type, WeComMessageType::Markdown);
        assert_eq!(markdown.text.default, "wecom.markdown");
        assert_eq!(markdown.delivery.rate_limit.unwrap().limit, 20);
        let text = &receiver.wecom_configs[1];
        assert_eq!(text.msg_type, WeComMessageType::Text);
        assert_eq!(text.text.default, "wecom.text");
        assert_eq!(text.mentioned_list, ["@all"]);
        assert_eq!(text.mentioned_mobile_list, ["13800000000"]);
        assert_eq!(text.delivery.rate_limit.unwrap().limit, 10);
        let teams = &receiver.msteamsv2_configs[0];
        assert!(teams.title.custom.is_some());
        assert_eq!(teams.text.default, "msteams.text");
        assert!(!teams.send_resolved);
        assert_eq!(teams.delivery.rate_limit, None);
        assert_eq!(receiver.integration_count(), 3);
    }

    #[test]
    fn secrets_come_from_their_file_twins() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let key = write("pd", &format!("{KEY}\n"));
        let robot = write(
            "wecom",
            "https://qyapi.example/cgi-bin/webhook/send?key=k\n",
        );
        let teams = write("teams", "https://teams.example/hook\n");
        let yaml = receiver(&format!(
            "    pagerduty_configs: [{{routing_key_file: '{key}'}}]\n    wecom_configs: [{{url_file: '{robot}'}}]\n    \
             msteamsv2_configs: [{{webhook_url_file: '{teams}'}}]\n"
        ));
        let settings = load_str(&yaml, "h.yaml").unwrap().settings;
        let receiver = &settings.receivers[0];
        assert_eq!(receiver.pagerduty_configs[0].routing_key.expose(), KEY);
        assert_eq!(
            receiver.wecom_configs[0].url.expose(),
            "https://qyapi.example/cgi-bin/webhook/send?key=k"
        );
        assert_eq!(
            receiver.msteamsv2_configs[0].webhook_url.expose(),
            "https://teams.example/hook"
        );
    }

    #[test]
    fn problems_are_reported_with_their_key_paths_and_never_the_secrets() {
        let yaml = receiver(
            "    pagerduty_configs:\n      - {severity: critical}\n      - {service_key: legacy-s3cret}\n      \
             - {routing_key: '', url: 'ftp://events.example'}\n      \
             - {routing_key: k, routing_key_file: /nonexistent, links: [{text: x}], images: [{alt: y}], \
             description: '{{ .CommonLabels.alertname }}', colour: red}\n    \
             wecom_configs:\n      - {msg_type: news}\n      - {url: 'qyapi/robot-s3cret'}\n    \
             msteamsv2_configs:\n      - {}\n      - {webhook_url: 'https://teams.example/s3cret', text: '{{ template \"x\" . }}'}\n",
        );
        let errors = load_errors(&yaml);
        for expected in [
            "receivers[0].pagerduty_configs[0].routing_key: must be set (or routing_key_file)",
            "receivers[0].pagerduty_configs[1].service_key: the Events API v1 is not supported",
            "receivers[0].pagerduty_configs[2].routing_key: must not be empty",
            "receivers[0].pagerduty_configs[2].url: must be an absolute http:// or https:// URL",
            "receivers[0].pagerduty_configs[3].routing_key_file: cannot be set together with",
            "receivers[0].pagerduty_configs[3].links[0].href: must be set",
            "receivers[0].pagerduty_configs[3].images[0].src: must be set",
            "receivers[0].pagerduty_configs[3].description: template error at line 1",
            "receivers[0].pagerduty_configs[3].colour: unknown key",
            "receivers[0].wecom_configs[0].url: must be set (or url_file)",
            "receivers[0].wecom_configs[0].msg_type: unknown msg_type \"news\": expected markdown or text",
            "receivers[0].wecom_configs[1].url: must be an absolute http:// or https:// URL",
            "receivers[0].msteamsv2_configs[0].webhook_url: must be set (or webhook_url_file)",
            "receivers[0].msteamsv2_configs[1].text: template error at line 1",
        ] {
            assert!(
                errors.iter().any(|error| error.contains(expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
        assert!(
            errors
                .iter()
                .all(|error| error.starts_with("h.yaml: ") || error.starts_with("herald.yaml: ")),
            "{errors:#?}"
        );
        let all = errors.join("\n");
        assert!(!all.contains("s3cret"), "secrets leaked: {all}");
    }

    #[test]
    fn likely_mistakes_are_warnings() {
        let yaml = receiver(
            "    pagerduty_configs: [{routing_key: short-key, severity: sev9}]\n    \
             wecom_configs: [{url: 'https://qyapi.example/robot', mentioned_list: ['@all']}]\n",
        );
        let warnings = load_str(&yaml, "h.yaml").unwrap().warnings;
        for expected in [
            "pagerduty_configs[0].routing_key: PagerDuty integration keys are 32 characters; this one has 9",
            "pagerduty_configs[0].severity: \"sev9\" is not a PagerDuty severity",
            "wecom_configs[0].url: has no key= parameter",
            "wecom_configs[0].mentioned_list: WeCom mentions people in text messages only",
        ] {
            assert!(
                warnings.iter().any(|warning| warning.contains(expected)),
                "missing {expected:?} in {warnings:#?}"
            );
        }
        assert!(!warnings.join("\n").contains("short-key"));
    }
}
