//! What the Jira integration keeps about an alert group between deliveries (`Receipt::state`): the group's current
//! issue, the hash of the last comment herald added to it, and when herald resolved it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sinks::Context;

/// The stored state, as JSON:
/// `{"project":"OPS","key":"OPS-12","id":"10012","comment_hash":"9f86d081884c7d65","resolved_at":"2026-…Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The project the issue was made in: a state from another project (the configuration changed) is ignored.
    pub project: String,
    /// The issue's key.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `comment_hash` of the last comment herald added to this issue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_hash: Option<String>,
    /// When herald last resolved the issue (a fallback when Jira does not say when it was resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
}

impl State {
    /// A fresh state for an issue.
    pub fn new(project: &str, key: &str, id: Option<String>) -> Self {
        State {
            project: project.to_owned(),
            key: key.to_owned(),
            id,
            comment_hash: None,
            resolved_at: None,
        }
    }

    /// The state kept for this group, when there is one for `project` and it can be read.
    pub fn from_context(context: &Context, project: &str) -> Option<Self> {
        let value = context.state.as_ref()?;
        match serde_json::from_value::<State>(value.clone()) {
            Ok(state) if state.project == project && !state.key.is_empty() => Some(state),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "the stored Jira state cannot be read; searching instead");
                None
            }
        }
    }

    /// The same state for issue `key`: kept as is when it is this issue, else fresh.
    pub fn for_issue(stored: Option<&State>, project: &str, key: &str, id: Option<&str>) -> Self {
        match stored {
            Some(state) if state.key == key => {
                let mut state = state.clone();
                if state.id.is_none() {
                    state.id = id.map(str::to_owned);
                }
                state
            }
            _ => State::new(project, key, id.map(str::to_owned)),
        }
    }

    pub fn to_value(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_through_json_and_ignores_other_projects() {
        let mut state = State::new("OPS", "OPS-12", Some("10012".into()));
        state.comment_hash = Some("9f86d081884c7d65".into());
        state.resolved_at = Some("2026-11-21T12:00:00Z".parse().unwrap());
        let value = state.to_value().unwrap();
        assert_eq!(
            value,
            json!({"project": "OPS", "key": "OPS-12", "id": "10012", "comment_hash": "9f86d081884c7d65",
                   "resolved_at": "2026-11-21T12:00:00Z"})
        );
        let context = Context { state: Some(value) };
        assert_eq!(State::from_context(&context, "OPS"), Some(state));
        assert_eq!(State::from_context(&context, "OTHER"), None);
        let unreadable = Context {
            state: Some(json!({"channel": "C1"})),
        };
        assert_eq!(State::from_context(&unreadable, "OPS"), None);
        assert_eq!(State::from_context(&Context::default(), "OPS"), None);
        let minimal = Context {
            state: Some(json!({"project": "OPS", "key": "OPS-1"})),
        };
        assert_eq!(
            State::from_context(&minimal, "OPS"),
            Some(State::new("OPS", "OPS-1", None))
        );
    }

    #[test]
    fn for_issue_keeps_the_state_of_the_same_issue_only() {
        let mut stored = State::new("OPS", "OPS-1", None);
        stored.comment_hash = Some("h".into());
        let same = State::for_issue(Some(&stored), "OPS", "OPS-1", Some("10000"));
        assert_eq!(same.comment_hash.as_deref(), Some("h"));
        assert_eq!(same.id.as_deref(), Some("10000"));
        let other = State::for_issue(Some(&stored), "OPS", "OPS-2", None);
        assert_eq!(other, State::new("OPS", "OPS-2", None));
    }
}
