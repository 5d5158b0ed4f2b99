//! The roots and `Profile`: every field here runs one use case, admitted by
//! [`crate::policy::FieldPolicy`] (the table in [`crate::policy::FIELDS`] names its operation).
//! Resolvers parse their arguments, call the use case, and shape the answer; nothing else.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::futures_util::Stream;
use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, Subscription};
use playhead_app::access::{Gate, Operation};
use playhead_app::accounts::ProfilePatch;
use playhead_app::ingest::{EventStatus as AppEventStatus, IngestBatch};
use playhead_app::reads::{HistoryQuery, ProgressWrite, page_limit};
use playhead_app::{App, AppError};
use playhead_core::event::RawEvent;
use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::FeedbackKind;
use playhead_core::recs::RecsRow;
use playhead_core::trace::TraceContext;
use playhead_core::{FieldError, Timestamp};

use crate::error::{OrGraphql as _, bad_input, status_of};
use crate::policy::{self, Caller, principal};
use crate::types::{
    EventResult, EventStatus, FieldProblem, Play, Progress, Recommendation, RecordEventsPayload, RowCard,
    Title,
};

/// A Relay connection with `edges`, `nodes` and `pageInfo`.
pub type Conn<N> = Connection<String, N>;

/// Settings the resolvers need.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most events in one `recordEvents`.
    pub batch_max: usize,
}

fn app<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a App> {
    ctx.data::<App>()
}

fn parse_profile(field: &'static str, id: &str) -> async_graphql::Result<ProfileId> {
    ProfileId::parse(id).map_err(|_| bad_input(field, "invalid", "is not a profile id (a UUID)"))
}

fn parse_title(field: &'static str, id: &str) -> async_graphql::Result<TitleId> {
    TitleId::parse(id).map_err(|e| bad_input(field, "invalid", e.to_string()))
}

fn page_size(first: Option<i32>) -> async_graphql::Result<u32> {
    page_limit(first.map(i64::from))
        .map_err(|e| crate::error::map(AppError::invalid(FieldError::new("first", e.code, e.message))))
}

fn time(field: &'static str, s: Option<String>) -> async_graphql::Result<Option<Timestamp>> {
    s.map(|s| Timestamp::parse_rfc3339(&s).map_err(|e| bad_input(field, "invalid", e.to_string())))
        .transpose()
}

/// Record the outcome of a profile-naming operation for the audit (only when the gate asked:
/// a service using `profiles:any`), then map the error.
async fn audited<T>(
    ctx: &Context<'_>,
    op: Operation,
    profile: ProfileId,
    r: Result<T, AppError>,
) -> async_graphql::Result<T> {
    policy::audit(ctx, op, &profile.to_string(), status_of(&r)).await;
    r.gql()
}

/// A row page as a connection (rows are not paged further: `hasNextPage` says the row is longer).
fn row_connection(items: &[playhead_app::reads::RowItem], total_more: bool) -> Conn<RowCard> {
    let mut c = Conn::new(false, total_more);
    c.edges.extend(items.iter().enumerate().map(|(i, it)| Edge::new(i.to_string(), RowCard(it.clone()))));
    c
}

/// The query root.
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The caller's account and profiles.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        let me = app(ctx)?.me(&principal(ctx)?).await.gql()?;
        Ok(Me(me))
    }

    /// A profile the caller may reach (NOT_FOUND otherwise).
    async fn profile(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ProfileNode> {
        let pid = parse_profile("id", &id)?;
        let r = app(ctx)?.get_profile(&principal(ctx)?, pid).await;
        audited(ctx, Operation::GetProfile, pid, r).await.map(ProfileNode)
    }

    /// One title.
    async fn title(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Title> {
        let id = parse_title("id", &id)?;
        Ok(Title(app(ctx)?.get_title(&principal(ctx)?, &id).await.gql()?.title, None))
    }

    /// The catalog, ordered by id.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn titles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1-100, default 20")] first: Option<i32>,
        #[graphql(desc = "`endCursor` of the previous page")] after: Option<String>,
    ) -> async_graphql::Result<Conn<Title>> {
        let app = app(ctx)?;
        let limit = page_size(first)?;
        let (page, next) = app
            .list_titles(&principal(ctx)?, after.as_deref(), limit)
            .await
            .map_err(|e| match e {
                AppError::Invalid(f) => AppError::Invalid(
                    f.into_iter()
                        .map(|f| {
                            if f.field == "cursor" { FieldError::new("after", f.code, f.message) } else { f }
                        })
                        .collect(),
                ),
                other => other,
            })
            .gql()?;
        let mut c = Conn::new(after.is_some(), next.is_some());
        c.edges.extend(page.into_iter().map(|t| Edge::new(app.title_cursor(&t.id), Title(t, None))));
        Ok(c)
    }
}

