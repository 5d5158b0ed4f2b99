//! `playhead recs ...`: the offline recommendation tools (`batch`, `eval`, `synth`) over files,
//! and `train`, which trains from this service's own store and stores the versioned model there
//! (so every replica of a deployment serves the same one: decision 0106).
//!
//! The rule here: wiring only. Every algorithm lives in `playhead-recs` (no I/O of its own beyond
//! the files it is named) and every read of the store goes through the core's ports, so this
//! module only turns flags into arguments and stored plays into the engine's interactions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use playhead_core::ports::{Catalog as CatalogPort, Clock, RecsStore, StoredModel};
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
/// Models kept in the store (the newest serves; the rest are for rollback and inspection).
pub const MODELS_KEPT: u32 = 5;

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
    /// Its size as stored, bytes.
    pub stored_bytes: usize,
    /// Plays read from the store.
    pub plays: usize,
    /// Catalog titles.
    pub titles: usize,
    /// The model's training metadata.
    pub meta: playhead_recs::TrainMeta,
}

/// `recs train`: read every play and the catalog through the ports, train, and store the model
/// (`RecsStore::put_model`). Servers load the newest stored model by training time, so a model
/// that finishes after a newer one never replaces it.
pub async fn train_from_store(
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
    let config = config.clone();
    // Training is seconds of CPU (a dense solve): never on an async worker, so a server that
    // trains on a schedule keeps answering while it runs.
    let (model, body) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Model, Vec<u8>)> {
        let catalog = Catalog::new(titles);
        let ds = Dataset::new(&interactions, &catalog);
        let model = playhead_recs::train(&ds, &catalog, &config, now)?;
        let body = serde_json::to_vec(&model).context("serializing the model")?;
        Ok((model, body))
    })
    .await
    .context("training task")??;
    let stored_bytes = body.len();
    let stored = StoredModel { version: model.version.clone(), trained_at: model.meta.trained_at, body };
    recs.put_model(&stored, MODELS_KEPT).await.context("storing the model")?;
    Ok(TrainReport {
        version: model.version.clone(),
        stored_bytes,
        plays,
        titles: n_titles,
        meta: model.meta,
    })
}

/// Read a stored model.
async fn load_model(recs: &dyn RecsStore, version: &str) -> anyhow::Result<Option<Model>> {
    let Some(body) = recs.model_body(version).await? else { return Ok(None) };
    let model = tokio::task::spawn_blocking(move || -> anyhow::Result<Model> {
        let text = std::str::from_utf8(&body).context("a stored model is not UTF-8")?;
        Ok(Model::from_json(text)?)
    })
    .await
    .context("loading the model")??;
    Ok(Some(model))
}

/// The recommender the server runs: a [`Recommender`] (model joined to the catalog) behind an
/// `Arc` that training swaps atomically. A request clones the `Arc` under a read lock held for
/// nanoseconds and then works on its own snapshot, so serving never waits for training and a
/// swap never tears a response.
pub struct ServedRecs {
    current: std::sync::RwLock<Option<Arc<Recommender>>>,
    /// Installs so far: the engine's generation (served rows are cached under it).
    installs: std::sync::atomic::AtomicU64,
}

impl Default for ServedRecs {
    fn default() -> Self {
        Self::new()
    }
}

impl ServedRecs {
    /// Nothing in service yet (rows are empty until the first model is installed).
    pub fn new() -> Self {
        Self { current: std::sync::RwLock::new(None), installs: std::sync::atomic::AtomicU64::new(0) }
    }

    /// Put `model` (joined to `titles`) into service.
    pub fn install(&self, model: Arc<Model>, titles: Vec<Title>) {
        let rec = Arc::new(Recommender::new(model, Arc::new(Catalog::new(titles))));
        let mut slot = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(rec);
        // After the swap: a row computed from the old model lands under the old generation.
        self.installs.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
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

    fn generation(&self) -> u64 {
        self.installs.load(std::sync::atomic::Ordering::Acquire)
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

/// Keep the served model fresh until `stop`. Every tick: when the newest stored model is older
/// than `train_interval_secs` (or there is none), the replica that takes the training lease
/// trains and stores a new one (the others keep serving); then every replica loads the newest
/// stored model if it is not the one it serves, and never an older one; and re-joins the model to
/// the catalog so titles imported since are served (through genre similarity until they have
/// plays). Failures are logged and retried on the next tick; the model in service stays.
pub async fn lifecycle(
    engine: Arc<ServedRecs>,
    app: playhead_app::App,
    settings: crate::config::RecsSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut loaded: Option<Arc<Model>> = None;
    // This process, as a lease holder (a restarted replica is a new holder: its old lease runs out).
    let holder = uuid::Uuid::new_v4().to_string();
    loop {
        let step = async {
            let ports = app.ports();
            let now = app.clock().now();
            let latest = ports.recs.latest_model().await?;
            let interval_ms =
                i64::try_from(settings.train_interval_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            let due = match &latest {
                None => true,
                Some(l) => {
                    settings.train_interval_secs > 0 && now.0.saturating_sub(l.trained_at.0) >= interval_ms
                }
            };
            // Long enough for the search's safety stop and the refit; a holder that dies frees
            // it when it runs out.
            let lease_ms = i64::try_from(settings.search_budget_secs.saturating_mul(3).saturating_add(600))
                .unwrap_or(3_600)
                .saturating_mul(1000);
            if due
                && ports.recs.lease_training(&holder, now, Timestamp(now.0.saturating_add(lease_ms))).await?
            {
                let started = std::time::Instant::now();
                let trained = train_from_store(
                    ports.catalog.as_ref(),
                    ports.recs.as_ref(),
                    &settings_train_config(&settings),
                    now,
                )
                .await;
                let end = app.clock().now();
                ports.recs.lease_training(&holder, end, end).await?;
                let report = trained?;
                tracing::info!(model.version = %report.version, play.count = report.plays,
                    model.bytes = report.stored_bytes,
                    duration_ms = started.elapsed().as_millis() as u64, "recommendation model trained");
            }
            let newest = ports.recs.latest_model().await?;
            if let Some(newest) = newest.filter(|n| {
                loaded.as_ref().is_none_or(|m| m.version != n.version && m.meta.trained_at <= n.trained_at)
            }) {
                let Some(model) = load_model(ports.recs.as_ref(), &newest.version).await? else {
                    anyhow::bail!("model {} vanished before it was loaded", newest.version);
                };
                tracing::info!(model.version = %model.version, "recommendation model loaded");
                if let Some(old) = &loaded {
                    metrics::gauge!("playhead_recs_model_info", "version" => old.version.clone()).set(0.0);
                }
                metrics::gauge!("playhead_recs_model_info", "version" => model.version.clone()).set(1.0);
                #[expect(clippy::cast_precision_loss, reason = "a gauge")]
                metrics::gauge!("playhead_recs_model_trained_timestamp_seconds")
                    .set(model.meta.trained_at.0 as f64 / 1000.0);
                loaded = Some(Arc::new(model));
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
            Ok::<_, anyhow::Error>(())
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
