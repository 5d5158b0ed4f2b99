//! The followers' activity feed: follows, requests, blocks, sharing, and the feed itself
//! (issue 14). Thin: parse, call the use case in `playhead_app::feed`, shape the answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use playhead_app::feed::{FeedPage, FollowList, FollowPage, parse_decision};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{limit, profile_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{Page, TitleDto};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};

/// Body naming another profile (follow, block).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileRefDto {
    /// The other profile's id.
    #[schema(format = Uuid)]
    pub profile_id: String,
}

/// The state of a follow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowStateDto {
    /// `following`; `requested` while a private profile has not approved; `denied` as the
    /// answer to a denied request.
    pub state: String,
}

/// One follow edge in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowDto {
    /// The other profile (followee in `following`, follower in `followers` and requests).
    pub profile_id: String,
    /// `following` or `requested`.
    pub state: String,
    /// When the follow (or request) was made.
    #[schema(format = DateTime)]
    pub since: String,
}

/// Body of PUT follow-requests/{requester}.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionDto {
    /// `approve` or `deny`.
    #[schema(pattern = "^(approve|deny)$")]
    pub decision: String,
}

/// Feed settings of a profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedSettingsDto {
    /// Publish this profile's activities to its followers. Turning it off also takes what it
    /// published before out of every feed.
    pub share_activity: bool,
}

/// Who did something.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActorDto {
    /// Their profile id.
    pub profile_id: String,
    /// Their display name.
    pub name: String,
}

/// One feed entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityDto {
    /// Stable id (also the tie-break of the order).
    pub activity_id: String,
    /// Who.
    pub actor: ActorDto,
    /// finished, started_series, finished_season, finished_series or loved.
    #[schema(pattern = "^(finished|started_series|finished_season|finished_series|loved)$")]
    pub kind: String,
    /// The title: the movie or episode finished, or the series.
    pub title: TitleDto,
    /// For finished_season: the season.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<i32>,
    /// When it happened.
    #[schema(format = DateTime)]
    pub at: String,
}

/// Query of list and feed reads.
#[derive(Debug, Deserialize)]
pub struct PageParams {
    cursor: Option<String>,
    limit: Option<String>,
}

fn follow_page(page: FollowPage, list: FollowList) -> Page<FollowDto> {
    let items = page
        .items
        .iter()
        .map(|e| FollowDto {
            profile_id: if list == FollowList::Following { e.followee } else { e.follower }.to_string(),
            state: e.state.as_str().to_owned(),
            since: e.since.to_rfc3339(),
        })
        .collect();
    Page { items, next_cursor: page.next_cursor }
}

fn feed_page(page: FeedPage) -> Page<ActivityDto> {
    let items = page
        .items
        .iter()
        .map(|i| ActivityDto {
            activity_id: i.activity.id.to_string(),
            actor: ActorDto { profile_id: i.activity.actor.to_string(), name: i.actor_name.clone() },
            kind: i.activity.kind.as_str().to_owned(),
            title: TitleDto::from(&i.title),
            season: i
                .activity
                .subject_key
                .rsplit_once('#')
                .filter(|_| i.activity.kind == playhead_core::feed::ActivityKind::FinishedSeason)
                .and_then(|(_, n)| n.parse().ok()),
            at: i.activity.at.to_rfc3339(),
        })
        .collect();
    Page { items, next_cursor: page.next_cursor }
}

fn other_id(field: &'static str, s: &str) -> Result<playhead_core::ProfileId, ApiError> {
    playhead_core::ProfileId::parse(s)
        .map_err(|_| playhead_core::FieldError::new(field, "invalid", "must be a UUID").into())
}

/// Follow another profile. A private profile must approve first (`requested`). Refused for the
/// profile itself, kids profiles, a block either way (403), and past the per-profile follow
/// quota (429, audited).
#[utoipa::path(post, path = "/v1/profiles/{profile_id}/following", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "the follower's profile id")), request_body = ProfileRefDto,
    responses((status = 201, body = FollowStateDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 429, body = Problem)))]
pub async fn follow(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProfileRefDto>,
) -> Result<(StatusCode, Json<FollowStateDto>), ApiError> {
    let target = other_id("profile_id", &body.profile_id)?;
    let state = s.app.follow(&p, profile_id(&id)?, target).await?;
    Ok((StatusCode::CREATED, Json(FollowStateDto { state: state.as_str().to_owned() })))
}

