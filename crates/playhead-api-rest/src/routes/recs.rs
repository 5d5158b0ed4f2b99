//! Recommendations: rows with reasons, similar titles, feedback and impressions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use playhead_core::FieldError;
use playhead_core::ports::FeedbackKind;
use playhead_core::recs::RecsRow;
use serde::Deserialize;

use super::{limit, profile_id, title_id};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{FeedbackDto, ImpressionsDto, Page, RecommendationDto};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery};

/// Query of the recommendations row.
#[derive(Debug, Deserialize)]
pub struct RecsParams {
    limit: Option<String>,
    row: Option<String>,
}

/// Query of similar titles.
#[derive(Debug, Deserialize)]
pub struct SimilarParams {
    limit: Option<String>,
    profile_id: Option<String>,
}

/// A recommendation row for a profile, each title with its score and the reason it is there.
/// Never a title the profile watched, hid, or marked down / not interested, nor one above a kids
/// profile's maturity limit. Reacts to a play as soon as it is applied.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}/recommendations", tag = "recommendations", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"), ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100),
        ("row" = Option<String>, Query, description = "top (default), because-you-watched, films or trending", pattern = "^(top|because-you-watched|films|trending)$")),
    responses((status = 200, body = Page<RecommendationDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn recommendations(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RecsParams>,
) -> Result<Json<Page<RecommendationDto>>, ApiError> {
    let profile = profile_id(&id)?;
    let row = match q.row.as_deref() {
        None => RecsRow::Top,
        Some(r) => RecsRow::parse(r).ok_or_else(|| {
            FieldError::new("row", "invalid", "must be top, because-you-watched, films or trending")
        })?,
    };
    let items = s.app.recommendations(&p, profile, row, limit(q.limit.as_deref())?).await?;
    Ok(Json(Page { items: items.iter().map(RecommendationDto::from).collect(), next_cursor: None }))
}

/// Titles similar to one title (co-watch and the model's neighbours; genre overlap for titles
/// nobody watched yet). With `profile_id` (or a profile-bound token) the answer is for that
/// profile: nothing above its maturity limit (a title above it is 404), and each title carries
/// the profile's watched state.
#[utoipa::path(get, path = "/v1/titles/{title_id}/similar", tag = "recommendations", security(("bearer" = [])),
    params(("title_id" = String, Path, description = "title id"), ("limit" = Option<u32>, Query, description = "page size, default 20", minimum = 1, maximum = 100),
        ("profile_id" = Option<String>, Query, description = "answer for this profile (a profile id: its maturity limit and watched state)")),
    responses((status = 200, body = Page<RecommendationDto>), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn similar(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SimilarParams>,
) -> Result<Json<Page<RecommendationDto>>, ApiError> {
    let title = title_id("title_id", &id)?;
    let profile = q.profile_id.as_deref().map(profile_id).transpose()?;
    let items = s.app.similar(&p, &title, profile, limit(q.limit.as_deref())?).await?;
    Ok(Json(Page { items: items.iter().map(RecommendationDto::from).collect(), next_cursor: None }))
}

/// Feedback on a title: `up` (more like this), `down` or `not_interested` (never recommended
/// again). The latest feedback on a title replaces the earlier one.
#[utoipa::path(post, path = "/v1/profiles/{profile_id}/feedback", tag = "recommendations", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = FeedbackDto,
    responses((status = 204, description = "recorded"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn feedback(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FeedbackDto>,
) -> Result<StatusCode, ApiError> {
    let profile = profile_id(&id)?;
    let title = title_id("title_id", &body.title_id)?;
    let kind = FeedbackKind::parse(&body.kind)
        .ok_or_else(|| FieldError::new("kind", "invalid", "must be up, down or not_interested"))?;
    s.app.feedback(&p, profile, title, kind).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Report titles shown to the profile in a recommendation row: titles shown many times and
/// never played sink in later rows.
#[utoipa::path(post, path = "/v1/profiles/{profile_id}/impressions", tag = "recommendations", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = ImpressionsDto,
    responses((status = 204, description = "recorded"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem)))]
pub async fn impressions(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ImpressionsDto>,
) -> Result<StatusCode, ApiError> {
    let profile = profile_id(&id)?;
    if body.title_ids.is_empty() || body.title_ids.len() > playhead_app::recs::IMPRESSIONS_MAX {
        return Err(FieldError::new(
            "title_ids",
            "out_of_range",
            format!("must hold 1-{} title ids", playhead_app::recs::IMPRESSIONS_MAX),
        )
        .into());
    }
    let mut titles = Vec::with_capacity(body.title_ids.len());
    for (i, t) in body.title_ids.iter().enumerate() {
        titles.push(
            playhead_core::TitleId::parse(t)
                .map_err(|e| FieldError::new(format!("title_ids[{i}]"), "invalid", e.to_string()))?,
        );
    }
    s.app.impressions(&p, profile, &titles).await?;
    Ok(StatusCode::NO_CONTENT)
}
