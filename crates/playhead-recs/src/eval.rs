//! Offline evaluation (`playhead recs eval`): every model on the serving code path, one protocol.
//!
//! Models: `popularity` (item starts up to the query instant, no decay), `cowatch` and `ease`
//! (each [`BlendConfig::only`] one source: no recency weighting, no diversity), `blend` (the served
//! configuration: self-tuned on a validation split carved from the training part, see
//! [`crate::tune`]), `defaults` (the configured blend, untuned), any external recommendation files (e.g. the numpy reference), and `oracle` when
//! the synthetic generator's `oracle.jsonl` matches the split. Metrics per K: Recall, NDCG, catalog
//! coverage (distinct recommended titles / playable titles) and average popularity (share of
//! training profiles with a positive on the recommended item), each with a 95% paired bootstrap
//! interval over profiles.
//!
//! Rule: a model is only ever scored through [`Recommender`]'s row code, never a shortcut, so what
//! is measured is what is served. Popularity and trending are computed as of each query's instant
//! from plays before it, so no model sees the future of the global counts.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use playhead_core::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::catalog::{Catalog, ItemIdx, TitleIdx};
use crate::data::{Interaction, load_catalog_titles, load_interactions, write_interactions};
use crate::dataset::{Dataset, Play};
use crate::error::RecsError;
use crate::metrics::{Interval, bootstrap, bootstrap_mean, ndcg_at_k, recall_at_k};
use crate::model::{TrainConfig, train_tuned};
use crate::serve::{BlendConfig, Recommender, Resolved, RowKind, RowRequest, Source};
use crate::split::{DEFAULT_TEST_FRACTION, Protocol, Query, Split, split};
use crate::trending::{DecayedScores, TrendingSnapshot};

/// File name of the generator's oracle, looked for beside the interactions file.
pub const ORACLE_FILE: &str = "oracle.jsonl";

/// Arguments of `playhead recs eval`.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    /// Interactions CSV.
    pub interactions: PathBuf,
    /// Catalog NDJSON.
    pub catalog: PathBuf,
    /// Protocol.
    pub protocol: Protocol,
    /// Cut-offs (`--k 10,20,50`).
    pub ks: Vec<usize>,
    /// Bootstrap seed.
    pub seed: u64,
    /// Bootstrap resamples.
    pub bootstrap: usize,
    /// Temporal protocol: share of plays held out.
    pub test_fraction: f64,
    /// Oracle file; `None` looks for [`ORACLE_FILE`] beside the interactions.
    pub oracle: Option<PathBuf>,
    /// Extra recommendation files to score, `(name, path)`, in the batch output format.
    pub external: Vec<(String, PathBuf)>,
    /// Write the split here (`train.csv`, `queries.csv`) for external models.
    pub export_split: Option<PathBuf>,
    /// Training and blend settings.
    pub config: TrainConfig,
    /// The caller's clock: plays after it are left out and counted (`None`: no check).
    pub now: Option<Timestamp>,
}

impl EvalArgs {
    /// Arguments with the defaults of the CLI.
    pub fn new(interactions: impl Into<PathBuf>, catalog: impl Into<PathBuf>, protocol: Protocol) -> Self {
        Self {
            interactions: interactions.into(),
            catalog: catalog.into(),
            protocol,
            ks: vec![10, 20, 50],
            seed: 1,
            bootstrap: 1000,
            test_fraction: DEFAULT_TEST_FRACTION,
            oracle: None,
            external: Vec::new(),
            export_split: None,
            config: TrainConfig::default(),
            now: None,
        }
    }
}

/// Run an evaluation from files; returns the report printed by the CLI.
pub fn eval(args: &EvalArgs) -> Result<Value, RecsError> {
    let catalog = Catalog::new(load_catalog_titles(&args.catalog)?);
    let interactions = load_interactions(&args.interactions)?;
    let ds = Dataset::checked(&interactions, &catalog, args.now);
    drop(interactions);
    let oracle_path = match &args.oracle {
        Some(p) => Some(p.clone()),
        None => {
            let p = args.interactions.parent().unwrap_or(Path::new(".")).join(ORACLE_FILE);
            p.exists().then_some(p)
        }
    };
    let mut external = Vec::new();
    for (name, path) in &args.external {
        external.push((name.clone(), read_recs_file(path)?));
    }
    let oracle = match &oracle_path {
        Some(p) => Some(read_oracle(p)?),
        None => None,
    };
    evaluate(&ds, Arc::new(catalog), args, &external, oracle.as_ref())
}

