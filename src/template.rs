//! Templates for notification text (minijinja): one environment holding herald's default templates, the files of
//! `templates:` and every templated field of the configuration, all compiled when the configuration is checked;
//! rendering that falls back to the default template when a user's template fails, so no notification is lost to a
//! typo.

use std::fmt;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::alert::{Annotations, Extra, Labels, Status};
use crate::notification::Notification;

/// Default templates, by name. Sinks name them in their `TemplateField`s.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "default.title",
        "[{{ status | upper }}{% if status == 'firing' %}:{{ firing | length }}{% endif %}] \
         {{ group_labels.alertname or common_labels.alertname or 'alerts' }}\
         {% for name, value in group_labels | items %}{% if name != 'alertname' %} {{ name }}={{ value }}{% endif %}\
         {% endfor %}",
    ),
    (
        "default.title_link",
        "{% for alert in alerts if alert.generator_url %}{% if loop.first %}{{ alert.generator_url }}{% endif %}\
         {% endfor %}",
    ),
    (
        "default.summary",
        "{{ group_labels.alertname or common_labels.alertname or 'Alerts' }}\
         {% for name, value in group_labels | items %}{% if name != 'alertname' %} {{ name }}={{ value }}{% endif %}\
         {% endfor %}",
    ),
    ("default.priority", ""),
    (
        "default.text",
        "{% for alert in alerts %}{{ '\\n' if not loop.first }}{{ '✅' if alert.status == 'resolved' else '🔥' }} \
         *{{ alert.labels.alertname }}*{% if alert.annotations.summary %}: {{ alert.annotations.summary }}\
         {% elif alert.annotations.description %}: {{ alert.annotations.description }}{% endif %}\
         {% for name, value in alert.labels | items %}{% if name != 'alertname' and name not in group_labels %} \
         `{{ name }}={{ value }}`{% endif %}{% endfor %}{% endfor %}\
         {% if truncated %}\n… and {{ truncated }} more{% endif %}",
    ),
    ("default.empty", ""),
    ("pagerduty.client", "herald"),
    ("pagerduty.client_url", "{{ external_url }}"),
    (
        "pagerduty.source",
        "{{ common_labels.instance or common_labels.job or 'herald' }}",
    ),
    (
        "pagerduty.firing",
        "{% for alert in firing %}{{ '\\n' if not loop.first }}{{ alert.labels.alertname }}\
         {% for name, value in alert.labels | items %}{% if name != 'alertname' %} {{ name }}={{ value }}{% endif %}\
         {% endfor %}{% if alert.annotations.summary %}: {{ alert.annotations.summary }}{% endif %}{% endfor %}",
    ),
    (
        "pagerduty.resolved",
        "{% for alert in resolved %}{{ '\\n' if not loop.first }}{{ alert.labels.alertname }}\
         {% for name, value in alert.labels | items %}{% if name != 'alertname' %} {{ name }}={{ value }}{% endif %}\
         {% endfor %}{% if alert.annotations.summary %}: {{ alert.annotations.summary }}{% endif %}{% endfor %}",
    ),
    ("pagerduty.num_firing", "{{ firing | length }}"),
    ("pagerduty.num_resolved", "{{ resolved | length }}"),
    (
        "wecom.markdown",
        "{% for alert in alerts %}{{ '\\n' if not loop.first }}> {{ '✅' if alert.status == 'resolved' else '🔥' }} \
         **{{ alert.labels.alertname }}**{% if alert.annotations.summary %}: {{ alert.annotations.summary }}\
         {% elif alert.annotations.description %}: {{ alert.annotations.description }}{% endif %}\
         {% for name, value in alert.labels | items %}{% if name != 'alertname' and name not in group_labels %} \
         `{{ name }}={{ value }}`{% endif %}{% endfor %}{% endfor %}\
         {% if truncated %}\n… and {{ truncated }} more{% endif %}",
    ),
    (
        "wecom.text",
        "{% for alert in alerts %}{{ '\\n' if not loop.first }}{{ '✅' if alert.status == 'resolved' else '🔥' }} \
         {{ alert.labels.alertname }}{% if alert.annotations.summary %}: {{ alert.annotations.summary }}\
         {% elif alert.annotations.description %}: {{ alert.annotations.description }}{% endif %}\
         {% for name, value in alert.labels | items %}{% if name != 'alertname' and name not in group_labels %} \
         {{ name }}={{ value }}{% endif %}{% endfor %}{% endfor %}\
         {% if truncated %}\n… and {{ truncated }} more{% endif %}",
    ),
    (
        "msteams.text",
        "{% for alert in alerts %}{{ '\\n' if not loop.first }}- {{ '✅' if alert.status == 'resolved' else '🔥' }} \
         **{{ alert.labels.alertname }}**{% if alert.annotations.summary %}: {{ alert.annotations.summary }}\
         {% elif alert.annotations.description %}: {{ alert.annotations.description }}{% endif %}\
         {% for name, value in alert.labels | items %}{% if name != 'alertname' and name not in group_labels %} \
         {{ name }}={{ value }}{% endif %}{% endfor %}{% endfor %}\
         {% if truncated %}\n\n… and {{ truncated }} more{% endif %}",
    ),
    (
        "default.description",
        "{% for alert in alerts %}{{ '\\n' if not loop.first }}{{ alert.labels.alertname }} ({{ alert.status }}, since \
         {{ alert.starts_at }}){% if alert.annotations.summary %}: {{ alert.annotations.summary }}{% endif %}\
         {% if alert.annotations.description %}\n{{ alert.annotations.description }}{% endif %}\nLabels:\
         {% for name, value in alert.labels | items %} {{ name }}={{ value }}{% endfor %}\
         {% if alert.annotations.runbook_url %}\nRunbook: {{ alert.annotations.runbook_url }}{% endif %}\
         {% if alert.generator_url %}\nSource: {{ alert.generator_url }}{% endif %}\n{% endfor %}\
         {% if truncated %}\n… and {{ truncated }} more alerts{% endif %}",
    ),
    ("default.empty", ""),
    ("default.webhook_body", ""),
    (
        "default.email.subject",
        "[{{ status | upper }}{% if status == 'firing' %}:{{ firing | length }}{% endif %}] \
         {{ group_labels.alertname or common_labels.alertname or 'alerts' }}\
         {% for name, value in group_labels | items %}{% if name != 'alertname' %} {{ name }}={{ value }}{% endif %}\
         {% endfor %}",
    ),
    ("default.email.text", include_str!("template/email.txt")),
    ("default.email.html", include_str!("template/email.html")),
    (
        "default.comment",
        "{{ status | upper }} ({{ reason }}): {{ firing | length }} firing, {{ resolved | length }} resolved\
         {% for alert in alerts %}\n- {{ alert.labels.alertname }} ({{ alert.status }})\
         {% if alert.annotations.summary %}: {{ alert.annotations.summary }}{% endif %}{% endfor %}",
    ),
];

