//! Wire shapes of the REST API (JSON), with their OpenAPI schemas.
//!
//! Field names here are a public contract (issue #2 fixes them): add fields, never rename or
//! remove one. Conversions from domain values live beside each shape so handlers stay one line.

use std::collections::BTreeMap;

use playhead_app::ingest::{EventResult, EventStatus};
use playhead_app::library::WatchState;
use playhead_app::reads::{ProgressView, RowItem};
use playhead_core::ports::Viewing;
use playhead_core::precondition::play_etag;
use playhead_core::profile::Profile;
use playhead_core::title::Title;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Problem;

/// RFC 3339 in UTC with milliseconds.
fn ts(t: playhead_core::Timestamp) -> String {
    t.to_rfc3339()
}

/// A catalog title.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TitleDto {
    /// The platform's id (1-128 of `A-Za-z0-9._:-`).
    pub id: String,
    /// movie, series or episode.
    #[schema(example = "episode")]
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Running time (0 for a series).
    pub duration_ms: i64,
    /// Where the credits start (the watched point), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits_start_ms: Option<i64>,
    /// For an episode: its series.
    pub series_id: Option<String>,
    /// For an episode: season (0 = specials).
    pub season: Option<i32>,
    /// For an episode: number in the season.
    pub episode: Option<i32>,
    /// Genres.
    pub genres: Vec<String>,
    /// Minimum age.
    pub maturity: u8,
    /// Year of first release.
    pub release_year: Option<i32>,
    /// Not playable before this instant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_from: Option<String>,
    /// Ids in other catalogs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_ids: Option<BTreeMap<String, String>>,
}

impl From<&Title> for TitleDto {
    fn from(t: &Title) -> Self {
        Self {
            id: t.id.to_string(),
            kind: t.kind.as_str().to_owned(),
            name: t.name.clone(),
            duration_ms: t.duration_ms,
            credits_start_ms: t.credits_start_ms,
            series_id: t.series_id.as_ref().map(ToString::to_string),
            season: t.season,
            episode: t.episode,
            genres: t.genres.clone(),
            maturity: t.maturity,
            release_year: t.release_year,
            available_from: t.available_from.map(ts),
            external_ids: (!t.external_ids.is_empty()).then(|| t.external_ids.clone()),
        }
    }
}

/// The part of a title a row card needs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TitleSummary {
    /// Title id.
    pub id: String,
    /// movie, series or episode.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Running time.
    pub duration_ms: i64,
    /// For an episode: its series.
    pub series_id: Option<String>,
    /// For an episode: season.
    pub season: Option<i32>,
    /// For an episode: number.
    pub episode: Option<i32>,
    /// Minimum age.
    pub maturity: u8,
    /// The profile watched it: a completed play or a mark (for a series: every available
    /// episode). Present whenever the answer is for a profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watched: Option<bool>,
    /// The profile's plays of it, marks included (for a series: of its episodes). Present
    /// whenever the answer is for a profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_count: Option<u32>,
}

impl From<&Title> for TitleSummary {
    fn from(t: &Title) -> Self {
        Self {
            id: t.id.to_string(),
            kind: t.kind.as_str().to_owned(),
            name: t.name.clone(),
            duration_ms: t.duration_ms,
            series_id: t.series_id.as_ref().map(ToString::to_string),
            season: t.season,
            episode: t.episode,
            maturity: t.maturity,
            watched: None,
            play_count: None,
        }
    }
}

impl TitleSummary {
    /// A summary for a profile: with its watched state.
    pub fn for_profile(t: &Title, w: WatchState) -> Self {
        Self { watched: Some(w.watched), play_count: Some(w.play_count), ..Self::from(t) }
    }
}

/// A profile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProfileDto {
    /// Profile id (UUIDv7).
    pub profile_id: String,
    /// Owning account.
    pub account_id: String,
    /// Display name.
    pub name: String,
    /// A kids profile.
    pub kids: bool,
    /// Highest maturity (minimum age) shown; null = no limit (kids profiles default to 12).
    pub maturity_limit: Option<u8>,
    /// Hidden from followers.
    pub private: bool,
    /// History is paused: new playback events are not recorded (each answers `paused`).
    pub history_paused: bool,
    /// While paused, events still move resume points (nothing else is recorded).
    pub keep_resume_points_while_paused: bool,
}

