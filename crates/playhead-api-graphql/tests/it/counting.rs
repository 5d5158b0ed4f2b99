//! Store ports that count their calls: each call is one store read (or write) a query caused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::Timestamp;
use playhead_core::ids::{AccountId, PlayId, ProfileId, TitleId};
use playhead_core::ports::{
    AccountStore, BackfillOutcome, Catalog, CoWatchCounts, Feedback, Impressions, ListEntry, ListQuery,
    ModelVersion, PlayQuery, RecsStore, ResumeRow, StoredModel, StoredTitle, UpsertSummary, Viewing,
    ViewingStore, ViewingTx, WatchCount,
};
use playhead_core::profile::{Account, Email, Profile};
use playhead_core::title::Title;

/// The calls made through the wrapped ports.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    /// Calls so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// `S`'s ports, counting every call into `n`.
pub struct Counting<S> {
    pub inner: S,
    pub n: Arc<Counter>,
}

#[async_trait]
impl<S: Catalog> Catalog for Counting<S> {
    async fn upsert_titles(&self, titles: &[Title], now: Timestamp) -> Result<UpsertSummary, StoreError> {
        self.n.hit();
        self.inner.upsert_titles(titles, now).await
    }
    async fn replace_title_if(
        &self,
        title: &Title,
        v: i64,
        now: Timestamp,
    ) -> Result<StoredTitle, StoreError> {
        self.n.hit();
        self.inner.replace_title_if(title, v, now).await
    }
    async fn title(&self, id: &TitleId) -> Result<Option<StoredTitle>, StoreError> {
        self.n.hit();
        self.inner.title(id).await
    }
    async fn titles(&self, ids: &[TitleId]) -> Result<Vec<Title>, StoreError> {
        self.n.hit();
        self.inner.titles(ids).await
    }
    async fn list_titles(&self, after: Option<&TitleId>, limit: u32) -> Result<Vec<Title>, StoreError> {
        self.n.hit();
        self.inner.list_titles(after, limit).await
    }
    async fn episodes_of(&self, series: &[TitleId]) -> Result<Vec<Title>, StoreError> {
        self.n.hit();
        self.inner.episodes_of(series).await
    }
}

#[async_trait]
impl<S: ViewingStore> ViewingStore for Counting<S> {
    async fn begin(&self) -> Result<Box<dyn ViewingTx>, StoreError> {
        self.n.hit();
        self.inner.begin().await
    }
    async fn progress(&self, profile: ProfileId, title: &TitleId) -> Result<Option<ResumeRow>, StoreError> {
        self.n.hit();
        self.inner.progress(profile, title).await
    }
    async fn progress_of(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<Vec<ResumeRow>, StoreError> {
        self.n.hit();
        self.inner.progress_of(profile, titles).await
    }
    async fn recent_progress(
        &self,
        p: ProfileId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<ResumeRow>, StoreError> {
        self.n.hit();
        self.inner.recent_progress(p, since, limit).await
    }
    async fn plays(&self, profile: ProfileId, query: &PlayQuery) -> Result<Vec<Viewing>, StoreError> {
        self.n.hit();
        self.inner.plays(profile, query).await
    }
    async fn rollups(
        &self,
        profile: ProfileId,
        query: &playhead_core::ports::RollupQuery,
    ) -> Result<Vec<playhead_core::rules::rollup::PlayRollup>, StoreError> {
        self.n.hit();
        self.inner.rollups(profile, query).await
    }
    async fn episode_plays(&self, profile: ProfileId) -> Result<Vec<(TitleId, Viewing)>, StoreError> {
        self.n.hit();
        self.inner.episode_plays(profile).await
    }
    async fn hide(&self, profile: ProfileId, title: &TitleId, at: Timestamp) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.hide(profile, title, at).await
    }
    async fn delete_play(&self, profile: ProfileId, play: PlayId, now: Timestamp) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.delete_play(profile, play, now).await
    }
    async fn delete_play_if(
        &self,
        profile: ProfileId,
        play: PlayId,
        now: Timestamp,
        if_match: &playhead_core::precondition::IfMatch,
    ) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.delete_play_if(profile, play, now, if_match).await
    }
    async fn backfill(&self, plays: &[Viewing]) -> Result<Vec<BackfillOutcome>, StoreError> {
        self.n.hit();
        self.inner.backfill(plays).await
    }
    async fn mark_watched(
        &self,
        profile: ProfileId,
        plays: &[(TitleId, PlayId)],
        at: Timestamp,
        move_existing: bool,
    ) -> Result<Vec<PlayId>, StoreError> {
        self.n.hit();
        self.inner.mark_watched(profile, plays, at, move_existing).await
    }
    async fn unmark_watched(&self, profile: ProfileId, titles: &[TitleId]) -> Result<u64, StoreError> {
        self.n.hit();
        self.inner.unmark_watched(profile, titles).await
    }
    async fn watch_counts(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<Vec<WatchCount>, StoreError> {
        self.n.hit();
        self.inner.watch_counts(profile, titles).await
    }
    async fn watched_titles(&self, profile: ProfileId) -> Result<Vec<TitleId>, StoreError> {
        self.n.hit();
        self.inner.watched_titles(profile).await
    }
    async fn list_add(&self, profile: ProfileId, title: &TitleId, at: Timestamp) -> Result<bool, StoreError> {
        self.n.hit();
        self.inner.list_add(profile, title, at).await
    }
    async fn list_remove(&self, profile: ProfileId, titles: &[TitleId]) -> Result<u64, StoreError> {
        self.n.hit();
        self.inner.list_remove(profile, titles).await
    }
    async fn list_page(&self, profile: ProfileId, query: &ListQuery) -> Result<Vec<ListEntry>, StoreError> {
        self.n.hit();
        self.inner.list_page(profile, query).await
    }
    async fn list_titles(&self, profile: ProfileId, limit: u32) -> Result<Vec<TitleId>, StoreError> {
        self.n.hit();
        self.inner.list_titles(profile, limit).await
    }
    async fn list_leaves_when_finished(&self, profile: ProfileId) -> Result<bool, StoreError> {
        self.n.hit();
        self.inner.list_leaves_when_finished(profile).await
    }
    async fn set_list_leaves_when_finished(&self, profile: ProfileId, on: bool) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.set_list_leaves_when_finished(profile, on).await
    }
}

