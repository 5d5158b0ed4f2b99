//! Serving: candidates from every source, blended, filtered, diversified and explained.
//!
//! Sources: next episode of a series in progress, EASE, co-watch kNN, trending, popular within the
//! profile's genres, and new titles (no plays yet) by genre overlap. Each source's scores are
//! scaled to [0, 1] over the profile's candidates, weighted ([`BlendConfig`]) and summed; the
//! largest weighted term gives the reason. EASE, co-watch and new-title scores are sums of one
//! term per watched item, so "Because you watched X" names the exact largest term.
//!
//! Rules that must hold in every row (tests in this module check each):
//! - nothing watched (any play, or marked) unless rewatch is asked;
//! - nothing hidden, down-voted or marked not interested (a down or not-interested on an episode
//!   blocks its whole show; hiding an episode blocks that episode);
//! - nothing above the maturity limit (an episode's maturity is at least its series');
//! - nothing not yet available;
//! - every item is a playable title (movie or episode), one per show;
//! - at most `max_per_genre_pct` of a row shares a primary genre;
//! - titles shown often and never played sink.
//!
//! The history is read at request time, so a play changes the next response without retraining.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use playhead_core::title::TitleKind;
use playhead_core::{Timestamp, TitleId};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ItemIdx, TitleIdx};
use crate::cowatch::{CoWatchIndex, cosine};
use crate::data::is_positive;
use crate::dataset::Play;
use crate::ease::sort_desc_truncate;
use crate::model::Model;
use crate::trending::{TrendingSnapshot, decay_factor};

const DAY_MS: f64 = 86_400_000.0;
/// A series not played for this many days is "continued" rather than "next" in the reason, when
/// the next-episode term does not fade.
const STALE_DAYS: f64 = 30.0;

/// Most titles without plays considered per request (the newest ones).
pub const COLD_CANDIDATES: usize = 500;

/// How the sources are weighted and the row shaped. Stored in the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlendConfig {
    /// Weight of the next episode of a series in progress.
    pub w_next: f64,
    /// Weight of EASE.
    pub w_ease: f64,
    /// Weight of co-watch kNN.
    pub w_cowatch: f64,
    /// Weight of trending.
    pub w_trending: f64,
    /// Weight of trending within the profile's genres.
    pub w_genre_pop: f64,
    /// Weight of new titles (no plays yet) similar by genre to what was watched.
    pub w_new: f64,
    /// Older plays count less: a play's weight halves every this many days (`None`: all equal).
    pub history_half_life_days: Option<f64>,
    /// A series in progress fades from "next episode" with this half-life since its last play
    /// (`None`: never fades, so a series paused for months is still offered).
    pub next_half_life_days: Option<f64>,
    /// Half-life of trending votes (`None`: all-time popularity).
    pub trending_half_life_days: Option<f64>,
    /// How many trending items are candidates.
    pub trending_top_n: usize,
    /// At most this share of a row (percent, at least one title) has the same primary genre.
    pub max_per_genre_pct: f64,
    /// Impressions without a play that cost nothing.
    pub impressions_free: u32,
    /// Past the free ones, the score halves every this many impressions.
    pub impressions_halving: u32,
}

impl Default for BlendConfig {
    fn default() -> Self {
        Self {
            w_next: 2.0,
            w_ease: 1.0,
            // Tuned to 0 for the top row on synthetic data (EASE already carries the co-watch
            // signal there); co-watch still serves the tail of large catalogs, the
            // because-you-watched row and similar titles.
            w_cowatch: 0.0,
            w_trending: 0.3,
            w_genre_pop: 0.6,
            w_new: 0.2,
            history_half_life_days: Some(30.0),
            next_half_life_days: Some(30.0),
            trending_half_life_days: Some(3.0),
            trending_top_n: 300,
            // A product rule, not a tuned value: tuning preferred no cap by a margin within noise.
            max_per_genre_pct: 50.0,
            impressions_free: 3,
            impressions_halving: 3,
        }
    }
}

impl BlendConfig {
    /// Only one source, no diversity: how evaluation measures each model on the serving path.
    pub fn only(source: Source) -> Self {
        let zero = Self {
            w_next: 0.0,
            w_ease: 0.0,
            w_cowatch: 0.0,
            w_trending: 0.0,
            w_genre_pop: 0.0,
            w_new: 0.0,
            history_half_life_days: None,
            max_per_genre_pct: 100.0,
            ..Self::default()
        };
        match source {
            Source::Ease => Self { w_ease: 1.0, ..zero },
            Source::CoWatch => Self { w_cowatch: 1.0, ..zero },
            Source::Trending => Self { w_trending: 1.0, ..zero },
            Source::Popularity => Self { w_trending: 1.0, trending_half_life_days: None, ..zero },
        }
    }

    /// Trending half-life in ms.
    pub fn trending_half_life_ms(&self) -> Option<i64> {
        self.trending_half_life_days.map(|d| (d * DAY_MS) as i64)
    }
}

/// A single-source model for [`BlendConfig::only`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// EASE alone.
    Ease,
    /// Co-watch kNN alone.
    CoWatch,
    /// Time-decayed popularity alone.
    Trending,
    /// All-time popularity alone.
    Popularity,
}

/// One play in a profile's history, as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfilePlay {
    /// The played title (movie or episode).
    pub title_id: TitleId,
    /// When it was watched.
    pub at: Timestamp,
    /// Percent watched (0-100) when known; `None` counts as completed.
    pub percent: Option<f32>,
}

/// Everything about one profile that serving reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    /// The history (any order; the recent 200 or so are plenty).
    pub plays: Vec<ProfilePlay>,
    /// Titles marked watched without a play.
    pub marked_watched: Vec<TitleId>,
    /// Feedback "up": counted like a completed play now.
    pub up: Vec<TitleId>,
    /// Feedback "down": never recommended (an episode blocks its show).
    pub down: Vec<TitleId>,
    /// Feedback "not interested": never recommended (an episode blocks its show).
    pub not_interested: Vec<TitleId>,
    /// Hidden titles (the caller resolves hidden_at against later events).
    pub hidden: Vec<TitleId>,
    /// Times each title was shown since the profile last played it.
    pub impressions: HashMap<TitleId, u32>,
    /// Maximum maturity (minimum age) allowed, if any (the profile's effective limit).
    pub maturity_limit: Option<u8>,
    /// Live co-watch counters of the profile's latest items, fresher than the model's: for
    /// these items they replace the model's co-watch neighbours.
    #[serde(default)]
    pub live_cowatch: Vec<LiveCoWatch>,
}

/// One item's live co-watch counters (as the store keeps them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCoWatch {
    /// The movie or series.
    pub item: TitleId,
    /// Times it entered a profile's window.
    pub count: u32,
    /// `(neighbour, times together, neighbour's own count)`.
    pub neighbours: Vec<(TitleId, u32, u32)>,
}

/// Feedback kinds (the REST body's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    /// Liked.
    Up,
    /// Disliked.
    Down,
    /// Do not show this.
    NotInterested,
}

/// Which row is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "row")]
pub enum RowKind {
    /// The blended row.
    Top,
    /// Neighbours of one watched title (default: the most recently watched).
    BecauseYouWatched {
        /// The anchor title (movie, series or episode); `None` for the latest positive.
        anchor: Option<TitleId>,
    },
    /// Trending now.
    Trending,
    /// Films only, scored like the top row: a row that needs films gets them by its own filter
    /// rather than by a cap cutting the top row.
    Films,
}

impl RowKind {
    /// Parse the `row` query value (`top`, `because-you-watched`, `films`, `trending`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "top" => Some(Self::Top),
            "because-you-watched" => Some(Self::BecauseYouWatched { anchor: None }),
            "trending" => Some(Self::Trending),
            "films" => Some(Self::Films),
            _ => None,
        }
    }
}

