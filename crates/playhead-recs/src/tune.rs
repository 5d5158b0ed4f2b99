//! Self-tuning: choose λ, the decays, the source weights and the diversity cap on the
//! deployment's own history, and never serve something worse than a single source.
//!
//! 1. **Validation split** carved from the training data: the most recent plays are held out (a
//!    global time cut; the share is the smallest of [`VALIDATION_FRACTIONS`] that gives enough
//!    evaluated profiles), and a profile with no play after the cut holds out its last new title
//!    instead (leave-last-out), so sparse histories are measured too. At most
//!    [`TuneConfig::max_queries`] profiles are scored (a seeded sample).
//! 2. **λ** is chosen by EASE alone (it is EASE's own parameter), one dense solve per candidate.
//! 3. **Blend search** on that model: two starting points (the configured blend, and EASE plus a
//!    next-episode term that never fades), the single sources, then coordinate ascent over a
//!    fixed grid per setting, in a seeded order, at most two passes. Objective: Recall@20, ties
//!    broken by NDCG@10.
//! 4. **Diversity** is measured, not imposed: each genre cap is scored on the winner and the
//!    strongest cap costing at most [`TuneConfig::diversity_max_cost_pct`] relative Recall@20 is
//!    kept. A catalog without genres turns it off and says so.
//! 5. **Guard**: the served configuration must score at least as well as every single source
//!    (EASE alone, co-watch alone, popularity) on both metrics; otherwise the best evaluated
//!    configuration that does is served, and if none does, the best single source, and the
//!    report says so.
//!
//! Rule: deterministic for a given input and seed. The search size bounds the work; the time
//! budget is a safety stop, and when it fires the report says so (the result then depends on the
//! machine's speed, which is why the size, not the budget, is the intended bound).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use playhead_core::Timestamp;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, TitleIdx};
use crate::dataset::{Dataset, Play};
use crate::error::RecsError;
use crate::eval::{Prepared, prepare, rank, score};
use crate::metrics::Interval;
use crate::model::{TrainConfig, train_on};
use crate::serve::{BlendConfig, Recommender, Source};
use crate::split::{Protocol, Query, leave_last_out_index, split};

/// Shares of plays the validation time split tries, smallest first.
pub const VALIDATION_FRACTIONS: [f64; 4] = [0.05, 0.1, 0.2, 0.3];
/// Cut-offs of the objective: Recall@20, then NDCG@10.
const K_RECALL: usize = 20;
const K_NDCG: usize = 10;
const EPS: f64 = 1e-12;

/// Self-tuning settings (part of [`TrainConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuneConfig {
    /// Tune at all (off: the configured blend and λ are served as they are).
    pub enabled: bool,
    /// Seed of the validation sample, the search order and the bootstrap.
    pub seed: u64,
    /// Most blend configurations scored (the λ candidates and single sources not counted).
    pub search_size: usize,
    /// Safety stop for the whole search, seconds (see the module docs).
    pub time_budget_secs: u64,
    /// λ candidates (one dense EASE solve each).
    pub lambdas: Vec<f64>,
    /// Most validation profiles scored.
    pub max_queries: usize,
    /// Most relative Recall@20 (percent) a diversity cap may cost to be kept.
    pub diversity_max_cost_pct: f64,
    /// Bootstrap resamples for the candidates' intervals.
    pub bootstrap: usize,
}

impl Default for TuneConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            seed: 1,
            search_size: 40,
            time_budget_secs: 300,
            lambdas: vec![25.0, 100.0, 400.0, 1600.0],
            max_queries: 3000,
            diversity_max_cost_pct: 2.0,
            bootstrap: 200,
        }
    }
}

/// One scored configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// What it is (`ease`, `start: defaults`, `w_next=1`, ...).
    pub name: String,
    /// λ of the model it was scored on.
    pub lambda: f64,
    /// The blend.
    pub blend: BlendConfig,
    /// Validation Recall@20 with its 95% bootstrap interval.
    pub recall_at_20: Interval,
    /// Validation NDCG@10 with its 95% bootstrap interval.
    pub ndcg_at_10: Interval,
}

impl Candidate {
    fn beats(&self, other: &Candidate) -> bool {
        let (a, b) = (self.recall_at_20.mean, other.recall_at_20.mean);
        a > b + EPS || ((a - b).abs() <= EPS && self.ndcg_at_10.mean > other.ndcg_at_10.mean + EPS)
    }

