//! Resume points: read with an ETag, set synchronously.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use playhead_app::reads::{ExpectedVersion, ProgressView, ProgressWrite};
use playhead_core::{EventId, FieldError, Timestamp};

use super::{if_match, none_match, profile_id, title_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{ProgressDto, ProgressPutDto};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

/// The strong ETag of a resume point: its register version (`"p0"`: never played).
fn progress_etag(version: Option<(Timestamp, EventId)>) -> String {
    match version {
        Some((t, id)) => format!("\"p{}-{}\"", t.0, id.0.simple()),
        None => "\"p0\"".to_owned(),
    }
}

/// An If-Match value back to the version it names (the inverse of [`progress_etag`]).
fn expected_version(tag: &str) -> ExpectedVersion {
    let parsed = match tag.trim().strip_prefix("\"p").and_then(|t| t.strip_suffix('"')) {
        Some("0") => Some(None),
        Some(rest) => rest.split_once('-').and_then(|(ms, id)| {
            let ms = ms.parse::<i64>().ok()?;
            let id = uuid::Uuid::try_parse(id).ok().filter(|u| u.simple().to_string() == id)?;
            Some(Some((Timestamp(ms), EventId(id))))
        }),
        None => None,
    };
    parsed.map_or(ExpectedVersion::Unrecognized, ExpectedVersion::Exactly)
}

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
    params(("profile_id" = String, Path, description = "profile id"), ("title_id" = String, Path, description = "title id"),
        ("If-Match" = Option<String>, Header, description = "the ETag from your last GET; a stale one answers 412")),
    request_body = ProgressPutDto,
    responses((status = 200, body = ProgressDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 410, body = Problem, description = "the profile was erased: stop sending"), (status = 412, body = Problem)))]
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
    let expect = if_match(&headers).map(|t| expected_version(&t));
    let v =
        s.app.put_progress(&p, profile_id(&profile)?, &title_id("title_id", &title)?, write, expect).await?;
    Ok(respond(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_read_back_as_the_version_they_name() {
        let v = Some((Timestamp(1_700_000_000_123), EventId(uuid::Uuid::now_v7())));
        assert_eq!(expected_version(&progress_etag(v)), ExpectedVersion::Exactly(v));
        assert_eq!(expected_version(&progress_etag(None)), ExpectedVersion::Exactly(None));
        for other in ["*", "\"v3\"", "W/\"p0\"", "\"p12\"", "\"px-y\"", ""] {
            assert_eq!(expected_version(other), ExpectedVersion::Unrecognized, "{other}");
        }
    }
}
