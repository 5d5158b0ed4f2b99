//! Recommendations: rows with reasons, similar titles, feedback and impressions.
//!
//! A request reads the profile's state through the ports (recent plays, feedback, impressions,
//! hides, the live trending counters) and asks the [`RecsEngine`] the binary installed, which
//! answers from the model it holds. Because the history is read per request, a play changes the
//! next response as soon as the consumer has applied it (next episode, EASE and co-watch terms of
//! the new play), without waiting for training.
//!
//! Serving cost (decision 0107): a row is served from cache while the profile's stamp, the
//! catalog epoch and the engine's generation are unchanged (at most `recs_row_ttl`); a miss
//! reuses the profile's signals under the same stamp and the live counters for a couple of
//! seconds. The rule: anything per-profile is cached only under the stamp read before loading
//! it, and every write that changes a profile's signals bumps its generation after its commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use playhead_core::FieldError;
use playhead_core::auth::Principal;
use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::{BackfillOutcome, CoWatchCounts, Feedback, FeedbackKind, PlayQuery, Viewing};
use playhead_core::profile::Profile;
use playhead_core::recs::{RecsEngine, RecsItem, RecsPlay, RecsProfile, RecsReason, RecsRow};
use playhead_core::rules::recs::{
    COWATCH_WINDOW, TRENDING_HALF_LIFE_MS, count_play, decayed, is_positive, item_of,
};
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
/// How long the live counters (trending, co-watch: every profile's plays, not one profile's)
/// are reused across requests. Together with the served rows' time to live, it bounds how late
/// another profile's play reaches a row; a profile's own play reaches it at once.
pub const LIVE_COUNTERS_TTL: Duration = Duration::from_secs(2);
/// Served rows and profile signals kept in process.
const RECS_CACHE_CAPACITY: u64 = 100_000;

/// A profile's own signals, ready for the engine but for the live counters.
#[derive(Debug)]
struct ProfileSignals {
    /// Everything but `cowatch`.
    state: RecsProfile,
    /// The most recent items (movies or series), whose live co-watch counters are read.
    recent: Vec<TitleId>,
}

/// A served row's key: (profile, row, limit, profile stamp, engine generation).
type RowKey = (ProfileId, RecsRow, u32, String, u64);

/// The recommendation path's caches (decision 0107). Per-profile entries are keyed by the
/// profile's stamp from the row cache (its generation and the catalog epoch; in scale-out read
/// from the shared cache), so they are exact: a write bumps the stamp after its commit. The live
/// counters are not per profile: kept in process for a short time, as DESIGN.md allows for data
/// that is not per-profile.
#[derive(Clone)]
pub(crate) struct RecsCache {
    /// Served rows.
    rows: Cache<RowKey, Arc<Vec<Recommended>>>,
    /// The profile's signals by (profile, stamp): shared by every row and size it asks for.
    /// One entry per profile with the stamp it was read under, replaced when the stamp moves.
    /// (Keyed by `(profile, stamp)`, every write left the old entry behind for the whole time to
    /// live: the 30-minute embedded soak grew to 900 MiB that way.)
    signals: Cache<ProfileId, Arc<(String, ProfileSignals)>>,
    /// The live trending list.
    trending: Cache<(), Arc<Vec<(TitleId, f64)>>>,
    /// Live co-watch counters per item.
    cowatch: Cache<TitleId, Arc<CoWatchCounts>>,
}

impl RecsCache {
    /// Served rows live `row_ttl` at most (zero: never cached).
    pub(crate) fn new(row_ttl: Duration) -> Self {
        let ttl = if row_ttl.is_zero() { Duration::from_millis(1) } else { row_ttl };
        Self {
            rows: Cache::builder().max_capacity(RECS_CACHE_CAPACITY).time_to_live(ttl).build(),
            // Exact under their stamp; the time to live only frees memory.
            signals: Cache::builder()
                .max_capacity(RECS_CACHE_CAPACITY)
                .time_to_live(Duration::from_secs(600))
                .build(),
            trending: Cache::builder().max_capacity(1).time_to_live(LIVE_COUNTERS_TTL).build(),
            cowatch: Cache::builder()
                .max_capacity(RECS_CACHE_CAPACITY)
                .time_to_live(LIVE_COUNTERS_TTL)
                .build(),
        }
    }
}