/// The caller's account and profiles.
pub struct Me(playhead_app::accounts::Me);

#[Object]
impl Me {
    /// The account.
    async fn account_id(&self) -> ID {
        ID(self.0.account.id.to_string())
    }
    /// The account's sign-in e-mail.
    async fn email(&self) -> &str {
        self.0.account.email.as_str()
    }
    /// Its profiles (only the bound one for a profile-bound token).
    async fn profiles(&self) -> Vec<ProfileNode> {
        self.0.profiles.iter().cloned().map(ProfileNode).collect()
    }
}

/// A viewer profile, and everything a screen shows about it.
pub struct ProfileNode(pub playhead_core::profile::Profile);

#[Object(name = "Profile")]
impl ProfileNode {
    /// The profile's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Display name.
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }
    /// A kids profile.
    async fn kids(&self) -> bool {
        self.0.kids
    }
    /// Minimum age limit for what it may watch.
    async fn maturity_limit(&self) -> Option<i32> {
        self.0.maturity_limit.map(i32::from)
    }
    /// Hidden from followers.
    async fn private(&self) -> bool {
        self.0.private
    }
    /// The version `updateProfile` must name.
    async fn version(&self) -> i64 {
        self.0.version
    }

    /// Continue watching: titles in their resume window, newest first, one card per series.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn continue_watching(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1-100, default 20")] first: Option<i32>,
    ) -> async_graphql::Result<Conn<RowCard>> {
        let limit = page_size(first)?;
        let r = app(ctx)?.continue_watching(&principal(ctx)?, self.0.id, limit).await;
        let page = audited(ctx, Operation::GetContinueWatching, self.0.id, r).await?;
        Ok(row_connection(&page, false))
    }

    /// Next up: the next episode of each series with a completed play.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn next_up(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1-100, default 20")] first: Option<i32>,
    ) -> async_graphql::Result<Conn<RowCard>> {
        let limit = page_size(first)?;
        let r = app(ctx)?.next_up(&principal(ctx)?, self.0.id, limit).await;
        let page = audited(ctx, Operation::GetNextUp, self.0.id, r).await?;
        Ok(row_connection(&page, false))
    }

    /// Plays, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1-100, default 20")] first: Option<i32>,
        #[graphql(desc = "`endCursor` of the previous page")] after: Option<String>,
        #[graphql(desc = "only plays of this title")] title_id: Option<ID>,
        #[graphql(desc = "only completed (true) or unfinished (false) plays")] completed: Option<bool>,
    ) -> async_graphql::Result<Conn<Play>> {
        let app = app(ctx)?;
        let q = HistoryQuery {
            cursor: after.clone(),
            limit: page_size(first)?,
            title_id: title_id.as_deref().map(|t| parse_title("titleId", t)).transpose()?,
            completed,
        };
        let r = app.history_stamped(&principal(ctx)?, self.0.id, q.clone()).await.map_err(|e| match e {
            AppError::Invalid(f) => AppError::Invalid(
                f.into_iter()
                    .map(
                        |f| if f.field == "cursor" { FieldError::new("after", f.code, f.message) } else { f },
                    )
                    .collect(),
            ),
            other => other,
        });
        let (plays, next) = audited(ctx, Operation::ListHistory, self.0.id, r).await?;
        let mut c = Conn::new(after.is_some(), next.is_some());
        c.edges.extend(
            plays
                .into_iter()
                .map(|(v, t, w)| Edge::new(app.history_cursor(self.0.id, &q, &v), Play(v, t, w))),
        );
        Ok(c)
    }

    /// The resume point for one title (position 0 when never played).
    async fn progress(&self, ctx: &Context<'_>, title_id: ID) -> async_graphql::Result<Progress> {
        let title = parse_title("titleId", &title_id)?;
        let r = app(ctx)?.get_progress(&principal(ctx)?, self.0.id, &title).await;
        let v = audited(ctx, Operation::GetProgress, self.0.id, r).await?;
        Ok(Progress::of(&self.0.id.to_string(), &v))
    }

    /// Recommended titles with the reason each is there.
    #[graphql(complexity = "first.unwrap_or(20).max(1) as usize * child_complexity")]
    async fn recommendations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1-100, default 20")] first: Option<i32>,
        #[graphql(desc = "which row (default TOP)")] row: Option<RecsRowKind>,
    ) -> async_graphql::Result<Conn<Recommendation>> {
        let limit = page_size(first)?;
        let row = match row.unwrap_or(RecsRowKind::Top) {
            RecsRowKind::Top => RecsRow::Top,
            RecsRowKind::BecauseYouWatched => RecsRow::BecauseYouWatched,
            RecsRowKind::Trending => RecsRow::Trending,
        };
        let r = app(ctx)?.recommendations(&principal(ctx)?, self.0.id, row, limit).await;
        let items = audited(ctx, Operation::GetRecommendations, self.0.id, r).await?;
        let mut c = Conn::new(false, false);
        c.edges
            .extend(items.into_iter().enumerate().map(|(i, r)| Edge::new(i.to_string(), Recommendation(r))));
        Ok(c)
    }
}

