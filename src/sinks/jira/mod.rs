//! The `jira` integration: one Jira issue per alert group, on Jira Cloud (REST v3, Atlassian Document Format) or
//! Data Center (REST v2, wiki markup).
//!
//! A group's issues carry the label `ALERT{<sha256 of the group key>}`. A send finds the group's issue by the key
//! kept in the stored state (`state.rs`), else by a JQL search for the label (newest first), then (`lifecycle.rs`):
//! creates one when there is none; edits an open one (summary, description, priority) and comments when
//! `comment_on_update` is set and the comment is new; reopens a resolved one within `reopen_duration` (else, or
//! when it was resolved as `wont_fix_resolution`, creates a new one); resolves with `resolve_transition`.
//!
//! Duplicates: Jira has no idempotency key and its search is eventually consistent, so a just-created issue may not
//! be found. The stored state carries the key from one delivery to the next (and across restarts). A create whose
//! answer was lost (timeout, reset) leaves no state; the retry searches again, and while that search finds nothing
//! within `LOST_CREATE_SETTLE` of the lost create, it waits (retryable) instead of creating a second issue. That
//! memory of lost creates is per process: after a restart, only the search guards.
//!
//! A comment travels in the same request as the edit (update) or the transition (resolve), as an `update.comment`
//! operation, so a retry after a later step failed never adds it twice; only a lost answer to that very request
//! can. A state is stored only after a whole send succeeded, so every step is safe to repeat: edits set the same
//! values, and a resolve or reopen that went through shows in the issue's status on the retry.
//!
//! A 404 on the group's issue (deleted, moved) forgets it and looks again (search, else create) in the same send.
//!
//! Transitions are looked up by name through the issue's transitions endpoint, matching the transition's name or
//! the name of the status it leads to (the default `reopen_transition: To Do` runs a workflow's "Reopen" into
//! "To Do"); a reopen whose name is not offered falls back to a transition into a not-done status, a resolve fails
//! permanently naming the offered transitions (see `lifecycle.rs`).

mod client;
mod fields;
mod lifecycle;
mod render;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use self::client::{CallError, Client, Issue, Trail};
use self::fields::Rendered;
use self::lifecycle::{Fresh, Goal, Plan, Rules};
use self::state::State;
use super::httpclient::HttpClient;
use super::{Context, Receipt, Sink, SinkError};
use crate::clock::Clock;
use crate::config::JiraConfig;
use crate::notification::Notification;
use crate::template::Templates;

/// How long after a create that got no answer a retry waits for search to show the issue before creating again.
pub const LOST_CREATE_SETTLE: Duration = Duration::from_secs(60);

/// How many times one send looks for the group's issue (again after the one it found vanished).
const PASSES: usize = 2;

/// The `jira` integration built from a `jira_configs[]` entry.
#[derive(Debug)]
pub struct JiraSink {
    config: JiraConfig,
    templates: Arc<Templates>,
    client: Client,
    clock: Arc<dyn Clock>,
    destination: String,
    /// Groups (by label) whose last create got no answer, with when it was sent.
    unanswered_creates: Mutex<HashMap<String, DateTime<Utc>>>,
}

/// One send's inputs.
struct Job<'a> {
    notification: &'a Notification,
    label: &'a str,
    rendered: &'a Rendered,
    /// The stored state, unless its issue vanished during this send.
    stored: Option<&'a State>,
    /// Issue keys found gone during this send.
    gone: &'a [String],
}

