//! The viewer's library: watched marks and My list (decision 0090).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use playhead_app::library::{ListFilter, UnmarkPlays};
use playhead_core::rules::marks::MarkScope;
use playhead_core::{FieldError, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{limit, profile_id, title_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{Page, TitleSummary};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};

/// Query of PUT watched.
#[derive(Debug, Deserialize)]
pub struct MarkParams {
    scope: Option<String>,
    watched_at: Option<String>,
}

/// Query of DELETE watched.
#[derive(Debug, Deserialize)]
pub struct UnmarkParams {
    scope: Option<String>,
    plays: Option<String>,
}

/// Query of GET list.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
    limit: Option<String>,
    available: Option<String>,
}

/// One title a mark covered.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MarkedDto {
    /// The title marked watched.
    pub title_id: String,
    /// Its manual play (history shows it with `manual: true`).
    pub play_id: String,
}

/// Answer to a mark.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MarkedTitlesDto {
    /// Every title the mark covered (one for a movie or episode; a season's or series'
    /// available episodes otherwise).
    pub marked: Vec<MarkedDto>,
}

/// A title on My list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListItemDto {
    /// The title.
    pub title_id: String,
    /// Its summary, with the profile's watched state.
    pub title: TitleSummary,
    /// When it was added (RFC 3339).
    pub added_at: String,
}

/// The My list options of a profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSettingsDto {
    /// Titles leave the list once the profile finishes them (a completed play after they were
    /// added). Default false.
    pub leave_when_finished: bool,
}

fn scope(raw: Option<&str>) -> Result<MarkScope, ApiError> {
    match raw {
        None => Ok(MarkScope::Title),
        Some(s) => MarkScope::parse(s)
            .ok_or_else(|| FieldError::new("scope", "invalid", "must be title, season or series").into()),
    }
}

/// Mark a title watched: creates a manual play (shown in history with `manual: true`) and hides
/// the title from Continue watching until it is played again. `scope=season` on an episode
/// marks its season, `scope=series` on an episode or series marks every available episode (a
/// series id alone means the series). Repeating a mark keeps its play; `watched_at` moves it.
#[utoipa::path(put, path = "/v1/profiles/{profile_id}/watched/{title_id}", tag = "library", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id (movie, episode or series)"),
        ("scope" = Option<String>, Query, description = "title (default), season or series", pattern = "^(title|season|series)$"),
        ("watched_at" = Option<String>, Query, description = "when it was watched (RFC 3339 date-time, not in the future); default now")),
    responses((status = 200, body = MarkedTitlesDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn mark_watched(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((profile, title)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<MarkParams>,
) -> Result<Json<MarkedTitlesDto>, ApiError> {
    let profile = profile_id(&profile)?;
    let title = title_id("title_id", &title)?;
    let scope = scope(q.scope.as_deref())?;
    let watched_at = q
        .watched_at
        .as_deref()
        .map(|t| {
            Timestamp::parse_rfc3339(t)
                .map_err(|e| FieldError::new("watched_at", "invalid", format!("must be RFC 3339: {e}")))
        })
        .transpose()?;
    let marked = s.app.mark_watched(&p, profile, &title, scope, watched_at).await?;
    Ok(Json(MarkedTitlesDto {
        marked: marked
            .into_iter()
            .map(|m| MarkedDto { title_id: m.title_id.to_string(), play_id: m.play_id.to_string() })
            .collect(),
    }))
}

/// Remove watched marks (manual plays) of a title, its season or series (`scope` as for PUT).
/// `plays=all` deletes the real plays too (as deleting each from history would); by default
/// they stay, so a title with a completed play is still watched.
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}/watched/{title_id}", tag = "library", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id"),
        ("scope" = Option<String>, Query, description = "title (default), season or series", pattern = "^(title|season|series)$"),
        ("plays" = Option<String>, Query, description = "manual (default): only marks; all: every play of the titles", pattern = "^(manual|all)$")),
    responses((status = 204, description = "unmarked"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unmark_watched(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((profile, title)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<UnmarkParams>,
) -> Result<StatusCode, ApiError> {
    let profile = profile_id(&profile)?;
    let title = title_id("title_id", &title)?;
    let scope = scope(q.scope.as_deref())?;
    let plays = match q.plays.as_deref() {
        None | Some("manual") => UnmarkPlays::Manual,
        Some("all") => UnmarkPlays::All,
        Some(_) => return Err(FieldError::new("plays", "invalid", "must be manual or all").into()),
    };
    s.app.unmark_watched(&p, profile, &title, scope, plays).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Put a title on My list (201 when added, 204 when it was there already: it keeps its place).
#[utoipa::path(put, path = "/v1/profiles/{profile_id}/list/{title_id}", tag = "library", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id")),
    responses((status = 201, description = "added"), (status = 204, description = "already on the list"), (status = 400, body = Problem),
    (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_add(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((profile, title)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let added = s.app.list_add(&p, profile_id(&profile)?, &title_id("title_id", &title)?).await?;
    Ok(if added { StatusCode::CREATED } else { StatusCode::NO_CONTENT })
}

/// Take a title off My list (404 when it is not on it).
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}/list/{title_id}", tag = "library", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id")),
    responses((status = 204, description = "removed"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_remove(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((profile, title)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.app.list_remove(&p, profile_id(&profile)?, &title_id("title_id", &title)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// My list, newest addition first, by cursor. Titles above a kids profile's maturity limit are
/// never listed; `available=true` keeps only titles playable now; with the profile's
/// `leave_when_finished` option, titles finished since they were added are left out.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/list", tag = "library", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page (opaque, signed)", min_length = 1),
        ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100),
        ("available" = Option<bool>, Query, description = "only titles playable now")),
    responses((status = 200, body = Page<ListItemDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<Page<ListItemDto>>, ApiError> {
    let available_only = match q.available.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(FieldError::new("available", "invalid", "must be true or false").into()),
    };
    let filter = ListFilter { cursor: q.cursor, limit: limit(q.limit.as_deref())?, available_only };
    let page = s.app.list(&p, profile_id(&id)?, filter).await?;
    Ok(Json(Page {
        items: page
            .items
            .iter()
            .map(|(t, at, w)| ListItemDto {
                title_id: t.id.to_string(),
                title: TitleSummary::for_profile(t, *w),
                added_at: at.to_rfc3339(),
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The profile's My list options.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/list-settings", tag = "library", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")),
    responses((status = 200, body = ListSettingsDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_settings(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ListSettingsDto>, ApiError> {
    let on = s.app.list_settings(&p, profile_id(&id)?).await?;
    Ok(Json(ListSettingsDto { leave_when_finished: on }))
}

/// Change the profile's My list options.
#[utoipa::path(put, path = "/v1/profiles/{profile_id}/list-settings", tag = "library", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = ListSettingsDto,
    responses((status = 200, body = ListSettingsDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn put_list_settings(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ListSettingsDto>,
) -> Result<Json<ListSettingsDto>, ApiError> {
    let on = s.app.set_list_settings(&p, profile_id(&id)?, body.leave_when_finished).await?;
    Ok(Json(ListSettingsDto { leave_when_finished: on }))
}