/// Recommendations read from a batch-format file: profile id -> titles.
pub type RecsFile = HashMap<String, Vec<String>>;

/// Read a `{"profile_id": ..., "titles": [...]}` per line file.
pub fn read_recs_file(path: &Path) -> Result<RecsFile, RecsError> {
    #[derive(Deserialize)]
    struct Line {
        profile_id: String,
        titles: Vec<String>,
    }
    let f = File::open(path).map_err(|e| RecsError::io(path, e))?;
    let mut out = HashMap::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| RecsError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| RecsError::Json {
            what: format!("{}: line {}", path.display(), n + 1),
            source: e,
        })?;
        out.insert(l.profile_id, l.titles);
    }
    Ok(out)
}

/// One line of the generator's oracle file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct OracleLine {
    /// `temporal` or `leave-last-out`.
    pub protocol: Protocol,
    /// The profile.
    pub profile_id: String,
    /// The instant the ranking is for (ms).
    pub now_ms: i64,
    /// Plays of the profile before that instant (must equal the split's).
    pub train_len: usize,
    /// The generator's next-play distribution over playable titles, most likely first (truncated).
    pub ranking: Vec<(String, f64)>,
    /// The generator's probability of each held-out title (as of `now_ms`).
    pub heldout: Vec<(String, f64)>,
}

/// Read an oracle file.
pub fn read_oracle(path: &Path) -> Result<Vec<OracleLine>, RecsError> {
    let f = File::open(path).map_err(|e| RecsError::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| RecsError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| RecsError::Json {
            what: format!("{}: line {}", path.display(), n + 1),
            source: e,
        })?);
    }
    Ok(out)
}