impl From<&Profile> for ProfileDto {
    fn from(p: &Profile) -> Self {
        Self {
            profile_id: p.id.to_string(),
            account_id: p.account_id.to_string(),
            name: p.name.as_str().to_owned(),
            kids: p.kids,
            maturity_limit: p.maturity_limit,
            private: p.private,
            history_paused: p.history_paused,
            keep_resume_points_while_paused: p.keep_resume_points_while_paused,
        }
    }
}

/// The caller's account and profiles.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MeDto {
    /// Account id.
    pub account_id: String,
    /// E-mail.
    pub email: String,
    /// Profiles (only the bound one for a profile-bound token).
    pub profiles: Vec<ProfileDto>,
}

/// Body of POST /v1/accounts/{account_id}/profiles.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProfileDto {
    /// Display name, 1-64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// A kids profile.
    #[serde(default)]
    pub kids: bool,
    /// Maturity limit (0-21).
    #[serde(default)]
    #[schema(maximum = 21)]
    pub maturity_limit: Option<u8>,
    /// Hidden from followers.
    #[serde(default)]
    pub private: bool,
}

/// Body of PATCH /v1/profiles/{profile_id} (absent fields are unchanged; `maturity_limit: null`
/// removes the limit).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatchDto {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New kids flag.
    #[serde(default)]
    pub kids: Option<bool>,
    /// New limit, or null to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u8>, maximum = 21)]
    pub maturity_limit: Option<Option<u8>>,
    /// New private flag.
    #[serde(default)]
    pub private: Option<bool>,
    /// Pause (true) or resume (false) recording this profile's history: while paused, new
    /// playback events are answered `paused` and not recorded.
    #[serde(default)]
    pub history_paused: Option<bool>,
    /// While paused, still move resume points from new events (default false).
    #[serde(default)]
    pub keep_resume_points_while_paused: Option<bool>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u8>>, D::Error> {
    Option::<u8>::deserialize(d).map(Some)
}

/// A playback event (request shape; validated per event).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventDto {
    /// Client-made UUID: the dedupe key (resend the same id when retrying).
    #[schema(format = Uuid)]
    pub event_id: String,
    /// The title played.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub title_id: String,
    /// start, heartbeat, pause, stop or complete.
    #[schema(example = "heartbeat", pattern = "^(start|heartbeat|pause|stop|complete)$")]
    pub kind: String,
    /// Position in the title.
    #[schema(minimum = 0)]
    pub position_ms: i64,
    /// Duration the player sees.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub duration_ms: Option<i64>,
    /// Client time (RFC 3339).
    #[schema(example = "2026-11-29T20:15:00Z", format = DateTime)]
    pub occurred_at: String,
    /// The device.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub device_id: Option<String>,
    /// The playback session (events without one are grouped by device and time).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub session_id: Option<String>,
}

/// Body of POST /v1/profiles/{profile_id}/events.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatchDto {
    /// Client clock when the batch was sent: corrects a wrong device clock.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    /// Allow events older than max_event_age (importing history).
    #[serde(default)]
    pub backfill: bool,
    /// 1-500 events.
    /// 1-500 events (the limit is `http.batch_max`; 500 by default).
    #[schema(value_type = Vec<EventDto>, min_items = 1, max_items = 500)]
    pub events: Vec<Box<serde_json::value::RawValue>>,
}

/// The outcome of one event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventResultDto {
    /// The event id as sent.
    pub event_id: Option<String>,
    /// accepted, duplicate, held, rejected, paused (the profile's history is paused: not
    /// recorded, do not retry), too_many_streams (not recorded: the account's stream limit is
    /// reached; the problem lists the live streams) or stream_stopped (not recorded: this stream
    /// was stopped from another device; stop playback).
    #[schema(
        example = "accepted",
        pattern = "^(accepted|duplicate|held|rejected|paused|too_many_streams|stream_stopped)$"
    )]
    pub status: String,
    /// Why it was rejected (names the field), that history is paused (type `history-paused`),
    /// that the stream limit is reached (`too-many-streams`, with `streams`) or that the stream
    /// was stopped (`stream-stopped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

