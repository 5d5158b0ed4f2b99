//! Playhead's recommendation engine: EASE, co-watch kNN, next episode, trending and cold start,
//! blended into explained rows; plus the offline tools (`train`, `batch`, `eval`, `synth`).
//!
//! The rule of this crate: no HTTP, no SQL, no clock, no environment. Inputs are values (plays,
//! catalog titles, counters) or files named by the caller; outputs are values. Models are
//! immutable and versioned so the binary can swap them behind an `Arc` while serving continues.
//! The binary wires the REST endpoints, the event consumer and the `playhead recs` subcommands to
//! the functions re-exported here.
//!
//! Map of the crate:
//! - [`data`]: input files (interactions CSV, catalog NDJSON) and the positive threshold;
//! - [`catalog`]: items (movies and series), episode order, series -> playable title;
//! - [`ease`]: the dense EASE solve (faer) and its memory bound;
//! - [`cowatch`]: incremental, idempotent co-watch counters and their kNN index;
//! - [`trending`]: decayed, sharded counters;
//! - [`model`]: training into a versioned [`model::Model`];
//! - [`serve`]: blending, filtering, diversity and reasons ([`serve::Recommender`]);
//! - [`split`], [`metrics`], [`eval`]: the offline evaluation;
//! - [`tune`]: self-tuning on the data's own recent plays, with the single-source guard;
//! - [`batch`]: `recs batch` and `recs train`; [`synth`]: the synthetic generator.

pub mod batch;
pub mod catalog;
pub mod cowatch;
pub mod data;
pub mod dataset;
pub mod ease;
pub mod error;
pub mod eval;
pub mod metrics;
pub mod model;
pub mod serve;
pub mod split;
pub mod synth;
pub mod trending;
pub mod tune;

pub use batch::{BatchArgs, BatchReport, TrainArgs, batch, read_model, train_files, write_model};
pub use catalog::Catalog;
pub use cowatch::{CoWatch, CoWatchDelta, CoWatchIndex, delta_for_play};
pub use data::{Interaction, is_positive, load_catalog_titles, load_interactions};
pub use dataset::Dataset;
pub use error::RecsError;
pub use eval::{EvalArgs, eval};
pub use model::{Model, TrainConfig, TrainMeta, train};
pub use serve::{
    BlendConfig, FeedbackKind, LiveCoWatch, ProfilePlay, ProfileState, Reason, Recommendation, Recommender,
    RowKind, RowRequest,
};
pub use split::Protocol;
pub use synth::{SynthArgs, SynthReport, SynthScale, SynthShape, synth};
pub use trending::{TrendingCounters, TrendingSnapshot};
pub use tune::{TuneConfig, TuneReport};
