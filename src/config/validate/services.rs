//! Validation of the service integrations (`slack_configs`, `jira_configs`), of `templates:` files and of every
//! templated field, which is compiled here so a bad template fails `check-config` with its name and line.

use std::time::Duration;

use super::Checker;
use crate::config::duration::parse_duration;
use crate::config::raw::{RawJiraConfig, RawSlackConfig};
use crate::config::settings::{
    DeliveryOptions, DeliverySettings, JiraApi, JiraAuth, JiraConfig, RateLimit, SlackConfig,
    SlackMode,
};
use crate::template::TemplateField;

/// Slack's incoming webhooks and `chat.postMessage` take about one message per second per webhook or channel.
const SLACK_RATE: RateLimit = RateLimit {
    limit: 1,
    period: Duration::from_secs(1),
    burst: 1,
};

/// The Web API base when `api_url` is not set in bot mode.
const SLACK_API: &str = "https://slack.com/api";

/// Jira's longest label.
const JIRA_LABEL_MAX: usize = 255;

impl Checker<'_> {
    /// Loads `templates:` files; each is known to fields by its file name (`{% import "alerts.j2" as a %}`).
    pub(super) fn template_files(&mut self, files: &[String]) {
        for (i, file) in files.iter().enumerate() {
            let path = format!("templates[{i}]");
            let source = match std::fs::read_to_string(file) {
                Ok(source) => source,
                Err(error) => {
                    self.error(path, format!("cannot read file {file:?}: {error}"));
                    continue;
                }
            };
            let name = std::path::Path::new(file)
                .file_name()
                .map_or_else(|| file.clone(), |name| name.to_string_lossy().into_owned());
            if let Err(error) = self.templates.add(&name, &source) {
                self.error(path, format!("{name}: {error}"));
            }
        }
    }

    /// The templated field `key` of the config at `path`: compiled (and tried once) when set, else the default
    /// template `default`.
    pub(super) fn template_field(
        &mut self,
        path: &str,
        key: &str,
        source: Option<&str>,
        default: &'static str,
    ) -> TemplateField {
        let Some(source) = source else {
            return TemplateField::default_only(default);
        };
        let path = &format!("{path}.{key}");
        match self.templates.add_checked(path, source) {
            Ok(()) => TemplateField {
                custom: Some(path.to_owned()),
                default,
            },
            Err(error) => {
                self.error(path, error.to_string());
                TemplateField::default_only(default)
            }
        }
    }

    /// Warns that `http_config`'s credentials are not sent where the integration signs in by itself.
    fn unused_credentials(&mut self, path: &str, http: &crate::config::HttpConfig, why: &str) {
        if http.authorization.is_some() || http.oauth2.is_some() {
            self.warnings.push(crate::config::Issue::new(
                format!("{path}.http_config"),
                format!("its credentials are not used: {why}"),
            ));
        }
    }

    /// Delivery options with a service's default rate limit when the config sets none.
    pub(super) fn service_options(
        &mut self,
        path: &str,
        retry: Option<&crate::config::raw::RawRetry>,
        rate_limit: Option<&crate::config::raw::RawRateLimit>,
        timeout: Option<&str>,
        defaults: &DeliverySettings,
        service_rate: Option<RateLimit>,
    ) -> DeliveryOptions {
        let mut options = self.delivery_options(path, retry, rate_limit, timeout, defaults);
        if rate_limit.is_none() {
            options.rate_limit = service_rate;
        }
        options
    }

    pub(super) fn slack_config(
        &mut self,
        path: &str,
        raw: &RawSlackConfig,
        defaults: &DeliverySettings,
    ) -> Option<SlackConfig> {
        let token = self.secret_pair(
            &format!("{path}.token"),
            raw.token.as_deref(),
            raw.token_file.as_deref(),
        );
        let api_url = self.secret_pair(
            &format!("{path}.api_url"),
            raw.api_url.as_deref(),
            raw.api_url_file.as_deref(),
        );
        let mode = match (token, api_url) {
            (Some(token), base) => {
                let api_url = base.map_or_else(
                    || SLACK_API.to_owned(),
                    |base| base.expose().trim_end_matches('/').to_owned(),
                );
                if let Err(message) = super::integrations::check_http_url(&api_url) {
                    self.error(format!("{path}.api_url"), message);
                }
                if raw.channel.as_deref().is_none_or(str::is_empty) {
                    self.error(
                        format!("{path}.channel"),
                        "must be set in bot mode (with token)",
                    );
                }
                Some(SlackMode::Bot { token, api_url })
            }
            (None, Some(url)) => match super::integrations::check_http_url(url.expose()) {
                Ok(()) => Some(SlackMode::Webhook { url }),
                Err(message) => {
                    self.error(format!("{path}.api_url"), message);
                    None
                }
            },
            (None, None) => {
                self.error(
                    format!("{path}.api_url"),
                    "must be set (an incoming webhook URL, or api_url_file), or set token for bot mode",
                );
                None
            }
        };
        if raw.thread_replies == Some(true) && matches!(mode, Some(SlackMode::Webhook { .. })) {
            self.warnings.push(crate::config::Issue::new(
                format!("{path}.thread_replies"),
                "has no effect with an incoming webhook; set token for bot mode",
            ));
        }
        let title = self.template_field(path, "title", raw.title.as_deref(), "default.title");
        let title_link = self.template_field(
            path,
            "title_link",
            raw.title_link.as_deref(),
            "default.title_link",
        );
        let text = self.template_field(path, "text", raw.text.as_deref(), "default.text");
        let http = self.http_config(&format!("{path}.http_config"), raw.http_config.as_ref());
        if matches!(mode, Some(SlackMode::Bot { .. })) {
            self.unused_credentials(path, &http, "in bot mode the token signs in");
        }
        let delivery = self.service_options(
            path,
            raw.retry.as_ref(),
            raw.rate_limit.as_ref(),
            raw.timeout.as_deref(),
            defaults,
            Some(SLACK_RATE),
        );
        Some(SlackConfig {
            mode: mode?,
            channel: raw.channel.clone().filter(|channel| !channel.is_empty()),
            username: raw.username.clone(),
            icon_emoji: raw.icon_emoji.clone(),
            icon_url: raw.icon_url.clone(),
            thread_replies: raw.thread_replies.unwrap_or(false),
            send_resolved: raw.send_resolved.unwrap_or(true),
            title,
            title_link,
            text,
            http,
            delivery,
        })
    }

    fn required_text(&mut self, path: &str, value: Option<&str>) -> Option<String> {
        match value.map(str::trim).filter(|value| !value.is_empty()) {
            Some(value) => Some(value.to_owned()),
            None => {
                self.error(path, "must be set");
                None
            }
        }
    }

    fn jira_labels(&mut self, path: &str, labels: &[String]) -> Vec<String> {
        for (i, label) in labels.iter().enumerate() {
            if label.is_empty() || label.contains(char::is_whitespace) {
                self.error(
                    format!("{path}[{i}]"),
                    format!("Jira labels cannot be empty or contain spaces: {label:?}"),
                );
            } else if label.len() > JIRA_LABEL_MAX {
                self.error(
                    format!("{path}[{i}]"),
                    format!("Jira labels are at most {JIRA_LABEL_MAX} characters"),
                );
            }
        }
        labels.to_vec()
    }

    fn jira_auth(&mut self, path: &str, raw: &RawJiraConfig) -> Option<JiraAuth> {
        let token = self.secret_pair(
            &format!("{path}.api_token"),
            raw.api_token.as_deref(),
            raw.api_token_file.as_deref(),
        );
        let pat = self.secret_pair(
            &format!("{path}.personal_access_token"),
            raw.personal_access_token.as_deref(),
            raw.personal_access_token_file.as_deref(),
        );
        let user = raw.user.clone().filter(|user| !user.is_empty());
        match (pat, token, user) {
            (Some(_), Some(_), _) => {
                self.error(
                    format!("{path}.personal_access_token"),
                    "cannot be set together with api_token; set one",
                );
                None
            }
            (Some(token), None, _) => Some(JiraAuth::Bearer { token }),
            (None, Some(token), Some(user)) => Some(JiraAuth::Basic { user, token }),
            (None, Some(_), None) => {
                self.error(
                    format!("{path}.user"),
                    "must be set with api_token (the account's email on Jira Cloud)",
                );
                None
            }
            (None, None, _) => {
                self.error(
                    format!("{path}.api_token"),
                    "must be set with user (or personal_access_token on Data Center)",
                );
                None
            }
        }
    }

    pub(super) fn jira_config(
        &mut self,
        path: &str,
        raw: &RawJiraConfig,
        defaults: &DeliverySettings,
    ) -> Option<JiraConfig> {
        let api = match raw.api_type.as_deref().unwrap_or("cloud") {
            "cloud" => Some(JiraApi::Cloud),
            "datacenter" | "server" => Some(JiraApi::DataCenter),
            other => {
                self.error(
                    format!("{path}.api_type"),
                    format!("unknown api_type {other:?}: expected cloud or datacenter"),
                );
                None
            }
        };
        let api_url = self
            .required_text(&format!("{path}.api_url"), raw.api_url.as_deref())
            .and_then(|url| match super::integrations::check_http_url(&url) {
                Ok(()) if url.contains("/rest/") => {
                    self.error(
                        format!("{path}.api_url"),
                        "must be the site's base URL, without /rest/...",
                    );
                    None
                }
                Ok(()) => Some(url.trim_end_matches('/').to_owned()),
                Err(message) => {
                    self.error(format!("{path}.api_url"), message);
                    None
                }
            });
        let auth = self.jira_auth(path, raw);
        let project = self.required_text(&format!("{path}.project"), raw.project.as_deref());
        let issue_type =
            self.required_text(&format!("{path}.issue_type"), raw.issue_type.as_deref());
        let priority = raw
            .priority
            .as_deref()
            .map(|source| self.template_field(path, "priority", Some(source), "default.priority"));
        let labels = self.jira_labels(
            &format!("{path}.labels"),
            raw.labels.as_deref().unwrap_or_default(),
        );
        let summary =
            self.template_field(path, "summary", raw.summary.as_deref(), "default.summary");
        let description = self.template_field(
            path,
            "description",
            raw.description.as_deref(),
            "default.description",
        );
        let comment =
            self.template_field(path, "comment", raw.comment.as_deref(), "default.comment");
        let reopen_duration = match raw.reopen_duration.as_deref() {
            Some(value) => self.parse(
                &format!("{path}.reopen_duration"),
                Some(value),
                parse_duration,
            ),
            None => Some(Duration::from_secs(24 * 3600)),
        };
        let http = self.http_config(&format!("{path}.http_config"), raw.http_config.as_ref());
        self.unused_credentials(
            path,
            &http,
            "Jira signs in with user and api_token, or personal_access_token",
        );
        let delivery = self.service_options(
            path,
            raw.retry.as_ref(),
            raw.rate_limit.as_ref(),
            raw.timeout.as_deref(),
            defaults,
            None,
        );
        let text = |value: &Option<String>, default: &str| {
            value
                .clone()
                .filter(|value| !value.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Some(JiraConfig {
            api: api?,
            api_url: api_url?,
            auth: auth?,
            project: project?,
            issue_type: issue_type?,
            priority,
            priority_map: raw.priority_map.clone().unwrap_or_default(),
            labels,
            components: raw.components.clone().unwrap_or_default(),
            fields: raw.fields.clone().unwrap_or_default(),
            summary,
            description,
            comment,
            update_summary: raw.update_summary.unwrap_or(true),
            update_description: raw.update_description.unwrap_or(true),
            update_priority: raw.update_priority.unwrap_or(true),
            comment_on_update: raw.comment_on_update.unwrap_or(false),
            resolve_transition: text(&raw.resolve_transition, "Done"),
            reopen_transition: text(&raw.reopen_transition, "To Do"),
            reopen_duration: reopen_duration?,
            wont_fix_resolution: raw
                .wont_fix_resolution
                .clone()
                .filter(|value| !value.is_empty()),
            send_resolved: raw.send_resolved.unwrap_or(true),
            http,
            delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::settings::{JiraApi, JiraAuth, SlackMode};
    use crate::config::{load_errors, load_str};

    const DEFAULT_YAML: &str = include_str!("../../../config/herald.yaml");

    /// The commented `slack_configs` and `jira_configs` examples of the embedded default, uncommented.
    fn example(key: &str) -> String {
        let start = DEFAULT_YAML.find(&format!("    # {key}:")).unwrap();
        DEFAULT_YAML[start..]
            .lines()
            .enumerate()
            .take_while(|(i, line)| {
                line.trim_start().starts_with('#')
                    && (*i == 0 || !line.starts_with("    # ") || line.starts_with("    #  "))
            })
            .map(|(_, line)| line)
            .filter(|line| {
                !line.trim_start().starts_with("#   # ")
                    && !line.trim_start().starts_with("#     # ")
            })
            .map(|line| line.replacen("# ", "", 1))
            .map(|line| format!("{line}\n"))
            .collect::<String>()
            .replace("${JIRA_API_TOKEN}", "token")
            .replace("${HOOK_TOKEN}", "token")
            .replace("${HOOK_SIGNING_KEY}", "key")
            .replace("${SMTP_PASSWORD}", "password")
    }

    #[test]
    fn the_documented_examples_load() {
        let yaml = format!(
            "route: {{receiver: team}}\nreceivers:\n  - name: team\n{}{}",
            example("slack_configs"),
            example("jira_configs")
        );
        let settings = load_str(&yaml, "h.yaml").unwrap().settings;
        let receiver = &settings.receivers[0];
        let slack = &receiver.slack_configs[0];
        assert!(matches!(slack.mode, SlackMode::Webhook { .. }));
        assert_eq!(slack.channel.as_deref(), Some("#alerts"));
        assert!(slack.title.custom.is_some());
        assert_eq!(slack.text.custom, None);
        let limit = slack.delivery.rate_limit.unwrap();
        assert_eq!((limit.limit, limit.period), (1, Duration::from_secs(1)));
        let jira = &receiver.jira_configs[0];
        assert_eq!(jira.api, JiraApi::Cloud);
        assert!(matches!(&jira.auth, JiraAuth::Basic { user, .. } if user == "alerts@example.com"));
        assert_eq!(jira.priority_map["critical"], "Highest");
        assert_eq!(jira.reopen_duration, Duration::from_secs(24 * 3600));
        assert_eq!(
            (
                jira.resolve_transition.as_str(),
                jira.reopen_transition.as_str()
            ),
            ("Done", "To Do")
        );
        assert_eq!(jira.fields["customfield_10010"]["value"], "Production");
        assert_eq!(jira.delivery.rate_limit, None);
    }

    #[test]
    fn the_documented_webhook_and_email_examples_load() {
        let yaml = format!(
            "route: {{receiver: team}}\nreceivers:\n  - name: team\n{}{}",
            example("webhook_configs"),
            example("email_configs")
        );
        let settings = load_str(&yaml, "h.yaml").unwrap().settings;
        let receiver = &settings.receivers[0];
        let hook = &receiver.webhook_configs[0];
        assert_eq!(
            hook.http.authorization.as_ref().unwrap().value.expose(),
            "Bearer token"
        );
        assert!(hook.hmac_secret.is_some());
        let mail = &receiver.email_configs[0];
        assert_eq!(mail.to.len(), 2);
        assert_eq!(mail.smarthost.to_string(), "smtp.example.com:587");
        assert!(mail.require_tls);
        assert!(mail.headers[0].value.custom.is_some());
    }

    /// The README's receiver examples for `name`, with files replaced by inline values and TLS files left out.
    fn readme_receiver(name: &str) -> String {
        let readme = include_str!("../../../README.md");
        let block = readme
            .split("```yaml\n")
            .map(|rest| rest.split("```").next().unwrap_or_default())
            .find(|block| block.contains(&format!("  - name: {name}\n")))
            .unwrap();
        block
            .lines()
            .filter(|line| !line.contains("tls_config:"))
            .map(|line| {
                line.replace(
                    "url_file: /run/secrets/dingtalk_robot_url",
                    "url: https://oapi.dingtalk.com/robot/send?access_token=x",
                )
                .replace("_file: /run/secrets/", ": secret-")
                .replace("${AUDIT_API_KEY}", "key")
                    + "\n"
            })
            .collect::<String>()
            .replacen(
                "receivers:\n",
                &format!("route: {{receiver: {name}}}\nreceivers:\n"),
                1,
            )
    }

    #[test]
    fn the_readme_receivers_load_and_the_dingtalk_body_renders_json() {
        for name in ["oncall-mail", "audit"] {
            load_str(&readme_receiver(name), "README.md").unwrap();
        }
        let settings = load_str(&readme_receiver("dingtalk"), "README.md")
            .unwrap()
            .settings;
        let hook = &settings.receivers[0].webhook_configs[0];
        let n = crate::notification::Notification::synthetic(
            "dingtalk",
            crate::alert::Status::Firing,
            chrono::DateTime::UNIX_EPOCH,
            None,
        );
        let body = settings
            .templates
            .renderer(&n, "webhook")
            .render_strict(hook.body.as_ref().unwrap())
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["markdown"]["title"], "[FIRING] HeraldSendTest");
        assert!(
            json["markdown"]["text"]
                .as_str()
                .unwrap()
                .starts_with("Test notification"),
            "{json}"
        );
    }

    #[test]
    fn a_bad_template_is_reported_with_its_field_and_line() {
        let yaml = "route: {receiver: team}\nreceivers:\n  - name: team\n    slack_configs:\n      \
                    - api_url: https://hooks.example.com/x\n        title: \"ok\\n{% for %}\"\n        \
                    text: \"{{ alerts | no_such_filter }}\"\n";
        let errors = load_errors(yaml);
        assert!(
            errors
                .iter()
                .any(|e| e
                    .contains("receivers[0].slack_configs[0].title: template error at line 2: ")),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e
                .contains("receivers[0].slack_configs[0].text: template error at line 1: ")
                && e.contains("no_such_filter")),
            "{errors:#?}"
        );
    }

    #[test]
    fn template_files_are_importable_by_name_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("alerts.j2");
        std::fs::write(&good, "{% macro title() %}custom title{% endmacro %}").unwrap();
        let bad = dir.path().join("broken.j2");
        std::fs::write(&bad, "fine\nfine\n{% endfor %}").unwrap();
        let yaml = format!(
            "templates: ['{}']\nroute: {{receiver: team}}\nreceivers:\n  - name: team\n    slack_configs:\n      \
             - api_url: https://hooks.example.com/x\n        title: '{{% import \"alerts.j2\" as a %}}{{{{ a.title() }}}}'\n",
            good.display()
        );
        let settings = load_str(&yaml, "h.yaml").unwrap().settings;
        assert!(
            settings.receivers[0].slack_configs[0]
                .title
                .custom
                .is_some()
        );
        let yaml = format!("templates: ['{}']\n", bad.display());
        let errors = load_errors(&yaml);
        assert!(
            errors
                .iter()
                .any(|e| e.contains("templates[0]: broken.j2: template error at line 3")),
            "{errors:#?}"
        );
    }

    #[test]
    fn slack_and_jira_problems_are_reported_with_their_paths() {
        let yaml = "route: {receiver: team}\nreceivers:\n  - name: team\n    slack_configs:\n      \
                    - {token: xoxb-1}\n      - {}\n    jira_configs:\n      \
                    - {api_type: cloudy, api_url: 'https://x.atlassian.net/rest/api/3', api_token: t, labels: ['a b']}\n      \
                    - {api_url: 'https://x', personal_access_token: p, project: OPS, issue_type: Bug}\n";
        let errors = load_errors(yaml);
        for expected in [
            "receivers[0].slack_configs[0].channel: must be set in bot mode",
            "receivers[0].slack_configs[1].api_url: must be set",
            "receivers[0].jira_configs[0].api_type: unknown api_type \"cloudy\"",
            "receivers[0].jira_configs[0].api_url: must be the site's base URL",
            "receivers[0].jira_configs[0].user: must be set with api_token",
            "receivers[0].jira_configs[0].project: must be set",
            "receivers[0].jira_configs[0].issue_type: must be set",
            "receivers[0].jira_configs[0].labels[0]: Jira labels cannot be empty or contain spaces",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "missing {expected:?} in {errors:#?}"
            );
        }
        assert!(
            !errors.iter().any(|e| e.contains("jira_configs[1]")),
            "a PAT alone is enough: {errors:#?}"
        );
    }

    #[test]
    fn http_config_credentials_a_jira_or_slack_bot_does_not_send_are_warned_about() {
        let yaml = "route: {receiver: team}\nreceivers:\n  - name: team\n    slack_configs:\n      \
                    - {token: xoxb-1, channel: '#a', http_config: {bearer_token: t}}\n      \
                    - {api_url: 'https://hooks.slack.com/x', http_config: {bearer_token: t}}\n    jira_configs:\n      \
                    - {api_url: 'https://x', personal_access_token: p, project: OPS, issue_type: Bug, \
                    http_config: {basic_auth: {username: u, password: p}, tls_config: {min_version: TLS13}}}\n";
        let loaded = load_str(yaml, "h.yaml").unwrap();
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0]
                .contains("slack_configs[0].http_config: its credentials are not used")
        );
        assert!(
            loaded.warnings[1]
                .contains("jira_configs[0].http_config: its credentials are not used")
        );
        let jira = &loaded.settings.receivers[0].jira_configs[0];
        assert!(jira.http.needs_own_client(), "TLS settings still apply");
    }
}
