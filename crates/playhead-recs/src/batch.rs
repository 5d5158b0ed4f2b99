//! `playhead recs batch` and `playhead recs train`: whole-file training and per-profile output.
//!
//! Rule: batch output goes through [`Recommender::recommend`] with a [`ProfileState`] built from
//! the file, exactly what the REST endpoint calls, so batch results are what a player would have
//! been served at the end of the file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use playhead_core::Timestamp;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::data::{Interaction, load_catalog_titles, load_interactions};
use crate::dataset::{Dataset, InputReport, Play};
use crate::error::RecsError;
use crate::model::{Model, TrainConfig, TrainMeta, train_tuned, trending_snapshot};
use crate::serve::{ProfilePlay, ProfileState, Recommender, RowKind, RowRequest};
use crate::tune::TuneReport;

/// Arguments of `playhead recs batch`.
#[derive(Debug, Clone)]
pub struct BatchArgs {
    /// Interactions CSV.
    pub interactions: PathBuf,
    /// Catalog NDJSON.
    pub catalog: PathBuf,
    /// Titles per profile.
    pub k: usize,
    /// Output JSONL.
    pub out: PathBuf,
    /// Training and blend settings.
    pub config: TrainConfig,
    /// The caller's clock: plays after it are left out and counted (`None`: no check).
    pub now: Option<Timestamp>,
}

/// What a batch run did.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    /// Profiles written.
    pub profiles: usize,
    /// Interactions skipped (title not in the catalog).
    pub skipped_unknown_titles: usize,
    /// What the input held and what was left out.
    pub input: InputReport,
    /// The instant recommendations are for (the last play in the file).
    pub as_of: Timestamp,
    /// The model trained for it.
    pub model_version: String,
    /// Its training metadata.
    pub train: TrainMeta,
    /// What self-tuning chose and why (`None` with tuning off).
    pub tuning: Option<TuneReport>,
}

/// Train on the whole file and write each profile's top `k` unwatched playable titles.
pub fn batch(args: &BatchArgs) -> Result<BatchReport, RecsError> {
    if args.k == 0 {
        return Err(RecsError::InvalidArgument("k must be at least 1".into()));
    }
    let catalog = Arc::new(Catalog::new(load_catalog_titles(&args.catalog)?));
    let interactions = load_interactions(&args.interactions)?;
    let ds = Dataset::checked(&interactions, &catalog, args.now);
    drop(interactions);
    let end = ds.end();
    let slices: Vec<&[Play]> = ds.plays.iter().map(Vec::as_slice).collect();
    let trained = train_tuned(&slices, &catalog, &args.config, end)?;
    // The served blend: the tuned one (the configured one when tuning is off).
    let blend = &trained.model.config.blend;
    let trending = trending_snapshot(
        &trained.starts,
        &catalog,
        blend.trending_half_life_ms(),
        end,
        blend.trending_top_n,
    );
    let model = Arc::new(trained.model);
    let rec = Recommender::new(Arc::clone(&model), Arc::clone(&catalog));

    // Each profile's plays as the dataset kept them (bad rows left out and counted).
    let states: Vec<ProfileState> = ds
        .plays
        .iter()
        .map(|plays| ProfileState {
            plays: plays
                .iter()
                .map(|pl| ProfilePlay {
                    title_id: catalog.titles()[pl.title as usize].id.clone(),
                    at: Timestamp(pl.at),
                    percent: pl.percent,
                })
                .collect(),
            ..ProfileState::default()
        })
        .collect();
    let f = File::create(&args.out).map_err(|e| RecsError::io(&args.out, e))?;
    let mut w = BufWriter::new(f);
    let req = RowRequest { row: RowKind::Top, limit: args.k, rewatch: false, now: end };
    for (p, state) in states.iter().enumerate() {
        let titles: Vec<String> =
            rec.recommend(state, &req, &trending).into_iter().map(|r| r.title_id.to_string()).collect();
        let line = serde_json::json!({"profile_id": ds.profiles[p], "titles": titles});
        writeln!(w, "{line}").map_err(|e| RecsError::io(&args.out, e))?;
    }
    w.flush().map_err(|e| RecsError::io(&args.out, e))?;
    Ok(BatchReport {
        profiles: ds.profiles.len(),
        skipped_unknown_titles: ds.unknown_titles,
        input: ds.input_report(),
        as_of: end,
        model_version: model.version.clone(),
        train: model.meta.clone(),
        tuning: model.tuning.clone(),
    })
}

/// Arguments of `playhead recs train`.
#[derive(Debug, Clone)]
pub struct TrainArgs {
    /// Interactions CSV.
    pub interactions: PathBuf,
    /// Catalog NDJSON.
    pub catalog: PathBuf,
    /// Where to write the model JSON (written to a temporary file, then renamed).
    pub out: PathBuf,
    /// Settings.
    pub config: TrainConfig,
    /// The caller's clock (the model's `trained_at`).
    pub now: Timestamp,
}

/// Train from files and write the model atomically; returns the model.
pub fn train_files(args: &TrainArgs) -> Result<Model, RecsError> {
    let catalog = Catalog::new(load_catalog_titles(&args.catalog)?);
    let interactions: Vec<Interaction> = load_interactions(&args.interactions)?;
    let ds = Dataset::new(&interactions, &catalog);
    let model = crate::model::train(&ds, &catalog, &args.config, args.now)?;
    write_model(&model, &args.out)?;
    Ok(model)
}

/// Write a model as JSON to `path` atomically (temporary file in the same directory, then rename),
/// so a reader never sees half a model.
pub fn write_model(model: &Model, path: &Path) -> Result<(), RecsError> {
    let tmp = path.with_extension("json.tmp");
    let f = File::create(&tmp).map_err(|e| RecsError::io(&tmp, e))?;
    let mut w = BufWriter::new(f);
    serde_json::to_writer(&mut w, model).map_err(|e| RecsError::Json { what: "model".into(), source: e })?;
    w.flush().map_err(|e| RecsError::io(&tmp, e))?;
    w.get_ref().sync_all().map_err(|e| RecsError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RecsError::io(path, e))
}

/// Read a model written by [`write_model`].
pub fn read_model(path: &Path) -> Result<Model, RecsError> {
    let s = std::fs::read_to_string(path).map_err(|e| RecsError::io(path, e))?;
    Model::from_json(&s)
}