    /// At least as good as `other` on both metrics.
    fn dominates(&self, other: &Candidate) -> bool {
        self.recall_at_20.mean + EPS >= other.recall_at_20.mean
            && self.ndcg_at_10.mean + EPS >= other.ndcg_at_10.mean
    }
}

/// The validation split the search scored on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Share of plays after the time cut.
    pub fraction: f64,
    /// The time cut.
    pub cutoff: Timestamp,
    /// Profiles evaluated by the time split.
    pub temporal_profiles: usize,
    /// Profiles with nothing after the cut, evaluated on their last new title.
    pub leave_last_out_profiles: usize,
    /// Profiles scored (a seeded sample of the two above when there are more than the maximum).
    pub scored_profiles: usize,
    /// Plays the validation models trained on.
    pub train_plays: usize,
}

/// How the diversity cap was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    /// Whether a cap could be measured at all.
    pub available: bool,
    /// The cap served (percent of a row sharing a primary genre; 100 = off).
    pub max_per_genre_pct: f64,
    /// The cap's cost: relative Recall@20 lost against no cap, percent.
    pub cost_pct: f64,
    /// Each cap measured: `(cap, Recall@20, relative cost percent)`.
    pub measured: Vec<(f64, f64, f64)>,
    /// In words.
    pub note: String,
}

/// The guard's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guard {
    /// Whether the search's winner scored at least as well as every single source.
    pub passed: bool,
    /// What is served: `blend` or the single source's name.
    pub served: String,
    /// In words.
    pub note: String,
}

/// Bounds of the search and what it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchCost {
    /// Blend configurations scored.
    pub evaluated: usize,
    /// The configured bound.
    pub search_size: usize,
    /// The configured safety stop, seconds.
    pub time_budget_secs: u64,
    /// Whether the safety stop fired.
    pub budget_exhausted: bool,
    /// Dense EASE solves (one per λ).
    pub ease_solves: usize,
    /// Wall time of the whole search, ms.
    pub elapsed_ms: u64,
}

/// What the self-tuning chose and why (the model carries it; `recs train`, `recs batch`,
/// `recs eval` and `GET /v1/admin/recs/model` show it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneReport {
    /// The objective, in words.
    pub objective: String,
    /// The seed.
    pub seed: u64,
    /// The split.
    pub validation: Validation,
    /// λ chosen.
    pub lambda: f64,
    /// EASE alone per λ candidate.
    pub lambdas: Vec<Candidate>,
    /// Every blend configuration scored, in the order scored.
    pub candidates: Vec<Candidate>,
    /// The single sources on the chosen λ.
    pub single_sources: Vec<Candidate>,
    /// The configuration served, with its validation scores.
    pub served: Candidate,
    /// The guard.
    pub guard: Guard,
    /// The diversity cap.
    pub diversity: Diversity,
    /// Why the winner won, in words.
    pub why: String,
    /// What the search cost.
    pub search: SearchCost,
}

/// The validation split: per profile how much trains, and the queries.
struct ValidationSplit {
    info: Validation,
    train_len: Vec<usize>,
    queries: Vec<Query>,
}

fn validation_split(ds: &Dataset, cfg: &TuneConfig) -> ValidationSplit {
    let profiles = ds.plays.iter().filter(|p| !p.is_empty()).count();
    // Enough evaluated profiles for intervals narrower than the differences that matter.
    let want = cfg.max_queries.min(profiles / 5).max(1);
    let mut fraction = VALIDATION_FRACTIONS[0];
    let mut sp = split(ds, Protocol::Temporal, fraction);
    for f in &VALIDATION_FRACTIONS[1..] {
        if sp.queries.len() >= want {
            break;
        }
        fraction = *f;
        sp = split(ds, Protocol::Temporal, fraction);
    }
    let mut train_len = sp.train_len.clone();
    let temporal: HashSet<usize> = sp.queries.iter().map(|q| q.profile).collect();
    let mut queries = sp.queries;
    let temporal_profiles = queries.len();
    for (p, plays) in ds.plays.iter().enumerate() {
        if temporal.contains(&p) {
            continue;
        }
        // Nothing new after the cut: hold out this profile's last new title before it.
        let n = train_len[p];
        if let Some(k) = leave_last_out_index(plays[..n].iter().map(|pl| (pl.title, pl.positive)))
            && k > 0
        {
            train_len[p] = k;
            queries.push(Query {
                profile: p,
                train_len: k,
                now: Timestamp(plays[k].at),
                truth: vec![plays[k].title],
            });
        }
    }
    let leave_last_out_profiles = queries.len() - temporal_profiles;
    if queries.len() > cfg.max_queries {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        queries.shuffle(&mut rng);
        queries.truncate(cfg.max_queries);
        queries.sort_by_key(|q| q.profile);
    }
    let info = Validation {
        fraction,
        cutoff: sp.cutoff.unwrap_or(Timestamp(0)),
        temporal_profiles,
        leave_last_out_profiles,
        scored_profiles: queries.len(),
        train_plays: train_len.iter().sum(),
    };
    ValidationSplit { info, train_len, queries }
}

