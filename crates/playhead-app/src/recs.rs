//! Recommendations: rows with reasons, similar titles, feedback and impressions.
//!
//! A request reads the profile's state through the ports (recent plays, feedback, impressions,
//! hides, the live trending counters) and asks the [`RecsEngine`] the binary installed, which
//! answers from the model it holds. Because the history is read per request, a play changes the
//! next response as soon as the consumer has applied it (next episode, EASE and co-watch terms of
//! the new play), without waiting for training.

use std::sync::Arc;

use playhead_core::FieldError;
use playhead_core::auth::Principal;
use playhead_core::ids::{ProfileId, TitleId};
use playhead_core::ports::{Feedback, FeedbackKind, PlayQuery};
use playhead_core::profile::Profile;
use playhead_core::recs::{RecsEngine, RecsItem, RecsPlay, RecsProfile, RecsReason, RecsRow};
use playhead_core::rules::recs::{TRENDING_HALF_LIFE_MS, decayed, item_of};
use playhead_core::time::Timestamp;
use playhead_core::title::Title;

use crate::access::Operation;
use crate::reads::ROW_CANDIDATES;
use crate::{App, AppError, policy};

/// Plays of the profile a request reads (the most recent; older taste is in the model).
const HISTORY_PLAYS: u32 = 200;
/// Trending items a request reads.
const TRENDING_ITEMS: u32 = 200;
/// Most recent items (movies or series) whose live co-watch counters a request reads.
const LIVE_COWATCH_ITEMS: usize = 5;
/// Neighbours read per item from the live co-watch counters.
const LIVE_COWATCH_NEIGHBOURS: u32 = 50;
/// Most titles in one impression report.
pub const IMPRESSIONS_MAX: usize = 100;

/// One recommended title, resolved against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommended {
    /// The title to play.
    pub title: Title,
    /// Blended score, comparable within one response only.
    pub score: f64,
    /// Why.
    pub reason: RecsReason,
    /// Watched state for the profile asked about (`None` when no profile was named).
    pub watch: Option<crate::library::WatchState>,
}

/// An engine that knows nothing: every row is empty. The application's default until the binary
/// installs a real one (tests of other features never pay for a model).
#[derive(Debug, Default)]
pub struct NoRecs;

impl RecsEngine for NoRecs {
    fn version(&self) -> Option<String> {
        None
    }
    fn recommend(
        &self,
        _: &RecsProfile,
        _: RecsRow,
        _: usize,
        _: Timestamp,
        _: &[(TitleId, f64)],
    ) -> Vec<RecsItem> {
        Vec::new()
    }
    fn similar(&self, _: &TitleId, _: usize, _: Option<u8>, _: Timestamp) -> Option<Vec<RecsItem>> {
        None
    }
}

impl App {
    /// Install the recommender (the binary does, at start).
    pub fn with_recs_engine(mut self, engine: Arc<dyn RecsEngine>) -> Self {
        self.recs = engine;
        self
    }

    /// The recommender in service.
    pub fn recs_engine(&self) -> &Arc<dyn RecsEngine> {
        &self.recs
    }

    /// The recommendation model in service with its self-tuning report (operators).
    pub fn recs_model(&self, p: &Principal) -> Result<serde_json::Value, AppError> {
        policy::require(p, Operation::GetRecsModel)?;
        let report = self.recs.model_report().ok_or(AppError::NotFound("recommendation model"))?;
        serde_json::from_str(&report).map_err(|e| AppError::Internal(format!("model report: {e}")))
    }

    /// One recommendation row for a profile.
    pub async fn recommendations(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        row: RecsRow,
        limit: u32,
    ) -> Result<Vec<Recommended>, AppError> {
        let profile = self.reachable_profile(p, profile_id, Operation::GetRecommendations).await?;
        let now = self.clock.now();
        let history = PlayQuery { limit: HISTORY_PLAYS, ..Default::default() };
        let (plays, feedback, impressions, resume, trending, watched) = tokio::try_join!(
            self.ports.viewing.plays(profile_id, &history),
            self.ports.recs.feedback(profile_id),
            self.ports.recs.impressions(profile_id),
            self.ports.viewing.recent_progress(profile_id, Timestamp(i64::MIN), ROW_CANDIDATES),
            self.ports.recs.trending(TRENDING_ITEMS),
            self.ports.viewing.watched_titles(profile_id),
        )?;
        let listed = self.listed_titles(profile_id).await?;
        let titles = self.title_map(plays.iter().map(|v| v.title_id.clone())).await?;
        let mut state = RecsProfile {
            maturity_limit: profile.effective_maturity_limit(),
            watched,
            listed,
            ..RecsProfile::default()
        };
        state.plays = plays
            .iter()
            .map(|v| RecsPlay {
                title_id: v.title_id.clone(),
                at: v.started_at,
                percent: if v.completed {
                    100.0
                } else {
                    match titles.get(&v.title_id) {
                        Some(t) if t.duration_ms > 0 => {
                            (v.watched_ms as f64 * 100.0 / t.duration_ms as f64).clamp(0.0, 100.0) as f32
                        }
                        _ => 0.0,
                    }
                },
            })
            .collect();
        for f in feedback {
            match f.kind {
                FeedbackKind::Up => state.up.push(f.title_id),
                FeedbackKind::Down => state.down.push(f.title_id),
                FeedbackKind::NotInterested => state.not_interested.push(f.title_id),
            }
        }
        // Hidden until played again (DESIGN.md): a hide older than the title's last activity is over.
        state.hidden = resume
            .into_iter()
            .filter(|r| r.hidden_at.is_some_and(|h| h >= r.progress.occurred_at))
            .map(|r| r.progress.title_id)
            .collect();
        state.impressions = impressions.into_iter().map(|i| (i.title_id, i.shown)).collect();
        // Live co-watch counters of the latest items (the consumer updates them in the apply
        // transaction), so a play since the last training already moves the neighbours.
        let mut recent: Vec<TitleId> = Vec::new();
        let mut by_time: Vec<_> = plays.iter().collect();
        by_time.sort_by_key(|v| std::cmp::Reverse(v.started_at));
        for v in by_time {
            let item = titles.get(&v.title_id).map_or_else(|| v.title_id.clone(), item_of);
            if !recent.contains(&item) {
                recent.push(item);
            }
            if recent.len() == LIVE_COWATCH_ITEMS {
                break;
            }
        }
        let counts = futures::future::try_join_all(
            recent.iter().map(|item| self.ports.recs.cowatch(item, LIVE_COWATCH_NEIGHBOURS)),
        )
        .await?;
        state.cowatch = recent.into_iter().zip(counts).collect();
        let trending: Vec<(TitleId, f64)> =
            trending.into_iter().map(|(t, w)| (t, decayed(w, now, TRENDING_HALF_LIFE_MS))).collect();
        let items = self.recs.recommend(&state, row, limit as usize, now, &trending);
        self.resolve(items, Some(&profile)).await
    }

