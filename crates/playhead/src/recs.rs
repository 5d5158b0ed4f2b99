//! `playhead recs ...`: the offline recommendation tools (`batch`, `eval`, `synth`) over files,
//! and `train`, which trains from this service's own store and writes a versioned model into the
//! data dir.
//!
//! The rule here: wiring only. Every algorithm lives in `playhead-recs` (no I/O of its own beyond
//! the files it is named) and every read of the store goes through the core's ports, so this
//! module only turns flags into arguments and stored plays into the engine's interactions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use playhead_core::ports::{Catalog as CatalogPort, Clock, RecsStore};
use playhead_core::recs::{RecsEngine, RecsItem, RecsProfile, RecsReason, RecsRow};
use playhead_core::title::Title;
use playhead_core::{Timestamp, TitleId};
use playhead_recs::catalog::Catalog;
use playhead_recs::dataset::Dataset;
use playhead_recs::{
    BatchArgs, EvalArgs, Interaction, LiveCoWatch, Model, ProfilePlay, ProfileState, Protocol, Reason,
    Recommender, RowKind, RowRequest, SynthArgs, SynthScale, TrainConfig, TrendingSnapshot,
};
use serde_json::{Value, json};

/// Plays read from the store per round trip when training.
const TRAIN_PAGE: u32 = 5_000;
/// Titles read from the catalog per round trip when training.
const CATALOG_PAGE: u32 = 1_000;
/// Directory under the data dir that holds trained models.
pub const MODELS_DIR: &str = "recs/models";
/// File under the data dir naming the model in service (its version, one line).
pub const CURRENT_FILE: &str = "recs/CURRENT";

/// Read a training configuration (JSON, the engine's `TrainConfig`; missing keys take defaults).
pub fn train_config(path: Option<&Path>) -> anyhow::Result<TrainConfig> {
    match path {
        None => Ok(TrainConfig::default()),
        Some(p) => {
            let s = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&s).with_context(|| format!("{}: not a training configuration", p.display()))
        }
    }
}

/// Parse `--protocol`.
pub fn protocol(s: &str) -> anyhow::Result<Protocol> {
    Protocol::parse(s)
        .ok_or_else(|| anyhow::anyhow!("--protocol must be temporal or leave-last-out, not {s:?}"))
}

/// `recs batch`: train on the whole file and write each profile's top `k` to `out`.
pub fn batch(
    interactions: PathBuf,
    catalog: PathBuf,
    k: usize,
    out: PathBuf,
    config: TrainConfig,
) -> anyhow::Result<Value> {
    anyhow::ensure!((1..=1000).contains(&k), "--k must be 1-1000");
    // The wall clock: plays stamped after it are left out and counted in the report.
    let now = Some(playhead_app::clock::SystemClock.now());
    let r = playhead_recs::batch(&BatchArgs { interactions, catalog, k, out: out.clone(), config, now })?;
    Ok(json!({"out": out, "report": r}))
}

/// `recs eval` arguments beyond the files.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Protocol.
    pub protocol: Protocol,
    /// Cut-offs.
    pub ks: Vec<usize>,
    /// Bootstrap seed.
    pub seed: u64,
    /// Bootstrap resamples.
    pub bootstrap: usize,
    /// External recommendation files `(name, path)`.
    pub external: Vec<(String, PathBuf)>,
    /// Where to export the split.
    pub export_split: Option<PathBuf>,
    /// Training settings.
    pub config: TrainConfig,
}

/// `recs eval`: the report as JSON.
pub fn eval(interactions: PathBuf, catalog: PathBuf, o: EvalOptions) -> anyhow::Result<Value> {
    anyhow::ensure!(!o.ks.is_empty(), "--k needs at least one cut-off");
    anyhow::ensure!(o.ks.iter().all(|k| (1..=1000).contains(k)), "--k: each cut-off must be 1-1000");
    anyhow::ensure!((10..=100_000).contains(&o.bootstrap), "--bootstrap must be 10-100000");
    let mut a = EvalArgs::new(interactions, catalog, o.protocol);
    a.ks = o.ks;
    a.seed = o.seed;
    a.bootstrap = o.bootstrap;
    a.external = o.external;
    a.export_split = o.export_split;
    a.config = o.config;
    a.now = Some(playhead_app::clock::SystemClock.now());
    Ok(playhead_recs::eval(&a)?)
}

/// `recs synth`: write a synthetic data set into `out`.
pub fn synth(out: PathBuf, seed: u64, scale: SynthScale) -> anyhow::Result<Value> {
    let r = playhead_recs::synth(&SynthArgs { out, seed, scale })?;
    Ok(serde_json::to_value(r)?)
}