/// Which recommendation row.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "RecommendationRow")]
pub enum RecsRowKind {
    /// The blended top picks.
    Top,
    /// Similar to what was watched recently.
    BecauseYouWatched,
    /// Popular now.
    Trending,
}

/// A playback event's kind.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Playback started.
    Start,
    /// Still playing.
    Heartbeat,
    /// Paused.
    Pause,
    /// Stopped.
    Stop,
    /// Reached the end.
    Complete,
}

impl EventKind {
    const fn wire(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Heartbeat => "heartbeat",
            Self::Pause => "pause",
            Self::Stop => "stop",
            Self::Complete => "complete",
        }
    }
}

/// A playback event, as a player sends it.
#[derive(InputObject, Debug)]
pub struct EventInput {
    /// A client-made UUID: the dedupe key (a retry answers DUPLICATE).
    pub event_id: ID,
    /// The title.
    pub title_id: ID,
    /// What happened.
    pub kind: EventKind,
    /// Position in milliseconds.
    pub position_ms: i64,
    /// The player's duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Client time (RFC 3339).
    pub occurred_at: String,
    /// The device.
    pub device_id: Option<String>,
    /// The viewing session (the server assigns one when absent).
    pub session_id: Option<String>,
}

/// Feedback on a title.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "FeedbackKind")]
pub enum Feedback {
    /// More like this.
    Up,
    /// Never recommend it again.
    Down,
    /// Not interested: never recommended again.
    NotInterested,
}

