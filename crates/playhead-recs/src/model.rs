//! Training: from plays to an immutable, versioned [`Model`].
//!
//! A model holds, per item, its EASE neighbours (sparsified top-k of B's row) and its co-watch
//! neighbours, plus popularity. It is a plain value: serialise it, load it, wrap it in an `Arc`
//! and swap it; serving never waits for training.
//!
//! Memory rule: with more than `max_dense_items` items that have plays, EASE is solved on the
//! most-watched `max_dense_items` only (peak 16·N² bytes, 2.3 GB at the default 12,000) and the
//! tail is reached through co-watch kNN, whose counts are bounded by 50 pairs per item start
//! (see [`crate::cowatch`]). So peak memory is bounded by
//! `16·max_dense_items² + 24·(starts·50) + 8·positives` bytes whatever the catalog size;
//! [`TrainMeta::peak_bytes_estimate`] reports that figure for each training.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use playhead_core::{Timestamp, TitleId};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ItemIdx, fnv1a};
use crate::cowatch::CoCounts;
use crate::dataset::{Dataset, Play};
use crate::ease::{dense_peak_bytes, ease_weights, top_k_rows};
use crate::error::RecsError;
use crate::serve::BlendConfig;
use crate::trending::{DecayedScores, TrendingSnapshot};
use crate::tune::{TuneConfig, TuneReport, tune};

/// Training settings. Defaults are the values tuned on synth seed 1 (docs/benchmarks.md ("Recommendations")).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// EASE's L2 regularisation λ.
    pub lambda: f64,
    /// EASE neighbours kept per item for serving.
    pub ease_top_k: usize,
    /// Above this many items with plays, EASE covers only the most-watched this many.
    pub max_dense_items: usize,
    /// Co-watch neighbours kept per item.
    pub cowatch_top_k: usize,
    /// Co-watch cosine shrinkage.
    pub cowatch_shrink: f64,
    /// How serving blends the sources (stored with the model so a version is reproducible).
    /// With tuning on, the starting point of the search; the model stores the one chosen.
    pub blend: BlendConfig,
    /// Self-tuning on the training data's own recent plays ([`crate::tune`]).
    pub tune: TuneConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lambda: 200.0,
            ease_top_k: 100,
            max_dense_items: 12_000,
            cowatch_top_k: 100,
            cowatch_shrink: 10.0,
            blend: BlendConfig::default(),
            tune: TuneConfig::default(),
        }
    }
}

/// What a training run saw and cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    /// Items (movies and series) with at least one positive.
    pub items: usize,
    /// Items in the dense EASE solve.
    pub dense_items: usize,
    /// Whether the large-catalog fallback was used (dense EASE on the head only).
    pub fallback: bool,
    /// Profiles with at least one play.
    pub profiles: usize,
    /// Distinct (profile, item) positives: the ones in X.
    pub positives: usize,
    /// Plays read.
    pub plays: usize,
    /// λ used.
    pub lambda: f64,
    /// Wall time of training in ms.
    pub train_ms: u64,
    /// Estimated peak bytes (dense solve + co-watch counts + X); see the module docs.
    pub peak_bytes_estimate: u64,
    /// When the model was trained (caller's clock).
    pub trained_at: Timestamp,
    /// The latest play in the training data.
    pub data_until: Timestamp,
}

/// A trained model: immutable, versioned, serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Unique version id (`recs-<trained_at ms>-<hash>`).
    pub version: String,
    /// Training metadata.
    pub meta: TrainMeta,
    /// The settings it was trained (and is served) with.
    pub config: TrainConfig,
    /// The items it knows (index = position in the lists below).
    pub items: Vec<TitleId>,
    /// Per item: profiles with a positive on it.
    pub popularity: Vec<u32>,
    /// Per source item j: `(item i, B[j][i])`, the weights largest in magnitude, highest first.
    pub ease: Vec<Vec<(u32, f32)>>,
    /// Per item: co-watch neighbours `(item, cosine)`, best first.
    pub cowatch: Vec<Vec<(u32, f32)>>,
    /// What self-tuning chose and why (`None` when tuning was off).
    #[serde(default)]
    pub tuning: Option<TuneReport>,
}

impl Model {
    /// Serialise to JSON.
    pub fn to_json(&self) -> Result<String, RecsError> {
        serde_json::to_string(self).map_err(|e| RecsError::Json { what: "model".into(), source: e })
    }

    /// Read a model from JSON.
    pub fn from_json(s: &str) -> Result<Self, RecsError> {
        serde_json::from_str(s).map_err(|e| RecsError::Json { what: "model".into(), source: e })
    }
}

/// Train on interactions already joined to the catalog (self-tuning first when
/// `config.tune.enabled`). `now` is the caller's clock.
pub fn train(
    data: &Dataset,
    catalog: &Catalog,
    config: &TrainConfig,
    now: Timestamp,
) -> Result<Model, RecsError> {
    let slices: Vec<&[Play]> = data.plays.iter().map(Vec::as_slice).collect();
    if config.tune.enabled {
        Ok(train_tuned(&slices, &Arc::new(catalog.clone()), config, now)?.model)
    } else {
        Ok(train_on(&slices, catalog, config, now)?.model)
    }
}

