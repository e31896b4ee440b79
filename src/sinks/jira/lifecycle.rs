//! The lifecycle of a group's issue as pure decisions: what a notification does to the issue found for its group
//! (create, update, reopen, resolve, nothing), and which of the offered transitions carries out a resolve or a
//! reopen.
//!
//! Transitions are chosen by name, case-insensitively: first the transition's own name, then the name of the
//! status it leads to (so `reopen_transition: To Do` runs a workflow's "Reopen" transition into "To Do"). A reopen
//! whose configured name is not offered falls back to a transition into a not-done status (the `new` category
//! first), since any of them reopens the issue; a resolve has no such fallback (a done-category transition may set
//! a resolution nobody chose, like "Won't Do"), so it fails permanently, naming what the issue offers.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::client::{Issue, Transition};
use crate::alert::Status;

/// Why a new issue is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fresh {
    /// The group has no issue.
    NoIssue,
    /// The last issue was resolved with `wont_fix_resolution`.
    WontFix(String),
    /// The last issue was resolved longer than `reopen_duration` ago (or when is unknown).
    ResolvedLongAgo(String),
}

/// What a notification does to its group's issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Create(Fresh),
    /// Edit the open issue (and comment); `reopen` first when it was resolved within `reopen_duration`.
    Update {
        reopen: bool,
    },
    /// Edit the open issue (and comment), then run the resolve transition.
    Resolve,
    /// A resolved notification for an issue already resolved.
    AlreadyResolved,
    /// A resolved notification for a group without an issue.
    NothingToResolve,
}

/// What decides between reopening and creating.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub reopen_duration: Duration,
    pub wont_fix_resolution: Option<&'a str>,
}

/// When `issue` was resolved: Jira's `resolutiondate`, else when herald resolved it (`resolved_by_herald`), else
/// its last update.
pub fn resolved_at(
    issue: &Issue,
    resolved_by_herald: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    issue.resolved_at.or(resolved_by_herald).or(issue.updated)
}

/// Decides what a notification with `status` does to the group's newest issue `found` (resolved at `resolved`).
pub fn plan(
    found: Option<&Issue>,
    resolved: Option<DateTime<Utc>>,
    status: Status,
    now: DateTime<Utc>,
    rules: Rules<'_>,
) -> Plan {
    let Some(issue) = found else {
        return match status {
            Status::Firing => Plan::Create(Fresh::NoIssue),
            Status::Resolved => Plan::NothingToResolve,
        };
    };
    match (status, issue.done) {
        (Status::Resolved, true) => Plan::AlreadyResolved,
        (Status::Resolved, false) => Plan::Resolve,
        (Status::Firing, false) => Plan::Update { reopen: false },
        (Status::Firing, true) => {
            let wont_fix = rules.wont_fix_resolution.is_some_and(|wont_fix| {
                issue
                    .resolution
                    .as_deref()
                    .is_some_and(|resolution| same_name(resolution, wont_fix))
            });
            if wont_fix {
                return Plan::Create(Fresh::WontFix(issue.key.clone()));
            }
            let window =
                chrono::Duration::from_std(rules.reopen_duration).unwrap_or(chrono::Duration::MAX);
            match resolved {
                Some(at) if now - at <= window => Plan::Update { reopen: true },
                _ => Plan::Create(Fresh::ResolvedLongAgo(issue.key.clone())),
            }
        }
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// What a transition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Resolve,
    Reopen,
}

/// The transition to run for `goal`, configured by name as `wanted`; `Err` names the offered ones.
pub fn choose<'a>(
    offered: &'a [Transition],
    wanted: &str,
    goal: Goal,
) -> Result<&'a Transition, String> {
    let by_name = offered.iter().find(|t| same_name(&t.name, wanted));
    let by_target = || {
        offered.iter().find(|t| {
            t.to_status
                .as_deref()
                .is_some_and(|to| same_name(to, wanted))
        })
    };
    let reopening = |category: &str| {
        offered
            .iter()
            .find(|t| t.to_category.as_deref() == Some(category))
    };
    let fallback = || match goal {
        Goal::Resolve => None,
        Goal::Reopen => reopening("new").or_else(|| reopening("indeterminate")),
    };
    by_name
        .or_else(by_target)
        .or_else(fallback)
        .ok_or_else(|| no_transition(offered, wanted, goal))
}