/// The mutation root.
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Record playback events (one result per event; one bad event never fails the batch).
    /// "Accepted" means durable.
    async fn record_events(
        &self,
        ctx: &Context<'_>,
        profile_id: ID,
        events: Vec<EventInput>,
        #[graphql(desc = "client clock at send (RFC 3339): corrects skewed clocks")] sent_at: Option<String>,
        #[graphql(desc = "old events allowed (importing history)")] backfill: Option<bool>,
    ) -> async_graphql::Result<RecordEventsPayload> {
        let pid = parse_profile("profileId", &profile_id)?;
        let max = ctx.data::<Limits>()?.batch_max;
        if events.is_empty() || events.len() > max {
            return Err(bad_input("events", "out_of_range", format!("must hold 1-{max} events")));
        }
        let batch = IngestBatch {
            sent_at: time("sentAt", sent_at)?,
            backfill: backfill.unwrap_or(false),
            events: events
                .into_iter()
                .map(|e| {
                    Ok(RawEvent {
                        event_id: Some(e.event_id.0),
                        title_id: Some(e.title_id.0),
                        kind: Some(e.kind.wire().to_owned()),
                        position_ms: Some(e.position_ms),
                        duration_ms: e.duration_ms,
                        occurred_at: Some(e.occurred_at),
                        device_id: e.device_id,
                        session_id: e.session_id,
                    })
                })
                .collect(),
            trace: ctx.data_opt::<TraceContext>().copied(),
        };
        let r = app(ctx)?.record_events(&principal(ctx)?, pid, batch).await;
        let results = audited(ctx, Operation::RecordEvents, pid, r).await?;
        let mut out = RecordEventsPayload {
            results: Vec::with_capacity(results.len()),
            accepted: 0,
            duplicate: 0,
            held: 0,
            rejected: 0,
            paused: 0,
            too_many_streams: 0,
            stream_stopped: 0,
        };
        for (i, r) in results.into_iter().enumerate() {
            let status = match r.status {
                AppEventStatus::Accepted => {
                    out.accepted += 1;
                    EventStatus::Accepted
                }
                AppEventStatus::Duplicate => {
                    out.duplicate += 1;
                    EventStatus::Duplicate
                }
                AppEventStatus::Held => {
                    out.held += 1;
                    EventStatus::Held
                }
                AppEventStatus::Rejected => {
                    out.rejected += 1;
                    EventStatus::Rejected
                }
                AppEventStatus::Paused => {
                    out.paused += 1;
                    EventStatus::Paused
                }
                AppEventStatus::TooManyStreams => {
                    out.too_many_streams += 1;
                    EventStatus::TooManyStreams
                }
                AppEventStatus::StreamStopped => {
                    out.stream_stopped += 1;
                    EventStatus::StreamStopped
                }
            };
            out.results.push(EventResult {
                event_id: r.event_id.map(ID),
                status,
                problem: r.problem.map(|p| FieldProblem::from(&p.within(&format!("events[{i}]")))),
            });
        }
        Ok(out)
    }

    /// Set a resume point now (recorded as a pause and merged last-writer-wins); subscribers of
    /// `progressChanged` hear of it.
    #[expect(clippy::too_many_arguments, reason = "one per GraphQL argument")]
    async fn set_progress(
        &self,
        ctx: &Context<'_>,
        profile_id: ID,
        title_id: ID,
        position_ms: i64,
        duration_ms: Option<i64>,
        #[graphql(desc = "client time (RFC 3339; default: now)")] occurred_at: Option<String>,
        device_id: Option<String>,
    ) -> async_graphql::Result<Progress> {
        let pid = parse_profile("profileId", &profile_id)?;
        let title = parse_title("titleId", &title_id)?;
        let write = ProgressWrite {
            position_ms,
            duration_ms,
            occurred_at: time("occurredAt", occurred_at)?,
            device_id,
        };
        let r = app(ctx)?.put_progress(&principal(ctx)?, pid, &title, write, None).await;
        let v = audited(ctx, Operation::SetProgress, pid, r).await?;
        Ok(Progress::of(&pid.to_string(), &v))
    }

    /// Hide a title from Continue watching until it is played again (the resume point is kept).
    async fn hide_from_continue_watching(
        &self,
        ctx: &Context<'_>,
        profile_id: ID,
        title_id: ID,
    ) -> async_graphql::Result<bool> {
        let pid = parse_profile("profileId", &profile_id)?;
        let title = parse_title("titleId", &title_id)?;
        let r = app(ctx)?.hide(&principal(ctx)?, pid, &title).await;
        audited(ctx, Operation::HideFromContinueWatching, pid, r).await.map(|()| true)
    }

    /// Delete a play; it stays deleted whatever is redelivered.
    async fn delete_play(
        &self,
        ctx: &Context<'_>,
        profile_id: ID,
        play_id: ID,
    ) -> async_graphql::Result<bool> {
        let pid = parse_profile("profileId", &profile_id)?;
        let play = PlayId::parse(&play_id)
            .map_err(|_| bad_input("playId", "invalid", "is not a play id (a UUID)"))?;
        let r = app(ctx)?.delete_play(&principal(ctx)?, pid, play).await;
        audited(ctx, Operation::DeletePlay, pid, r).await.map(|()| true)
    }

    /// Feedback on a title (the latest wins).
    async fn send_feedback(
        &self,
        ctx: &Context<'_>,
        profile_id: ID,
        title_id: ID,
        kind: Feedback,
    ) -> async_graphql::Result<bool> {
        let pid = parse_profile("profileId", &profile_id)?;
        let title = parse_title("titleId", &title_id)?;
        let kind = match kind {
            Feedback::Up => FeedbackKind::Up,
            Feedback::Down => FeedbackKind::Down,
            Feedback::NotInterested => FeedbackKind::NotInterested,
        };
        let r = app(ctx)?.feedback(&principal(ctx)?, pid, title, kind).await.map_err(|e| match e {
            AppError::Invalid(f) => AppError::Invalid(
                f.into_iter()
                    .map(|f| {
                        if f.field == "title_id" { FieldError::new("titleId", f.code, f.message) } else { f }
                    })
                    .collect(),
            ),
            other => other,
        });
        audited(ctx, Operation::SendFeedback, pid, r).await.map(|()| true)
    }

    /// Change a profile's settings. `version` is the profile's current version (a stale one
    /// answers PRECONDITION_FAILED, so two devices never silently overwrite each other);
    /// `maturityLimit: null` removes the limit. Changing `kids` or `maturityLimit` needs a recent
    /// sign-in.
    #[expect(clippy::too_many_arguments, reason = "one per GraphQL argument")]
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        id: ID,
        version: i64,
        name: Option<String>,
        kids: Option<bool>,
        #[graphql(desc = "0-255; null removes the limit")] maturity_limit: MaybeUndefined<i32>,
        private: Option<bool>,
    ) -> async_graphql::Result<ProfileNode> {
        let pid = parse_profile("id", &id)?;
        let limit =
            |v: i32| u8::try_from(v).map_err(|_| bad_input("maturityLimit", "out_of_range", "must be 0-255"));
        let maturity_limit = match maturity_limit {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(Some(limit(v)?)),
        };
        let patch = ProfilePatch { name, kids, maturity_limit, private, ..ProfilePatch::default() };
        let r = app(ctx)?.patch_profile(&principal(ctx)?, pid, patch, Some(version)).await;
        audited(ctx, Operation::UpdateProfile, pid, r).await.map(ProfileNode)
    }
}

