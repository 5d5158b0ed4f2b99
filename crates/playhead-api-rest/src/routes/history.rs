//! Per-play history: read by cursor, backfill, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use playhead_app::reads::{BackfillPlay, BackfillResult, HistoryQuery};
use playhead_core::FieldError;
use playhead_core::precondition::IfMatch;
use serde::Deserialize;

use super::{limit, play_id, profile_id, title_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{
    BackfillDto, BackfillResultDto, BackfillResultsDto, HistoryItemDto, HistoryItemV2Dto, Page,
};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};
use axum::response::IntoResponse;

/// Query of GET history.
#[derive(Debug, Deserialize)]
pub struct HistoryParams {
    cursor: Option<String>,
    limit: Option<String>,
    title_id: Option<String>,
    completed: Option<String>,
}

/// Plays, newest first, by cursor; months rolled up by the retention job are items of kind
/// `rollup`, after the plays of their month.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/history", tag = "history", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"),
        ("cursor" = Option<String>, Query, description = "the next_cursor of the previous page (opaque, signed: only cursors this server issued for the same query are accepted)", min_length = 1), ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100),
        ("title_id" = Option<String>, Query, description = "only this title"), ("completed" = Option<bool>, Query, description = "only completed (true) or unfinished (false) plays; rolled-up months with at least one such play")),
        responses((status = 200, description = "plays and rolled-up months; `Accept: application/vnd.playhead.v2+json` gives the v2 representation", content(
        (Page<HistoryItemDto> = "application/json"), (Page<HistoryItemV2Dto> = "application/vnd.playhead.v2+json"))),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 406, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_history(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    version: Option<axum::Extension<crate::middleware::ApiVersion>>,
    ApiQuery(q): ApiQuery<HistoryParams>,
) -> Result<axum::response::Response, ApiError> {
    let completed = match q.completed.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(FieldError::new("completed", "invalid", "must be true or false").into()),
    };
    let query = HistoryQuery {
        cursor: q.cursor,
        limit: limit(q.limit.as_deref())?,
        title_id: q.title_id.as_deref().map(|t| title_id("title_id", t)).transpose()?,
        completed,
    };
    let (plays, next) = s.app.history_with_state(&p, profile_id(&id)?, query).await?;
    if version.is_some_and(|v| v.0.0 == 2) {
        let page = Page { items: plays.iter().map(HistoryItemV2Dto::new).collect(), next_cursor: next };
        let mut res = Json(page).into_response();
        res.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/vnd.playhead.v2+json"),
        );
        return Ok(res);
    }
    Ok(Json(Page { items: plays.iter().map(HistoryItemDto::new).collect(), next_cursor: next })
        .into_response())
}

/// Import plays from elsewhere (history:write), deduplicated on (title, started_at). A deleted
/// play is not recreated.
#[utoipa::path(post, path = "/v1/profiles/{profile_id}/history", tag = "history", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = BackfillDto,
    responses((status = 202, body = BackfillResultsDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn post_history(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<BackfillDto>,
) -> Result<(StatusCode, Json<BackfillResultsDto>), ApiError> {
    let profile = profile_id(&id)?;
    if body.plays.len() > playhead_app::reads::BACKFILL_MAX {
        return Err(ApiError::TooLarge {
            limit: format!("{} plays per request", playhead_app::reads::BACKFILL_MAX),
        });
    }
    // Parse each play on its own so one bad item is reported by index, not the whole request.
    let mut parsed: Vec<Result<BackfillPlay, FieldError>> = Vec::with_capacity(body.plays.len());
    for raw in &body.plays {
        let de = &mut serde_json::Deserializer::from_str(raw.get());
        parsed.push(serde_path_to_error::deserialize::<_, BackfillPlay>(de).map_err(|e| {
            let path = e.path().to_string();
            let msg = e.into_inner().to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            FieldError::new(
                if path.is_empty() || path == "." { "play".to_owned() } else { path },
                "invalid",
                msg,
            )
        }));
    }
    let good: Vec<BackfillPlay> = parsed.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let mut done = s.app.backfill(&p, profile, good).await?.into_iter();
    let results = parsed
        .iter()
        .map(|r| {
            Ok(match r {
                Err(e) => BackfillResultDto {
                    status: "rejected".into(),
                    play_id: None,
                    problem: Some(Problem::for_field(e)),
                },
                Ok(_) => match done.next() {
                    Some(BackfillResult::Created(id)) => BackfillResultDto {
                        status: "created".into(),
                        play_id: Some(id.to_string()),
                        problem: None,
                    },
                    Some(BackfillResult::Duplicate(id)) => BackfillResultDto {
                        status: "duplicate".into(),
                        play_id: Some(id.to_string()),
                        problem: None,
                    },
                    Some(BackfillResult::Deleted) => {
                        BackfillResultDto { status: "deleted".into(), play_id: None, problem: None }
                    }
                    Some(BackfillResult::Rejected(e)) => BackfillResultDto {
                        status: "rejected".into(),
                        play_id: None,
                        problem: Some(Problem::for_field(&e)),
                    },
                    None => {
                        return Err(ApiError::App(playhead_app::AppError::Internal(
                            "the backfill answered fewer results than plays".into(),
                        )));
                    }
                },
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok((StatusCode::ACCEPTED, Json(BackfillResultsDto { results })))
}

/// Delete a play; redelivered events never bring it back. With If-Match (the play's `etag` from
/// history, or `*`), only the version the client saw is deleted: 412 when events changed it since.
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}/history/{play_id}", tag = "history", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("play_id" = String, Path, description = "play id"),
        ("If-Match" = Option<String>, Header, description = "the play's etag from history (or *): delete only that version")),
    responses((status = 204, description = "deleted"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 412, description = "the play changed since the etag in If-Match", body = Problem)))]
pub async fn delete_play(
    State(s): State<RestState>,
    Auth(p): Auth,
    headers: axum::http::HeaderMap,
    Path((profile, play)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let precondition = IfMatch::parse(super::if_match(&headers).as_deref());
    s.app.delete_play_if(&p, profile_id(&profile)?, play_id(&play)?, &precondition).await?;
    Ok(StatusCode::NO_CONTENT)
}