/// Turn one stored play into the engine's interaction. The percent is what the profile watched
/// of the title (a completed play is 100 whatever its watched time: credits are often skipped).
pub fn interaction(v: &playhead_core::ports::Viewing, title: Option<&Title>) -> Interaction {
    let percent = if v.completed {
        100.0
    } else {
        match title {
            Some(t) if t.duration_ms > 0 => {
                (v.watched_ms as f64 * 100.0 / t.duration_ms as f64).clamp(0.0, 100.0) as f32
            }
            _ => 0.0,
        }
    };
    Interaction {
        profile_id: v.profile_id.to_string(),
        title_id: v.title_id.clone(),
        watched_at: v.started_at,
        percent: Some(percent),
    }
}

/// Every title of the catalog, paged by id.
async fn all_titles(catalog: &dyn CatalogPort) -> anyhow::Result<Vec<Title>> {
    let mut out: Vec<Title> = Vec::new();
    loop {
        let after: Option<TitleId> = out.last().map(|t| t.id.clone());
        let page = catalog.list_titles(after.as_ref(), CATALOG_PAGE).await?;
        let done = page.len() < CATALOG_PAGE as usize;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// What `recs train` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainReport {
    /// The model's version.
    pub version: String,
    /// Where it was written.
    pub path: PathBuf,
    /// Plays read from the store.
    pub plays: usize,
    /// Catalog titles.
    pub titles: usize,
    /// The model's training metadata.
    pub meta: playhead_recs::TrainMeta,
}

/// `recs train`: read every play and the catalog through the ports, train, and write the model
/// to `<data_dir>/recs/models/<version>.json`, then point `<data_dir>/recs/CURRENT` at it. Both
/// writes are atomic (temporary file, then rename), so a server reading `CURRENT` never sees a
/// half-written model, and older versions stay on disk for rollback.
pub async fn train_from_store(
    data_dir: &Path,
    catalog_port: &dyn CatalogPort,
    recs: &dyn RecsStore,
    config: &TrainConfig,
    now: Timestamp,
) -> anyhow::Result<TrainReport> {
    let titles = all_titles(catalog_port).await?;
    let by_id: std::collections::HashMap<&TitleId, &Title> = titles.iter().map(|t| (&t.id, t)).collect();
    let mut interactions = Vec::new();
    let mut after = None;
    loop {
        let page = recs.training_plays(after, TRAIN_PAGE).await?;
        let done = page.len() < TRAIN_PAGE as usize;
        after = page.last().map(|v| (v.profile_id, v.id));
        interactions.extend(page.iter().map(|v| interaction(v, by_id.get(&v.title_id).copied())));
        if done {
            break;
        }
    }
    let n_titles = titles.len();
    let plays = interactions.len();
    let (config, data_dir) = (config.clone(), data_dir.to_path_buf());
    // Training is seconds of CPU (a dense solve): never on an async worker, so a server that
    // trains on a schedule keeps answering while it runs.
    let (model, path) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Model, PathBuf)> {
        let catalog = Catalog::new(titles);
        let ds = Dataset::new(&interactions, &catalog);
        let model = playhead_recs::train(&ds, &catalog, &config, now)?;
        let path = write_versioned(&data_dir, &model)?;
        Ok((model, path))
    })
    .await
    .context("training task")??;
    Ok(TrainReport { version: model.version.clone(), path, plays, titles: n_titles, meta: model.meta })
}

/// Write `model` under the data dir's models directory and make it current.
pub fn write_versioned(data_dir: &Path, model: &Model) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join(MODELS_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.json", model.version));
    playhead_recs::write_model(model, &path)?;
    let current = data_dir.join(CURRENT_FILE);
    let tmp = current.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", model.version))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &current).with_context(|| format!("renaming to {}", current.display()))?;
    Ok(path)
}

/// The model `<data_dir>/recs/CURRENT` names, if any.
pub fn read_current(data_dir: &Path) -> anyhow::Result<Option<Model>> {
    let Some(version) = read_current_version(data_dir)? else { return Ok(None) };
    let path = data_dir.join(MODELS_DIR).join(format!("{version}.json"));
    Ok(Some(playhead_recs::read_model(&path)?))
}

/// The recommender the server runs: a [`Recommender`] (model joined to the catalog) behind an
/// `Arc` that training swaps atomically. A request clones the `Arc` under a read lock held for
/// nanoseconds and then works on its own snapshot, so serving never waits for training and a
/// swap never tears a response.
pub struct ServedRecs {
    current: std::sync::RwLock<Option<Arc<Recommender>>>,
}

