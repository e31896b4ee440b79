//! Bot mode's lifecycle of one group's message, kept in the integration's state for the group (`BotState`: the
//! channel id and `ts` of the message, and what it last said):
//!
//! - no state, a new incident (`Reason::First`), or the group firing again after its message was resolved: a new
//!   message (`chat.postMessage`). A new incident gets a new message so the channel sees it (an edit notifies no one)
//!   and the resolved one stays as the record of the last incident.
//! - otherwise `chat.update` of the stored message (state, counts) and, with `thread_replies`, a reply in its thread
//!   saying what changed; the resolve is such an update.
//! - a message that can no longer be edited (`message_not_found`: deleted; `cant_update_message`;
//!   `edit_window_closed`) is replaced by a new one, whose `ts` becomes the state.
//!
//! The state is stored with the delivery's outcome only when the send succeeds. Within one delivery the only
//! partial progress is "updated, but the thread reply failed": the error is returned, the stored state still names
//! the same message, so the retry updates it again (an edit is idempotent) and replies again; it never posts a
//! second top-level message. A new message's post is the delivery's only request, so nothing follows it that
//! could fail. What stays at-least-once is a request whose answer was lost (a timeout after Slack acted): a post
//! or reply may then appear twice, as Slack takes no idempotency key.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::message::{MAX_TEXT_CHARS, escape, truncate};
use crate::alert::{Fingerprint, Status};
use crate::notification::{Notification, NotifiedAlert, Reason};

/// How many alerts a thread reply names per list.
const LISTED: usize = 10;

/// What bot mode keeps about a group's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotState {
    /// The channel's id, as Slack answered it (`chat.update` needs the id).
    pub channel: String,
    /// The message's `ts`.
    pub ts: String,
    /// The `channel` setting it was posted for: a changed setting starts a new message in the new channel.
    #[serde(default)]
    pub configured: String,
    /// What the message shows now.
    pub status: Status,
    /// The alerts it shows firing.
    #[serde(default)]
    pub firing: BTreeSet<Fingerprint>,
}

impl BotState {
    /// The state stored for this integration, if it is bot mode's (anything else is ignored).
    pub fn read(state: Option<&serde_json::Value>) -> Option<Self> {
        let state: BotState = serde_json::from_value(state?.clone()).ok()?;
        (!state.channel.is_empty() && !state.ts.is_empty()).then_some(state)
    }

    /// The state after `notification` was shown in the message `channel`/`ts`.
    pub fn after(
        channel: String,
        ts: String,
        configured: &str,
        notification: &Notification,
    ) -> Self {
        BotState {
            channel,
            ts,
            configured: configured.to_owned(),
            status: notification.status,
            firing: firing(notification),
        }
    }

    pub fn to_json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }
}

/// What to do with a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Post a new message.
    Post,
    /// Update the stored message.
    Update(BotState),
}

/// Decides between a new message and an update of the stored one (see the module's header).
pub fn plan(previous: Option<BotState>, notification: &Notification, configured: &str) -> Plan {
    let Some(previous) = previous else {
        return Plan::Post;
    };
    let new_incident = notification.reason == Reason::First
        || (previous.status == Status::Resolved && notification.status == Status::Firing);
    if new_incident || previous.configured != configured {
        return Plan::Post;
    }
    Plan::Update(previous)
}

fn firing(notification: &Notification) -> BTreeSet<Fingerprint> {
    notification
        .alerts
        .iter()
        .filter(|alert| alert.status == Status::Firing)
        .map(|alert| alert.fingerprint)
        .collect()
}

/// The thread reply for an update: what fired and resolved since the message last changed, and where it stands.
pub fn change(previous: &BotState, notification: &Notification) -> String {
    let group = &notification.group_labels;
    let new: Vec<&NotifiedAlert> = notification
        .alerts
        .iter()
        .filter(|alert| {
            alert.status == Status::Firing && !previous.firing.contains(&alert.fingerprint)
        })
        .collect();
    let resolved: Vec<&NotifiedAlert> = notification
        .alerts
        .iter()
        .filter(|alert| {
            alert.status == Status::Resolved && previous.firing.contains(&alert.fingerprint)
        })
        .collect();
    let mut lines = Vec::new();
    if notification.status == Status::Resolved {
        lines.push("✅ *All resolved.*".to_owned());
    }
    if !new.is_empty() {
        lines.push(format!(
            "🔥 *{} newly firing:* {}",
            new.len(),
            list(&new, group)
        ));
    }
    if !resolved.is_empty() && notification.status == Status::Firing {
        lines.push(format!(
            "✅ *{} resolved:* {}",
            resolved.len(),
            list(&resolved, group)
        ));
    }
    if lines.is_empty() {
        lines.push(match notification.reason {
            Reason::Repeat => "🔁 *Still firing* (repeat notification).".to_owned(),
            _ => "🔄 *Updated.*".to_owned(),
        });
    }
    let (firing, resolved) = super::message::counts(notification);
    lines.push(format!("Now {firing} firing, {resolved} resolved."));
    truncate(&lines.join("\n"), MAX_TEXT_CHARS)
}