/// The subscription root (over `graphql-ws` / `graphql-transport-ws` at `/graphql`).
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// A profile's resume points as they change, wherever the change was made (in scale-out, on
    /// any replica). Admitted once, when subscribing (history:read and a reachable profile);
    /// at most once per change: re-read `progress` after a reconnect.
    async fn progress_changed(
        &self,
        ctx: &Context<'_>,
        profile_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = Progress> + use<>> {
        let pid = parse_profile("profileId", &profile_id)?;
        let (gate, caller) = (ctx.data::<Arc<Gate>>()?, ctx.data::<Arc<Caller>>()?);
        let op = match policy::rule("Subscription", "progressChanged") {
            Some(policy::FieldRule::Runs(op)) => op,
            _ => return Err(crate::error::map(AppError::Forbidden("this field has no access requirement"))),
        };
        // No in-flight slot: a TV holding a subscription for hours must not use up its
        // account's concurrent-request cap (quota and requirement are checked as for any field).
        policy::admit(gate, caller, op, true).await.gql()?;
        let r = app(ctx)?.watch_progress(&principal(ctx)?, pid).await;
        let watch = audited(ctx, op, pid, r).await?;
        Ok(async_graphql::futures_util::stream::unfold(watch, |mut w| async move {
            w.next().await.map(|c| (Progress::changed(&c), w))
        }))
    }
}