impl Default for ServedRecs {
    fn default() -> Self {
        Self::new()
    }
}

impl ServedRecs {
    /// Nothing in service yet (rows are empty until the first model is installed).
    pub fn new() -> Self {
        Self { current: std::sync::RwLock::new(None) }
    }

    /// Put `model` (joined to `titles`) into service.
    pub fn install(&self, model: Arc<Model>, titles: Vec<Title>) {
        let rec = Arc::new(Recommender::new(model, Arc::new(Catalog::new(titles))));
        let mut slot = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(rec);
    }

    fn snapshot(&self) -> Option<Arc<Recommender>> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn reason(r: &Reason) -> RecsReason {
    let (kind, title_id) = match r {
        Reason::BecauseYouWatched { title_id, .. } => ("because_you_watched", Some(title_id.clone())),
        Reason::NextEpisode { series_id, .. } => ("next_episode", Some(series_id.clone())),
        Reason::ContinueSeries { series_id, .. } => ("continue_series", Some(series_id.clone())),
        Reason::TrendingNow => ("trending_now", None),
        Reason::PopularInGenre { .. } => ("popular_in_genre", None),
        Reason::NewLike { title_id, .. } => ("new_like", Some(title_id.clone())),
        Reason::SimilarTo { title_id, .. } => ("similar_to", Some(title_id.clone())),
    };
    RecsReason { kind: kind.to_owned(), text: r.text(), title_id }
}

fn items(recs: Vec<playhead_recs::Recommendation>) -> Vec<RecsItem> {
    recs.into_iter()
        .map(|r| RecsItem { title_id: r.title_id, score: r.score, reason: reason(&r.reason) })
        .collect()
}

impl RecsEngine for ServedRecs {
    fn version(&self) -> Option<String> {
        self.snapshot().map(|r| r.model().version.clone())
    }

    fn model_report(&self) -> Option<String> {
        let rec = self.snapshot()?;
        let m = rec.model();
        Some(json!({
            "version": m.version,
            "train": m.meta,
            "config": m.config,
            "served": m.tuning.as_ref().map_or("configured blend (tuning off)", |t| t.guard.served.as_str()),
            "tuning": m.tuning,
        })
        .to_string())
    }

    fn recommend(
        &self,
        profile: &RecsProfile,
        row: RecsRow,
        limit: usize,
        now: Timestamp,
        trending: &[(TitleId, f64)],
    ) -> Vec<RecsItem> {
        let Some(rec) = self.snapshot() else { return Vec::new() };
        let state = ProfileState {
            plays: profile
                .plays
                .iter()
                .map(|p| ProfilePlay { title_id: p.title_id.clone(), at: p.at, percent: Some(p.percent) })
                .collect(),
            // Every watched title (completed or marked, whatever its age): the recommender never
            // offers what the profile has seen, not only what its recent plays show.
            marked_watched: profile.watched.clone(),
            // A title on My list is a wish: a positive signal like a thumbs up.
            up: profile.up.iter().chain(&profile.listed).cloned().collect(),
            down: profile.down.clone(),
            not_interested: profile.not_interested.clone(),
            hidden: profile.hidden.clone(),
            impressions: profile.impressions.iter().cloned().collect(),
            maturity_limit: profile.maturity_limit,
            live_cowatch: profile
                .cowatch
                .iter()
                .map(|(item, c)| LiveCoWatch {
                    item: item.clone(),
                    count: c.count,
                    neighbours: c.neighbours.clone(),
                })
                .collect(),
        };
        let row = match row {
            RecsRow::Top => RowKind::Top,
            RecsRow::BecauseYouWatched => RowKind::BecauseYouWatched { anchor: None },
            RecsRow::Films => RowKind::Films,
            RecsRow::Trending => RowKind::Trending,
        };
        let top_n = rec.model().config.blend.trending_top_n;
        let snapshot = TrendingSnapshot::from_scores(now, trending.iter().cloned(), top_n);
        items(rec.recommend(&state, &RowRequest { row, limit, rewatch: false, now }, &snapshot))
    }

