//! The GraphQL object types: the REST representations with camelCase names (`titleId`,
//! `positionMs`, a play's `period { start end }` and `watched { ms percent completed }` as in the
//! v2 REST shape). Plain data: the fields that run a use case live on `Profile`
//! ([`crate::profile`]) and the roots.

use async_graphql::dataloader::DataLoader;
use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use playhead_app::library::WatchState;
use playhead_app::reads::{ProgressView, RowItem};
use playhead_app::recs::Recommended;
use playhead_core::ports::{ProgressChange, Viewing};
use playhead_core::rules::progress::ProgressState;
use playhead_core::title::TitleKind;

use crate::loaders::TitleLoader;

/// Movie, series or episode.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "TitleKind")]
pub enum Kind {
    /// A standalone film.
    Movie,
    /// A show: a container of episodes.
    Series,
    /// One episode of a series.
    Episode,
}

impl From<TitleKind> for Kind {
    fn from(k: TitleKind) -> Self {
        match k {
            TitleKind::Movie => Self::Movie,
            TitleKind::Series => Self::Series,
            TitleKind::Episode => Self::Episode,
        }
    }
}

/// A title in the catalog, with the asking profile's watched state where a profile's view is
/// asked for (rows, history, recommendations).
#[derive(Debug, Clone)]
pub struct Title(pub playhead_core::title::Title, pub Option<WatchState>);