/// A request for one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRequest {
    /// The row.
    pub row: RowKind,
    /// At most this many titles.
    pub limit: usize,
    /// Allow titles already watched.
    pub rewatch: bool,
    /// The serving instant (availability, recency).
    pub now: Timestamp,
}

/// Why a title is recommended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The largest contribution came from this watched title (EASE or co-watch).
    BecauseYouWatched {
        /// The watched movie or series.
        title_id: TitleId,
        /// Its name.
        name: String,
    },
    /// The next episode of a series watched recently.
    NextEpisode {
        /// The series.
        series_id: TitleId,
        /// Its name.
        name: String,
    },
    /// The next episode of a series not watched for a while.
    ContinueSeries {
        /// The series.
        series_id: TitleId,
        /// Its name.
        name: String,
    },
    /// Popular recently.
    TrendingNow,
    /// Popular recently among titles of a genre the profile watches.
    PopularInGenre {
        /// The genre.
        genre: String,
    },
    /// A new title (no plays yet) sharing genres with a watched one.
    NewLike {
        /// The watched movie or series with the largest genre overlap term.
        title_id: TitleId,
        /// Its name.
        name: String,
    },
    /// Similar to the title asked about (`/titles/{id}/similar`).
    SimilarTo {
        /// The anchor.
        title_id: TitleId,
        /// Its name.
        name: String,
    },
}

impl Reason {
    /// The sentence a client shows.
    pub fn text(&self) -> String {
        match self {
            Reason::BecauseYouWatched { name, .. } => format!("Because you watched {name}"),
            Reason::NextEpisode { name, .. } => format!("Next episode of {name}"),
            Reason::ContinueSeries { name, .. } => format!("Continue {name}"),
            Reason::TrendingNow => "Trending now".to_owned(),
            Reason::PopularInGenre { genre } => format!("Popular in {genre}"),
            Reason::NewLike { name, .. } => format!("New, and like {name}"),
            Reason::SimilarTo { name, .. } => format!("Similar to {name}"),
        }
    }
}

/// One recommended title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The title to play (a movie or an episode).
    pub title_id: TitleId,
    /// The movie or series it stands for.
    pub item_id: TitleId,
    /// Display name of the item.
    pub name: String,
    /// Blended score (comparable within one response only).
    pub score: f64,
    /// Why.
    pub reason: Reason,
}

/// A model joined to a catalog, ready to serve. Immutable; build a new one to swap in a new
/// model, catalog or co-watch index (construction is linear in the model's size).
#[derive(Debug, Clone)]
pub struct Recommender {
    model: Arc<Model>,
    catalog: Arc<Catalog>,
    ease: Vec<Vec<(ItemIdx, f32)>>,
    cowatch: Vec<Vec<(ItemIdx, f32)>>,
    popularity: Vec<u32>,
    cold: Vec<ItemIdx>,
    /// Items with plays but outside the dense EASE solve (large-catalog fallback).
    tail: Vec<bool>,
    has_tail: bool,
}

/// A profile resolved against the catalog.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    pub plays: Vec<Play>,
    pub up: Vec<ItemIdx>,
    pub blocked_items: HashSet<ItemIdx>,
    pub blocked_titles: HashSet<TitleIdx>,
    pub marked: HashSet<TitleIdx>,
    pub impressions: HashMap<TitleIdx, u32>,
    pub maturity_limit: Option<u8>,
    /// Live co-watch neighbours (cosine) of some items, replacing the model's for them.
    pub live_cowatch: HashMap<ItemIdx, Vec<(ItemIdx, f32)>>,
}

/// Per-candidate source scores.
#[derive(Debug, Clone, Copy, Default)]
struct Cand {
    ease: f64,
    ease_top: f64,
    ease_by: Option<ItemIdx>,
    cw: f64,
    cw_top: f64,
    cw_by: Option<ItemIdx>,
    trend: f64,
    gpop: f64,
    gpop_genre: Option<usize>,
    new: f64,
    new_top: f64,
    new_by: Option<ItemIdx>,
    next: f64,
    next_title: Option<TitleIdx>,
    next_stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    Next,
    Ease,
    CoWatch,
    Trend,
    GenrePop,
    New,
}

/// A scored candidate in the lazy ranking of [`Recommender::finish`]: highest score first, then
/// lowest item index (so ties break the same way every time).
#[derive(Debug, Clone, Copy)]
struct Ranked {
    score: f64,
    item: ItemIdx,
    title: Option<TitleIdx>,
    term: Term,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.item.cmp(&self.item))
    }
}

/// The profile's history as the sources read it.
struct History {
    /// Positive items with their weight and last positive play.
    positives: Vec<(ItemIdx, f64, i64)>,
    /// Items with any play (excluded from discovery sources unless rewatch).
    played_items: HashSet<ItemIdx>,
    /// Titles with any play or marked watched.
    watched: HashSet<TitleIdx>,
    positive_titles: HashSet<TitleIdx>,
    /// Genre weights (lower-cased genre -> weight; names kept for reasons).
    genres: Vec<(String, f64)>,
}

fn jaccard(a: u64, b: u64) -> f64 {
    let u = (a | b).count_ones();
    if u == 0 { 0.0 } else { f64::from((a & b).count_ones()) / f64::from(u) }
}

impl Recommender {
    /// Join a model to a catalog (items the catalog no longer has are dropped).
    pub fn new(model: Arc<Model>, catalog: Arc<Catalog>) -> Self {
        let n = catalog.items().len();
        let map: Vec<Option<ItemIdx>> = model.items.iter().map(|id| catalog.item_idx(id.as_str())).collect();
        let remap = |lists: &[Vec<(u32, f32)>]| {
            let mut out = vec![Vec::new(); n];
            for (j, row) in lists.iter().enumerate() {
                if let Some(Some(cj)) = map.get(j) {
                    out[*cj as usize] = row
                        .iter()
                        .filter_map(|&(i, w)| map.get(i as usize).copied().flatten().map(|ci| (ci, w)))
                        .collect();
                }
            }
            out
        };
        let ease = remap(&model.ease);
        let cowatch = remap(&model.cowatch);
        let mut popularity = vec![0u32; n];
        for (j, p) in model.popularity.iter().enumerate() {
            if let Some(Some(cj)) = map.get(j) {
                popularity[*cj as usize] = *p;
            }
        }
        // New titles: no plays yet, newest first, at most COLD_CANDIDATES of them so a catalog
        // with many never-watched titles cannot make every request scan them all.
        let mut cold: Vec<ItemIdx> = (0..n as ItemIdx).filter(|&i| popularity[i as usize] == 0).collect();
        cold.sort_by_key(|&i| (std::cmp::Reverse(catalog.items()[i as usize].available_from), i));
        cold.truncate(COLD_CANDIDATES);
        let mut tail = vec![false; n];
        for (j, m) in map.iter().enumerate() {
            if let Some(cj) = m {
                tail[*cj as usize] = j >= model.meta.dense_items;
            }
        }
        let has_tail = tail.iter().any(|t| *t);
        Self { model, catalog, ease, cowatch, popularity, cold, tail, has_tail }
    }

    /// Replace the co-watch neighbours with a fresher index (built from live counters).
    pub fn with_cowatch(mut self, index: &CoWatchIndex) -> Self {
        let map: Vec<Option<ItemIdx>> =
            index.items.iter().map(|id| self.catalog.item_idx(id.as_str())).collect();
        let mut out = vec![Vec::new(); self.catalog.items().len()];
        for (j, row) in index.neighbours.iter().enumerate() {
            if let Some(Some(cj)) = map.get(j) {
                out[*cj as usize] = row
                    .iter()
                    .filter_map(|&(i, w)| map.get(i as usize).copied().flatten().map(|ci| (ci, w)))
                    .collect();
            }
        }
        self.cowatch = out;
        self
    }