/// Scores blends on one model over the validation queries.
struct Scorer<'a> {
    rec: Recommender,
    prep: &'a Prepared,
    truths: &'a [HashSet<TitleIdx>],
    lambda: f64,
    cfg: &'a TuneConfig,
}

impl Scorer<'_> {
    fn score(&self, name: impl Into<String>, blend: &BlendConfig) -> Candidate {
        let lists = rank(&self.rec, self.prep, blend);
        let (recall, ndcg) =
            score(&lists, self.truths, (K_RECALL, K_NDCG), self.cfg.bootstrap, self.cfg.seed);
        Candidate {
            name: name.into(),
            lambda: self.lambda,
            blend: blend.clone(),
            recall_at_20: recall,
            ndcg_at_10: ndcg,
        }
    }
}

/// One setting the coordinate ascent moves, with its grid.
struct Knob {
    name: &'static str,
    values: Vec<Option<f64>>,
    get: fn(&BlendConfig) -> Option<f64>,
    set: fn(&mut BlendConfig, Option<f64>),
}

fn knobs() -> Vec<Knob> {
    let some = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
    vec![
        Knob {
            name: "w_next",
            values: some(&[0.0, 0.5, 1.0, 2.0, 4.0]),
            get: |b| Some(b.w_next),
            set: |b, v| b.w_next = v.unwrap_or(0.0),
        },
        Knob {
            name: "next_half_life_days",
            values: vec![Some(7.0), Some(30.0), Some(120.0), None],
            get: |b| b.next_half_life_days,
            set: |b, v| b.next_half_life_days = v,
        },
        Knob {
            name: "history_half_life_days",
            values: vec![None, Some(14.0), Some(60.0), Some(240.0)],
            get: |b| b.history_half_life_days,
            set: |b, v| b.history_half_life_days = v,
        },
        Knob {
            name: "w_cowatch",
            values: some(&[0.0, 0.25, 0.5, 1.0]),
            get: |b| Some(b.w_cowatch),
            set: |b, v| b.w_cowatch = v.unwrap_or(0.0),
        },
        Knob {
            name: "w_trending",
            values: some(&[0.0, 0.1, 0.3, 0.6]),
            get: |b| Some(b.w_trending),
            set: |b, v| b.w_trending = v.unwrap_or(0.0),
        },
        Knob {
            name: "w_genre_pop",
            values: some(&[0.0, 0.3, 0.6]),
            get: |b| Some(b.w_genre_pop),
            set: |b, v| b.w_genre_pop = v.unwrap_or(0.0),
        },
        Knob {
            name: "w_new",
            values: some(&[0.0, 0.2]),
            get: |b| Some(b.w_new),
            set: |b, v| b.w_new = v.unwrap_or(0.0),
        },
    ]
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |x| format!("{x}"))
}