    fn similar(
        &self,
        title: &TitleId,
        limit: usize,
        maturity_limit: Option<u8>,
        now: Timestamp,
    ) -> Option<Vec<RecsItem>> {
        let rec = self.snapshot()?;
        rec.catalog().title(title.as_str())?;
        Some(items(rec.similar(title.as_str(), limit, maturity_limit, now)))
    }
}

/// Keep the served model fresh until `stop`: load the model `CURRENT` names (training one first
/// when there is none), train again on the schedule, pick up models written by `playhead recs
/// train`, and re-join the model to the catalog on every tick so titles imported since are
/// served (new titles reach rows through genre similarity until they have plays). Failures are
/// logged and retried on the next tick; the model in service stays.
pub async fn lifecycle(
    engine: Arc<ServedRecs>,
    app: playhead_app::App,
    data_dir: PathBuf,
    settings: crate::config::RecsSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut loaded: Option<Arc<Model>> = None;
    let mut last_train = std::time::Instant::now();
    loop {
        let step = async {
            let mut version = read_current_version(&data_dir)?;
            let due = settings.train_interval_secs > 0
                && last_train.elapsed() >= std::time::Duration::from_secs(settings.train_interval_secs);
            let ports = app.ports();
            if version.is_none() || due {
                let started = std::time::Instant::now();
                let report = train_from_store(
                    &data_dir,
                    ports.catalog.as_ref(),
                    ports.recs.as_ref(),
                    &settings_train_config(&settings),
                    app.clock().now(),
                )
                .await?;
                last_train = std::time::Instant::now();
                tracing::info!(model.version = %report.version, play.count = report.plays,
                    duration_ms = started.elapsed().as_millis() as u64, "recommendation model trained");
                version = Some(report.version);
            }
            let Some(version) = version else { return Ok::<_, anyhow::Error>(()) };
            if loaded.as_ref().is_none_or(|m| m.version != version) {
                let d = data_dir.clone();
                let model = tokio::task::spawn_blocking(move || read_current(&d))
                    .await
                    .context("loading the model")??
                    .ok_or_else(|| anyhow::anyhow!("recs/CURRENT vanished"))?;
                // Never go back in time: a CURRENT pointing at a model older than the one in
                // service (a slow trainer finishing late) is ignored.
                if let Some(m) = loaded.as_ref().filter(|m| m.meta.trained_at > model.meta.trained_at) {
                    tracing::warn!(model.version = %model.version, model.serving = %m.version,
                        "recs/CURRENT names a model older than the one in service: kept the newer");
                } else {
                    tracing::info!(model.version = %model.version, "recommendation model loaded");
                    if let Some(old) = &loaded {
                        metrics::gauge!("playhead_recs_model_info", "version" => old.version.clone())
                            .set(0.0);
                    }
                    metrics::gauge!("playhead_recs_model_info", "version" => model.version.clone()).set(1.0);
                    #[expect(clippy::cast_precision_loss, reason = "a gauge")]
                    metrics::gauge!("playhead_recs_model_trained_timestamp_seconds")
                        .set(model.meta.trained_at.0 as f64 / 1000.0);
                    loaded = Some(Arc::new(model));
                }
            }
            if let Some(model) = &loaded {
                let titles = all_titles(ports.catalog.as_ref()).await?;
                let model = Arc::clone(model);
                let engine = Arc::clone(&engine);
                // Joining a model to the catalog is linear in the model: off the async workers.
                tokio::task::spawn_blocking(move || engine.install(model, titles))
                    .await
                    .context("installing")?;
            }
            Ok(())
        };
        if let Err(e) = step.await {
            tracing::warn!(error = %format!("{e:#}"), "recommendation model refresh failed");
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(settings.reload_interval_secs.max(1))) => {}
            // The guard `wait_for` returns is not Send: drop it inside this future.
            () = async { let _ = stop.wait_for(|v| *v).await; } => return,
        }
    }
}

/// The training settings the server uses: the engine's defaults with the `[recs]` search bounds.
pub fn settings_train_config(settings: &crate::config::RecsSettings) -> TrainConfig {
    let d = TrainConfig::default();
    let tune = playhead_recs::TuneConfig {
        enabled: settings.search_size > 0,
        search_size: settings.search_size.max(1),
        time_budget_secs: settings.search_budget_secs,
        ..d.tune.clone()
    };
    TrainConfig { tune, ..d }
}

/// The version `<data_dir>/recs/CURRENT` names, if any.
pub fn read_current_version(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let current = data_dir.join(CURRENT_FILE);
    match std::fs::read_to_string(&current) {
        Ok(v) => {
            let v = v.trim().to_owned();
            anyhow::ensure!(
                !v.is_empty() && !v.contains(['/', '\\']) && !v.starts_with('.'),
                "{}: not a model version: {v:?}",
                current.display()
            );
            Ok(Some(v))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", current.display())),
    }
}