/// A text field of an integration: the user's template (registered under its key path) when configured, else a
/// default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateField {
    /// The name the user's template was registered under (its key path), when the field was set.
    pub custom: Option<String>,
    /// The default template's name.
    pub default: &'static str,
}

impl TemplateField {
    pub fn default_only(default: &'static str) -> Self {
        TemplateField {
            custom: None,
            default,
        }
    }
}

/// A template that does not compile: where, which line, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "template error at line {line}: {}", self.message),
            None => write!(f, "template error: {}", self.message),
        }
    }
}

fn template_error(error: &minijinja::Error) -> TemplateError {
    TemplateError {
        line: error.line(),
        message: error
            .detail()
            .map_or_else(|| error.kind().to_string(), ToString::to_string),
    }
}

/// Every template herald renders, compiled.
#[derive(Clone)]
pub struct Templates {
    env: Environment<'static>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("count", &self.env.templates().count())
            .finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    /// The default templates only.
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_keep_trailing_newline(false);
        for (name, source) in DEFAULTS {
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(%error, name, "a default template does not compile");
            }
        }
        Templates { env }
    }

    /// Adds a template under `name` (a `templates:` file's name, or a field's key path), compiling it.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        self.env
            .add_template_owned(name.to_owned(), source.to_owned())
            .map_err(|error| template_error(&error))
    }

    /// Adds a template and renders it once against a sample notification, so a name that does not exist (a
    /// filter, test, function, method, block or included template) is found now rather than at the first alert.
    pub fn add_checked(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        self.add(name, source)?;
        let sample =
            Notification::synthetic("sample", Status::Firing, chrono::DateTime::UNIX_EPOCH, None);
        let sample = minijinja::Value::from_serialize(Context::of(&sample));
        match self.render_named(name, &sample) {
            Err(error)
                if matches!(
                    error.kind(),
                    minijinja::ErrorKind::UnknownFilter
                        | minijinja::ErrorKind::UnknownTest
                        | minijinja::ErrorKind::UnknownFunction
                        | minijinja::ErrorKind::UnknownMethod
                        | minijinja::ErrorKind::UnknownBlock
                        | minijinja::ErrorKind::TemplateNotFound
                ) =>
            {
                Err(template_error(&error))
            }
            _ => Ok(()),
        }
    }

    /// Makes `notification` ready for rendering: several fields of one send share one conversion.
    pub fn renderer<'a>(
        &'a self,
        notification: &Notification,
        integration: &'static str,
    ) -> Renderer<'a> {
        Renderer {
            templates: self,
            context: minijinja::Value::from_serialize(Context::of(notification)),
            integration,
        }
    }

    /// Renders one field for `notification` (see `Renderer::render`).
    pub fn render(
        &self,
        field: &TemplateField,
        notification: &Notification,
        integration: &'static str,
    ) -> String {
        self.renderer(notification, integration).render(field)
    }

    fn render_named(
        &self,
        name: &str,
        context: &minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}