/// Evaluate on a loaded dataset.
pub fn evaluate(
    ds: &Dataset,
    catalog: Arc<Catalog>,
    args: &EvalArgs,
    external: &[(String, RecsFile)],
    oracle: Option<&Vec<OracleLine>>,
) -> Result<Value, RecsError> {
    if args.ks.is_empty() || args.ks.contains(&0) {
        return Err(RecsError::InvalidArgument("k must be a list of positive integers".into()));
    }
    let kmax = args.ks.iter().copied().max().unwrap_or(20);
    let sp = split(ds, args.protocol, args.test_fraction);
    let slices: Vec<&[Play]> = ds.plays.iter().zip(&sp.train_len).map(|(p, &n)| &p[..n]).collect();
    let train_now = sp.cutoff.unwrap_or_else(|| ds.end());
    // Tuning sees the training part only: its validation split is carved from it, so the
    // held-out plays scored below never influence the chosen configuration.
    let trained = train_tuned(&slices, &catalog, &args.config, train_now)?;
    if let Some(dir) = &args.export_split {
        export_split(dir, ds, &catalog, &sp)?;
    }
    let rec = Recommender::new(Arc::new(trained.model), Arc::clone(&catalog));

    let blend = &args.config.blend;
    let prep = prepare(&ds.plays, &sp.queries, &trained.starts, &catalog, blend, kmax);
    let models: Vec<(&str, BlendConfig)> = vec![
        ("popularity", BlendConfig::only(Source::Popularity)),
        ("cowatch", BlendConfig::only(Source::CoWatch)),
        ("ease", BlendConfig::only(Source::Ease)),
        // The served configuration: the tuned one when tuning ran, else the configured blend.
        ("blend", rec.model().config.blend.clone()),
        // The configured blend without tuning, to show what tuning bought.
        ("defaults", blend.clone()),
    ];
    let lists: Vec<Vec<Vec<TitleIdx>>> = models.iter().map(|(_, cfg)| rank(&rec, &prep, cfg)).collect();
    let mut named: Vec<(String, Vec<Vec<TitleIdx>>)> =
        models.iter().map(|m| m.0.to_owned()).zip(lists).collect();
    for (name, file) in external {
        let l = sp
            .queries
            .iter()
            .map(|q| {
                file.get(&ds.profiles[q.profile])
                    .map(|ts| ts.iter().filter_map(|t| catalog.title_idx(t)).take(kmax).collect())
                    .unwrap_or_default()
            })
            .collect();
        named.push((name.clone(), l));
    }
    let oracle_note = match oracle {
        None => json!({"available": false, "note": "no oracle file"}),
        Some(lines) => match oracle_lists(lines, ds, &catalog, &sp, kmax) {
            Ok(l) => {
                named.push(("oracle".to_owned(), l));
                json!({"available": true})
            }
            Err(note) => json!({"available": false, "note": note}),
        },
    };

    let pop_share: Vec<f64> = {
        let profiles = rec.model().meta.profiles.max(1) as f64;
        (0..catalog.titles().len())
            .map(|t| f64::from(rec.popularity(catalog.item_of_title(t as TitleIdx))) / profiles)
            .collect()
    };
    let truths: Vec<HashSet<TitleIdx>> =
        sp.queries.iter().map(|q| q.truth.iter().copied().collect()).collect();
    let playable = catalog.playable_count().max(1) as f64;
    let mut out_models = serde_json::Map::new();
    let mut summary: HashMap<String, HashMap<String, Interval>> = HashMap::new();
    for (name, l) in &named {
        let mut m = serde_json::Map::new();
        for &k in &args.ks {
            let recall: Vec<f64> = l.iter().zip(&truths).map(|(r, t)| recall_at_k(r, t, k)).collect();
            let ndcg: Vec<f64> = l.iter().zip(&truths).map(|(r, t)| ndcg_at_k(r, t, k)).collect();
            let popv: Vec<f64> = l
                .iter()
                .map(|r| {
                    let top = &r[..r.len().min(k)];
                    if top.is_empty() {
                        0.0
                    } else {
                        top.iter().map(|&t| pop_share[t as usize]).sum::<f64>() / top.len() as f64
                    }
                })
                .collect();
            let mut stamp = vec![u32::MAX; catalog.titles().len()];
            let mut round = 0u32;
            let coverage = bootstrap(l.len(), args.bootstrap, args.seed, |idx| {
                round += 1;
                let mut distinct = 0usize;
                for &q in idx {
                    for &t in l[q].iter().take(k) {
                        if stamp[t as usize] != round {
                            stamp[t as usize] = round;
                            distinct += 1;
                        }
                    }
                }
                distinct as f64 / playable
            });
            let stats = [
                (format!("recall@{k}"), bootstrap_mean(&recall, args.bootstrap, args.seed)),
                (format!("ndcg@{k}"), bootstrap_mean(&ndcg, args.bootstrap, args.seed)),
                (format!("coverage@{k}"), coverage),
                (format!("avg_popularity@{k}"), bootstrap_mean(&popv, args.bootstrap, args.seed)),
            ];
            for (key, iv) in stats {
                m.insert(key.clone(), json!({"mean": iv.mean, "lo": iv.lo, "hi": iv.hi}));
                summary.entry(name.clone()).or_default().insert(key, iv);
            }
        }
        out_models.insert(name.clone(), Value::Object(m));
    }
    let mut share = serde_json::Map::new();
    if let Some(o) = summary.get("oracle") {
        for (name, s) in &summary {
            if name == "oracle" {
                continue;
            }
            let mut m = serde_json::Map::new();
            for &k in &args.ks {
                for metric in ["recall", "ndcg"] {
                    let key = format!("{metric}@{k}");
                    if let (Some(a), Some(b)) = (s.get(&key), o.get(&key))
                        && b.mean > 0.0
                    {
                        m.insert(key, json!(a.mean / b.mean));
                    }
                }
            }
            share.insert(name.clone(), Value::Object(m));
        }
    }
    Ok(json!({
        "protocol": args.protocol.as_str(),
        "cutoff": sp.cutoff.map(Timestamp::to_rfc3339),
        "test_fraction": if args.protocol == Protocol::Temporal { json!(args.test_fraction) } else { Value::Null },
        "profiles_evaluated": sp.queries.len(),
        "heldout_titles": sp.queries.iter().map(|q| q.truth.len()).sum::<usize>(),
        "train_plays": sp.train_len.iter().sum::<usize>(),
        "skipped_unknown_titles": ds.unknown_titles,
        "input": ds.input_report(),
        "catalog_playable_titles": catalog.playable_count(),
        "ks": args.ks,
        "bootstrap": {"resamples": args.bootstrap, "seed": args.seed, "level": 0.95, "paired": true},
        "model_version": rec.model().version,
        "train": rec.model().meta,
        "config": args.config,
        "served_config": rec.model().config,
        "tuning": rec.model().tuning,
        "models": out_models,
        "oracle": oracle_note,
        "share_of_oracle": share,
    }))
}