impl From<&EventResult> for EventResultDto {
    fn from(r: &EventResult) -> Self {
        Self {
            event_id: r.event_id.clone(),
            status: r.status.as_str().to_owned(),
            problem: r.problem.as_ref().map(|f| match r.status {
                EventStatus::Paused => Problem::history_paused(f),
                EventStatus::TooManyStreams => Problem::too_many_streams(f, r.streams.as_ref()),
                EventStatus::StreamStopped => Problem::stream_stopped(f),
                _ => Problem::for_field(f),
            }),
        }
    }
}

/// Answer to an event batch: one result per event, in order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventBatchResultDto {
    /// Per event.
    pub results: Vec<EventResultDto>,
    /// Counts by status.
    pub accepted: usize,
    /// Already seen.
    pub duplicate: usize,
    /// Waiting for their title.
    pub held: usize,
    /// Refused.
    pub rejected: usize,
    /// Not recorded: the profile's history is paused.
    pub paused: usize,
    /// Not recorded: they would start a stream beyond the account's limit.
    pub too_many_streams: usize,
    /// Not recorded: their stream was stopped from another device.
    pub stream_stopped: usize,
}

/// A resume point.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgressDto {
    /// The title.
    pub title_id: String,
    /// Where to resume.
    pub position_ms: i64,
    /// Duration the position refers to.
    pub duration_ms: i64,
    /// Share of the duration (one decimal).
    pub percent: f64,
    /// not_started, in_progress or finished.
    #[schema(example = "in_progress")]
    pub state: String,
    /// Last change; null if never played.
    pub updated_at: Option<String>,
}

impl From<&ProgressView> for ProgressDto {
    fn from(v: &ProgressView) -> Self {
        Self {
            title_id: v.title_id.to_string(),
            position_ms: v.position_ms,
            duration_ms: v.duration_ms,
            percent: v.percent,
            state: v.state.as_str().to_owned(),
            updated_at: v.updated_at.map(ts),
        }
    }
}

/// Body of PUT /v1/profiles/{profile_id}/progress/{title_id}.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressPutDto {
    /// Where the viewer is.
    #[schema(minimum = 0)]
    pub position_ms: i64,
    /// Duration the player sees.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub duration_ms: Option<i64>,
    /// Client time (default: server time).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub occurred_at: Option<String>,
    /// The device.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128)]
    pub device_id: Option<String>,
}

/// A play in history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlayDto {
    /// Play id (UUIDv7).
    pub play_id: String,
    /// The title.
    pub title_id: String,
    /// Earliest event.
    pub started_at: String,
    /// Latest event.
    pub ended_at: String,
    /// Time watched, seeks excluded.
    pub watched_ms: i64,
    /// Reached the watched point.
    pub completed: bool,
    /// A manual play: the profile marked the title watched (no viewing behind it).
    pub manual: bool,
    /// Title summary (null if the title left the catalog).
    pub title: Option<TitleSummary>,
    /// Entity tag of the play as shown: send it as If-Match on DELETE to delete only this
    /// version (events that reach the play later change it).
    pub etag: String,
}

impl PlayDto {
    /// From a stored play, its title and the title's watched state.
    pub fn new(v: &Viewing, t: Option<&Title>, w: WatchState) -> Self {
        Self {
            play_id: v.id.to_string(),
            title_id: v.title_id.to_string(),
            started_at: ts(v.started_at),
            ended_at: ts(v.ended_at),
            watched_ms: v.watched_ms,
            completed: v.completed,
            manual: v.manual,
            title: t.map(|t| TitleSummary::for_profile(t, w)),
            etag: play_etag(v.ended_at, v.watched_ms, v.completed),
        }
    }
}