    /// The model served.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The catalog served.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Profiles in training that had a positive on this item.
    pub fn popularity(&self, item: ItemIdx) -> u32 {
        self.popularity.get(item as usize).copied().unwrap_or(0)
    }

    /// One row for a profile, with the model's blend.
    pub fn recommend(
        &self,
        profile: &ProfileState,
        req: &RowRequest,
        trending: &TrendingSnapshot,
    ) -> Vec<Recommendation> {
        self.recommend_with(profile, req, trending, &self.model.config.blend)
    }

    /// One row for a profile, with an explicit blend (evaluation compares blends this way).
    pub fn recommend_with(
        &self,
        profile: &ProfileState,
        req: &RowRequest,
        trending: &TrendingSnapshot,
        blend: &BlendConfig,
    ) -> Vec<Recommendation> {
        let r = self.resolve(profile);
        self.row(&r, req, trending, blend)
    }

    pub(crate) fn resolve(&self, p: &ProfileState) -> Resolved {
        let c = &self.catalog;
        let mut plays: Vec<Play> = p
            .plays
            .iter()
            .filter_map(|pl| {
                let t = c.title_idx(pl.title_id.as_str())?;
                Some(Play {
                    title: t,
                    item: c.item_of_title(t),
                    at: pl.at.0,
                    positive: is_positive(pl.percent),
                    percent: pl.percent,
                })
            })
            .collect();
        plays.sort_by_key(|p| p.at);
        let items = |ids: &[TitleId]| -> Vec<ItemIdx> {
            ids.iter().filter_map(|id| c.title_idx(id.as_str())).map(|t| c.item_of_title(t)).collect()
        };
        let titles = |ids: &[TitleId]| -> Vec<TitleIdx> {
            ids.iter().filter_map(|id| c.title_idx(id.as_str())).collect()
        };
        let mut blocked_items: HashSet<ItemIdx> =
            items(&p.down).into_iter().chain(items(&p.not_interested)).collect();
        let mut blocked_titles: HashSet<TitleIdx> = titles(&p.hidden).into_iter().collect();
        // Hiding a movie or a whole series hides the item; hiding an episode hides that episode.
        for t in titles(&p.hidden) {
            if c.titles()[t as usize].kind != TitleKind::Episode {
                blocked_items.insert(c.item_of_title(t));
            }
        }
        blocked_titles.extend(titles(&p.down));
        blocked_titles.extend(titles(&p.not_interested));
        Resolved {
            plays,
            up: items(&p.up),
            blocked_items,
            blocked_titles,
            marked: titles(&p.marked_watched).into_iter().collect(),
            impressions: p
                .impressions
                .iter()
                .filter_map(|(id, n)| c.title_idx(id.as_str()).map(|t| (t, *n)))
                .collect(),
            maturity_limit: p.maturity_limit,
            live_cowatch: p
                .live_cowatch
                .iter()
                .filter_map(|l| {
                    let a = c.item_idx(l.item.as_str())?;
                    let shrink = self.model.config.cowatch_shrink;
                    let mut row: Vec<(ItemIdx, f32)> = l
                        .neighbours
                        .iter()
                        .filter_map(|(b, together, own)| {
                            let b = c.item_idx(b.as_str())?;
                            let s = cosine(f64::from(*together), f64::from(l.count), f64::from(*own), shrink);
                            (s > 0.0 && b != a).then_some((b, s as f32))
                        })
                        .collect();
                    sort_desc_truncate(&mut row, self.model.config.cowatch_top_k);
                    Some((a, row))
                })
                .collect(),
        }
    }

    /// An item EASE has no weights for (beyond the dense head, or newer than the model): co-watch
    /// stands in for EASE there.
    fn ease_blind(&self, i: ItemIdx) -> bool {
        self.tail.get(i as usize).copied().unwrap_or(false) || self.popularity(i) == 0
    }

    /// Co-watch neighbours of `j`: the live ones when the request carries them, else the model's.
    fn cowatch_of<'a>(&'a self, r: &'a Resolved, j: ItemIdx) -> &'a [(ItemIdx, f32)] {
        r.live_cowatch.get(&j).map_or(self.cowatch[j as usize].as_slice(), Vec::as_slice)
    }

    fn history(&self, r: &Resolved, now: i64, blend: &BlendConfig) -> History {
        let hl = blend.history_half_life_days.map(|d| (d * DAY_MS) as i64);
        let mut last: HashMap<ItemIdx, i64> = HashMap::new();
        let mut played_items = HashSet::new();
        let mut watched: HashSet<TitleIdx> = r.marked.clone();
        let mut positive_titles = HashSet::new();
        for p in &r.plays {
            played_items.insert(p.item);
            watched.insert(p.title);
            if p.positive {
                positive_titles.insert(p.title);
                let e = last.entry(p.item).or_insert(p.at);
                *e = (*e).max(p.at);
            }
        }
        for &i in &r.up {
            last.insert(i, now);
        }
        for i in &r.blocked_items {
            last.remove(i);
        }
        let mut positives: Vec<(ItemIdx, f64, i64)> =
            last.into_iter().map(|(i, at)| (i, decay_factor((now - at).max(0), hl), at)).collect();
        positives.sort_by_key(|p| (std::cmp::Reverse(p.2), p.0));
        let mut g: HashMap<String, (String, f64)> = HashMap::new();
        for &(i, w, _) in &positives {
            let it = &self.catalog.items()[i as usize];
            for name in &it.genres {
                g.entry(name.to_lowercase()).or_insert_with(|| (name.clone(), 0.0)).1 += w;
            }
        }
        let mut genres: Vec<(String, f64)> = g.into_values().collect();
        genres.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        History { positives, played_items, watched, positive_titles, genres }
    }

    pub(crate) fn row(
        &self,
        r: &Resolved,
        req: &RowRequest,
        trending: &TrendingSnapshot,
        blend: &BlendConfig,
    ) -> Vec<Recommendation> {
        let h = self.history(r, req.now.0, blend);
        match &req.row {
            RowKind::Top => {
                // Cold start: with no positive yet, the top row is trending whatever the weights.
                let cold;
                let blend = if h.positives.is_empty() && blend.w_trending <= 0.0 {
                    cold = BlendConfig { w_trending: 1.0, ..blend.clone() };
                    &cold
                } else {
                    blend
                };
                let cands = self.top_candidates(&h, r, req, trending, blend);
                self.finish(cands, &h, r, req, blend, None)
            }
            RowKind::Films => {
                // The top row's sources, movies only (so no next episode); a profile with no
                // positive yet gets trending films.
                let films = BlendConfig {
                    w_next: 0.0,
                    w_trending: if h.positives.is_empty() {
                        blend.w_trending.max(1.0)
                    } else {
                        blend.w_trending
                    },
                    ..blend.clone()
                };
                let mut cands = self.top_candidates(&h, r, req, trending, &films);
                cands.retain(|&i, _| self.catalog.items()[i as usize].kind == TitleKind::Movie);
                self.finish(cands, &h, r, req, &films, None)
            }
            RowKind::Trending => {
                let mut cands = HashMap::new();
                self.add_trending(&mut cands, &h, req, trending, blend.trending_top_n, None);
                let only = BlendConfig { w_trending: 1.0, ..Self::neighbour_blend(blend) };
                self.finish(cands, &h, r, req, &only, None)
            }
            RowKind::BecauseYouWatched { anchor } => {
                let a = match anchor {
                    Some(id) => self.catalog.title_idx(id.as_str()).map(|t| self.catalog.item_of_title(t)),
                    None => h.positives.first().map(|p| p.0),
                };
                let Some(a) = a else { return Vec::new() };
                let cands = self.neighbour_candidates(a, r, |i| req.rewatch || !h.played_items.contains(&i));
                self.finish(cands, &h, r, req, &Self::neighbour_blend(blend), Some(a))
            }
        }
    }

