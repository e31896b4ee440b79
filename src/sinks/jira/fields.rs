//! What herald writes into a Jira issue: the group's label (`ALERT{<sha256 of the group key>}`), the JQL that finds
//! it, the rendered texts and priority of a notification, and the `fields` of a create or an edit.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::render;
use crate::config::JiraConfig;
use crate::notification::Notification;
use crate::template::{Renderer, Templates};

/// Jira's longest label.
pub const LABEL_MAX: usize = 255;

/// The label that marks a group's issues: `ALERT{<lowercase hex sha256 of the group key>}`.
pub fn group_label(group_key: &str) -> String {
    format!(
        "ALERT{{{}}}",
        hex::encode(Sha256::digest(group_key.as_bytes()))
    )
}

/// Whether Jira takes `label`: not empty, no whitespace, at most 255 characters.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() || label.contains(char::is_whitespace) {
        return Err(format!("the Jira label {label:?} is empty or has spaces"));
    }
    if label.encode_utf16().count() > LABEL_MAX {
        return Err(format!(
            "the Jira label {label:?} is longer than {LABEL_MAX} characters"
        ));
    }
    Ok(())
}

/// A JQL string literal: double-quoted, with `"` and `\` escaped.
fn jql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The JQL that finds a group's issues in `project`, newest first.
pub fn jql(project: &str, label: &str) -> String {
    format!(
        "project = {} AND labels = {} ORDER BY created DESC",
        jql_string(project),
        jql_string(label)
    )
}

/// A notification's texts, rendered once per send.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub summary: String,
    /// The description's text (cut to fit); rendered to ADF or wiki markup when sent.
    pub description: String,
    /// The comment's text (cut to fit); empty means no comment.
    pub comment: String,
    pub priority: Option<String>,
}

impl Rendered {
    pub fn new(config: &JiraConfig, templates: &Templates, notification: &Notification) -> Self {
        let renderer = templates.renderer(notification, "jira");
        Rendered {
            summary: render::summary(&renderer.render(&config.summary)),
            description: render::long_text(&renderer.render(&config.description)),
            comment: render::long_text(&renderer.render(&config.comment)),
            priority: priority(config, &renderer, notification),
        }
    }
}