    /// Join engine results to the catalog (a title deleted since the model was built is skipped).
    /// For a profile: titles above its maturity limit are dropped whatever the engine answered
    /// (the rule is enforced here once, not trusted to every engine), and each title carries the
    /// profile's watched state.
    async fn resolve(
        &self,
        items: Vec<RecsItem>,
        profile: Option<&Profile>,
    ) -> Result<Vec<Recommended>, AppError> {
        let mut titles = self.title_map(items.iter().map(|i| i.title_id.clone())).await?;
        let mut out: Vec<Recommended> = items
            .into_iter()
            .filter_map(|i| {
                let title = titles.remove(&i.title_id)?;
                if profile.is_some_and(|p| !p.may_see(title.maturity)) {
                    return None;
                }
                Some(Recommended { title, score: i.score, reason: i.reason, watch: None })
            })
            .collect();
        if let Some(p) = profile {
            let refs: Vec<&Title> = out.iter().map(|r| &r.title).collect();
            let states = self.watch_states(p.id, &refs).await?;
            for r in &mut out {
                r.watch = Some(states.get(&r.title.id).copied().unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// Titles similar to one title, for `profile` when named (its maturity limit applies and
    /// each title carries its watched state). A profile-bound token (a TV signed in as the kids
    /// profile) is always answered for its profile, named or not; naming another is 404.
    pub async fn similar(
        &self,
        p: &Principal,
        title: &TitleId,
        profile: Option<ProfileId>,
        limit: u32,
    ) -> Result<Vec<Recommended>, AppError> {
        policy::require(p, Operation::GetSimilar)?;
        let profile = match profile.or(p.bound_profile) {
            Some(id) => Some(self.reachable_profile(p, id, Operation::GetSimilar).await?),
            None => None,
        };
        let target = self.ports.catalog.title(title).await?.ok_or(AppError::NotFound("title"))?.title;
        // A title the profile may not see does not exist for it.
        if profile.as_ref().is_some_and(|pr| !pr.may_see(target.maturity)) {
            return Err(AppError::NotFound("title"));
        }
        let maturity_limit = profile.as_ref().and_then(Profile::effective_maturity_limit);
        // None: the model has not seen this title (new, or no model trained yet): nothing similar.
        let items =
            self.recs.similar(title, limit as usize, maturity_limit, self.clock.now()).unwrap_or_default();
        self.resolve(items, profile.as_ref()).await
    }

    /// Record feedback on a title (the latest wins).
    pub async fn feedback(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        title: TitleId,
        kind: FeedbackKind,
    ) -> Result<(), AppError> {
        let profile = self.reachable_profile(p, profile_id, Operation::SendFeedback).await?;
        let Some(stored) = self.ports.catalog.title(&title).await? else {
            return Err(AppError::invalid(FieldError::new(
                "title_id",
                "unknown_title",
                "is not in the catalog",
            )));
        };
        let at = self.clock.now();
        self.ports.recs.set_feedback(profile_id, &Feedback { title_id: title, kind, at }).await?;
        self.publish_feedback(&profile, &stored.title, kind == FeedbackKind::Up, at).await;
        Ok(())
    }

    /// Report that titles were shown to a profile (1-100 per report).
    pub async fn impressions(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        titles: &[TitleId],
    ) -> Result<(), AppError> {
        self.reachable_profile(p, profile_id, Operation::RecordImpressions).await?;
        if titles.is_empty() || titles.len() > IMPRESSIONS_MAX {
            return Err(AppError::invalid(FieldError::new(
                "title_ids",
                "out_of_range",
                format!("must hold 1-{IMPRESSIONS_MAX} title ids"),
            )));
        }
        self.ports.recs.record_impressions(profile_id, titles, self.clock.now()).await?;
        Ok(())
    }
}