    /// Weights for the rows that are not the top row: EASE first, co-watch second, genre overlap
    /// only for an anchor without plays (trending is added by the trending row). Fixed rather than
    /// the top row's tuned weights, so a tuning that drops a source cannot empty these rows. No
    /// genre cap: these rows are about one anchor (or one list), and the top row's cap is the top
    /// row's choice, not theirs.
    fn neighbour_blend(blend: &BlendConfig) -> BlendConfig {
        BlendConfig {
            w_next: 0.0,
            w_ease: 1.0,
            w_cowatch: 0.5,
            w_trending: 0.0,
            w_genre_pop: 0.0,
            w_new: 1.0,
            max_per_genre_pct: 100.0,
            ..blend.clone()
        }
    }

    fn eligible(h: &History, req: &RowRequest, i: ItemIdx) -> bool {
        req.rewatch || !h.played_items.contains(&i)
    }

    fn add_trending(
        &self,
        cands: &mut HashMap<ItemIdx, Cand>,
        h: &History,
        req: &RowRequest,
        trending: &TrendingSnapshot,
        top_n: usize,
        genre_pop: Option<&[(String, f64)]>,
    ) {
        let max = trending.scores.first().map_or(0.0, |s| s.1);
        if max <= 0.0 {
            return;
        }
        let gsum: f64 = genre_pop.map_or(0.0, |g| g.iter().map(|x| x.1).sum());
        for (id, s) in trending.scores.iter().take(top_n) {
            let Some(i) = self.catalog.item_idx(id.as_str()) else { continue };
            if !Self::eligible(h, req, i) {
                continue;
            }
            let c = cands.entry(i).or_default();
            c.trend = s / max;
            if let Some(g) = genre_pop.filter(|_| gsum > 0.0) {
                // Affinity: the share of the profile's genre weight this item's genres carry.
                let it = &self.catalog.items()[i as usize];
                let best = g
                    .iter()
                    .enumerate()
                    .filter(|(_, (name, _))| it.genres.iter().any(|x| x.eq_ignore_ascii_case(name)))
                    .max_by(|a, b| a.1.1.total_cmp(&b.1.1));
                if let Some((gi, (_, w))) = best {
                    c.gpop = c.trend * w / gsum;
                    c.gpop_genre = Some(gi);
                }
            }
        }
    }

    fn top_candidates(
        &self,
        h: &History,
        r: &Resolved,
        req: &RowRequest,
        trending: &TrendingSnapshot,
        blend: &BlendConfig,
    ) -> HashMap<ItemIdx, Cand> {
        let mut cands: HashMap<ItemIdx, Cand> = HashMap::new();
        let elig = |i: ItemIdx| Self::eligible(h, req, i);
        for &(j, w, _) in &h.positives {
            if blend.w_ease > 0.0 {
                for &(i, b) in &self.ease[j as usize] {
                    if elig(i) {
                        let c = cands.entry(i).or_default();
                        let t = w * f64::from(b);
                        c.ease += t;
                        if t > c.ease_top {
                            c.ease_top = t;
                            c.ease_by = Some(j);
                        }
                    }
                }
            }
            // Co-watch runs for its own weight, and always for items EASE cannot score (the tail
            // of a large catalog, titles newer than the model reached by live counters): there it
            // stands in for EASE (see `finish`).
            if blend.w_cowatch > 0.0 || self.has_tail || !r.live_cowatch.is_empty() {
                for &(i, s) in self.cowatch_of(r, j) {
                    if elig(i) && (blend.w_cowatch > 0.0 || self.ease_blind(i)) {
                        let c = cands.entry(i).or_default();
                        let t = w * f64::from(s);
                        c.cw += t;
                        if t > c.cw_top {
                            c.cw_top = t;
                            c.cw_by = Some(j);
                        }
                    }
                }
            }
        }
        if blend.w_trending > 0.0 || blend.w_genre_pop > 0.0 {
            let g = (blend.w_genre_pop > 0.0).then_some(h.genres.as_slice());
            self.add_trending(&mut cands, h, req, trending, blend.trending_top_n, g);
        }
        if blend.w_new > 0.0 && !h.positives.is_empty() {
            for &i in &self.cold {
                let it = &self.catalog.items()[i as usize];
                if !elig(i) || it.genre_mask == 0 {
                    continue;
                }
                let mut sum = 0.0;
                let mut top = (0.0, None);
                for &(j, w, _) in &h.positives {
                    let t = w * jaccard(self.catalog.items()[j as usize].genre_mask, it.genre_mask);
                    sum += t;
                    if t > top.0 {
                        top = (t, Some(j));
                    }
                }
                if sum > 0.0 {
                    let c = cands.entry(i).or_default();
                    (c.new, c.new_top, c.new_by) = (sum, top.0, top.1);
                }
            }
        }
        if blend.w_next > 0.0 {
            let nhl = blend.next_half_life_days.map(|d| (d * DAY_MS) as i64);
            // "Continue" rather than "Next episode" past the half-life (30 days without one).
            let stale_ms = blend.next_half_life_days.unwrap_or(STALE_DAYS) * DAY_MS;
            for &(j, _, at) in &h.positives {
                if self.catalog.items()[j as usize].kind != TitleKind::Series {
                    continue;
                }
                let next = self.catalog.next_episode(
                    j,
                    req.now,
                    |t| h.positive_titles.contains(&t),
                    |t| h.watched.contains(&t),
                );
                if let Some(t) = next {
                    let c = cands.entry(j).or_default();
                    let age = (req.now.0 - at).max(0);
                    c.next = decay_factor(age, nhl);
                    c.next_title = Some(t);
                    c.next_stale = age as f64 > stale_ms;
                }
            }
        }
        cands
    }

    /// Candidates around one anchor item: its EASE and co-watch neighbours, or for an item with
    /// no plays, the items sharing most genres.
    fn neighbour_candidates(
        &self,
        a: ItemIdx,
        r: &Resolved,
        elig: impl Fn(ItemIdx) -> bool,
    ) -> HashMap<ItemIdx, Cand> {
        let mut cands: HashMap<ItemIdx, Cand> = HashMap::new();
        for &(i, b) in &self.ease[a as usize] {
            if i != a && elig(i) {
                let c = cands.entry(i).or_default();
                (c.ease, c.ease_top, c.ease_by) = (f64::from(b), f64::from(b), Some(a));
            }
        }
        for &(i, s) in self.cowatch_of(r, a) {
            if i != a && elig(i) {
                let c = cands.entry(i).or_default();
                (c.cw, c.cw_top, c.cw_by) = (f64::from(s), f64::from(s), Some(a));
            }
        }
        let mask = self.catalog.items()[a as usize].genre_mask;
        if cands.is_empty() && mask != 0 {
            // A title without plays: genre overlap, popular titles first among equals.
            for (i, it) in self.catalog.items().iter().enumerate() {
                let i = i as ItemIdx;
                let j = jaccard(mask, it.genre_mask);
                if i != a && j > 0.0 && elig(i) {
                    let c = cands.entry(i).or_default();
                    let t = j * (1.0 + f64::from(self.popularity(i))).ln_1p();
                    (c.new, c.new_top, c.new_by) = (t, t, Some(a));
                }
            }
        }
        cands
    }

    /// Titles similar to one title, for `GET /titles/{id}/similar` (no profile: nothing excluded
    /// but the title itself, maturity and availability).
    pub fn similar(
        &self,
        title_id: &str,
        limit: usize,
        maturity_limit: Option<u8>,
        now: Timestamp,
    ) -> Vec<Recommendation> {
        let Some(t) = self.catalog.title_idx(title_id) else { return Vec::new() };
        let a = self.catalog.item_of_title(t);
        let cands = self.neighbour_candidates(a, &Resolved::default(), |_| true);
        let h = History {
            positives: Vec::new(),
            played_items: HashSet::new(),
            watched: HashSet::new(),
            positive_titles: HashSet::new(),
            genres: Vec::new(),
        };
        let r = Resolved { maturity_limit, ..Resolved::default() };
        let req = RowRequest { row: RowKind::Top, limit, rewatch: false, now };
        let blend = Self::neighbour_blend(&self.model.config.blend);
        let mut out = self.finish(cands, &h, &r, &req, &blend, Some(a));
        let (aid, name) =
            (self.catalog.items()[a as usize].id.clone(), self.catalog.items()[a as usize].name.clone());
        for rec in &mut out {
            rec.reason = Reason::SimilarTo { title_id: aid.clone(), name: name.clone() };
        }
        out
    }

