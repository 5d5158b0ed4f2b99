//! Resume points: read with an ETag, set synchronously.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use playhead_app::reads::{ProgressView, ProgressWrite, progress_etag};
use playhead_core::{FieldError, Timestamp};

use super::{if_match, none_match, profile_id, title_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{ProgressDto, ProgressPutDto};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

fn respond(v: &ProgressView) -> Response {
    let mut res = Json(ProgressDto::from(v)).into_response();
    if let Ok(tag) = HeaderValue::from_str(&progress_etag(v.version)) {
        res.headers_mut().insert(header::ETAG, tag);
    }
    res
}

/// Where to resume a title (position 0 and state not_started when never played).
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/progress/{title_id}", tag = "playback", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id")),
    responses((status = 200, body = ProgressDto, headers(("ETag" = String, description = "resume point version"))),
    (status = 304, description = "If-None-Match matched"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_progress(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((profile, title)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let v = s.app.get_progress(&p, profile_id(&profile)?, &title_id("title_id", &title)?).await?;
    let etag = progress_etag(v.version);
    if none_match(&headers, &etag) {
        return Err(ApiError::NotModified(etag));
    }
    Ok(respond(&v))
}

/// Set a resume point now (recorded as a pause event; the latest occurred_at wins). If-Match is
/// optional; a stale one answers 412. The answer is the resume point after the merge.
#[utoipa::path(put, path = "/v1/profiles/{profile_id}/progress/{title_id}", tag = "playback", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id")),
    request_body = ProgressPutDto,
    responses((status = 200, body = ProgressDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem)))]
pub async fn put_progress(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path((profile, title)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ProgressPutDto>,
) -> Result<Response, ApiError> {
    let occurred_at = body
        .occurred_at
        .as_deref()
        .map(|t| {
            Timestamp::parse_rfc3339(t).map_err(|e| FieldError::new("occurred_at", "invalid", e.to_string()))
        })
        .transpose()?;
    let write = ProgressWrite {
        position_ms: body.position_ms,
        duration_ms: body.duration_ms,
        occurred_at,
        device_id: body.device_id,
    };
    let tag = if_match(&headers);
    let v = s
        .app
        .put_progress(&p, profile_id(&profile)?, &title_id("title_id", &title)?, write, tag.as_deref())
        .await?;
    Ok(respond(&v))
}