/// A month of one title's plays, rolled up by the retention job (decision 0083): the plays
/// themselves are gone, their figures stay. Plays have no `kind`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RollupDto {
    /// Always `rollup`.
    #[schema(example = "rollup")]
    pub kind: String,
    /// The month the plays started in, `YYYY-MM` (UTC).
    #[schema(example = "2025-03")]
    pub month: String,
    /// The title.
    pub title_id: String,
    /// Title summary (null if the title left the catalog).
    pub title: Option<TitleSummary>,
    /// The month: its first instant and the next month's (RFC 3339).
    pub period: PeriodDto,
    /// How many plays.
    pub plays: u64,
    /// Their time watched, summed.
    pub watched_ms: i64,
    /// How many of them reached the watched point.
    pub completed_plays: u64,
}

impl RollupDto {
    /// From a stored roll-up, its title and the title's watched state.
    pub fn new(r: &playhead_core::rules::rollup::PlayRollup, t: Option<&Title>, w: WatchState) -> Self {
        Self {
            kind: "rollup".into(),
            month: r.month_label(),
            title_id: r.title_id.to_string(),
            title: t.map(|t| TitleSummary::for_profile(t, w)),
            period: PeriodDto { start: ts(r.month), end: ts(r.end()) },
            plays: r.plays,
            watched_ms: r.watched_ms,
            completed_plays: r.completed_plays,
        }
    }
}

/// A history item: a play, or a rolled-up month (`kind` = `rollup`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HistoryItemDto {
    /// A play.
    Play(PlayDto),
    /// A rolled-up month.
    Rollup(RollupDto),
}

/// A history item in representation v2: a play, or a rolled-up month (`kind` = `rollup`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HistoryItemV2Dto {
    /// A play.
    Play(PlayV2Dto),
    /// A rolled-up month.
    Rollup(RollupDto),
}

impl HistoryItemDto {
    /// From an application history entry.
    pub fn new(e: &playhead_app::reads::HistoryEntry) -> Self {
        use playhead_app::reads::HistoryEntry as E;
        match e {
            E::Play(v, t, w) => Self::Play(PlayDto::new(v, t.as_ref(), *w)),
            E::Rollup(r, t, w) => Self::Rollup(RollupDto::new(r, t.as_ref(), *w)),
        }
    }
}

impl HistoryItemV2Dto {
    /// From an application history entry.
    pub fn new(e: &playhead_app::reads::HistoryEntry) -> Self {
        use playhead_app::reads::HistoryEntry as E;
        match e {
            E::Play(v, t, w) => Self::Play(PlayV2Dto::new(v, t.as_ref(), *w)),
            E::Rollup(r, t, w) => Self::Rollup(RollupDto::new(r, t.as_ref(), *w)),
        }
    }
}

/// A play in history, representation v2 (`Accept: application/vnd.playhead.v2+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlayV2Dto {
    /// Play id (UUIDv7).
    pub play_id: String,
    /// The title played (null if it left the catalog).
    pub title: Option<TitleSummary>,
    /// When the viewing happened.
    pub period: PeriodDto,
    /// How much was watched.
    pub watched: WatchedDto,
    /// Entity tag of the play as shown (If-Match on DELETE).
    pub etag: String,
    /// A manual play: the profile marked the title watched (no viewing behind it).
    pub manual: bool,
}

/// A time span.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeriodDto {
    /// Earliest event (RFC 3339).
    pub start: String,
    /// Latest event (RFC 3339).
    pub end: String,
}

/// Watching done in a play.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WatchedDto {
    /// Time watched, seeks excluded.
    pub ms: i64,
    /// Share of the title's duration (one decimal, at most 100).
    pub percent: f64,
    /// Reached the watched point.
    pub completed: bool,
}

impl PlayV2Dto {
    /// From a stored play, its title and the title's watched state.
    pub fn new(v: &Viewing, t: Option<&Title>, w: WatchState) -> Self {
        let duration = t.map_or(0, |t| t.duration_ms);
        Self {
            play_id: v.id.to_string(),
            manual: v.manual,
            title: t.map(|t| TitleSummary::for_profile(t, w)),
            period: PeriodDto { start: ts(v.started_at), end: ts(v.ended_at) },
            watched: WatchedDto {
                ms: v.watched_ms,
                percent: playhead_core::rules::progress::percent(v.watched_ms, duration),
                completed: v.completed,
            },
            etag: play_etag(v.ended_at, v.watched_ms, v.completed),
        }
    }
}

