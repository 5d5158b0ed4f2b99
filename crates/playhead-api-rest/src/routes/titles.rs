//! The catalog: read by any caller, written by the platform (catalog:write).

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use playhead_core::ports::StoredTitle;
use playhead_core::title::TitleInput;
use serde::Deserialize;

use super::{if_match, limit, none_match, title_id, version_of};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{ImportLineError, ImportSummaryDto, Page, TitleDto, TitleInputDto};
use crate::error::{ApiError, FieldProblem, Problem};
use crate::extract::{ApiJson, ApiQuery};

fn with_etag(status: StatusCode, t: &StoredTitle) -> Response {
    let mut res = (status, Json(TitleDto::from(&t.title))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"v{}\"", t.version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// Create or replace a title (idempotent; If-Match optional).
#[utoipa::path(put, path = "/v1/titles/{title_id}", tag = "catalog", security(("bearer" = [])),
    params(("title_id" = String, Path, description = "the platform's title id"),
        ("If-Match" = Option<String>, Header, description = "the ETag from your last GET; a stale one answers 412")), request_body = TitleInputDto,
    responses((status = 200, body = TitleDto, description = "replaced"), (status = 201, body = TitleDto, description = "created"),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 412, body = Problem)))]
pub async fn put_title(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TitleInput>,
) -> Result<Response, ApiError> {
    let id = title_id("title_id", &id)?;
    let if_version = if_match(&headers).map(|t| version_of(&t));
    let (stored, created) = s.app.put_title(&p, &id, body, if_version).await?;
    Ok(with_etag(if created { StatusCode::CREATED } else { StatusCode::OK }, &stored))
}

/// Change a title with a JSON merge patch (RFC 7396; `null` removes a member). If-Match is
/// required: without it 428, with a stale one 412.
#[utoipa::path(patch, path = "/v1/titles/{title_id}", tag = "catalog", security(("bearer" = [])),
    params(("title_id" = String, Path, description = "the platform's title id"),
        ("If-Match" = String, Header, description = "the ETag from your last GET (required: 428 without it, 412 when stale)")),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "the members to change"),
    responses((status = 200, body = TitleDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem),
    (status = 415, body = Problem), (status = 428, body = Problem)))]
pub async fn patch_title(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let id = title_id("title_id", &id)?;
    let if_version = if_match(&headers).map(|t| version_of(&t));
    let stored = s.app.patch_title(&p, &id, body, if_version).await?;
    Ok(with_etag(StatusCode::OK, &stored))
}

/// Read a title.
///
/// With a token bound to a profile (a kids TV), a title above that profile's maturity limit is
/// not found (404), as on every other route that returns titles.
#[utoipa::path(get, path = "/v1/titles/{title_id}", tag = "catalog", security(("bearer" = [])),
    params(("title_id" = String, Path, description = "the platform's title id")),
    responses((status = 200, body = TitleDto), (status = 304, description = "If-None-Match matched"),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_title(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stored = s.app.get_title(&p, &title_id("title_id", &id)?).await?;
    let etag = format!("\"v{}\"", stored.version);
    if none_match(&headers, &etag) {
        return Err(ApiError::NotModified(etag));
    }
    Ok(with_etag(StatusCode::OK, &stored))
}

/// Query of GET /v1/titles.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

/// Titles ordered by id, by cursor.
///
/// With a token bound to a profile (a kids TV), titles above that profile's maturity limit are
/// left out (a page may then be short: follow `next_cursor`).
#[utoipa::path(get, path = "/v1/titles", tag = "catalog", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, description = "the next_cursor of the previous page (opaque, signed: only cursors this server issued for the same query are accepted)", min_length = 1), ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100)),
    responses((status = 200, body = Page<TitleDto>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn list_titles(
    State(s): State<RestState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<TitleDto>>, ApiError> {
    let limit = limit(q.limit.as_deref())?;
    let (titles, next) = s.app.list_titles(&p, q.cursor.as_deref(), limit).await?;
    Ok(Json(Page { items: titles.iter().map(TitleDto::from).collect(), next_cursor: next }))
}

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        matches!(ct.as_str(), "application/x-ndjson" | "application/ndjson" | "application/jsonl")
    })
}

/// Import titles: NDJSON, one title per line, streamed (up to 256 MiB), idempotent upsert.
/// Bad lines are reported by number; the rest are imported.
#[utoipa::path(post, path = "/v1/titles/import", tag = "catalog", security(("bearer" = [])),
    request_body(content = String, content_type = "application/x-ndjson", description = "one title JSON object per line"),
    responses((status = 200, body = ImportSummaryDto), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 413, body = Problem), (status = 415, body = Problem)))]
pub async fn import_titles(
    State(s): State<RestState>,
    Auth(p): Auth,
    req: Request,
) -> Result<Json<ImportSummaryDto>, ApiError> {
    if !is_ndjson(req.headers()) {
        return Err(ApiError::UnsupportedMediaType("application/x-ndjson"));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let import_limit = s.limits.import_body_bytes as u64;
    let limit_words = format!("{} import", crate::human_bytes(s.limits.import_body_bytes));
    if declared.is_some_and(|n| n > import_limit) {
        return Err(ApiError::TooLarge { limit: limit_words });
    }
    let mut importer = s.app.importer(&p)?;
    let mut stream = req.into_body().into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let (mut total, mut line_no) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Malformed(format!("reading the body failed: {e}")))?;
        total += chunk.len() as u64;
        if total > import_limit {
            return Err(ApiError::TooLarge { limit: limit_words });
        }
        buf.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            line_no += 1;
            importer.push_line(line_no, &buf[start..start + nl]).await?;
            start += nl + 1;
        }
        buf.drain(..start);
        if buf.len() > s.limits.json_body_bytes {
            return Err(ApiError::TooLarge {
                limit: format!("{} line", crate::human_bytes(s.limits.json_body_bytes)),
            });
        }
    }
    if !buf.is_empty() {
        importer.push_line(line_no + 1, &buf).await?;
    }
    let sum = importer.finish().await?;
    Ok(Json(ImportSummaryDto {
        lines: sum.lines,
        created: sum.created,
        updated: sum.updated,
        unchanged: sum.unchanged,
        rejected: sum.rejected,
        errors: sum
            .errors
            .iter()
            .map(|e| ImportLineError {
                line: e.line,
                errors: e.problems.iter().map(FieldProblem::from).collect(),
            })
            .collect(),
        released_held: sum.released_held,
    }))
}