impl JiraSink {
    pub fn new(
        config: &JiraConfig,
        templates: Arc<Templates>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        JiraSink {
            client: Client::new(
                HttpClient::build(&config.http, &http, Arc::clone(&clock)),
                &config.api_url,
                config.api,
                &config.auth,
                Arc::clone(&clock),
            ),
            config: config.clone(),
            templates,
            clock,
            destination: format!("jira:{}", super::http::short_digest(&config.api_url)),
            unanswered_creates: Mutex::new(HashMap::new()),
        }
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            reopen_duration: self.config.reopen_duration,
            wont_fix_resolution: self.config.wont_fix_resolution.as_deref(),
        }
    }

    fn unanswered_since(&self, label: &str) -> Option<DateTime<Utc>> {
        let creates = self.unanswered_creates.lock().ok()?;
        creates.get(label).copied()
    }

    fn set_unanswered(&self, label: &str, since: Option<DateTime<Utc>>) {
        if let Ok(mut creates) = self.unanswered_creates.lock() {
            match since {
                Some(at) => creates.insert(label.to_owned(), at),
                None => creates.remove(label),
            };
        }
    }

    /// The group's issue: the stored one when Jira still has it, else the newest the label search finds (leaving
    /// out issues found gone).
    async fn locate(&self, job: &Job<'_>, trail: &mut Trail) -> Result<Option<Issue>, CallError> {
        let mut gone: Vec<&str> = job.gone.iter().map(String::as_str).collect();
        if let Some(state) = job.stored {
            match self.client.issue(&state.key, trail).await {
                Ok(issue) => return Ok(Some(issue)),
                Err(CallError::Vanished(key)) => {
                    tracing::info!(issue = %key, "the group's Jira issue is gone; searching");
                    trail.step(format!("{key} not found"));
                    gone.push(&state.key);
                }
                Err(error) => return Err(error),
            }
        }
        let jql = fields::jql(&self.config.project, job.label);
        let found = self.client.search(&jql, trail).await?;
        Ok(found.filter(|issue| !gone.contains(&issue.key.as_str())))
    }

    /// One pass: find the issue, decide, act; the new state (`None`: keep the stored one).
    async fn pass(&self, job: &Job<'_>, trail: &mut Trail) -> Result<Option<State>, CallError> {
        let found = self.locate(job, trail).await?;
        let resolved_by_herald = job
            .stored
            .filter(|state| found.as_ref().is_some_and(|issue| issue.key == state.key))
            .and_then(|state| state.resolved_at);
        let resolved = found
            .as_ref()
            .and_then(|issue| lifecycle::resolved_at(issue, resolved_by_herald));
        let now = self.clock.now();
        let status = job.notification.status;
        let plan = lifecycle::plan(found.as_ref(), resolved, status, now, self.rules());
        let (plan, issue) = match (plan, found) {
            (Plan::Create(fresh), _) => return Ok(Some(self.create(job, &fresh, trail).await?)),
            (Plan::NothingToResolve, _) => {
                trail.step("no open issue to resolve");
                return Ok(None);
            }
            (_, None) => return Err(SinkError::retryable("no issue to act on").into()),
            (plan, Some(issue)) => (plan, issue),
        };
        let project = &self.config.project;
        let mut state = State::for_issue(job.stored, project, &issue.key, issue.id.as_deref());
        match plan {
            Plan::Update { reopen } => self.update(job, reopen, &mut state, trail).await?,
            Plan::Resolve => {
                self.resolve(job, &mut state, trail).await?;
                state.resolved_at = Some(now);
            }
            // Create and NothingToResolve returned above.
            Plan::AlreadyResolved | Plan::Create(_) | Plan::NothingToResolve => {
                trail.step(format!("{} was already resolved", issue.key));
                state.resolved_at = state.resolved_at.or(resolved).or(Some(now));
            }
        }
        Ok(Some(state))
    }

    /// Updates the open issue (reopening it first when asked): its fields and the comment in one edit.
    async fn update(
        &self,
        job: &Job<'_>,
        reopen: bool,
        state: &mut State,
        trail: &mut Trail,
    ) -> Result<(), CallError> {
        let key = state.key.clone();
        if reopen {
            let reopen = &self.config.reopen_transition;
            self.transition(&key, reopen, Goal::Reopen, None, trail)
                .await?;
            state.resolved_at = None;
        }
        let comment = self.comment(job, state);
        let changes = fields::update_fields(&self.config, job.rendered);
        let changed = changes.is_some();
        if changed || matches!(comment, Comment::New { .. }) {
            let changes = changes.unwrap_or_default();
            self.client
                .edit(&key, changes, comment.body(), trail)
                .await?;
        }
        if changed {
            trail.step(format!("updated {key}"));
        }
        comment.done(state, trail);
        Ok(())
    }

    /// Resolves the open issue: its fields in an edit, then the resolve transition carrying the comment.
    async fn resolve(
        &self,
        job: &Job<'_>,
        state: &mut State,
        trail: &mut Trail,
    ) -> Result<(), CallError> {
        let key = state.key.clone();
        if let Some(changes) = fields::update_fields(&self.config, job.rendered) {
            self.client.edit(&key, changes, None, trail).await?;
            trail.step(format!("updated {key}"));
        }
        let comment = self.comment(job, state);
        let resolve = &self.config.resolve_transition;
        self.transition(&key, resolve, Goal::Resolve, comment.body(), trail)
            .await?;
        comment.done(state, trail);
        Ok(())
    }

    /// Creates the group's issue, unless a create that got no answer may still show up in search.
    async fn create(
        &self,
        job: &Job<'_>,
        fresh: &Fresh,
        trail: &mut Trail,
    ) -> Result<State, SinkError> {
        let now = self.clock.now();
        let settle =
            chrono::Duration::from_std(LOST_CREATE_SETTLE).unwrap_or(chrono::Duration::zero());
        if let Some(sent) = self.unanswered_since(job.label)
            && now - sent < settle
        {
            return Err(SinkError::retryable(format!(
                "a create for this group sent at {sent} got no answer and search does not show its issue yet; \
                 waiting until {} before creating another",
                sent + settle
            )));
        }
        let fields = fields::create_fields(&self.config, job.rendered, job.label);
        let body = json!({"fields": fields});
        let url = self.client.create_url()?;
        self.set_unanswered(job.label, Some(now));
        let answer = self.client.send(Method::POST, url, Some(&body)).await?;
        self.set_unanswered(job.label, None);
        let created = self.client.created(answer, trail)?;
        let key = &created.key;
        trail.step(match fresh {
            Fresh::NoIssue => format!("created {key}"),
            Fresh::WontFix(old) => format!("created {key} ({old} was resolved as won't fix)"),
            Fresh::ResolvedLongAgo(old) => {
                format!("created {key} ({old} was resolved longer than reopen_duration ago)")
            }
        });
        tracing::info!(issue = %key, "created the group's Jira issue");
        Ok(State::new(&self.config.project, key, created.id))
    }

    /// The comment to add to the issue with the next edit or transition: only with `comment_on_update`, and not
    /// when it would repeat the last one.
    fn comment(&self, job: &Job<'_>, state: &State) -> Comment {
        let comment = &job.rendered.comment;
        if !self.config.comment_on_update || comment.trim().is_empty() {
            return Comment::Off;
        }
        let hash = fields::comment_hash(comment);
        if state.comment_hash.as_deref() == Some(hash.as_str()) {
            return Comment::Unchanged;
        }
        Comment::New {
            body: render::body(self.client.api(), comment),
            hash,
        }
    }

    /// Runs the transition configured as `wanted` for `goal`, found among those the issue offers, with `comment`.
    async fn transition(
        &self,
        key: &str,
        wanted: &str,
        goal: Goal,
        comment: Option<Value>,
        trail: &mut Trail,
    ) -> Result<(), CallError> {
        let offered = self.client.transitions(key, trail).await?;
        let chosen = lifecycle::choose(&offered, wanted, goal)
            .map_err(|reason| SinkError::permanent(format!("cannot transition {key}: {reason}")))?;
        self.client.transition(key, chosen, comment, trail).await?;
        let verb = match goal {
            Goal::Resolve => "resolved",
            Goal::Reopen => "reopened",
        };
        trail.step(format!("{verb} {key} via {:?}", chosen.name));
        tracing::info!(issue = %key, transition = %chosen.name, "{verb} the group's Jira issue");
        Ok(())
    }
}

