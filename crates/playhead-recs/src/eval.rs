//! Offline evaluation (`playhead recs eval`): every model on the serving code path, one protocol.
//!
//! Models: `popularity` (item starts up to the query instant, no decay), `cowatch` and `ease`
//! (each [`BlendConfig::only`] one source: no recency weighting, no diversity), `blend` (the served
//! configuration), any external recommendation files (e.g. the numpy reference), and `oracle` when
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

use crate::catalog::{Catalog, TitleIdx};
use crate::data::{Interaction, load_catalog_titles, load_interactions, write_interactions};
use crate::dataset::{Dataset, Play};
use crate::error::RecsError;
use crate::metrics::{Interval, bootstrap, bootstrap_mean, ndcg_at_k, recall_at_k};
use crate::model::{TrainConfig, train_on};
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
        }
    }
}

/// Run an evaluation from files; returns the report printed by the CLI.
pub fn eval(args: &EvalArgs) -> Result<Value, RecsError> {
    let catalog = Catalog::new(load_catalog_titles(&args.catalog)?);
    let interactions = load_interactions(&args.interactions)?;
    let ds = Dataset::new(&interactions, &catalog);
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
    let trained = train_on(&slices, &catalog, &args.config, train_now)?;
    if let Some(dir) = &args.export_split {
        export_split(dir, ds, &catalog, &sp)?;
    }
    let rec = Recommender::new(Arc::new(trained.model), Arc::clone(&catalog));

    // Trending and popularity as of each query's instant, sweeping time forward.
    let mut starts = trained.starts.clone();
    starts.sort_by_key(|s| s.1);
    let mut order: Vec<usize> = (0..sp.queries.len()).collect();
    order.sort_by_key(|&q| sp.queries[q].now);
    let blend = &args.config.blend;
    let mut trend = DecayedScores::new(catalog.items().len(), blend.trending_half_life_ms());
    let mut pop = DecayedScores::new(catalog.items().len(), None);
    let mut next_start = 0;
    let mut snap: Option<(Timestamp, TrendingSnapshot, TrendingSnapshot)> = None;

    let models: Vec<(&str, BlendConfig, bool)> = vec![
        ("popularity", BlendConfig::only(Source::Popularity), true),
        ("cowatch", BlendConfig::only(Source::CoWatch), false),
        ("ease", BlendConfig::only(Source::Ease), false),
        ("blend", blend.clone(), false),
    ];
    let mut lists: Vec<Vec<Vec<TitleIdx>>> = vec![vec![Vec::new(); sp.queries.len()]; models.len()];
    for &qi in &order {
        let q = &sp.queries[qi];
        if snap.as_ref().is_none_or(|s| s.0 != q.now) {
            while next_start < starts.len() && starts[next_start].1 <= q.now.0 {
                trend.add(starts[next_start].0, Timestamp(starts[next_start].1));
                pop.add(starts[next_start].0, Timestamp(starts[next_start].1));
                next_start += 1;
            }
            let to_snap = |s: &DecayedScores| TrendingSnapshot {
                as_of: q.now,
                scores: s
                    .top(q.now, blend.trending_top_n)
                    .into_iter()
                    .map(|(i, v)| (catalog.items()[i as usize].id.clone(), v))
                    .collect(),
            };
            snap = Some((q.now, to_snap(&trend), to_snap(&pop)));
        }
        let Some((_, trending, popular)) = &snap else { continue };
        let resolved = Resolved { plays: ds.plays[q.profile][..q.train_len].to_vec(), ..Resolved::default() };
        let req = RowRequest { row: RowKind::Top, limit: kmax, rewatch: false, now: q.now };
        for (m, (_, cfg, use_pop)) in models.iter().enumerate() {
            let snapshot = if *use_pop { popular } else { trending };
            lists[m][qi] = rec
                .row(&resolved, &req, snapshot, cfg)
                .iter()
                .filter_map(|r| catalog.title_idx(r.title_id.as_str()))
                .collect();
        }
    }

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
        "catalog_playable_titles": catalog.playable_count(),
        "ks": args.ks,
        "bootstrap": {"resamples": args.bootstrap, "seed": args.seed, "level": 0.95, "paired": true},
        "model_version": rec.model().version,
        "train": rec.model().meta,
        "config": args.config,
        "models": out_models,
        "oracle": oracle_note,
        "share_of_oracle": share,
    }))
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