/// Queries ready to be scored under many blends on one trained model: each query's history and
/// the trending and popularity snapshots as of its instant (computed once, shared by the blends).
pub(crate) struct Prepared {
    /// Per query: the history before it, its instant, and its snapshot index.
    queries: Vec<(Resolved, Timestamp, usize)>,
    /// `(trending, all-time popularity)` as of each distinct query instant.
    snaps: Vec<(TrendingSnapshot, TrendingSnapshot)>,
    /// Titles asked per query.
    kmax: usize,
}

/// Prepare `queries` over `plays` (per profile, time-ordered) with the item starts of training.
/// Trending and popularity are computed as of each query's instant from starts before it, so no
/// model sees the future of the global counts.
pub(crate) fn prepare(
    plays: &[Vec<Play>],
    queries: &[Query],
    starts: &[(ItemIdx, i64)],
    catalog: &Catalog,
    blend: &BlendConfig,
    kmax: usize,
) -> Prepared {
    let mut starts = starts.to_vec();
    starts.sort_by_key(|s| s.1);
    let mut order: Vec<usize> = (0..queries.len()).collect();
    order.sort_by_key(|&q| queries[q].now);
    let mut trend = DecayedScores::new(catalog.items().len(), blend.trending_half_life_ms());
    let mut pop = DecayedScores::new(catalog.items().len(), None);
    let mut next_start = 0;
    let mut snaps: Vec<(TrendingSnapshot, TrendingSnapshot)> = Vec::new();
    let mut snap_of = vec![0usize; queries.len()];
    let mut last: Option<Timestamp> = None;
    for &qi in &order {
        let now = queries[qi].now;
        if last != Some(now) {
            while next_start < starts.len() && starts[next_start].1 <= now.0 {
                trend.add(starts[next_start].0, Timestamp(starts[next_start].1));
                pop.add(starts[next_start].0, Timestamp(starts[next_start].1));
                next_start += 1;
            }
            let to_snap = |s: &DecayedScores| TrendingSnapshot {
                as_of: now,
                scores: s
                    .top(now, blend.trending_top_n)
                    .into_iter()
                    .map(|(i, v)| (catalog.items()[i as usize].id.clone(), v))
                    .collect(),
            };
            snaps.push((to_snap(&trend), to_snap(&pop)));
            last = Some(now);
        }
        snap_of[qi] = snaps.len() - 1;
    }
    let queries = queries
        .iter()
        .zip(snap_of)
        .map(|(q, s)| {
            (Resolved { plays: plays[q.profile][..q.train_len].to_vec(), ..Resolved::default() }, q.now, s)
        })
        .collect();
    Prepared { queries, snaps, kmax }
}