/// One notification's template context, ready for its fields to be rendered.
pub struct Renderer<'a> {
    templates: &'a Templates,
    context: minijinja::Value,
    integration: &'static str,
}

impl Renderer<'_> {
    /// Renders the user's template of `field` with no fallback: for a field whose default cannot stand in for it
    /// (a webhook's body, in the destination's own format). `Err` says why it failed.
    pub fn render_strict(&self, field: &TemplateField) -> Result<String, String> {
        let name = field.custom.as_deref().unwrap_or(field.default);
        self.templates
            .render_named(name, &self.context)
            .map_err(|error| {
                metrics::counter!("herald_template_failures_total", "integration" => self.integration)
                    .increment(1);
                match error.line() {
                    Some(line) => format!("template {name} failed at line {line}: {}", error.detail().unwrap_or_default()),
                    None => format!("template {name} failed: {error}"),
                }
            })
    }

    /// Renders `field`; when the user's template fails, counts it, logs it and renders the default instead.
    pub fn render(&self, field: &TemplateField) -> String {
        if let Some(name) = &field.custom {
            match self.templates.render_named(name, &self.context) {
                Ok(text) => return text,
                Err(error) => {
                    tracing::warn!(template = %name, error = %error.display_debug_info(),
                        "template failed; using the default");
                    metrics::counter!("herald_template_failures_total", "integration" => self.integration)
                        .increment(1);
                }
            }
        }
        self.templates
            .render_named(field.default, &self.context)
            .unwrap_or_else(|error| {
                tracing::error!(template = field.default, %error, "default template failed");
                String::new()
            })
    }
}

/// One alert as templates see it.
#[derive(Debug, Serialize)]
struct AlertContext<'a> {
    status: Status,
    labels: &'a Labels,
    annotations: &'a Annotations,
    starts_at: String,
    ends_at: Option<String>,
    generator_url: &'a str,
    fingerprint: String,
    extra: &'a Extra,
}

/// What templates see: the notification, its alerts, and its firing and resolved alerts apart.
#[derive(Debug, Serialize)]
struct Context<'a> {
    receiver: &'a str,
    status: Status,
    reason: &'static str,
    group_key: &'a str,
    group_labels: &'a Labels,
    common_labels: &'a Labels,
    common_annotations: &'a Annotations,
    external_url: &'a str,
    truncated: usize,
    alerts: Vec<AlertContext<'a>>,
    firing: Vec<AlertContext<'a>>,
    resolved: Vec<AlertContext<'a>>,
}