/// The priority's name: the `priority` template's output when set (empty for none), else `priority_map` by the
/// `severity` label (common to the group's alerts, else a group label).
pub fn priority(
    config: &JiraConfig,
    renderer: &Renderer<'_>,
    notification: &Notification,
) -> Option<String> {
    let name = match &config.priority {
        Some(field) => renderer.render(field),
        None => {
            let severity = notification
                .common_labels
                .get("severity")
                .or_else(|| notification.group_labels.get("severity"))?;
            config.priority_map.get(severity)?.clone()
        }
    };
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The `fields` of a new issue: the configured `fields` first, then project, issue type, summary, description,
/// priority, labels (the configured ones and the group's) and components, which win over them.
pub fn create_fields(config: &JiraConfig, rendered: &Rendered, label: &str) -> Map<String, Value> {
    let mut fields: Map<String, Value> = config
        .fields
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut labels: Vec<&str> = config.labels.iter().map(String::as_str).collect();
    if !labels.contains(&label) {
        labels.push(label);
    }
    fields.insert("project".into(), json!({"key": config.project}));
    fields.insert("issuetype".into(), json!({"name": config.issue_type}));
    fields.insert("summary".into(), json!(rendered.summary));
    fields.insert(
        "description".into(),
        render::body(config.api, &rendered.description),
    );
    fields.insert("labels".into(), json!(labels));
    if let Some(priority) = &rendered.priority {
        fields.insert("priority".into(), json!({"name": priority}));
    }
    if !config.components.is_empty() {
        let components: Vec<Value> = config
            .components
            .iter()
            .map(|name| json!({"name": name}))
            .collect();
        fields.insert("components".into(), Value::Array(components));
    }
    fields
}

/// The `fields` of an edit on a repeat or update: summary, description and priority, each unless turned off;
/// `None` when there is nothing to change.
pub fn update_fields(config: &JiraConfig, rendered: &Rendered) -> Option<Map<String, Value>> {
    let mut fields = Map::new();
    if config.update_summary {
        fields.insert("summary".into(), json!(rendered.summary));
    }
    if config.update_description {
        fields.insert(
            "description".into(),
            render::body(config.api, &rendered.description),
        );
    }
    if config.update_priority
        && let Some(priority) = &rendered.priority
    {
        fields.insert("priority".into(), json!({"name": priority}));
    }
    (!fields.is_empty()).then_some(fields)
}

/// A short hash of a comment's text, to tell whether a comment would repeat the last one.
pub fn comment_hash(text: &str) -> String {
    crate::sinks::http::short_digest(text)
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::alert::{Labels, Status, test_alert};
    use crate::config::{DeliveryOptions, JiraApi, JiraAuth, RetryPolicy, Secret};
    use crate::notification::{NotifiedAlert, Reason};
    use crate::template::TemplateField;

    pub fn config(api: JiraApi) -> JiraConfig {
        JiraConfig {
            api,
            api_url: "https://example.atlassian.net".into(),
            auth: JiraAuth::Basic {
                user: "alerts@example.com".into(),
                token: Secret::new("t0ken-secret"),
            },
            project: "OPS".into(),
            issue_type: "Incident".into(),
            priority: None,
            priority_map: BTreeMap::from([
                ("critical".into(), "Highest".into()),
                ("warning".into(), "High".into()),
            ]),
            labels: vec!["alerts".into()],
            components: vec!["Monitoring".into()],
            fields: BTreeMap::from([
                ("customfield_10010".into(), json!({"value": "Production"})),
                ("summary".into(), json!("overridden")),
            ]),
            summary: TemplateField::default_only("default.summary"),
            description: TemplateField::default_only("default.description"),
            comment: TemplateField::default_only("default.comment"),
            update_summary: true,
            update_description: true,
            update_priority: true,
            comment_on_update: false,
            resolve_transition: "Done".into(),
            reopen_transition: "To Do".into(),
            reopen_duration: Duration::from_secs(24 * 3600),
            wont_fix_resolution: Some("Won't Do".into()),
            send_resolved: true,
            http: Default::default(),
            delivery: DeliveryOptions {
                retry: RetryPolicy {
                    initial_backoff: Duration::from_secs(1),
                    max_backoff: Duration::from_secs(60),
                    max_attempts: 10,
                    max_age: Duration::from_secs(3600),
                },
                rate_limit: None,
                timeout: Duration::from_secs(10),
            },
        }
    }

    pub fn notification(severity: &str, status: Status) -> Notification {
        let mut alert = test_alert("DiskFull", &[("instance", "db-1"), ("severity", severity)]);
        alert
            .annotations
            .insert("summary".into(), "db-1 disk is full".into());
        alert.generator_url = "http://prometheus:9090/graph?g0.expr=disk".into();
        if status == Status::Resolved {
            alert.ends_at = Some(alert.starts_at + chrono::Duration::minutes(5));
        }
        Notification::new(
            "ops".into(),
            Reason::First,
            r#"{}:{alertname="DiskFull"}"#.into(),
            Labels::from([("alertname".to_string(), "DiskFull".to_string())]),
            vec![NotifiedAlert {
                fingerprint: alert.fingerprint(),
                status,
                alert,
            }],
            None,
            None,
        )
    }

    #[test]
    fn the_group_label_is_a_hash_of_the_group_key_jira_accepts() {
        let label = group_label(r#"{}:{alertname="DiskFull"}"#);
        assert!(
            label.starts_with("ALERT{") && label.ends_with('}'),
            "{label}"
        );
        assert_eq!(label.len(), "ALERT{}".len() + 64);
        assert!(
            label[6..70]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(label, group_label(r#"{}:{alertname="DiskFull"}"#));
        assert_ne!(label, group_label(r#"{}:{alertname="DiskEmpty"}"#));
        assert_eq!(check_label(&label), Ok(()));
        assert!(check_label("has space").is_err());
        assert!(check_label("").is_err());
        assert!(check_label(&"x".repeat(256)).is_err());
        assert_eq!(check_label(&"x".repeat(255)), Ok(()));
    }

    #[test]
    fn jql_quotes_project_and_label() {
        assert_eq!(
            jql("OPS", "ALERT{ab12}"),
            r#"project = "OPS" AND labels = "ALERT{ab12}" ORDER BY created DESC"#
        );
        assert_eq!(jql_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn priority_from_the_map_or_a_template() {
        let templates = Templates::new();
        let config = config(JiraApi::Cloud);
        let critical = notification("critical", Status::Firing);
        assert_eq!(
            priority(&config, &templates.renderer(&critical, "jira"), &critical).as_deref(),
            Some("Highest")
        );
        let unknown = notification("info", Status::Firing);
        assert_eq!(
            priority(&config, &templates.renderer(&unknown, "jira"), &unknown),
            None
        );

        let mut templates = Templates::new();
        templates
            .add(
                "p",
                "{{ 'Low' if common_labels.severity == 'info' else '' }}",
            )
            .unwrap();
        let mut templated = config.clone();
        templated.priority = Some(TemplateField {
            custom: Some("p".into()),
            default: "default.priority",
        });
        assert_eq!(
            priority(&templated, &templates.renderer(&unknown, "jira"), &unknown).as_deref(),
            Some("Low")
        );
        assert_eq!(
            priority(
                &templated,
                &templates.renderer(&critical, "jira"),
                &critical
            ),
            None
        );
    }

    #[test]
    fn create_fields_carry_everything_and_ours_win() {
        let config = config(JiraApi::Cloud);
        let n = notification("critical", Status::Firing);
        let rendered = Rendered::new(&config, &Templates::new(), &n);
        let label = group_label(&n.group_key);
        let fields = create_fields(&config, &rendered, &label);
        assert_eq!(fields["project"], json!({"key": "OPS"}));
        assert_eq!(fields["issuetype"], json!({"name": "Incident"}));
        assert_eq!(fields["summary"], "DiskFull");
        assert_eq!(fields["priority"], json!({"name": "Highest"}));
        assert_eq!(fields["labels"], json!(["alerts", label]));
        assert_eq!(fields["components"], json!([{"name": "Monitoring"}]));
        assert_eq!(fields["customfield_10010"], json!({"value": "Production"}));
        assert_eq!(fields["description"]["type"], "doc");
        let text = &rendered.description;
        assert!(text.contains("db-1 disk is full"), "{text}");

        let dc = self::config(JiraApi::DataCenter);
        let fields = create_fields(&dc, &rendered, &label);
        assert_eq!(fields["description"], json!(rendered.description));
    }

    #[test]
    fn update_fields_follow_the_switches() {
        let mut config = config(JiraApi::DataCenter);
        let n = notification("warning", Status::Firing);
        let rendered = Rendered::new(&config, &Templates::new(), &n);
        let all = update_fields(&config, &rendered).unwrap();
        let names: Vec<&String> = all.keys().collect();
        assert_eq!(names, ["description", "priority", "summary"]);
        assert_eq!(all["priority"], json!({"name": "High"}));
        config.update_description = false;
        config.update_priority = false;
        let some = update_fields(&config, &rendered).unwrap();
        assert_eq!(some.keys().collect::<Vec<_>>(), ["summary"]);
        config.update_summary = false;
        assert_eq!(update_fields(&config, &rendered), None);
    }

    #[test]
    fn comment_hashes_tell_texts_apart() {
        assert_eq!(comment_hash("a"), comment_hash("a"));
        assert_ne!(comment_hash("a"), comment_hash("b"));
        assert_eq!(comment_hash("a").len(), 16);
    }
}