impl std::fmt::Debug for RecsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecsCache").field("rows", &self.rows.entry_count()).finish_non_exhaustive()
    }
}

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
    ///
    /// Served from the row cache when nothing that shapes it changed (decision 0107): rows are
    /// keyed by the profile, the row and its size, the profile's stamp (its generation, bumped
    /// after every write to its plays, feedback, impressions, hides, marks, list or settings,
    /// and the catalog epoch) and the engine's generation (a model or catalog installed), and
    /// live at most `recs_row_ttl`, which bounds how late other profiles' plays (live co-watch,
    /// trending) and the passing of time reach a row. Concurrent misses compute it once.
    pub async fn recommendations(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        row: RecsRow,
        limit: u32,
    ) -> Result<Vec<Recommended>, AppError> {
        policy::require(p, Operation::GetRecommendations)?;
        // Both read before anything is loaded, the profile included (its maturity limit shapes
        // the row), so a write or an install racing the load makes the result land under a key
        // nobody asks for again.
        let engine = self.recs.generation();
        let stamp = self.cache.stamp(profile_id).await;
        let profile = self.reachable_profile(p, profile_id, Operation::GetRecommendations).await?;
        let Some(stamp) = stamp else {
            return self.compute_row(&profile, None, row, limit).await;
        };
        if self.config.recs_row_ttl.is_zero() {
            return self.compute_row(&profile, Some(stamp), row, limit).await;
        }
        let key = (profile_id, row, limit, stamp.clone(), engine);
        let hit = self.recs_cache.rows.contains_key(&key);
        metrics::counter!("playhead_cache_requests_total", "cache" => "recs_rows", "result" => if hit { "hit" } else { "miss" })
            .increment(1);
        let served = self
            .recs_cache
            .rows
            .try_get_with(key, async {
                self.compute_row(&profile, Some(stamp), row, limit).await.map(Arc::new)
            })
            .await
            .map_err(|e| AppError::clone(&e))?;
        Ok(served.as_ref().clone())
    }

    /// Compute a row: the profile's signals (cached under `stamp` when given), the live
    /// counters (shared by every profile, reused for [`LIVE_COUNTERS_TTL`]), the engine, then
    /// the catalog join and the profile's watched state.
    async fn compute_row(
        &self,
        profile: &Profile,
        stamp: Option<String>,
        row: RecsRow,
        limit: u32,
    ) -> Result<Vec<Recommended>, AppError> {
        let signals = match stamp {
            Some(stamp) => match self.recs_cache.signals.get(&profile.id).await {
                Some(hit) if hit.0 == stamp => hit,
                _ => {
                    // Two requests missing at once both read and insert; an entry is only ever
                    // used under its own stamp, so an older one left last is just a miss.
                    let fresh = Arc::new((stamp, self.profile_signals(profile).await?));
                    self.recs_cache.signals.insert(profile.id, fresh.clone()).await;
                    fresh
                }
            },
            None => Arc::new((String::new(), self.profile_signals(profile).await?)),
        };
        let signals = &signals.1;
        let now = self.clock.now();
        let (trending, cowatch) = tokio::try_join!(self.live_trending(), self.live_cowatch(&signals.recent))?;
        let mut state = signals.state.clone();
        state.cowatch = cowatch;
        let trending: Vec<(TitleId, f64)> =
            trending.iter().map(|(t, w)| (t.clone(), decayed(*w, now, TRENDING_HALF_LIFE_MS))).collect();
        let items = self.recs.recommend(&state, row, limit as usize, now, &trending);
        self.resolve(items, Some(profile)).await
    }

    /// What the profile's own state says, read through the ports: everything a request hands
    /// the engine except the live counters, and the items whose counters it reads.
    async fn profile_signals(&self, profile: &Profile) -> Result<ProfileSignals, AppError> {
        let profile_id = profile.id;
        let history = PlayQuery { limit: HISTORY_PLAYS, ..Default::default() };
        let (plays, feedback, impressions, resume, watched, listed) = tokio::try_join!(
            async { Ok::<_, AppError>(self.ports.viewing.plays(profile_id, &history).await?) },
            async { Ok(self.ports.recs.feedback(profile_id).await?) },
            async { Ok(self.ports.recs.impressions(profile_id).await?) },
            async {
                Ok(self
                    .ports
                    .viewing
                    .recent_progress(profile_id, Timestamp(i64::MIN), ROW_CANDIDATES)
                    .await?)
            },
            async { Ok(self.ports.viewing.watched_titles(profile_id).await?) },
            self.listed_titles(profile_id),
        )?;
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
        // By reference: collecting `resume.into_iter()` reuses its buffer in place, so a handful
        // of hidden titles would keep every resume row's allocation alive in the cached signals.
        state.hidden = resume
            .iter()
            .filter(|r| r.hidden_at.is_some_and(|h| h >= r.progress.occurred_at))
            .map(|r| r.progress.title_id.clone())
            .collect();
        state.impressions = impressions.into_iter().map(|i| (i.title_id, i.shown)).collect();
        // The latest items, whose live co-watch counters each request reads (the consumer updates
        // them in the apply transaction), so a play since the last training already moves the
        // neighbours.
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
        Ok(ProfileSignals { state, recent })
    }

    /// The live trending counters (raw forward-decayed sums), shared by every request for
    /// [`LIVE_COUNTERS_TTL`].
    async fn live_trending(&self) -> Result<Arc<Vec<(TitleId, f64)>>, AppError> {
        self.recs_cache
            .trending
            .try_get_with((), async {
                Ok::<_, AppError>(Arc::new(self.ports.recs.trending(TRENDING_ITEMS).await?))
            })
            .await
            .map_err(|e| AppError::clone(&e))
    }

    /// The live co-watch counters of `items`, each shared by every request for
    /// [`LIVE_COUNTERS_TTL`].
    async fn live_cowatch(&self, items: &[TitleId]) -> Result<Vec<(TitleId, CoWatchCounts)>, AppError> {
        let counts = futures::future::try_join_all(items.iter().map(|item| {
            self.recs_cache.cowatch.try_get_with(item.clone(), async {
                Ok::<_, AppError>(Arc::new(self.ports.recs.cowatch(item, LIVE_COWATCH_NEIGHBOURS).await?))
            })
        }))
        .await
        .map_err(|e| AppError::clone(&e))?;
        Ok(items.iter().cloned().zip(counts.into_iter().map(|c| c.as_ref().clone())).collect())
    }

    /// Count recent backfilled plays into the live co-watch and trending counters (decision 0108),
    /// as the apply counts played ones: each positive play once, by play id, pairing with the
    /// profile's window. Only plays within the live horizon (`counts_live`): older history
    /// reaches recommendations through training. In its own transaction right after the backfill's: if it fails the
    /// request fails (503) and sending the backfill again counts the plays it reports as
    /// duplicates (a play id counted before counts nothing).
    pub(crate) async fn count_backfilled(
        &self,
        profile: ProfileId,
        plays: &[Viewing],
        outcomes: &[BackfillOutcome],
        titles: &HashMap<TitleId, Title>,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        let mut positives: Vec<(PlayId, &Viewing, &Title)> = plays
            .iter()
            .zip(outcomes)
            .filter(|(v, _)| playhead_core::rules::recs::counts_live(v.started_at, now))
            .filter_map(|(v, o)| {
                let id = match o {
                    BackfillOutcome::Created(id) | BackfillOutcome::Duplicate(id) => *id,
                    BackfillOutcome::Deleted => return None,
                };
                let t = titles.get(&v.title_id)?;
                (v.is_play && is_positive(v.completed, v.watched_ms, t.duration_ms)).then_some((id, v, t))
            })
            .collect();
        if positives.is_empty() {
            return Ok(());
        }
        positives.sort_by_key(|(id, v, _)| (v.started_at, *id));
        let mut tx = self.ports.viewing.begin().await?;
        for (id, v, t) in positives {
            let window = tx.recs_window(profile, COWATCH_WINDOW as u32).await?;
            let count = count_play(profile, id, item_of(t), v.started_at, &window, TRENDING_HALF_LIFE_MS);
            if tx.count_play(&count).await? {
                metrics::counter!("playhead_recs_plays_counted_total").increment(1);
            }
        }
        tx.commit().await?;
        Ok(())
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
        // The profile's cached rows (recommendations) change with its feedback.
        self.cache.invalidate(profile_id).await;
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
        // Titles shown often sink: the cached recommendations change.
        self.cache.invalidate(profile_id).await;
        Ok(())
    }
}
