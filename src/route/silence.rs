//! Silences with Alertmanager's semantics: the model (`Silence`, its state at a moment, whether it mutes an alert),
//! validation of what the v2 API posts, and the create / update / replace / expire rules of Alertmanager's
//! `Silences.Set` and `Expire`. Everything here is pure; `SilenceBook` (in `book`) adds the store and sharing.
//!
//! Where herald differs from Alertmanager, on purpose:
//! - A silence is expired from the instant `ends_at` is reached (Alertmanager: just after), so expiring one sets its
//!   end to now and it is expired at once, as an alert whose `endsAt` is now is resolved.
//! - Times are kept to the millisecond, the API's precision, so a silence read from the API and posted back (as
//!   `amtool silence update` does) has the same start and can be updated in place.
//! - Expiring an already expired silence is an error (`AlreadyExpired`), as in Alertmanager before 0.27.

mod book;

pub use book::{SilenceBook, spawn_gc};

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;

use crate::alert::LabelSource;
use crate::matcher::{MatchType, Matcher, MatcherError, Matchers};
use crate::store::{MatcherRecord, SilenceRecord, StoreError};

/// A silence's state at a moment. The order is the API's listing order: active, pending, expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SilenceState {
    /// Started and not ended: mutes the alerts it matches.
    Active,
    /// Starts later.
    Pending,
    /// Ended (or expired by hand).
    Expired,
}

impl SilenceState {
    pub const ALL: [SilenceState; 3] = [
        SilenceState::Active,
        SilenceState::Pending,
        SilenceState::Expired,
    ];

    /// The API's name: `active`, `pending` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

/// A silence: alerts matching all its matchers are muted between `starts_at` and `ends_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// A UUID v4.
    pub id: String,
    pub matchers: Matchers,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    /// When this version was stored.
    pub updated_at: DateTime<Utc>,
}

