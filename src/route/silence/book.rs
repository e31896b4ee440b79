//! `SilenceBook`: the silences shared by the HTTP API and the dispatcher, loaded from the store at start and written
//! through to it: a change is committed first and only then seen by readers. Also the task that deletes silences
//! that ended longer ago than the retention.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{PostableSilence, Silence, SilenceError, SilenceState, Silences};
use crate::alert::LabelSource;
use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// How often silences past retention are looked for.
const GC_INTERVAL: Duration = Duration::from_secs(60);

/// All silences, in memory and in the store.
#[derive(Debug)]
pub struct SilenceBook {
    store: Arc<dyn Store>,
    silences: RwLock<Silences>,
    /// Held by writers from reading the current state to updating it, so changes apply one at a time.
    writing: tokio::sync::Mutex<()>,
}

impl SilenceBook {
    /// Loads every stored silence.
    pub async fn load(store: Arc<dyn Store>) -> Result<SilenceBook, StoreError> {
        let mut silences = Silences::default();
        for record in store.silences().await? {
            let id = record.id.clone();
            let silence = Silence::from_record(record)
                .map_err(|error| StoreError::Corrupt(format!("silence {id}: {error}")))?;
            silences.insert(silence);
        }
        Ok(SilenceBook {
            store,
            silences: RwLock::new(silences),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Silences> {
        self.silences
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Silences> {
        self.silences
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates, updates or replaces a silence (see `Silences::plan_upsert`) and returns the id to answer. Returns
    /// once stored; on a store error nothing changed.
    pub async fn upsert(
        &self,
        posted: PostableSilence,
        now: DateTime<Utc>,
    ) -> Result<String, SilenceError> {
        let _writing = self.writing.lock().await;
        let plan = self
            .read()
            .plan_upsert(posted, now, || uuid::Uuid::new_v4().to_string())?;
        self.commit(plan.writes).await?;
        Ok(plan.id)
    }

    /// Expires silence `id` now (see `Silences::plan_expire`).
    pub async fn expire(&self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError> {
        let _writing = self.writing.lock().await;
        let expired = self.read().plan_expire(id, now)?;
        self.commit(vec![expired]).await
    }

    async fn commit(&self, writes: Vec<Silence>) -> Result<(), SilenceError> {
        self.store
            .save_silences(writes.iter().map(Silence::to_record).collect())
            .await?;
        let mut silences = self.write();
        for silence in writes {
            silences.insert(silence);
        }
        Ok(())
    }

    /// Deletes silences that ended before `ended_before`, from the store and then from memory; returns how many.
    pub async fn purge(&self, ended_before: DateTime<Utc>) -> Result<u64, StoreError> {
        let _writing = self.writing.lock().await;
        let deleted = self.store.purge_silences(ended_before).await?;
        if deleted > 0 {
            let mut silences = self.write();
            let old: Vec<String> = silences
                .list()
                .filter(|silence| silence.ends_at < ended_before)
                .map(|silence| silence.id.clone())
                .collect();
            for id in old {
                silences.remove(&id);
            }
        }
        Ok(deleted)
    }

    /// A copy of every silence.
    pub fn snapshot(&self) -> Silences {
        self.read().clone()
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.read().get(id).cloned()
    }

    /// Whether no silence is kept at all (none can mute anything).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Ids of the silences that mute `labels` at `now`, sorted.
    pub fn muted_by<L: LabelSource + ?Sized>(&self, labels: &L, now: DateTime<Utc>) -> Vec<String> {
        self.read().muted_by(labels, now)
    }

    /// How many silences are in each state at `now`.
    pub fn counts(&self, now: DateTime<Utc>) -> [(SilenceState, usize); 3] {
        self.read().counts(now)
    }
}

/// Starts the task that deletes silences ended more than `retention` ago, checked every minute.
pub fn spawn_gc(
    book: Arc<SilenceBook>,
    clock: Arc<dyn Clock>,
    retention: impl Fn() -> Duration + Send + 'static,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(GC_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let retention =
                chrono::Duration::from_std(retention()).unwrap_or(chrono::Duration::MAX);
            let cutoff = clock
                .now()
                .checked_sub_signed(retention)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            match book.purge(cutoff).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "deleted silences past retention"),
                Err(error) => tracing::warn!(%error, "deleting silences past retention failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::matcher::{Matchers, parse_matchers};
    use crate::store::SqliteStore;

    fn t(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
    }

    fn posted(id: Option<&str>, start: i64, end: i64) -> PostableSilence {
        PostableSilence {
            id: id.map(str::to_string),
            matchers: Matchers(parse_matchers("{job=\"api\"}").unwrap()),
            starts_at: t(start),
            ends_at: t(end),
            created_by: Some("ops".into()),
            comment: Some("maintenance".into()),
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::open(&dir.path().join("book.db"), Duration::from_millis(200))
                .await
                .unwrap(),
        )
    }

    #[tokio::test]
    async fn changes_are_stored_before_they_are_seen_and_reload_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let book = SilenceBook::load(Arc::clone(&store)).await.unwrap();
        let api = crate::alert::Labels::from([("job".to_string(), "api".to_string())]);

        let id = book.upsert(posted(None, 0, 500), t(100)).await.unwrap();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        assert_eq!(book.muted_by(&api, t(200)), [id.as_str()]);
        let replaced = book
            .upsert(posted(Some(&id), 150, 500), t(120))
            .await
            .unwrap();
        assert_ne!(replaced, id);
        assert_eq!(book.muted_by(&api, t(200)), [replaced.as_str()]);
        assert_eq!(book.snapshot().len(), 2);

        let reloaded = SilenceBook::load(Arc::clone(&store)).await.unwrap();
        let (a, b) = (book.snapshot(), reloaded.snapshot());
        assert_eq!(a.list().collect::<Vec<_>>(), b.list().collect::<Vec<_>>());

        book.expire(&replaced, t(300)).await.unwrap();
        assert!(book.muted_by(&api, t(300)).is_empty());
        assert!(matches!(
            book.expire(&replaced, t(300)).await,
            Err(SilenceError::AlreadyExpired(_))
        ));

        // Ended before the cutoff: the first (expired at 120) goes, the second (expired at 300) stays.
        assert_eq!(book.purge(t(200)).await.unwrap(), 1);
        assert!(book.get(&id).is_none());
        assert!(book.get(&replaced).is_some());
        let reloaded = SilenceBook::load(Arc::clone(&store)).await.unwrap();
        assert_eq!(reloaded.snapshot().len(), 1);

        // What the store did not commit is not seen.
        store.close().await.unwrap();
        let error = book.upsert(posted(None, 0, 900), t(400)).await.unwrap_err();
        assert!(matches!(error, SilenceError::Store(StoreError::Closed)));
        assert_eq!(book.snapshot().len(), 1);
        assert_eq!(
            book.counts(t(400)),
            [
                (SilenceState::Active, 0),
                (SilenceState::Pending, 0),
                (SilenceState::Expired, 1)
            ]
        );
    }
}
