//! The rows: Continue watching (with hide) and Next up.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{limit, profile_id, title_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{ContinueItemDto, NextUpItemDto, Page};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// Query of the rows.
#[derive(Debug, Deserialize)]
pub struct RowParams {
    limit: Option<String>,
}

/// Titles to resume, newest activity first, one card per series.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/continue-watching", tag = "rows", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("limit" = Option<u32>, Query, description = "1-100, default 20")),
    responses((status = 200, body = Page<ContinueItemDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn continue_watching(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RowParams>,
) -> Result<Json<Page<ContinueItemDto>>, ApiError> {
    let items = s.app.continue_watching(&p, profile_id(&id)?, limit(q.limit.as_deref())?).await?;
    Ok(Json(Page { items: items.iter().map(ContinueItemDto::from).collect(), next_cursor: None }))
}

/// Hide a title from Continue watching until it is played again; its resume point is kept.
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}/continue-watching/{title_id}", tag = "rows", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id")),
    responses((status = 204, description = "hidden"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn hide(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((profile, title)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.app.hide(&p, profile_id(&profile)?, &title_id("title_id", &title)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The next episode of each series in progress, most recent activity first.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/next-up", tag = "rows", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("limit" = Option<u32>, Query, description = "1-100, default 20")),
    responses((status = 200, body = Page<NextUpItemDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn next_up(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RowParams>,
) -> Result<Json<Page<NextUpItemDto>>, ApiError> {
    let items = s.app.next_up(&p, profile_id(&id)?, limit(q.limit.as_deref())?).await?;
    Ok(Json(Page { items: items.iter().map(NextUpItemDto::from).collect(), next_cursor: None }))
}
