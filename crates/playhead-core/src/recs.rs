//! Serving recommendations: what the application hands a recommender and what it gets back.
//!
//! [`RecsEngine`] is a port like the storage ones, but computational: the binary implements it
//! over the `playhead-recs` engine (a trained model swapped atomically behind an `Arc`), so the
//! application and the transports never link the engine's dense linear algebra. The rule here:
//! plain values only; an engine never does I/O inside a request (it reads only what it holds and
//! what the request carries), so serving never waits on training.

use crate::ids::TitleId;
use crate::time::Timestamp;

/// Which row is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecsRow {
    /// The blended row: next episodes, EASE, co-watch, trending, new titles.
    Top,
    /// Neighbours of the most recently watched title.
    BecauseYouWatched,
    /// Films only, ranked like the top row (no series, no next episodes).
    Films,
    /// Trending now (within the profile's maturity limit).
    Trending,
}

impl RecsRow {
    /// Parse the `row` query value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "top" => Some(Self::Top),
            "because-you-watched" => Some(Self::BecauseYouWatched),
            "films" => Some(Self::Films),
            "trending" => Some(Self::Trending),
            _ => None,
        }
    }
}

/// One play of the profile's history.
#[derive(Debug, Clone, PartialEq)]
pub struct RecsPlay {
    /// The played title (movie or episode).
    pub title_id: TitleId,
    /// When it started.
    pub at: Timestamp,
    /// Percent watched, 0-100.
    pub percent: f32,
}

/// Everything about one profile a request carries to the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecsProfile {
    /// Recent plays (any order).
    pub plays: Vec<RecsPlay>,
    /// Feedback "up".
    pub up: Vec<TitleId>,
    /// Feedback "down": never recommended.
    pub down: Vec<TitleId>,
    /// Feedback "not interested": never recommended.
    pub not_interested: Vec<TitleId>,
    /// Titles hidden from Continue watching and not played since.
    pub hidden: Vec<TitleId>,
    /// Times each title was shown (titles shown often and never played sink).
    pub impressions: Vec<(TitleId, u32)>,
    /// Every title the profile watched (a completed play or a mark, of any age): never
    /// recommended (the recent plays above are only the latest few hundred).
    pub watched: Vec<TitleId>,
    /// Titles on the profile's list (My list): a positive signal.
    pub listed: Vec<TitleId>,
    /// Highest maturity (a minimum age) the profile may see.
    pub maturity_limit: Option<u8>,
    /// Live co-watch counters of the profile's most recent items (movie or series id -> counts),
    /// read per request so plays since the last training are served (the model's neighbours are
    /// replaced by these for those items).
    pub cowatch: Vec<(TitleId, crate::ports::CoWatchCounts)>,
}

/// Why a title is recommended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecsReason {
    /// Machine-readable kind (`because_you_watched`, `next_episode`, `trending_now`, ...).
    pub kind: String,
    /// The sentence a client shows.
    pub text: String,
    /// The title the reason names, when it names one.
    pub title_id: Option<TitleId>,
}

/// One recommended title.
#[derive(Debug, Clone, PartialEq)]
pub struct RecsItem {
    /// The title to play (a movie or an episode).
    pub title_id: TitleId,
    /// Blended score, comparable within one response only.
    pub score: f64,
    /// Why.
    pub reason: RecsReason,
}

/// A recommender the application can ask. Implementations must answer from memory (no I/O).
pub trait RecsEngine: Send + Sync {
    /// The version of the model in service, `None` before the first model.
    fn version(&self) -> Option<String>;
    /// A number that changes whenever what the engine answers from changes (a model installed,
    /// or the catalog re-joined to it): served rows are cached under it. Cheap (no lock, no copy).
    fn generation(&self) -> u64 {
        0
    }
    /// One row for a profile at `now`; `trending` is the live trending list (item, decayed
    /// score), best first.
    fn recommend(
        &self,
        profile: &RecsProfile,
        row: RecsRow,
        limit: usize,
        now: Timestamp,
        trending: &[(TitleId, f64)],
    ) -> Vec<RecsItem>;
    /// Titles similar to `title` (`None` when the engine does not know the title).
    fn similar(
        &self,
        title: &TitleId,
        limit: usize,
        maturity_limit: Option<u8>,
        now: Timestamp,
    ) -> Option<Vec<RecsItem>>;
    /// The model in service and how it was chosen (version, training metadata, settings, the
    /// self-tuning report), as JSON text for operators; `None` before the first model.
    fn model_report(&self) -> Option<String> {
        None
    }
}