/// Whether a send comments on the issue.
enum Comment {
    /// `comment_on_update` is off, or the comment is empty.
    Off,
    /// The comment would repeat the last one.
    Unchanged,
    New {
        body: Value,
        hash: String,
    },
}

impl Comment {
    fn body(&self) -> Option<Value> {
        match self {
            Comment::New { body, .. } => Some(body.clone()),
            Comment::Off | Comment::Unchanged => None,
        }
    }

    /// Records the comment in the state and the trail once the request carrying it succeeded.
    fn done(self, state: &mut State, trail: &mut Trail) {
        match self {
            Comment::New { hash, .. } => {
                trail.step(format!("commented on {}", state.key));
                state.comment_hash = Some(hash);
            }
            Comment::Unchanged => trail.step("comment unchanged"),
            Comment::Off => {}
        }
    }
}

#[async_trait]
impl Sink for JiraSink {
    fn integration(&self) -> &'static str {
        "jira"
    }

    fn send_resolved(&self) -> bool {
        self.config.send_resolved
    }

    fn destination(&self) -> String {
        self.destination.clone()
    }

    async fn send(
        &self,
        notification: &Notification,
        context: &Context,
    ) -> Result<Receipt, SinkError> {
        let label = fields::group_label(&notification.group_key);
        fields::check_label(&label).map_err(SinkError::permanent)?;
        let stored = State::from_context(context, &self.config.project);
        let rendered = Rendered::new(&self.config, &self.templates, notification);
        let mut trail = Trail::default();
        let mut gone: Vec<String> = Vec::new();
        for _ in 0..PASSES {
            let job = Job {
                notification,
                label: &label,
                rendered: &rendered,
                stored: stored.as_ref().filter(|state| !gone.contains(&state.key)),
                gone: &gone,
            };
            match self.pass(&job, &mut trail).await {
                Ok(state) => {
                    return Ok(Receipt {
                        response: Some(trail.response()),
                        state: state.and_then(|state| state.to_value()),
                    });
                }
                Err(CallError::Vanished(key)) => {
                    tracing::info!(issue = %key, "the group's Jira issue vanished; looking again");
                    trail.step(format!("{key} vanished"));
                    gone.push(key);
                }
                Err(CallError::Failed(error)) => return Err(error),
            }
        }
        Err(SinkError::retryable(format!(
            "the group's Jira issue vanished while being updated ({}) and search still shows it",
            gone.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests;
