//! The rows: Continue watching (with hide) and Next up.

use std::sync::Weak;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use playhead_app::reads::{RowItem, RowPage};
use playhead_core::ids::ProfileId;
use serde::{Deserialize, Serialize};

use super::{limit, profile_id, title_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{ContinueItemDto, NextUpItemDto, Page};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// Serialized rows, reused while the app hands out the same cached row: a row is read far more
/// often than it changes, and turning twenty titles into JSON dominated a cached read. Entries are
/// keyed by profile, row and page length, and hold a `Weak` on the row they were made from; the
/// app's row cache decides freshness (a write makes it hand out a new row, so the body is remade),
/// and authorization still runs on every request before this cache is consulted.
#[derive(Clone)]
pub struct RowBodies(moka::sync::Cache<BodyKey, (Weak<Vec<RowItem>>, Bytes)>);

/// Profile, row (0 Continue watching, 1 Next up) and page length.
type BodyKey = (ProfileId, u8, usize);

impl std::fmt::Debug for RowBodies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowBodies").field("entries", &self.0.entry_count()).finish()
    }
}

impl Default for RowBodies {
    fn default() -> Self {
        Self(moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build())
    }
}

impl RowBodies {
    fn body<T: Serialize + utoipa::ToSchema>(
        &self,
        profile: ProfileId,
        row: u8,
        page: &RowPage,
        dto: impl Fn(&RowItem) -> T,
    ) -> Result<Response, ApiError> {
        let key = (profile, row, page.len());
        if let Some((handle, bytes)) = self.0.get(&key)
            && page.is_view_of(&handle)
        {
            return Ok(json(bytes));
        }
        let body = serde_json::to_vec(&Page { items: page.iter().map(dto).collect(), next_cursor: None })
            .map_err(|e| ApiError::App(playhead_app::AppError::Internal(e.to_string())))?;
        let bytes = Bytes::from(body);
        if page.is_cached() {
            self.0.insert(key, (page.row_handle(), bytes.clone()));
        }
        Ok(json(bytes))
    }
}

fn json(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
}

/// Query of the rows.
#[derive(Debug, Deserialize)]
pub struct RowParams {
    limit: Option<String>,
}

/// Titles to resume, newest activity first, one card per series.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/continue-watching", tag = "rows", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = Page<ContinueItemDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn continue_watching(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RowParams>,
) -> Result<Response, ApiError> {
    let profile = profile_id(&id)?;
    let page = s.app.continue_watching(&p, profile, limit(q.limit.as_deref())?).await?;
    s.row_bodies.body(profile, 0, &page, |i| ContinueItemDto::from(i))
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
    params(("profile_id" = String, Path, description = "profile id"), ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = Page<NextUpItemDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn next_up(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RowParams>,
) -> Result<Response, ApiError> {
    let profile = profile_id(&id)?;
    let page = s.app.next_up(&p, profile, limit(q.limit.as_deref())?).await?;
    s.row_bodies.body(profile, 1, &page, |i| NextUpItemDto::from(i))
}