    /// Blend, explain, map to playable titles, filter, sink, diversify, cut.
    ///
    /// Mapping a candidate to its playable title and filtering it is the costly step, so it runs
    /// lazily, best blended score first: a candidate is emitted once its (impression-sunk) score
    /// is at least the best score not yet examined. Sinking only lowers scores, so the row is
    /// exactly the one a full sort of sunk scores would give.
    fn finish(
        &self,
        cands: HashMap<ItemIdx, Cand>,
        h: &History,
        r: &Resolved,
        req: &RowRequest,
        blend: &BlendConfig,
        anchor: Option<ItemIdx>,
    ) -> Vec<Recommendation> {
        let c = &self.catalog;
        let max = |f: fn(&Cand) -> f64| cands.values().map(f).fold(0.0, f64::max);
        let norm = |x: f64, m: f64| if m > 0.0 { x / m } else { 0.0 };
        let (me, mc, mg, mn) = (max(|c| c.ease), max(|c| c.cw), max(|c| c.gpop), max(|c| c.new));
        let mut unseen: BinaryHeap<Ranked> = cands
            .iter()
            .filter_map(|(&i, cd)| {
                let terms = [
                    (Term::Next, blend.w_next * cd.next),
                    (Term::Ease, blend.w_ease * norm(cd.ease, me)),
                    (Term::CoWatch, self.cowatch_weight(i, blend) * norm(cd.cw, mc)),
                    (Term::Trend, blend.w_trending * cd.trend),
                    (Term::GenrePop, blend.w_genre_pop * norm(cd.gpop, mg)),
                    (Term::New, blend.w_new * norm(cd.new, mn)),
                ];
                let score: f64 = terms.iter().map(|t| t.1).sum();
                let top = terms.iter().max_by(|a, b| a.1.total_cmp(&b.1))?.0;
                (score > 0.0).then_some(Ranked { score, item: i, title: None, term: top })
            })
            .collect();
        let mut pending: BinaryHeap<Ranked> = BinaryHeap::new();
        let cap = ((req.limit as f64 * blend.max_per_genre_pct / 100.0).ceil() as usize).max(1);
        let mut per_genre: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(req.limit);
        while out.len() < req.limit {
            // Ranked's order (score, then item index) decides ties exactly as a full sort would.
            if pending.peek().is_some_and(|p| unseen.peek().is_none_or(|u| p >= u)) {
                let Some(p) = pending.pop() else { break };
                let (Some(t), it) = (p.title, &c.items()[p.item as usize]) else { continue };
                if let Some(g) = it.genres.first() {
                    let n = per_genre.entry(g.to_lowercase()).or_default();
                    if *n >= cap {
                        continue;
                    }
                    *n += 1;
                }
                let cd = cands.get(&p.item).copied().unwrap_or_default();
                out.push(Recommendation {
                    title_id: c.titles()[t as usize].id.clone(),
                    item_id: it.id.clone(),
                    name: it.name.clone(),
                    score: p.score,
                    reason: self.reason(p.item, &cd, p.term, anchor, h),
                });
                continue;
            }
            let Some(mut x) = unseen.pop() else { break };
            let cd = cands.get(&x.item).copied().unwrap_or_default();
            // The playable title: the next episode when the show is in progress, else the first
            // unwatched one.
            let playable = match cd.next_title {
                Some(t) => Some(t),
                None => c.playable(x.item, req.now, req.rewatch, |t| h.watched.contains(&t)),
            };
            let Some(t) = playable.filter(|&t| self.allowed(t, x.item, h, r, req)) else { continue };
            let shown = r.impressions.get(&t).copied().unwrap_or(0);
            if shown > blend.impressions_free {
                let halvings =
                    f64::from(shown - blend.impressions_free) / f64::from(blend.impressions_halving.max(1));
                x.score *= 0.5f64.powf(halvings);
            }
            x.title = Some(t);
            pending.push(x);
        }
        out
    }

    /// The reason for one emitted candidate, from its largest weighted term.
    fn reason(&self, i: ItemIdx, cd: &Cand, top: Term, anchor: Option<ItemIdx>, h: &History) -> Reason {
        let item_ref = |j: Option<ItemIdx>| {
            let it = &self.catalog.items()[j.unwrap_or(i) as usize];
            (it.id.clone(), it.name.clone())
        };
        match (anchor, top) {
            (Some(a), _) => {
                let (title_id, name) = item_ref(Some(a));
                Reason::BecauseYouWatched { title_id, name }
            }
            (None, Term::Next) => {
                let (series_id, name) = item_ref(Some(i));
                if cd.next_stale {
                    Reason::ContinueSeries { series_id, name }
                } else {
                    Reason::NextEpisode { series_id, name }
                }
            }
            (None, Term::Ease) => {
                let (title_id, name) = item_ref(cd.ease_by);
                Reason::BecauseYouWatched { title_id, name }
            }
            (None, Term::CoWatch) => {
                let (title_id, name) = item_ref(cd.cw_by);
                Reason::BecauseYouWatched { title_id, name }
            }
            (None, Term::Trend) => Reason::TrendingNow,
            (None, Term::GenrePop) => match cd.gpop_genre.and_then(|g| h.genres.get(g)) {
                Some((genre, _)) => Reason::PopularInGenre { genre: genre.clone() },
                None => Reason::TrendingNow,
            },
            (None, Term::New) => {
                let (title_id, name) = item_ref(cd.new_by);
                Reason::NewLike { title_id, name }
            }
        }
    }

    /// Co-watch's weight for an item: EASE's for an item EASE has no weights for, else its own.
    fn cowatch_weight(&self, i: ItemIdx, blend: &BlendConfig) -> f64 {
        if self.ease_blind(i) { blend.w_cowatch.max(blend.w_ease) } else { blend.w_cowatch }
    }