/// `*Name* \`label=value\`` for up to ten alerts (labels the group shares left out), then how many more.
fn list(alerts: &[&NotifiedAlert], group: &crate::alert::Labels) -> String {
    let mut named: Vec<String> = alerts
        .iter()
        .take(LISTED)
        .map(|alert| {
            let labels: Vec<String> = alert
                .alert
                .labels
                .iter()
                .filter(|(name, _)| name.as_str() != "alertname" && !group.contains_key(*name))
                .map(|(name, value)| format!("`{}={}`", escape(name), escape(value)))
                .collect();
            let name = escape(alert.alert.name());
            if labels.is_empty() {
                format!("*{name}*")
            } else {
                format!("*{name}* {}", labels.join(" "))
            }
        })
        .collect();
    if alerts.len() > LISTED {
        named.push(format!("and {} more", alerts.len() - LISTED));
    }
    named.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Labels, test_alert};

    fn alert(instance: &str, status: Status) -> NotifiedAlert {
        let alert = test_alert("DiskFull", &[("instance", instance)]);
        NotifiedAlert {
            fingerprint: alert.fingerprint(),
            status,
            alert,
        }
    }

    fn notification(reason: Reason, alerts: Vec<NotifiedAlert>) -> Notification {
        Notification::new(
            "ops".into(),
            reason,
            "g".into(),
            Labels::from([("alertname".to_string(), "DiskFull".to_string())]),
            alerts,
            None,
            None,
        )
    }

    fn state(status: Status, firing: &[&str]) -> BotState {
        BotState {
            channel: "C1".into(),
            ts: "1.000001".into(),
            configured: "#alerts".into(),
            status,
            firing: firing
                .iter()
                .map(|instance| alert(instance, Status::Firing).fingerprint)
                .collect(),
        }
    }

    #[test]
    fn state_round_trips_and_foreign_state_is_ignored() {
        let n = notification(Reason::First, vec![alert("a", Status::Firing)]);
        let kept = BotState::after("C1".into(), "1.2".into(), "#alerts", &n);
        let json = kept.to_json().unwrap();
        assert_eq!(json["channel"], "C1");
        assert_eq!(json["ts"], "1.2");
        assert_eq!(json["status"], "firing");
        assert_eq!(BotState::read(Some(&json)), Some(kept));
        assert_eq!(
            BotState::read(Some(&serde_json::json!({"issue": "OPS-1"}))),
            None
        );
        assert_eq!(
            BotState::read(Some(
                &serde_json::json!({"channel": "", "ts": "1", "status": "firing"})
            )),
            None
        );
        assert_eq!(BotState::read(None), None);
    }

    #[test]
    fn first_posts_later_ones_update_and_a_refire_after_resolve_posts_anew() {
        let firing = notification(Reason::NewAlerts, vec![alert("a", Status::Firing)]);
        assert_eq!(plan(None, &firing, "#alerts"), Plan::Post);
        let open = state(Status::Firing, &["a"]);
        assert_eq!(
            plan(Some(open.clone()), &firing, "#alerts"),
            Plan::Update(open.clone())
        );
        let resolve = notification(Reason::AllResolved, vec![alert("a", Status::Resolved)]);
        assert_eq!(
            plan(Some(open.clone()), &resolve, "#alerts"),
            Plan::Update(open.clone())
        );
        let closed = state(Status::Resolved, &[]);
        assert_eq!(
            plan(Some(closed.clone()), &firing, "#alerts"),
            Plan::Post,
            "fires again"
        );
        assert_eq!(
            plan(Some(closed.clone()), &resolve, "#alerts"),
            Plan::Update(closed)
        );
        let first = notification(Reason::First, vec![alert("a", Status::Firing)]);
        assert_eq!(
            plan(Some(open.clone()), &first, "#alerts"),
            Plan::Post,
            "a new incident"
        );
        assert_eq!(
            plan(Some(open), &firing, "#ops"),
            Plan::Post,
            "the channel setting changed"
        );
    }

    #[test]
    fn replies_say_what_changed() {
        let previous = state(Status::Firing, &["a", "b"]);
        let n = notification(
            Reason::NewAlerts,
            vec![
                alert("a", Status::Firing),
                alert("b", Status::Resolved),
                alert("c", Status::Firing),
            ],
        );
        assert_eq!(
            change(&previous, &n),
            "🔥 *1 newly firing:* *DiskFull* `instance=c`\n✅ *1 resolved:* *DiskFull* `instance=b`\n\
             Now 2 firing, 1 resolved."
        );
        let repeat = notification(
            Reason::Repeat,
            vec![alert("a", Status::Firing), alert("b", Status::Firing)],
        );
        assert_eq!(
            change(&previous, &repeat),
            "🔁 *Still firing* (repeat notification).\nNow 2 firing, 0 resolved."
        );
        let all = notification(
            Reason::AllResolved,
            vec![alert("a", Status::Resolved), alert("b", Status::Resolved)],
        );
        assert_eq!(
            change(&previous, &all),
            "✅ *All resolved.*\nNow 0 firing, 2 resolved."
        );

        let many: Vec<NotifiedAlert> = (0..15)
            .map(|i| alert(&format!("n{i:02}"), Status::Firing))
            .collect();
        let reply = change(
            &state(Status::Firing, &[]),
            &notification(Reason::NewAlerts, many),
        );
        assert!(reply.starts_with("🔥 *15 newly firing:*"), "{reply}");
        assert!(reply.contains(", and 5 more\n"), "{reply}");
        assert!(!reply.contains("n10"), "{reply}");
    }
}