/// A backfilled play (request).
// Documentation only: each play is parsed on its own into the use case's `BackfillPlay`, so one
// bad item is reported by index; this type gives the OpenAPI document its schema.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "the OpenAPI schema of an item that `BackfillPlay` parses")]
pub struct BackfillPlayDto {
    /// The title.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub title_id: String,
    /// When it started (RFC 3339); with the title, the dedupe key.
    #[schema(format = DateTime)]
    pub started_at: String,
    /// When it ended (default: start + watched_ms).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub ended_at: Option<String>,
    /// Time watched (default: the duration when completed).
    #[serde(default)]
    #[schema(minimum = 0)]
    pub watched_ms: Option<i64>,
    /// Finished (default true).
    #[serde(default)]
    pub completed: Option<bool>,
}

/// Body of POST /v1/profiles/{profile_id}/history.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillDto {
    /// 1-500 plays.
    #[schema(value_type = Vec<BackfillPlayDto>)]
    pub plays: Vec<Box<serde_json::value::RawValue>>,
}

/// The outcome of one backfilled play.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillResultDto {
    /// created, duplicate, deleted (a deleted play stays deleted) or rejected.
    pub status: String,
    /// The play's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub play_id: Option<String>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// Answer to a backfill.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackfillResultsDto {
    /// Per play, in order.
    pub results: Vec<BackfillResultDto>,
}

/// A Continue watching card.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContinueItemDto {
    /// The title to resume.
    pub title_id: String,
    /// Its summary.
    pub title: TitleSummary,
    /// Where to resume.
    pub position_ms: i64,
    /// Share watched.
    pub percent: f64,
    /// Last activity.
    pub last_watched_at: String,
}

impl From<&RowItem> for ContinueItemDto {
    fn from(i: &RowItem) -> Self {
        Self {
            title_id: i.title.id.to_string(),
            title: TitleSummary::for_profile(&i.title, i.watch),
            position_ms: i.position_ms,
            percent: i.percent,
            last_watched_at: ts(i.activity_at),
        }
    }
}

/// A Next up card.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NextUpItemDto {
    /// The episode to play next.
    pub title_id: String,
    /// Its summary.
    pub title: TitleSummary,
    /// Its series.
    pub series_id: Option<String>,
    /// Resume position if the episode was started (else 0).
    pub position_ms: i64,
    /// Last activity in the series.
    pub last_watched_at: String,
}

impl From<&RowItem> for NextUpItemDto {
    fn from(i: &RowItem) -> Self {
        Self {
            title_id: i.title.id.to_string(),
            title: TitleSummary::for_profile(&i.title, i.watch),
            series_id: i.title.series_id.as_ref().map(ToString::to_string),
            position_ms: i.position_ms,
            last_watched_at: ts(i.activity_at),
        }
    }
}

/// A page or row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null at the end (rows are never paginated).
    pub next_cursor: Option<String>,
}

/// Summary of an NDJSON import.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportSummaryDto {
    /// Non-blank lines read.
    pub lines: u64,
    /// New titles.
    pub created: u64,
    /// Changed titles.
    pub updated: u64,
    /// Titles sent unchanged.
    pub unchanged: u64,
    /// Lines refused.
    pub rejected: u64,
    /// The first 100 refused lines.
    pub errors: Vec<ImportLineError>,
    /// Held events queued because their title arrived.
    pub released_held: u64,
}

/// A refused import line.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportLineError {
    /// 1-based line number.
    pub line: u64,
    /// The problems, each naming a field.
    pub errors: Vec<crate::error::FieldProblem>,
}

/// Health answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthDto {
    /// ok, or what is wrong.
    pub status: String,
}