impl<'a> Context<'a> {
    fn of(notification: &'a Notification) -> Self {
        let alert = |notified: &'a crate::notification::NotifiedAlert| AlertContext {
            status: notified.status,
            labels: &notified.alert.labels,
            annotations: &notified.alert.annotations,
            starts_at: notified.alert.starts_at.to_rfc3339(),
            ends_at: (notified.status == Status::Resolved)
                .then(|| notified.alert.ends_at.map(|end| end.to_rfc3339()))
                .flatten(),
            generator_url: &notified.alert.generator_url,
            fingerprint: notified.fingerprint.to_string(),
            extra: &notified.alert.extra,
        };
        let of_status = |status: Status| {
            notification
                .alerts
                .iter()
                .filter(|notified| notified.status == status)
                .map(alert)
                .collect()
        };
        Context {
            receiver: &notification.receiver,
            status: notification.status,
            reason: notification.reason.as_str(),
            group_key: &notification.group_key,
            group_labels: &notification.group_labels,
            common_labels: &notification.common_labels,
            common_annotations: &notification.common_annotations,
            external_url: notification.external_url.as_deref().unwrap_or(""),
            truncated: notification.truncated,
            alerts: notification.alerts.iter().map(alert).collect(),
            firing: of_status(Status::Firing),
            resolved: of_status(Status::Resolved),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_alert;
    use crate::notification::{NotifiedAlert, Reason};

    fn notification() -> Notification {
        let mut down = test_alert("Down", &[("instance", "a"), ("job", "node")]);
        down.annotations
            .insert("summary".into(), "a is down".into());
        let up = test_alert("Down", &[("instance", "b"), ("job", "node")]);
        let alerts = vec![
            NotifiedAlert {
                fingerprint: down.fingerprint(),
                status: Status::Firing,
                alert: down,
            },
            NotifiedAlert {
                fingerprint: up.fingerprint(),
                status: Status::Resolved,
                alert: up,
            },
        ];
        Notification::new(
            "team".into(),
            Reason::First,
            "{}:{alertname=\"Down\"}".into(),
            Labels::from([("alertname".to_string(), "Down".to_string())]),
            alerts,
            None,
            None,
        )
    }

    #[test]
    fn defaults_render_the_notification() {
        let templates = Templates::new();
        let n = notification();
        let title = templates.render(&TemplateField::default_only("default.title"), &n, "test");
        assert_eq!(title, "[FIRING:1] Down");
        let text = templates.render(&TemplateField::default_only("default.text"), &n, "test");
        assert_eq!(
            text,
            "🔥 *Down*: a is down `instance=a` `job=node`\n✅ *Down* `instance=b` `job=node`"
        );
        let description = templates.render(
            &TemplateField::default_only("default.description"),
            &n,
            "test",
        );
        assert!(
            description.contains("a is down\nLabels: alertname=Down instance=a job=node\n"),
            "{description:?}"
        );
        assert!(!description.contains("\\n"), "{description:?}");
        let comment = templates.render(&TemplateField::default_only("default.comment"), &n, "test");
        assert!(
            comment.contains("\n- Down (firing): a is down"),
            "{comment:?}"
        );
        assert!(
            comment.starts_with("FIRING (first): 1 firing, 1 resolved"),
            "{comment}"
        );
    }

    #[test]
    fn a_custom_field_renders_and_a_failing_one_falls_back_to_the_default() {
        let mut templates = Templates::new();
        templates
            .add(
                "r.title",
                "{{ common_labels.job }}: {{ firing | length }} firing",
            )
            .unwrap();
        let unknown = templates
            .add_checked("r.broken", "ok\n{{ alerts[0].labels | no_such_filter }}")
            .unwrap_err();
        assert_eq!(unknown.line, Some(2));
        assert!(unknown.message.contains("no_such_filter"), "{unknown}");
        templates
            .add("r.fails", "{{ no_such_value.deeper }}")
            .unwrap();
        let n = notification();
        let custom = TemplateField {
            custom: Some("r.title".into()),
            default: "default.title",
        };
        assert_eq!(templates.render(&custom, &n, "test"), "node: 1 firing");
        let failing = TemplateField {
            custom: Some("r.fails".into()),
            default: "default.title",
        };
        assert_eq!(templates.render(&failing, &n, "test"), "[FIRING:1] Down");
    }

    #[test]
    fn compile_errors_name_the_line() {
        let mut templates = Templates::new();
        let error = templates.add("bad", "line one\n{% if %}\n").unwrap_err();
        assert_eq!(error.line, Some(2));
        assert!(
            error.to_string().starts_with("template error at line 2: "),
            "{error}"
        );
    }
}