    /// The filters every row obeys (module docs).
    fn allowed(&self, t: TitleIdx, i: ItemIdx, h: &History, r: &Resolved, req: &RowRequest) -> bool {
        let c = &self.catalog;
        (req.rewatch || !h.watched.contains(&t))
            && !r.blocked_titles.contains(&t)
            && !r.blocked_items.contains(&i)
            && r.maturity_limit.is_none_or(|m| c.maturity_of(t) <= m)
            && c.is_available(t, req.now)
            && c.titles()[t as usize].kind != TitleKind::Series
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::{episode, movie, series};
    use crate::data::Interaction;
    use crate::dataset::Dataset;
    use crate::model::{TrainConfig, train};
    use playhead_core::title::Title;
    use rand::{Rng, SeedableRng};

    const DAY: i64 = 86_400_000;
    const NOW: Timestamp = Timestamp(100 * DAY);

    fn id(s: &str) -> TitleId {
        TitleId::parse(s).unwrap()
    }

    fn play(t: &str, day: i64) -> ProfilePlay {
        ProfilePlay { title_id: id(t), at: Timestamp(day * DAY), percent: Some(100.0) }
    }

    /// A small world: drama movies d0-d5, comedy movies c0-c5, an adult thriller, a show with
    /// three episodes, a title not out yet and a new drama nobody has played.
    fn fixture() -> (Recommender, TrendingSnapshot) {
        fixture_with(TrainConfig { lambda: 5.0, ease_top_k: 1000, ..TrainConfig::default() })
    }

    fn fixture_with(config: TrainConfig) -> (Recommender, TrendingSnapshot) {
        // These tests pin the blend: no self-tuning on the fixture's handful of profiles.
        let config =
            TrainConfig { tune: crate::tune::TuneConfig { enabled: false, ..Default::default() }, ..config };
        let mut titles: Vec<Title> = Vec::new();
        for i in 0..6 {
            titles.push(movie(&format!("d{i}"), &["Drama"], 0));
            titles.push(movie(&format!("c{i}"), &["Comedy"], 0));
        }
        titles.push(movie("x18", &["Thriller", "Drama"], 18));
        titles.push(series("show", &["Drama"], 0));
        for e in 1..=3 {
            titles.push(episode("show", 1, e));
        }
        let mut future = movie("future", &["Drama"], 0);
        future.available_from = Some(Timestamp(NOW.0 + DAY));
        titles.push(future);
        titles.push(movie("newdrama", &["Drama"], 0));
        let catalog = Arc::new(Catalog::new(titles));
        // Drama fans watch dramas (and the show, and the adult thriller); comedy fans comedies.
        let mut rows = Vec::new();
        let mut push = |p: String, t: &str, day: i64| {
            rows.push(Interaction {
                profile_id: p,
                title_id: id(t),
                watched_at: Timestamp(day * DAY),
                percent: None,
            });
        };
        for u in 0..30 {
            let p = format!("drama{u}");
            for i in 0..6 {
                if (u + i) % 3 != 0 {
                    push(p.clone(), &format!("d{i}"), 10 + i as i64);
                }
            }
            push(p.clone(), "show.s01e01", 20);
            if u % 2 == 0 {
                push(p.clone(), "x18", 21);
                push(p.clone(), "future", 22);
            }
            let q = format!("comedy{u}");
            for i in 0..6 {
                if (u + i) % 3 != 1 {
                    push(q.clone(), &format!("c{i}"), 10 + i as i64);
                }
            }
        }
        let ds = Dataset::new(&rows, &catalog);
        let model = train(&ds, &catalog, &config, NOW).unwrap();
        let trending = TrendingSnapshot::from_scores(
            NOW,
            [("c0", 9.0), ("x18", 8.0), ("d0", 7.0), ("c1", 6.0), ("future", 5.0)].map(|(t, s)| (id(t), s)),
            100,
        );
        (Recommender::new(Arc::new(model), catalog), trending)
    }

    fn top(limit: usize) -> RowRequest {
        RowRequest { row: RowKind::Top, limit, rewatch: false, now: NOW }
    }

    fn ids(recs: &[Recommendation]) -> Vec<&str> {
        recs.iter().map(|r| r.title_id.as_str()).collect()
    }

    #[test]
    fn a_drama_fan_gets_dramas_and_the_next_episode_first() {
        let (rec, trending) = fixture();
        let p = ProfileState {
            plays: vec![play("d0", 95), play("d1", 96), play("show.s01e01", 97)],
            ..Default::default()
        };
        let recs = rec.recommend(&p, &top(5), &trending);
        assert_eq!(recs[0].title_id.as_str(), "show.s01e02");
        assert_eq!(recs[0].reason, Reason::NextEpisode { series_id: id("show"), name: "SHOW".into() });
        assert_eq!(recs[0].reason.text(), "Next episode of SHOW");
        let cat = rec.catalog();
        let drama = |r: &Recommendation| {
            cat.items()[cat.item_idx(r.item_id.as_str()).unwrap() as usize]
                .genres
                .iter()
                .any(|g| g == "Drama")
        };
        assert!(recs[1..4].iter().all(drama), "{:?}", ids(&recs));
        assert!(recs.iter().all(|r| !["d0", "d1", "show.s01e01"].contains(&r.title_id.as_str())));
    }

    #[test]
    fn the_named_title_is_the_largest_ease_contribution() {
        let (rec, trending) = fixture();
        let p = ProfileState {
            plays: vec![play("d0", 50), play("d2", 51), play("c1", 52), play("x18", 53)],
            ..Default::default()
        };
        let blend = BlendConfig::only(Source::Ease);
        let recs = rec.recommend_with(&p, &top(8), &trending, &blend);
        assert!(!recs.is_empty());
        let cat = rec.catalog();
        let watched: Vec<ItemIdx> =
            ["d0", "d2", "c1", "x18"].iter().map(|t| cat.item_idx(t).unwrap()).collect();
        for r in &recs {
            let i = cat.item_idx(r.item_id.as_str()).unwrap();
            let contrib = |j: ItemIdx| rec.ease[j as usize].iter().find(|x| x.0 == i).map_or(0.0, |x| x.1);
            let best = watched.iter().copied().max_by(|a, b| contrib(*a).total_cmp(&contrib(*b))).unwrap();
            let Reason::BecauseYouWatched { title_id, .. } = &r.reason else { panic!("{:?}", r.reason) };
            assert_eq!(title_id, &cat.items()[best as usize].id, "for {}", r.title_id);
            // And the score is exactly the sum of the contributions, scaled by the row's maximum.
            let sum: f64 = watched.iter().map(|&j| f64::from(contrib(j))).sum();
            assert!(sum > 0.0);
        }
    }

    #[test]
    fn the_tail_of_a_large_catalog_is_reached_through_co_watch() {
        // Only 3 items get a dense EASE solve (the show, d0, c0); every other title is tail.
        let (rec, trending) =
            fixture_with(TrainConfig { lambda: 5.0, max_dense_items: 3, ..TrainConfig::default() });
        assert!(rec.model().meta.fallback);
        let p = ProfileState { plays: vec![play("c0", 99)], ..Default::default() };
        let blend = BlendConfig {
            w_cowatch: 0.0,
            w_trending: 0.0,
            w_genre_pop: 0.0,
            max_per_genre_pct: 100.0,
            ..BlendConfig::default()
        };
        let recs = rec.recommend_with(&p, &top(4), &trending, &blend);
        let tail: Vec<&Recommendation> =
            recs.iter().filter(|r| r.title_id.as_str() > "c0" && r.title_id.as_str() < "d").collect();
        assert!(tail.len() >= 3, "{:?}", ids(&recs));
        assert!(
            tail.iter()
                .all(|r| r.reason == Reason::BecauseYouWatched { title_id: id("c0"), name: "C0".into() })
        );
    }

    #[test]
    fn filters_never_leak() {
        let (rec, trending) = fixture();
        let base =
            ProfileState { plays: vec![play("d0", 50), play("show.s01e01", 52)], ..Default::default() };
        let all = rec.recommend(&base, &top(20), &trending);
        let shown = ids(&all);
        for must in ["show.s01e02", "x18", "d1"] {
            assert!(shown.contains(&must), "fixture must surface {must}: {shown:?}");
        }
        assert!(!shown.contains(&"future"), "not yet available");
        assert!(!shown.contains(&"d0"), "watched");
        let blocked = ProfileState {
            hidden: vec![id("d1")],
            not_interested: vec![id("show.s01e02")],
            down: vec![id("d2")],
            maturity_limit: Some(16),
            ..base.clone()
        };
        for row in [
            RowKind::Top,
            RowKind::Trending,
            RowKind::BecauseYouWatched { anchor: None },
            RowKind::BecauseYouWatched { anchor: Some(id("d0")) },
        ] {
            let req = RowRequest { row: row.clone(), limit: 20, rewatch: false, now: NOW };
            let got = rec.recommend(&blocked, &req, &trending);
            for r in &got {
                let t = r.title_id.as_str();
                assert!(
                    !["d0", "d1", "d2", "x18", "future", "show.s01e01"].contains(&t),
                    "{row:?} leaked {t}"
                );
                assert_ne!(r.item_id.as_str(), "show", "not interested in an episode blocks the show");
            }
        }
        // Rewatch lets a watched title back, but never a blocked or too-mature one.
        let req = RowRequest { rewatch: true, ..top(20) };
        let got = rec.recommend(&blocked, &req, &trending);
        assert!(ids(&got).contains(&"d0"));
        assert!(!ids(&got).iter().any(|t| ["d1", "d2", "x18"].contains(t)));
    }

    #[test]
    fn filters_hold_for_random_profiles_on_generated_data() {
        let s = crate::synth::generate(
            11,
            &crate::synth::SynthScale {
                profiles: 150,
                movies: 80,
                series: 10,
                days: 60,
                oracle: false,
                ..Default::default()
            },
        )
        .unwrap();
        let titles: Vec<Title> = s.catalog.iter().cloned().map(|t| t.validate().unwrap()).collect();
        let catalog = Arc::new(Catalog::new(titles));
        let ds = Dataset::new(&s.interactions, &catalog);
        let model = train(&ds, &catalog, &TrainConfig::default(), NOW).unwrap();
        let rec = Recommender::new(Arc::new(model), Arc::clone(&catalog));
        let trending = TrendingSnapshot::from_scores(
            Timestamp(0),
            catalog.items().iter().enumerate().map(|(i, it)| (it.id.clone(), 1.0 + i as f64)),
            300,
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let end = ds.end();
        for (p, plays) in ds.plays.iter().enumerate().take(60) {
            let state = ProfileState {
                plays: plays
                    .iter()
                    .map(|pl| ProfilePlay {
                        title_id: catalog.titles()[pl.title as usize].id.clone(),
                        at: Timestamp(pl.at),
                        percent: pl.percent,
                    })
                    .collect(),
                maturity_limit: Some([0, 7, 12, 16][p % 4]),
                ..Default::default()
            };
            let req = RowRequest { row: RowKind::Top, limit: 30, rewatch: false, now: end };
            let first = rec.recommend(&state, &req, &trending);
            // Block a random half of what was shown; none of it may come back.
            let mut blocked = state.clone();
            for r in &first {
                match rng.gen_range(0..4) {
                    0 => blocked.hidden.push(r.title_id.clone()),
                    1 => blocked.not_interested.push(r.title_id.clone()),
                    2 => blocked.down.push(r.title_id.clone()),
                    _ => {}
                }
            }
            let watched: HashSet<&str> = state.plays.iter().map(|p| p.title_id.as_str()).collect();
            for row in [RowKind::Top, RowKind::Trending, RowKind::BecauseYouWatched { anchor: None }] {
                let again = rec.recommend(&blocked, &RowRequest { row, ..req.clone() }, &trending);
                for r in &again {
                    let t = catalog.title_idx(r.title_id.as_str()).unwrap();
                    assert!(!watched.contains(r.title_id.as_str()));
                    assert!(catalog.maturity_of(t) <= state.maturity_limit.unwrap_or(21));
                    assert!(catalog.is_available(t, end));
                    assert!(!blocked.hidden.contains(&r.title_id));
                    for list in [&blocked.not_interested, &blocked.down] {
                        assert!(!list.iter().any(|b| catalog.item_id_of(b.as_str()) == Some(&r.item_id)));
                    }
                    assert_ne!(catalog.titles()[t as usize].kind, TitleKind::Series, "playable ids only");
                }
                let items: HashSet<&TitleId> = again.iter().map(|r| &r.item_id).collect();
                assert_eq!(items.len(), again.len(), "one title per show");
            }
        }
    }

    /// The lazy ranking of `finish` must equal the obvious one: map and filter every candidate,
    /// sink, sort by (score desc, item asc), apply the genre cap, cut.
    #[test]
    fn lazy_ranking_equals_a_full_sort() {
        let s = crate::synth::generate(
            12,
            &crate::synth::SynthScale {
                profiles: 120,
                movies: 80,
                series: 10,
                days: 60,
                oracle: false,
                ..Default::default()
            },
        )
        .unwrap();
        let titles: Vec<Title> = s.catalog.iter().cloned().map(|t| t.validate().unwrap()).collect();
        let catalog = Arc::new(Catalog::new(titles));
        let ds = Dataset::new(&s.interactions, &catalog);
        let model = train(&ds, &catalog, &TrainConfig::default(), NOW).unwrap();
        let rec = Recommender::new(Arc::new(model), Arc::clone(&catalog));
        let trending = TrendingSnapshot::from_scores(
            Timestamp(0),
            catalog.items().iter().enumerate().map(|(i, it)| (it.id.clone(), 1.0 + (i % 7) as f64)),
            300,
        );
        let blend = BlendConfig::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for plays in ds.plays.iter().take(40) {
            let mut r = Resolved { plays: plays.clone(), ..Resolved::default() };
            for t in 0..catalog.titles().len() as TitleIdx {
                if rng.gen_bool(0.05) {
                    r.impressions.insert(t, rng.gen_range(0..12));
                }
            }
            let req = RowRequest { row: RowKind::Top, limit: 15, rewatch: false, now: ds.end() };
            let h = rec.history(&r, req.now.0, &blend);
            let cands = rec.top_candidates(&h, &r, &req, &trending, &blend);
            let lazy = rec.finish(cands.clone(), &h, &r, &req, &blend, None);
            // The obvious version.
            let norm = |x: f64, m: f64| if m > 0.0 { x / m } else { 0.0 };
            let max = |f: fn(&Cand) -> f64| cands.values().map(f).fold(0.0, f64::max);
            let (me, mc, mg, mn) = (max(|c| c.ease), max(|c| c.cw), max(|c| c.gpop), max(|c| c.new));
            let mut all: Vec<(f64, ItemIdx, TitleIdx)> = Vec::new();
            for (&i, cd) in &cands {
                let score = blend.w_next * cd.next
                    + blend.w_ease * norm(cd.ease, me)
                    + rec.cowatch_weight(i, &blend) * norm(cd.cw, mc)
                    + blend.w_trending * cd.trend
                    + blend.w_genre_pop * norm(cd.gpop, mg)
                    + blend.w_new * norm(cd.new, mn);
                if score <= 0.0 {
                    continue;
                }
                let t =
                    cd.next_title.or_else(|| catalog.playable(i, req.now, false, |t| h.watched.contains(&t)));
                let Some(t) = t.filter(|&t| rec.allowed(t, i, &h, &r, &req)) else { continue };
                let shown = r.impressions.get(&t).copied().unwrap_or(0);
                let sink = if shown > 3 { 0.5f64.powf(f64::from(shown - 3) / 3.0) } else { 1.0 };
                all.push((score * sink, i, t));
            }
            all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let cap = (15.0 * blend.max_per_genre_pct / 100.0).ceil() as usize;
            let mut per: HashMap<String, usize> = HashMap::new();
            let mut want = Vec::new();
            for (score, i, t) in all {
                if want.len() == 15 {
                    break;
                }
                if let Some(g) = catalog.items()[i as usize].genres.first() {
                    let n = per.entry(g.to_lowercase()).or_default();
                    if *n >= cap {
                        continue;
                    }
                    *n += 1;
                }
                want.push((catalog.titles()[t as usize].id.clone(), score));
            }
            let got: Vec<(TitleId, f64)> = lazy.into_iter().map(|r| (r.title_id, r.score)).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn one_genre_cannot_fill_a_row() {
        let (rec, trending) = fixture();
        let p = ProfileState { plays: vec![play("d0", 50), play("d1", 51)], ..Default::default() };
        let blend = BlendConfig { max_per_genre_pct: 50.0, ..BlendConfig::default() };
        let recs = rec.recommend_with(&p, &top(6), &trending, &blend);
        let mut per: HashMap<&str, usize> = HashMap::new();
        for r in &recs {
            let it = &rec.catalog().items()[rec.catalog().item_idx(r.item_id.as_str()).unwrap() as usize];
            *per.entry(it.genres[0].as_str()).or_default() += 1;
        }
        assert!(per.values().all(|&n| n <= 3), "{per:?}");
        assert_eq!(per.get("Drama"), Some(&3), "the cap binds: dramas are what this profile gets most");
        let uncapped =
            rec.recommend_with(&p, &top(6), &trending, &BlendConfig { max_per_genre_pct: 100.0, ..blend });
        let dramas = uncapped
            .iter()
            .filter(|r| {
                rec.catalog().items()[rec.catalog().item_idx(r.item_id.as_str()).unwrap() as usize].genres[0]
                    == "Drama"
            })
            .count();
        assert!(dramas > 3);
    }

    #[test]
    fn a_new_profile_gets_trending_within_its_maturity_limit() {
        let (rec, trending) = fixture();
        let kid = ProfileState { maturity_limit: Some(12), ..Default::default() };
        let recs = rec.recommend(&kid, &top(3), &trending);
        assert_eq!(ids(&recs), ["c0", "d0", "c1"], "x18 is too mature, future is not out");
        assert!(recs.iter().all(|r| r.reason == Reason::TrendingNow));
    }

    #[test]
    fn a_new_profile_gets_trending_even_when_the_blend_weighs_it_zero() {
        let (rec, trending) = fixture();
        let blend = BlendConfig { w_trending: 0.0, ..BlendConfig::default() };
        let recs = rec.recommend_with(&ProfileState::default(), &top(2), &trending, &blend);
        assert_eq!(ids(&recs), ["c0", "x18"]);
        let row = RowRequest { row: RowKind::Trending, ..top(2) };
        assert_eq!(
            ids(&rec.recommend_with(&ProfileState::default(), &row, &trending, &blend)),
            ["c0", "x18"]
        );
    }

    #[test]
    fn a_title_without_plays_is_reached_by_genre() {
        let (rec, trending) = fixture();
        // The new drama has no plays: similar titles come from genre overlap...
        let sim = rec.similar("newdrama", 5, None, NOW);
        assert!(!sim.is_empty());
        let cat = rec.catalog();
        assert!(sim.iter().all(|r| {
            cat.items()[cat.item_idx(r.item_id.as_str()).unwrap() as usize]
                .genres
                .iter()
                .any(|g| g == "Drama")
        }));
        assert!(!ids(&sim).contains(&"future"), "not out yet");
        assert!(
            matches!(&sim[0].reason, Reason::SimilarTo { title_id, .. } if title_id.as_str() == "newdrama")
        );
        // ...and a drama fan is offered it, explained by the watched drama closest in genres.
        let p = ProfileState { plays: vec![play("d0", 50)], ..Default::default() };
        let only_new = BlendConfig { w_new: 1.0, ..BlendConfig::only(Source::Ease) };
        let recs = rec.recommend_with(&p, &top(20), &trending, &only_new);
        let r = recs.iter().find(|r| r.title_id.as_str() == "newdrama").expect("new title offered");
        assert_eq!(r.reason, Reason::NewLike { title_id: id("d0"), name: "D0".into() });
    }

    #[test]
    fn because_you_watched_is_anchored_on_the_latest_positive() {
        let (rec, trending) = fixture();
        let p = ProfileState { plays: vec![play("d0", 50), play("c0", 60)], ..Default::default() };
        let req = RowRequest { row: RowKind::BecauseYouWatched { anchor: None }, ..top(5) };
        let recs = rec.recommend(&p, &req, &trending);
        assert!(!recs.is_empty());
        assert!(
            recs.iter()
                .all(|r| r.reason == Reason::BecauseYouWatched { title_id: id("c0"), name: "C0".into() })
        );
        assert!(recs.iter().all(|r| r.title_id.as_str().starts_with('c')), "{:?}", ids(&recs));
    }

    #[test]
    fn titles_shown_often_and_never_played_sink() {
        let (rec, trending) = fixture();
        let p = ProfileState { plays: vec![play("d0", 50)], ..Default::default() };
        let first = rec.recommend(&p, &top(3), &trending);
        let leader = first[0].title_id.clone();
        let mut ignored = p.clone();
        ignored.impressions.insert(leader.clone(), 3);
        assert_eq!(rec.recommend(&ignored, &top(3), &trending)[0].title_id, leader, "three are free");
        ignored.impressions.insert(leader.clone(), 30);
        let after = rec.recommend(&ignored, &top(3), &trending);
        assert_ne!(after[0].title_id, leader);
    }

    #[test]
    fn a_new_play_changes_the_row_without_retraining() {
        let (rec, trending) = fixture();
        let mut p = ProfileState { plays: vec![play("c0", 50)], ..Default::default() };
        let before = rec.recommend(&p, &top(5), &trending);
        p.plays.push(play("show.s01e01", 99));
        let after = rec.recommend(&p, &top(5), &trending);
        assert_ne!(ids(&before), ids(&after));
        assert_eq!(after[0].title_id.as_str(), "show.s01e02");
    }

    #[test]
    fn rows_that_need_a_mix_get_it_by_their_own_filter_not_the_top_rows_cap() {
        let capped = BlendConfig { max_per_genre_pct: 20.0, ..BlendConfig::default() };
        let (rec, trending) = fixture_with(TrainConfig {
            lambda: 5.0,
            ease_top_k: 1000,
            blend: capped,
            ..TrainConfig::default()
        });
        let p =
            ProfileState { plays: vec![play("d1", 96), play("show.s01e01", 97)], ..ProfileState::default() };
        assert!(ids(&rec.recommend(&p, &top(10), &trending)).contains(&"show.s01e02"));
        let films = rec.recommend(&p, &RowRequest { row: RowKind::Films, ..top(10) }, &trending);
        assert!(!films.is_empty());
        for r in &films {
            let kind = rec.catalog().title(r.title_id.as_str()).map(|t| t.kind);
            assert_eq!(kind, Some(TitleKind::Movie), "{}", r.title_id);
        }
        // The top row's 20% cap (2 of 10) does not cut the drama anchor's drama neighbours.
        let byw = RowRequest { row: RowKind::BecauseYouWatched { anchor: Some(id("d1")) }, ..top(10) };
        let got = rec.recommend(&p, &byw, &trending);
        let dramas = got.iter().filter(|r| r.item_id.as_str().starts_with('d')).count();
        assert!(dramas > 2, "{:?}", ids(&got));
    }

    #[test]
    fn live_co_watch_counters_replace_the_models_neighbours() {
        let (rec, trending) = fixture();
        let mut p = ProfileState { plays: vec![play("c0", 90)], ..ProfileState::default() };
        assert!(!ids(&rec.recommend(&p, &top(10), &trending)).contains(&"newdrama"));
        // Since training, five profiles watched c0 and then the new drama.
        p.live_cowatch = vec![LiveCoWatch {
            item: id("c0"),
            count: 25,
            neighbours: vec![(id("newdrama"), 5, 5), (id("c1"), 20, 25)],
        }];
        let got = rec.recommend(&p, &top(10), &trending);
        let hit = got.iter().find(|r| r.title_id.as_str() == "newdrama").expect("newdrama served");
        assert_eq!(hit.reason, Reason::BecauseYouWatched { title_id: id("c0"), name: "C0".into() });
        let byw = RowRequest { row: RowKind::BecauseYouWatched { anchor: None }, ..top(10) };
        assert!(ids(&rec.recommend(&p, &byw, &trending)).contains(&"newdrama"));
    }

    #[test]
    fn a_stale_series_is_continued_rather_than_next() {
        let (rec, trending) = fixture();
        let p = ProfileState { plays: vec![play("show.s01e01", 10)], ..Default::default() };
        let recs = rec.recommend(&p, &top(20), &trending);
        let r = recs.iter().find(|r| r.title_id.as_str() == "show.s01e02").expect("still offered");
        assert_eq!(r.reason.text(), "Continue SHOW");
    }
}