#[async_trait]
impl<S: AccountStore> AccountStore for Counting<S> {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.create_account(account).await
    }
    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.n.hit();
        self.inner.account(id).await
    }
    async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        self.n.hit();
        self.inner.account_by_email(email).await
    }
    async fn create_profile(&self, profile: &Profile, max: usize) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.create_profile(profile, max).await
    }
    async fn profile(&self, id: ProfileId) -> Result<Option<Profile>, StoreError> {
        self.n.hit();
        self.inner.profile(id).await
    }
    async fn profiles_of(&self, account: AccountId) -> Result<Vec<Profile>, StoreError> {
        self.n.hit();
        self.inner.profiles_of(account).await
    }
    async fn update_profile(&self, profile: &Profile, expected: i64) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.update_profile(profile, expected).await
    }
}

#[async_trait]
impl<S: RecsStore> RecsStore for Counting<S> {
    async fn training_plays(
        &self,
        after: Option<(ProfileId, PlayId)>,
        limit: u32,
    ) -> Result<Vec<Viewing>, StoreError> {
        self.n.hit();
        self.inner.training_plays(after, limit).await
    }
    async fn set_feedback(&self, profile: ProfileId, feedback: &Feedback) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.set_feedback(profile, feedback).await
    }
    async fn feedback(&self, profile: ProfileId) -> Result<Vec<Feedback>, StoreError> {
        self.n.hit();
        self.inner.feedback(profile).await
    }
    async fn record_impressions(
        &self,
        p: ProfileId,
        titles: &[TitleId],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.n.hit();
        self.inner.record_impressions(p, titles, at).await
    }
    async fn impressions(&self, profile: ProfileId) -> Result<Vec<Impressions>, StoreError> {
        self.n.hit();
        self.inner.impressions(profile).await
    }
    async fn cowatch(&self, item: &TitleId, limit: u32) -> Result<CoWatchCounts, StoreError> {
        self.n.hit();
        self.inner.cowatch(item, limit).await
    }
    async fn trending(&self, limit: u32) -> Result<Vec<(TitleId, f64)>, StoreError> {
        self.n.hit();
        self.inner.trending(limit).await
    }
    // The model lifecycle's calls: background work, never a screen's read, so not counted.
    async fn put_model(&self, model: &StoredModel, keep: u32) -> Result<(), StoreError> {
        self.inner.put_model(model, keep).await
    }
    async fn latest_model(&self) -> Result<Option<ModelVersion>, StoreError> {
        self.inner.latest_model().await
    }
    async fn model_body(&self, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.model_body(version).await
    }
    async fn lease_training(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        self.inner.lease_training(holder, now, until).await
    }
}