/// Stop following a profile (or withdraw a request).
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}/following/{other_id}", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "the follower's profile id"), ("other_id" = String, Path, description = "the followed profile's id")),
    responses((status = 204, description = "no longer following"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unfollow(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((id, other)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.app.unfollow(&p, profile_id(&id)?, other_id("other_id", &other)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list(
    s: &RestState,
    p: &playhead_core::auth::Principal,
    id: &str,
    list: FollowList,
    q: PageParams,
) -> Result<Json<Page<FollowDto>>, ApiError> {
    let page =
        s.app.follow_list(p, profile_id(id)?, list, q.cursor.as_deref(), limit(q.limit.as_deref())?).await?;
    Ok(Json(follow_page(page, list)))
}

/// Whom a profile follows, by profile id.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/following", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page", min_length = 1),
        ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = Page<FollowDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn following(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<Page<FollowDto>>, ApiError> {
    list(&s, &p, &id, FollowList::Following, q).await
}

/// Who follows a profile, by profile id.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/followers", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page", min_length = 1),
        ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = Page<FollowDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn followers(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<Page<FollowDto>>, ApiError> {
    list(&s, &p, &id, FollowList::Followers, q).await
}

/// Requests to follow a (private) profile waiting for its decision.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/follow-requests", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page", min_length = 1),
        ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = Page<FollowDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn follow_requests(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<Page<FollowDto>>, ApiError> {
    list(&s, &p, &id, FollowList::Requests, q).await
}

/// Approve or deny a request to follow this profile.
#[utoipa::path(put, path = "/v1/profiles/{profile_id}/follow-requests/{requester_id}", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "the followed profile's id"), ("requester_id" = String, Path, description = "who asked")),
    request_body = DecisionDto,
    responses((status = 200, body = FollowStateDto, description = "approved (`following`) or denied (`requested` is gone: the state the request had)"),
    (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn decide_request(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((id, requester)): Path<(String, String)>,
    ApiJson(body): ApiJson<DecisionDto>,
) -> Result<Json<FollowStateDto>, ApiError> {
    let approve = parse_decision(&body.decision)?;
    let requester = other_id("requester_id", &requester)?;
    let state = s.app.decide_follow_request(&p, profile_id(&id)?, requester, approve).await?;
    let state = if approve { state.as_str() } else { "denied" };
    Ok(Json(FollowStateDto { state: state.to_owned() }))
}

/// Block a profile: follows both ways end, each vanishes from the other's feed, and it cannot
/// follow again until unblocked.
#[utoipa::path(post, path = "/v1/profiles/{profile_id}/blocks", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "the blocking profile's id")), request_body = ProfileRefDto,
    responses((status = 204, description = "blocked"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn block(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProfileRefDto>,
) -> Result<StatusCode, ApiError> {
    let target = other_id("profile_id", &body.profile_id)?;
    s.app.block(&p, profile_id(&id)?, target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a block.
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}/blocks/{other_id}", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "the blocking profile's id"), ("other_id" = String, Path, description = "the blocked profile's id")),
    responses((status = 204, description = "unblocked"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unblock(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((id, other)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.app.unblock(&p, profile_id(&id)?, other_id("other_id", &other)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the profile shares its activity with followers.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/feed-settings", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")),
    responses((status = 200, body = FeedSettingsDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_settings(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<FeedSettingsDto>, ApiError> {
    let share_activity = s.app.feed_settings(&p, profile_id(&id)?).await?;
    Ok(Json(FeedSettingsDto { share_activity }))
}

/// Turn sharing on or off.
#[utoipa::path(put, path = "/v1/profiles/{profile_id}/feed-settings", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = FeedSettingsDto,
    responses((status = 200, body = FeedSettingsDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn put_settings(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FeedSettingsDto>,
) -> Result<Json<FeedSettingsDto>, ApiError> {
    let share_activity = s.app.set_feed_settings(&p, profile_id(&id)?, body.share_activity).await?;
    Ok(Json(FeedSettingsDto { share_activity }))
}

/// What the profiles this one follows did, newest first. The same shape whether an entry was
/// pushed to this profile's inbox or pulled from a popular author at read time.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/feed", tag = "feed", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "the reader's profile id"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page (opaque, signed: only cursors this server issued for this feed are accepted)", min_length = 1),
        ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = Page<ActivityDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn feed(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<Page<ActivityDto>>, ApiError> {
    let page = s.app.feed(&p, profile_id(&id)?, q.cursor.as_deref(), limit(q.limit.as_deref())?).await?;
    Ok(Json(feed_page(page)))
}