#[Object]
impl Title {
    /// The platform's id.
    async fn id(&self) -> ID {
        ID(self.0.id.as_str().to_owned())
    }
    /// Movie, series or episode.
    async fn kind(&self) -> Kind {
        self.0.kind.into()
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Running time in milliseconds (0 for a series).
    async fn duration_ms(&self) -> i64 {
        self.0.duration_ms
    }
    /// Where the end credits start, when known.
    async fn credits_start_ms(&self) -> Option<i64> {
        self.0.credits_start_ms
    }
    /// For episodes: the series id.
    async fn series_id(&self) -> Option<ID> {
        self.0.series_id.as_ref().map(|s| ID(s.as_str().to_owned()))
    }
    /// For episodes: the series itself (batched: one catalog read for every series a query
    /// asks for, whatever the number of episodes).
    async fn series(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Title>> {
        let Some(id) = &self.0.series_id else { return Ok(None) };
        let loader = ctx.data::<DataLoader<TitleLoader>>()?;
        Ok(loader.load_one(id.clone()).await.map_err(|e| (*e).clone())?.map(|t| Title(t, None)))
    }
    /// For episodes: season number (0 = specials).
    async fn season(&self) -> Option<i32> {
        self.0.season
    }
    /// For episodes: number within the season.
    async fn episode(&self) -> Option<i32> {
        self.0.episode
    }
    /// Genre names.
    async fn genres(&self) -> &[String] {
        &self.0.genres
    }
    /// Minimum age to watch (0 = everyone).
    async fn maturity(&self) -> i32 {
        i32::from(self.0.maturity)
    }
    /// Year of first release.
    async fn release_year(&self) -> Option<i32> {
        self.0.release_year
    }
    /// Not playable before this instant (RFC 3339).
    async fn available_from(&self) -> Option<String> {
        self.0.available_from.map(|t| t.to_rfc3339())
    }
    /// The profile watched it: a completed play or a mark (a series: every available episode).
    /// Set in a profile's rows, history and recommendations; null elsewhere.
    async fn watched(&self) -> Option<bool> {
        self.1.map(|w| w.watched)
    }
    /// The profile's plays of it, manual ones included (a series: plays of its episodes). Set
    /// where `watched` is.
    async fn play_count(&self) -> Option<i32> {
        self.1.map(|w| i32::try_from(w.play_count).unwrap_or(i32::MAX))
    }
}

/// A row card (Continue watching, Next up).
pub struct RowCard(pub RowItem);

#[Object(name = "RowItem")]
impl RowCard {
    /// The title to play.
    async fn title_id(&self) -> ID {
        ID(self.0.title.id.as_str().to_owned())
    }
    /// The title.
    async fn title(&self) -> Title {
        Title(self.0.title.clone(), Some(self.0.watch))
    }
    /// Where to resume, in milliseconds.
    async fn position_ms(&self) -> i64 {
        self.0.position_ms
    }
    /// Share watched, 0-100.
    async fn percent(&self) -> f64 {
        self.0.percent
    }
    /// The activity that ordered the row (RFC 3339).
    async fn last_watched_at(&self) -> String {
        self.0.activity_at.to_rfc3339()
    }
}

/// When a play happened.
#[derive(SimpleObject)]
pub struct Period {
    /// Earliest event (RFC 3339).
    pub start: String,
    /// Latest event (RFC 3339).
    pub end: String,
}

/// How much of the title a play covered.
#[derive(SimpleObject)]
pub struct Watched {
    /// Forward progress in milliseconds (seeks and skips are not viewing).
    pub ms: i64,
    /// Share of the title's duration, 0-100.
    pub percent: f64,
    /// Reached the watched point.
    pub completed: bool,
}

/// One viewing in the history, its title and the title's watched state.
pub struct Play(pub Viewing, pub Option<playhead_core::title::Title>, pub WatchState);

#[Object]
impl Play {
    /// The play's id (for `deletePlay`).
    async fn play_id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The title played.
    async fn title_id(&self) -> ID {
        ID(self.0.title_id.as_str().to_owned())
    }
    /// The title (absent if it left the catalog).
    async fn title(&self) -> Option<Title> {
        self.1.clone().map(|t| Title(t, Some(self.2)))
    }
    /// A manual play: the profile marked the title watched (no viewing behind it).
    async fn manual(&self) -> bool {
        self.0.manual
    }
    /// When.
    async fn period(&self) -> Period {
        Period { start: self.0.started_at.to_rfc3339(), end: self.0.ended_at.to_rfc3339() }
    }
    /// How much.
    async fn watched(&self) -> Watched {
        let duration = self.1.as_ref().map_or(0, |t| t.duration_ms);
        Watched {
            ms: self.0.watched_ms,
            percent: playhead_core::rules::progress::percent(self.0.watched_ms, duration),
            completed: self.0.completed,
        }
    }
}

/// How a resume point looks to a viewer.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "ProgressState")]
pub enum ResumeState {
    /// Nothing worth resuming.
    NotStarted,
    /// In the resume window: shown in Continue watching.
    InProgress,
    /// The last viewing reached the watched point.
    Finished,
}

impl From<ProgressState> for ResumeState {
    fn from(s: ProgressState) -> Self {
        match s {
            ProgressState::NotStarted => Self::NotStarted,
            ProgressState::InProgress => Self::InProgress,
            ProgressState::Finished => Self::Finished,
        }
    }
}

/// A resume point.
#[derive(SimpleObject)]
pub struct Progress {
    /// Whose resume point.
    pub profile_id: ID,
    /// The title.
    pub title_id: ID,
    /// Where to resume, in milliseconds.
    pub position_ms: i64,
    /// The duration the position refers to.
    pub duration_ms: i64,
    /// Position as a share of the duration, 0-100.
    pub percent: f64,
    /// Not started, in progress, finished.
    pub state: ResumeState,
    /// Last change (RFC 3339; absent: never played).
    pub updated_at: Option<String>,
}

impl Progress {
    /// From the use case's view.
    pub fn of(profile: &str, v: &ProgressView) -> Self {
        Self {
            profile_id: ID(profile.to_owned()),
            title_id: ID(v.title_id.as_str().to_owned()),
            position_ms: v.position_ms,
            duration_ms: v.duration_ms,
            percent: v.percent,
            state: v.state.into(),
            updated_at: v.updated_at.map(|t| t.to_rfc3339()),
        }
    }

    /// From a live change.
    pub fn changed(c: &ProgressChange) -> Self {
        Self {
            profile_id: ID(c.profile_id.to_string()),
            title_id: ID(c.title_id.as_str().to_owned()),
            position_ms: c.position_ms,
            duration_ms: c.duration_ms,
            percent: c.percent,
            state: c.state.into(),
            updated_at: Some(c.updated_at.to_rfc3339()),
        }
    }
}

/// Why a title is recommended.
#[derive(SimpleObject)]
pub struct Reason {
    /// Machine-readable kind (`because_you_watched`, `trending_now`, ...).
    pub kind: String,
    /// The sentence a client shows.
    pub text: String,
    /// The title the reason names, if any.
    pub title_id: Option<ID>,
}

/// One recommended title.
pub struct Recommendation(pub Recommended);

#[Object]
impl Recommendation {
    /// The title to play.
    async fn title_id(&self) -> ID {
        ID(self.0.title.id.as_str().to_owned())
    }
    /// The title.
    async fn title(&self) -> Title {
        Title(self.0.title.clone(), self.0.watch)
    }
    /// Blended score, comparable within one answer only.
    async fn score(&self) -> f64 {
        self.0.score
    }
    /// Why.
    async fn reason(&self) -> Reason {
        let r = &self.0.reason;
        Reason {
            kind: r.kind.clone(),
            text: r.text.clone(),
            title_id: r.title_id.as_ref().map(|t| ID(t.as_str().to_owned())),
        }
    }
}

/// What is wrong with one input field.
#[derive(SimpleObject, Clone)]
pub struct FieldProblem {
    /// The field (camelCase, with a path where nested: `events[2].occurredAt`).
    pub field: String,
    /// Stable code (`required`, `out_of_range`, `in_future`, ...).
    pub code: String,
    /// What is wrong and what is allowed.
    pub detail: String,
}

impl From<&playhead_core::FieldError> for FieldProblem {
    fn from(e: &playhead_core::FieldError) -> Self {
        Self { field: crate::error::camel(&e.field), code: e.code.to_owned(), detail: e.message.clone() }
    }
}

/// What happened to one event.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Durably logged; will be applied.
    Accepted,
    /// Seen before; nothing changed.
    Duplicate,
    /// Logged, waiting for the title to be imported.
    Held,
    /// Not logged; see the problem.
    Rejected,
    /// Not recorded: the profile's history is paused (problem code `history_paused`); do not retry.
    Paused,
    /// Not recorded: it would start a stream beyond the account's concurrent-stream limit
    /// (problem code `too_many_streams`; `GET /v1/me/streams` lists the live ones).
    TooManyStreams,
    /// Not recorded: its stream was stopped from another device (problem code
    /// `stream_stopped`); stop playback.
    StreamStopped,
}

/// The answer for one event.
#[derive(SimpleObject)]
pub struct EventResult {
    /// The event id as sent.
    pub event_id: Option<ID>,
    /// Outcome.
    pub status: EventStatus,
    /// Why it was rejected.
    pub problem: Option<FieldProblem>,
}

/// The answer to `recordEvents`: one result per event, in order, and the counts.
#[derive(SimpleObject)]
pub struct RecordEventsPayload {
    /// One per event, in the order sent.
    pub results: Vec<EventResult>,
    /// Events accepted.
    pub accepted: i32,
    /// Events already recorded.
    pub duplicate: i32,
    /// Events held for a title not in the catalog yet.
    pub held: i32,
    /// Events rejected.
    pub rejected: i32,
    /// Events not recorded because the profile's history is paused.
    pub paused: i32,
    /// Events not recorded because they would pass the account's stream limit.
    pub too_many_streams: i32,
    /// Events not recorded because their stream was stopped from another device.
    pub stream_stopped: i32,
}