impl Silence {
    /// Pending before `starts_at`, expired from `ends_at` on, active in between.
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now >= self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }

    /// Whether the silence is active at `now` and all its matchers match `labels`.
    pub fn mutes<L: LabelSource + ?Sized>(&self, labels: &L, now: DateTime<Utc>) -> bool {
        self.state(now) == SilenceState::Active && self.matchers.matches(labels)
    }

    /// Whether every filter matcher equals (name, operator and value) one of the silence's matchers: how the API's
    /// `filter` parameter selects silences.
    pub fn has_matchers(&self, filters: &[Matcher]) -> bool {
        filters
            .iter()
            .all(|filter| self.matchers.iter().any(|matcher| matcher == filter))
    }

    /// The stored form.
    pub fn to_record(&self) -> SilenceRecord {
        SilenceRecord {
            id: self.id.clone(),
            matchers: self
                .matchers
                .iter()
                .map(|matcher| MatcherRecord {
                    name: matcher.name.clone(),
                    value: matcher.value.clone(),
                    is_regex: matcher.is_regex(),
                    is_equal: matcher.is_equal(),
                })
                .collect(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            created_by: self.created_by.clone(),
            comment: self.comment.clone(),
            updated_at: self.updated_at,
        }
    }

    /// Rebuilds a stored silence (compiling its regexes).
    pub fn from_record(record: SilenceRecord) -> Result<Silence, MatcherError> {
        let matchers = record
            .matchers
            .into_iter()
            .map(|matcher| {
                Matcher::from_api(
                    matcher.name,
                    matcher.value,
                    matcher.is_regex,
                    Some(matcher.is_equal),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Silence {
            id: record.id,
            matchers: Matchers(matchers),
            starts_at: record.starts_at,
            ends_at: record.ends_at,
            created_by: record.created_by,
            comment: record.comment,
            updated_at: record.updated_at,
        })
    }
}

/// Alertmanager's listing order: active ones first, the next to end first; then pending ones, the next to start
/// first; then expired ones, the most recently ended first. Ties are broken by id, so the order is stable.
pub fn api_order(a: &Silence, b: &Silence, now: DateTime<Utc>) -> Ordering {
    let (state_a, state_b) = (a.state(now), b.state(now));
    let by_time = match state_a {
        SilenceState::Active => a.ends_at.cmp(&b.ends_at),
        SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
        SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
    };
    state_a
        .cmp(&state_b)
        .then(by_time)
        .then_with(|| a.id.cmp(&b.id))
}

/// A silence as the v2 API's `postableSilence`: without `id` (or with an empty one) it creates a silence, with the
/// id of a stored one it updates or replaces it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Matchers,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Required, as in Alertmanager's API: it must be present, and may be empty.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Required, as in Alertmanager's API: it must be present, and may be empty (`amtool --require-comment=false`).
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SilenceError {
    /// The posted silence breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error("silence {0} not found")]
    NotFound(String),
    #[error("silence {0} already expired")]
    AlreadyExpired(String),
    /// The store did not commit; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(message: &str) -> SilenceError {
    SilenceError::Invalid(message.to_string())
}

/// Whether a matcher selects alerts that lack its label, as Alertmanager's `matchesEmpty` decides: only `=` and
/// `=~` are considered (`!=` and `!~` never count, even when they would match the empty string).
fn matches_empty(matcher: &Matcher) -> bool {
    match matcher.kind {
        MatchType::Equal | MatchType::Regex => matcher.matches(""),
        MatchType::NotEqual | MatchType::NotRegex => false,
    }
}

/// Checks a posted silence as Alertmanager's API and `validateSilence` do, in their order. Matchers were checked
/// one by one when parsed (non-empty names, valid regexes).
pub fn validate(silence: &PostableSilence, now: DateTime<Utc>) -> Result<(), SilenceError> {
    if silence.created_by.is_none() {
        return Err(invalid("createdBy is required"));
    }
    if silence.comment.is_none() {
        return Err(invalid("comment is required"));
    }
    if silence.matchers.is_empty() {
        return Err(invalid("at least one matcher required"));
    }
    if silence.matchers.iter().all(matches_empty) {
        return Err(invalid(
            "at least one matcher must not match the empty string",
        ));
    }
    if silence.starts_at >= silence.ends_at {
        return Err(invalid("start time must be before end time"));
    }
    if silence.ends_at <= now {
        return Err(invalid("end time can't be in the past"));
    }
    Ok(())
}

/// Times are kept to the millisecond, the API's precision.
fn millis(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(3)
}

/// What an upsert writes: the new or updated silence, and the one it replaces (expired) if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert {
    /// The id to answer: the updated silence's, or the new one's.
    pub id: String,
    /// Silences to store together, the answered one last.
    pub writes: Vec<Silence>,
}

/// All silences, by id.
#[derive(Debug, Clone, Default)]
pub struct Silences {
    by_id: BTreeMap<String, Silence>,
}

impl Silences {
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    /// Every silence, by id.
    pub fn list(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values()
    }

    /// Adds a silence or replaces the one with its id.
    pub fn insert(&mut self, silence: Silence) {
        self.by_id.insert(silence.id.clone(), silence);
    }

    pub fn remove(&mut self, id: &str) -> Option<Silence> {
        self.by_id.remove(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Ids of the silences that mute `labels` at `now`, sorted.
    pub fn muted_by<L: LabelSource + ?Sized>(&self, labels: &L, now: DateTime<Utc>) -> Vec<String> {
        // The map is ordered by id, so the result is sorted.
        self.by_id
            .values()
            .filter(|silence| silence.mutes(labels, now))
            .map(|silence| silence.id.clone())
            .collect()
    }

    /// How many silences are in each state at `now`, in `SilenceState::ALL` order.
    pub fn counts(&self, now: DateTime<Utc>) -> [(SilenceState, usize); 3] {
        let mut counts = SilenceState::ALL.map(|state| (state, 0));
        for silence in self.by_id.values() {
            let state = silence.state(now);
            if let Some(entry) = counts.iter_mut().find(|(each, _)| *each == state) {
                entry.1 += 1;
            }
        }
        counts
    }

    /// What storing `posted` at `now` writes, following Alertmanager's `Silences.Set`:
    /// - without an id: a new silence (new id from `new_id`, a start in the past moved to now);
    /// - with the id of a stored silence whose matchers are unchanged, that silence is updated in place when
    ///   the change keeps history: an active one may change its end (not to the past), comment and author but
    ///   not its start; a pending one anything but a start in the past;
    /// - otherwise the stored silence is expired (unless it already is) and a new one is created in its place;
    /// - an id that is not stored is `NotFound`.
    pub fn plan_upsert(
        &self,
        posted: PostableSilence,
        now: DateTime<Utc>,
        new_id: impl FnOnce() -> String,
    ) -> Result<Upsert, SilenceError> {
        let posted = PostableSilence {
            starts_at: millis(posted.starts_at),
            ends_at: millis(posted.ends_at),
            ..posted
        };
        validate(&posted, now)?;
        let updated_at = millis(now);
        let PostableSilence {
            id,
            matchers,
            starts_at,
            ends_at,
            created_by,
            comment,
        } = posted;
        let mut silence = Silence {
            id: String::new(),
            matchers,
            starts_at,
            ends_at,
            created_by: created_by.unwrap_or_default(),
            comment: comment.unwrap_or_default(),
            updated_at,
        };
        let mut writes = Vec::with_capacity(2);
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            let previous = self
                .get(&id)
                .ok_or_else(|| SilenceError::NotFound(id.clone()))?;
            if can_update(previous, &silence, now) {
                silence.id = id.clone();
                return Ok(Upsert {
                    id,
                    writes: vec![silence],
                });
            }
            if previous.state(now) != SilenceState::Expired {
                writes.push(expired(previous, now));
            }
        }
        silence.id = new_id();
        silence.starts_at = silence.starts_at.max(updated_at);
        let id = silence.id.clone();
        writes.push(silence);
        Ok(Upsert { id, writes })
    }

    /// The expired version of silence `id`: an active one ends now, a pending one starts and ends now; an expired
    /// one is `AlreadyExpired`.
    pub fn plan_expire(&self, id: &str, now: DateTime<Utc>) -> Result<Silence, SilenceError> {
        let silence = self
            .get(id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        if silence.state(now) == SilenceState::Expired {
            return Err(SilenceError::AlreadyExpired(id.to_string()));
        }
        Ok(expired(silence, now))
    }
}

/// Whether `previous` can become `next` without rewriting what was silenced when (Alertmanager's `canUpdate`).
fn can_update(previous: &Silence, next: &Silence, now: DateTime<Utc>) -> bool {
    if previous.matchers != next.matchers {
        return false;
    }
    match previous.state(now) {
        SilenceState::Active => millis(previous.starts_at) == next.starts_at && next.ends_at > now,
        SilenceState::Pending => next.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// `silence` expired at `now`; it must not be expired already.
fn expired(silence: &Silence, now: DateTime<Utc>) -> Silence {
    let now = millis(now);
    let mut expired = silence.clone();
    if silence.state(now) == SilenceState::Pending {
        expired.starts_at = now;
    }
    expired.ends_at = now.max(expired.starts_at);
    expired.updated_at = now;
    expired
}

#[cfg(test)]
mod tests;