/// Tune on the plays' own recent history (when `config.tune.enabled`), then refit on all of
/// them with the chosen configuration; the model carries the tuning report.
pub(crate) fn train_tuned(
    profiles: &[&[Play]],
    catalog: &Arc<Catalog>,
    config: &TrainConfig,
    now: Timestamp,
) -> Result<Trained, RecsError> {
    if !config.tune.enabled {
        return train_on(profiles, catalog, config, now);
    }
    let (chosen, report) = tune(profiles, catalog, config)?;
    let mut trained = train_on(profiles, catalog, &chosen, now)?;
    trained.model.tuning = Some(report);
    Ok(trained)
}

/// A model plus the item starts it counted (for trending snapshots over the same data).
pub(crate) struct Trained {
    pub model: Model,
    /// `(catalog item, at)` of every start, in profile order.
    pub starts: Vec<(ItemIdx, i64)>,
}

/// Train on per-profile time-ordered plays (each slice one profile).
pub(crate) fn train_on(
    profiles: &[&[Play]],
    catalog: &Catalog,
    config: &TrainConfig,
    now: Timestamp,
) -> Result<Trained, RecsError> {
    if config.max_dense_items == 0 {
        return Err(RecsError::InvalidArgument("max_dense_items must be at least 1".into()));
    }
    let started = Instant::now();
    let n_catalog = catalog.items().len();
    // X: each profile's distinct positive items; popularity counts profiles per item.
    let mut popularity = vec![0u32; n_catalog];
    let mut user_items: Vec<Vec<ItemIdx>> = Vec::with_capacity(profiles.len());
    let mut seen = HashSet::new();
    let mut plays = 0usize;
    let mut data_until = i64::MIN;
    for p in profiles {
        plays += p.len();
        seen.clear();
        let mut items = Vec::new();
        for play in p.iter() {
            data_until = data_until.max(play.at);
            if play.positive && seen.insert(play.item) {
                items.push(play.item);
                popularity[play.item as usize] += 1;
            }
        }
        user_items.push(items);
    }
    let positives: usize = user_items.iter().map(Vec::len).sum();

    // The model's item universe: items with a positive, most popular first (ties by catalog index).
    let mut known: Vec<ItemIdx> = (0..n_catalog as ItemIdx).filter(|&i| popularity[i as usize] > 0).collect();
    known.sort_by_key(|&i| (std::cmp::Reverse(popularity[i as usize]), i));
    let mut local = vec![u32::MAX; n_catalog];
    for (l, &i) in known.iter().enumerate() {
        local[i as usize] = l as u32;
    }
    let dense = known.len().min(config.max_dense_items);
    let fallback = known.len() > dense;

    // EASE over the dense head (the first `dense` local indices are the most popular).
    let x: Vec<Vec<u32>> = user_items
        .iter()
        .map(|items| items.iter().map(|&i| local[i as usize]).filter(|&l| (l as usize) < dense).collect())
        .collect();
    let b = ease_weights(&x, dense, config.lambda)?;
    let mut ease = top_k_rows(&b, config.ease_top_k);
    drop(b);
    ease.resize(known.len(), Vec::new());

    // Co-watch over every known item, from positive plays in time order.
    let mut counts = CoCounts::default();
    let mut starts = Vec::new();
    for p in profiles {
        let pos: Vec<&Play> = p.iter().filter(|pl| pl.positive).collect();
        let seq: Vec<u32> = pos.iter().map(|pl| local[pl.item as usize]).collect();
        for s in counts.add_profile(&seq) {
            starts.push((pos[s].item, pos[s].at));
        }
    }
    let pair_count = counts.pairs.len();
    let cowatch = counts.neighbours(known.len(), config.cowatch_top_k, config.cowatch_shrink);
    drop(counts);

    let peak = dense_peak_bytes(dense) + 24 * pair_count as u64 + 8 * positives as u64;
    let items: Vec<TitleId> = known.iter().map(|&i| catalog.items()[i as usize].id.clone()).collect();
    let popularity: Vec<u32> = known.iter().map(|&i| popularity[i as usize]).collect();
    let meta = TrainMeta {
        items: known.len(),
        dense_items: dense,
        fallback,
        profiles: profiles.iter().filter(|p| !p.is_empty()).count(),
        positives,
        plays,
        lambda: config.lambda,
        train_ms: started.elapsed().as_millis() as u64,
        peak_bytes_estimate: peak,
        trained_at: now,
        data_until: Timestamp(if data_until == i64::MIN { 0 } else { data_until }),
    };
    let fingerprint =
        format!("{}:{}:{}:{}:{}", meta.items, meta.positives, meta.plays, meta.lambda, meta.data_until.0);
    let version = format!("recs-{}-{:08x}", now.0, fnv1a(fingerprint.as_bytes()) as u32);
    Ok(Trained {
        model: Model {
            version,
            meta,
            config: config.clone(),
            items,
            popularity,
            ease,
            cowatch,
            tuning: None,
        },
        starts,
    })
}

/// Trending (or, with no half-life, popularity) at `now` from item starts up to `now`.
pub(crate) fn trending_snapshot(
    starts: &[(ItemIdx, i64)],
    catalog: &Catalog,
    half_life_ms: Option<i64>,
    now: Timestamp,
    top_n: usize,
) -> TrendingSnapshot {
    let mut scores = DecayedScores::new(catalog.items().len(), half_life_ms);
    for &(item, at) in starts.iter().filter(|(_, at)| *at <= now.0) {
        scores.add(item, Timestamp(at));
    }
    TrendingSnapshot {
        as_of: now,
        scores: scores
            .top(now, top_n)
            .into_iter()
            .map(|(i, s)| (catalog.items()[i as usize].id.clone(), s))
            .collect(),
    }
}