fn no_transition(offered: &[Transition], wanted: &str, goal: Goal) -> String {
    let list: Vec<String> = offered
        .iter()
        .map(|t| match &t.to_status {
            Some(to) => format!("{:?} (to {to})", t.name),
            None => format!("{:?}", t.name),
        })
        .collect();
    let list = if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    };
    let (setting, extra) = match goal {
        Goal::Resolve => ("resolve_transition", ""),
        Goal::Reopen => (
            "reopen_transition",
            " nor any into a status that is not done",
        ),
    };
    format!(
        "no transition named {wanted:?} ({setting}){extra} is offered; the issue offers: {list}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    fn issue(done: bool, resolution: Option<&str>, resolved_hours_ago: Option<i64>) -> Issue {
        Issue {
            key: "OPS-1".into(),
            id: Some("10000".into()),
            status: Some(if done { "Done" } else { "To Do" }.into()),
            done,
            resolution: resolution.map(str::to_owned),
            resolved_at: resolved_hours_ago.map(|hours| now() - chrono::Duration::hours(hours)),
            updated: Some(now() - chrono::Duration::hours(100)),
        }
    }

    const RULES: Rules<'static> = Rules {
        reopen_duration: Duration::from_secs(24 * 3600),
        wont_fix_resolution: Some("Won't Do"),
    };

    fn decide(found: Option<&Issue>, status: Status) -> Plan {
        let resolved = found.and_then(|issue| resolved_at(issue, None));
        plan(found, resolved, status, now(), RULES)
    }

    #[test]
    fn firing_creates_updates_reopens_or_starts_over() {
        assert_eq!(decide(None, Status::Firing), Plan::Create(Fresh::NoIssue));
        let open = issue(false, None, None);
        assert_eq!(
            decide(Some(&open), Status::Firing),
            Plan::Update { reopen: false }
        );
        let recent = issue(true, Some("Done"), Some(23));
        assert_eq!(
            decide(Some(&recent), Status::Firing),
            Plan::Update { reopen: true }
        );
        let old = issue(true, Some("Done"), Some(25));
        assert_eq!(
            decide(Some(&old), Status::Firing),
            Plan::Create(Fresh::ResolvedLongAgo("OPS-1".into()))
        );
        let wont_fix = issue(true, Some("won't do"), Some(1));
        assert_eq!(
            decide(Some(&wont_fix), Status::Firing),
            Plan::Create(Fresh::WontFix("OPS-1".into()))
        );
    }

    #[test]
    fn when_jira_does_not_say_when_herald_s_own_time_then_the_last_update_count() {
        let unknown = issue(true, Some("Done"), None);
        let by_herald = Some(now() - chrono::Duration::hours(1));
        assert_eq!(resolved_at(&unknown, by_herald), by_herald);
        assert_eq!(
            plan(Some(&unknown), by_herald, Status::Firing, now(), RULES),
            Plan::Update { reopen: true }
        );
        assert_eq!(resolved_at(&unknown, None), unknown.updated);
        let mut never = unknown.clone();
        never.updated = None;
        assert_eq!(
            plan(Some(&never), None, Status::Firing, now(), RULES),
            Plan::Create(Fresh::ResolvedLongAgo("OPS-1".into()))
        );
    }

    #[test]
    fn resolved_notifications_resolve_open_issues_only() {
        assert_eq!(decide(None, Status::Resolved), Plan::NothingToResolve);
        let open = issue(false, None, None);
        assert_eq!(decide(Some(&open), Status::Resolved), Plan::Resolve);
        let done = issue(true, Some("Done"), Some(1));
        assert_eq!(decide(Some(&done), Status::Resolved), Plan::AlreadyResolved);
    }

    fn transition(id: &str, name: &str, to: &str, category: &str) -> Transition {
        Transition {
            id: id.into(),
            name: name.into(),
            to_status: Some(to.into()),
            to_category: Some(category.into()),
        }
    }

    #[test]
    fn transitions_by_name_then_by_target_status() {
        let open = [
            transition("21", "In Progress", "In Progress", "indeterminate"),
            transition("31", "Done", "Done", "done"),
        ];
        assert_eq!(choose(&open, "done", Goal::Resolve).unwrap().id, "31");
        assert_eq!(choose(&open, " Done ", Goal::Resolve).unwrap().id, "31");
        let renamed = [transition("51", "Close issue", "Closed", "done")];
        assert_eq!(choose(&renamed, "Closed", Goal::Resolve).unwrap().id, "51");

        let done = [transition("41", "Reopen", "To Do", "new")];
        assert_eq!(choose(&done, "Reopen", Goal::Reopen).unwrap().id, "41");
        assert_eq!(
            choose(&done, "To Do", Goal::Reopen).unwrap().id,
            "41",
            "the default reopen_transition names the status"
        );
    }

    #[test]
    fn a_reopen_falls_back_to_a_not_done_status_and_a_resolve_does_not() {
        let offered = [
            transition("61", "Start again", "In Progress", "indeterminate"),
            transition("71", "Back to backlog", "Backlog", "new"),
            transition("81", "Close", "Closed", "done"),
        ];
        assert_eq!(choose(&offered, "Reopen", Goal::Reopen).unwrap().id, "71");
        let only_progress = [transition(
            "61",
            "Start again",
            "In Progress",
            "indeterminate",
        )];
        assert_eq!(
            choose(&only_progress, "Reopen", Goal::Reopen).unwrap().id,
            "61"
        );
        let error = choose(&offered, "Done", Goal::Resolve).unwrap_err();
        assert_eq!(
            error,
            "no transition named \"Done\" (resolve_transition) is offered; the issue offers: \
             \"Start again\" (to In Progress), \"Back to backlog\" (to Backlog), \"Close\" (to Closed)"
        );
        let closed_only = [transition("81", "Close", "Closed", "done")];
        let error = choose(&closed_only, "Reopen", Goal::Reopen).unwrap_err();
        assert!(
            error.contains("reopen_transition) nor any into a status that is not done"),
            "{error}"
        );
        assert!(
            choose(&[], "Done", Goal::Resolve)
                .unwrap_err()
                .ends_with("offers: none")
        );
    }
}