/// Tune on per-profile, time-ordered plays (each slice one profile). Returns the configuration
/// to serve (refit it on all the data) and the report.
pub fn tune(
    profiles: &[&[Play]],
    catalog: &Arc<Catalog>,
    base: &TrainConfig,
) -> Result<(TrainConfig, TuneReport), RecsError> {
    let cfg = &base.tune;
    if cfg.search_size == 0 || cfg.max_queries == 0 {
        return Err(RecsError::InvalidArgument(
            "tune.search_size and tune.max_queries must be at least 1".into(),
        ));
    }
    if !(0.0..=100.0).contains(&cfg.diversity_max_cost_pct) {
        return Err(RecsError::InvalidArgument("tune.diversity_max_cost_pct must be 0-100".into()));
    }
    let started = Instant::now();
    let budget = Duration::from_secs(cfg.time_budget_secs);
    let ds = Dataset {
        profiles: vec![String::new(); profiles.len()],
        plays: profiles.iter().map(|p| p.to_vec()).collect(),
        interactions: profiles.iter().map(|p| p.len()).sum(),
        ..Dataset::default()
    };
    let vs = validation_split(&ds, cfg);
    let slices: Vec<&[Play]> = ds.plays.iter().zip(&vs.train_len).map(|(p, &n)| &p[..n]).collect();
    let truths: Vec<HashSet<TitleIdx>> =
        vs.queries.iter().map(|q| q.truth.iter().copied().collect()).collect();

    // λ by EASE alone.
    let mut lambdas: Vec<f64> = cfg.lambdas.iter().copied().filter(|l| *l > 0.0).collect();
    if lambdas.is_empty() {
        lambdas.push(base.lambda);
    }
    let mut prep: Option<Prepared> = None;
    let mut by_lambda: Vec<Candidate> = Vec::new();
    let mut best: Option<(Candidate, Recommender)> = None;
    let mut ease_solves = 0;
    for &lambda in &lambdas {
        if best.is_some() && started.elapsed() > budget {
            break;
        }
        let tc = TrainConfig { lambda, ..base.clone() };
        let trained = train_on(&slices, catalog, &tc, vs.info.cutoff)?;
        ease_solves += 1;
        let p = prep.get_or_insert_with(|| {
            prepare(&ds.plays, &vs.queries, &trained.starts, catalog, &base.blend, K_RECALL.max(K_NDCG))
        });
        let rec = Recommender::new(Arc::new(trained.model), Arc::clone(catalog));
        let scorer = Scorer { rec, prep: p, truths: &truths, lambda, cfg };
        let c = scorer.score(format!("ease, lambda={lambda}"), &BlendConfig::only(Source::Ease));
        by_lambda.push(c.clone());
        if best.as_ref().is_none_or(|(b, _)| c.beats(b)) {
            best = Some((c, scorer.rec));
        }
    }
    let (Some(prep), Some((_, rec))) = (prep, best) else {
        return Err(RecsError::InvalidArgument("tuning needs at least one λ".into()));
    };
    let lambda = rec.model().meta.lambda;
    let scorer = Scorer { rec, prep: &prep, truths: &truths, lambda, cfg };

    // Single sources: the bar the guard holds the winner to.
    let singles = vec![
        scorer.score("ease", &BlendConfig::only(Source::Ease)),
        scorer.score("cowatch", &BlendConfig::only(Source::CoWatch)),
        scorer.score("popularity", &BlendConfig::only(Source::Popularity)),
    ];

    // Blend search, diversity off (measured separately below).
    let off = |b: &BlendConfig| BlendConfig { max_per_genre_pct: 100.0, ..b.clone() };
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut budget_exhausted = false;
    let starts = [
        ("start: configured blend", off(&base.blend)),
        (
            "start: ease + next episode (no fade)",
            BlendConfig { w_next: 2.0, next_half_life_days: None, ..BlendConfig::only(Source::Ease) },
        ),
    ];
    let [(first_name, first), (second_name, second)] = starts;
    let mut current = scorer.score(first_name, &first);
    candidates.push(current.clone());
    let c = scorer.score(second_name, &second);
    if c.beats(&current) {
        current = c.clone();
    }
    candidates.push(c);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x7e57);
    let mut knobs = knobs();
    'passes: for _pass in 0..2 {
        knobs.shuffle(&mut rng);
        let mut improved = false;
        for k in &knobs {
            for &v in &k.values {
                if (k.get)(&current.blend) == v {
                    continue;
                }
                if candidates.len() >= cfg.search_size {
                    break 'passes;
                }
                if started.elapsed() > budget {
                    budget_exhausted = true;
                    break 'passes;
                }
                let mut b = current.blend.clone();
                (k.set)(&mut b, v);
                if candidates.iter().any(|c| c.blend == b) {
                    continue;
                }
                let c = scorer.score(format!("{}={}", k.name, fmt_opt(v)), &b);
                if c.beats(&current) {
                    current = c.clone();
                    improved = true;
                }
                candidates.push(c);
            }
        }
        if !improved {
            break;
        }
    }

    // Diversity: the strongest cap within the allowed cost.
    let has_genres = catalog.items().iter().any(|it| !it.genres.is_empty());
    let diversity = if !has_genres {
        Diversity {
            available: false,
            max_per_genre_pct: 100.0,
            cost_pct: 0.0,
            measured: Vec::new(),
            note: "The catalog has no genres: the diversity cap is off".into(),
        }
    } else {
        let base_recall = current.recall_at_20.mean;
        let mut measured = Vec::new();
        let mut chosen = (100.0, 0.0, None);
        for cap in [50.0, 35.0, 25.0] {
            let b = BlendConfig { max_per_genre_pct: cap, ..current.blend.clone() };
            let c = scorer.score(format!("max_per_genre_pct={cap}"), &b);
            let cost = if base_recall > 0.0 {
                100.0 * (base_recall - c.recall_at_20.mean) / base_recall
            } else {
                0.0
            };
            measured.push((cap, c.recall_at_20.mean, cost));
            if cost <= cfg.diversity_max_cost_pct {
                chosen = (cap, cost, Some(c.clone()));
            }
            candidates.push(c);
        }
        let note = match &chosen.2 {
            Some(_) => format!(
                "The strongest genre cap within the allowed cost is kept: {}% costs {:.2}% relative Recall@20 (allowed {}%)",
                chosen.0, chosen.1, cfg.diversity_max_cost_pct
            ),
            None => format!(
                "Every genre cap costs more than {}% relative Recall@20: off",
                cfg.diversity_max_cost_pct
            ),
        };
        if let Some(c) = chosen.2 {
            current = c;
        }
        Diversity { available: true, max_per_genre_pct: chosen.0, cost_pct: chosen.1, measured, note }
    };

    // The guard.
    let passes = |c: &Candidate| singles.iter().all(|s| c.dominates(s));
    let (served, guard) = if passes(&current) {
        let note = "The winner scores at least as well as EASE alone, co-watch alone and popularity on Recall@20 and NDCG@10".to_owned();
        (current.clone(), Guard { passed: true, served: "blend".into(), note })
    } else {
        let mut ok: Vec<&Candidate> = candidates.iter().chain(&singles).filter(|c| passes(c)).collect();
        ok.sort_by(|a, b| {
            if a.beats(b) {
                std::cmp::Ordering::Less
            } else if b.beats(a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        match ok.first() {
            Some(c) => {
                let is_single = singles.iter().any(|s| s.name == c.name);
                let served = if is_single { c.name.clone() } else { "blend".to_owned() };
                let note = format!(
                    "The search's winner ({}) fell below a single source on Recall@20 or NDCG@10; serving '{}', the best configuration that does not",
                    current.name, c.name
                );
                ((*c).clone(), Guard { passed: false, served, note })
            }
            None => {
                let mut best = &singles[0];
                for s in &singles[1..] {
                    if s.beats(best) {
                        best = s;
                    }
                }
                let note = format!(
                    "No configuration matched every single source on both metrics; serving {} alone",
                    best.name
                );
                (best.clone(), Guard { passed: false, served: best.name.clone(), note })
            }
        }
    };
    let runner_up = candidates
        .iter()
        .filter(|c| c.blend != served.blend)
        .fold(None::<&Candidate>, |acc, c| if acc.is_none_or(|a| c.beats(a)) { Some(c) } else { acc });
    let why = format!(
        "Served '{}' (lambda {}): validation Recall@20 {:.4} [{:.4}, {:.4}], NDCG@10 {:.4}{}; single sources: {}. {}. {}.",
        served.name,
        lambda,
        served.recall_at_20.mean,
        served.recall_at_20.lo,
        served.recall_at_20.hi,
        served.ndcg_at_10.mean,
        runner_up.map_or(String::new(), |r| format!(
            "; the runner-up '{}' reached {:.4} / {:.4}",
            r.name, r.recall_at_20.mean, r.ndcg_at_10.mean
        )),
        singles
            .iter()
            .map(|s| format!("{} {:.4} / {:.4}", s.name, s.recall_at_20.mean, s.ndcg_at_10.mean))
            .collect::<Vec<_>>()
            .join(", "),
        guard.note,
        diversity.note,
    );
    let blend = served.blend.clone();
    let evaluated = candidates.len();
    let report = TuneReport {
        objective: "Recall@20 on the validation split, ties broken by NDCG@10".into(),
        seed: cfg.seed,
        validation: vs.info,
        lambda,
        lambdas: by_lambda,
        candidates,
        single_sources: singles,
        served,
        guard,
        diversity,
        why,
        search: SearchCost {
            evaluated,
            search_size: cfg.search_size,
            time_budget_secs: cfg.time_budget_secs,
            budget_exhausted,
            ease_solves,
            elapsed_ms: started.elapsed().as_millis() as u64,
        },
    };
    Ok((TrainConfig { lambda, blend, ..base.clone() }, report))
}