/// Why a title is recommended.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReasonDto {
    /// because_you_watched, next_episode, continue_series, trending_now, popular_in_genre,
    /// new_like or similar_to.
    pub kind: String,
    /// The sentence to show ("Because you watched Dune").
    pub text: String,
    /// The title the reason names, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_id: Option<String>,
}

/// A recommended title.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecommendationDto {
    /// The title to play (a movie or an episode).
    pub title_id: String,
    /// Its summary.
    pub title: TitleSummary,
    /// Blended score; comparable within one response only.
    pub score: f64,
    /// Why it is recommended.
    pub reason: ReasonDto,
}

impl From<&playhead_app::recs::Recommended> for RecommendationDto {
    fn from(r: &playhead_app::recs::Recommended) -> Self {
        Self {
            title_id: r.title.id.to_string(),
            title: match r.watch {
                Some(w) => TitleSummary::for_profile(&r.title, w),
                None => TitleSummary::from(&r.title),
            },
            score: if r.score.is_finite() { r.score } else { 0.0 },
            reason: ReasonDto {
                kind: r.reason.kind.clone(),
                text: r.reason.text.clone(),
                title_id: r.reason.title_id.as_ref().map(ToString::to_string),
            },
        }
    }
}

/// Body of POST /v1/profiles/{profile_id}/feedback.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackDto {
    /// The title.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub title_id: String,
    /// up, down or not_interested.
    #[schema(pattern = "^(up|down|not_interested)$")]
    pub kind: String,
}

/// Body of POST /v1/profiles/{profile_id}/impressions.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpressionsDto {
    /// 1-100 title ids shown together in one row.
    #[schema(value_type = Vec<TitleIdString>, min_items = 1, max_items = 100)]
    pub title_ids: Vec<String>,
}

/// A title id in a request body: the platform's alphabet, 1-128 characters.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
#[expect(dead_code, reason = "documents the wire shape; requests read plain strings")]
pub struct TitleIdString(pub String);

/// Body of PUT /v1/titles/{title_id} (and one line of an import). Rules across fields that the
/// document cannot state: `duration_ms` is required (> 0) except for a series; `series_id` and
/// `episode` are required for an episode and refused on other kinds; `credits_start_ms` is below
/// `duration_ms`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "documents the wire shape; the core's TitleInput parses it")]
pub struct TitleInputDto {
    /// Required in an import line; a PUT takes it from the URL (a different one is refused).
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    id: Option<String>,
    /// `movie`, `series` or `episode`.
    #[schema(pattern = "^(movie|series|episode)$")]
    kind: String,
    /// Display name, 1-500 characters once surrounding spaces are trimmed.
    #[schema(pattern = "^\\s*\\S([\\s\\S]{0,498}\\S)?\\s*$")]
    name: String,
    /// Running time in ms.
    #[schema(minimum = 0)]
    duration_ms: Option<i64>,
    /// Where the credits start, in ms.
    #[schema(minimum = 1)]
    credits_start_ms: Option<i64>,
    /// The series (episodes only).
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    series_id: Option<String>,
    /// Season number, 0 = specials (episodes only).
    #[schema(minimum = 0)]
    season: Option<i32>,
    /// Episode number (episodes only).
    #[schema(minimum = 0)]
    episode: Option<i32>,
    /// Up to 32 genres of 1-64 characters.
    #[schema(max_items = 32, inline)]
    genres: Option<Vec<GenreString>>,
    /// Minimum age, 0-21.
    #[schema(maximum = 21)]
    maturity: Option<u8>,
    /// Year of first release, 1850-2200.
    #[schema(minimum = 1850, maximum = 2200)]
    release_year: Option<i32>,
    /// When it becomes playable (RFC 3339).
    #[schema(format = DateTime)]
    available_from: Option<String>,
    /// Ids in other catalogs: up to 16, keys 1-32 and values 1-128 characters.
    external_ids: Option<BTreeMap<String, String>>,
}

/// A genre name: 1-64 characters once surrounding spaces are trimmed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^\\s*\\S([\\s\\S]{0,62}\\S)?\\s*$")]
#[expect(dead_code, reason = "documents the wire shape; requests read plain strings")]
pub struct GenreString(pub String);