/// Each prepared query's top row under `cfg`, through the serving code. A blend without a
/// trending half-life reads all-time popularity (that is what [`Source::Popularity`] means).
pub(crate) fn rank(rec: &Recommender, prep: &Prepared, cfg: &BlendConfig) -> Vec<Vec<TitleIdx>> {
    use rayon::prelude::*;
    let catalog = rec.catalog();
    prep.queries
        .par_iter()
        .map(|(resolved, now, s)| {
            let (trending, popular) = &prep.snaps[*s];
            let snapshot = if cfg.trending_half_life_days.is_none() { popular } else { trending };
            let req = RowRequest { row: RowKind::Top, limit: prep.kmax, rewatch: false, now: *now };
            rec.row(resolved, &req, snapshot, cfg)
                .iter()
                .filter_map(|r| catalog.title_idx(r.title_id.as_str()))
                .collect()
        })
        .collect()
}

/// Mean Recall@`k_recall` and NDCG@`k_ndcg` of ranked lists with their bootstrap intervals.
pub(crate) fn score(
    lists: &[Vec<TitleIdx>],
    truths: &[HashSet<TitleIdx>],
    (k_recall, k_ndcg): (usize, usize),
    resamples: usize,
    seed: u64,
) -> (Interval, Interval) {
    let recall: Vec<f64> = lists.iter().zip(truths).map(|(r, t)| recall_at_k(r, t, k_recall)).collect();
    let ndcg: Vec<f64> = lists.iter().zip(truths).map(|(r, t)| ndcg_at_k(r, t, k_ndcg)).collect();
    (bootstrap_mean(&recall, resamples, seed), bootstrap_mean(&ndcg, resamples, seed))
}

/// Match the oracle file to the split; any mismatch disables the oracle (a partial oracle would
/// be scored on a biased subset).
fn oracle_lists(
    lines: &[OracleLine],
    ds: &Dataset,
    catalog: &Catalog,
    sp: &Split,
    kmax: usize,
) -> Result<Vec<Vec<TitleIdx>>, String> {
    let by: HashMap<&str, &OracleLine> =
        lines.iter().filter(|l| l.protocol == sp.protocol).map(|l| (l.profile_id.as_str(), l)).collect();
    sp.queries
        .iter()
        .map(|q: &Query| {
            let id = &ds.profiles[q.profile];
            let l = by.get(id.as_str()).ok_or_else(|| format!("oracle has no {} line for profile {id}", sp.protocol.as_str()))?;
            if l.now_ms != q.now.0 || l.train_len != q.train_len {
                return Err(format!(
                    "oracle line for {id} is for another split (now {} / {} plays, split {} / {}); rerun synth or use the default test fraction",
                    l.now_ms, l.train_len, q.now.0, q.train_len
                ));
            }
            Ok(l.ranking.iter().filter_map(|(t, _)| catalog.title_idx(t)).take(kmax).collect())
        })
        .collect()
}

fn export_split(dir: &Path, ds: &Dataset, catalog: &Catalog, sp: &Split) -> Result<(), RecsError> {
    std::fs::create_dir_all(dir).map_err(|e| RecsError::io(dir, e))?;
    let mut rows = Vec::new();
    for (p, plays) in ds.plays.iter().enumerate() {
        for pl in &plays[..sp.train_len[p]] {
            rows.push(Interaction {
                profile_id: ds.profiles[p].clone(),
                title_id: catalog.titles()[pl.title as usize].id.clone(),
                watched_at: Timestamp(pl.at),
                percent: pl.percent,
            });
        }
    }
    let path = dir.join("train.csv");
    let f = File::create(&path).map_err(|e| RecsError::io(&path, e))?;
    let mut w = BufWriter::new(f);
    write_interactions(&mut w, &rows).and_then(|()| w.flush()).map_err(|e| RecsError::io(&path, e))?;
    let path = dir.join("queries.csv");
    let f = File::create(&path).map_err(|e| RecsError::io(&path, e))?;
    let mut w = BufWriter::new(f);
    let res = (|| {
        writeln!(w, "profile_id,now_ms")?;
        for q in &sp.queries {
            writeln!(w, "{},{}", crate::data::csv_field(&ds.profiles[q.profile]), q.now.0)?;
        }
        w.flush()
    })();
    res.map_err(|e| RecsError::io(&path, e))
}
