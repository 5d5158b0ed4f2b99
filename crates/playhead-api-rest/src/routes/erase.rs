//! Erasure (issue 16): asking for an account's or a profile's erasure, and the saga's status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use playhead_core::FieldError;
use playhead_core::erasure::{Erasure, Scope, StepState};
use playhead_core::ids::ErasureId;
use serde::Serialize;
use utoipa::ToSchema;

use super::{account_id, profile_id};
use crate::RestState;
use crate::auth::Auth;
use crate::error::{ApiError, Problem};

/// An erasure was accepted: follow `status` (also the Location header).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureAcceptedDto {
    /// The saga's id.
    pub erasure_id: String,
    /// Where its status is read.
    pub status: String,
}

/// One step of an erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureStepDto {
    /// stop_accepting, drop_queued, recs_signals, delete_rows, evict_cache or audit (in order).
    pub step: String,
    /// pending, retrying, failing (retried, operators alerted) or done.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last failure, when the step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When it finished (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
}

/// An erasure saga's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureDto {
    /// The saga's id.
    pub erasure_id: String,
    /// account or profile.
    pub scope: String,
    /// The account erased, or owning the profile erased.
    pub account_id: String,
    /// The profile erased (profile scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// running, failing (a step keeps failing; still retried) or done.
    pub state: String,
    /// When it was asked for (RFC 3339).
    pub requested_at: String,
    /// When the last step finished (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Each step, in the order they run.
    pub steps: Vec<ErasureStepDto>,
}

impl From<&Erasure> for ErasureDto {
    fn from(e: &Erasure) -> Self {
        Self {
            erasure_id: e.id.to_string(),
            scope: e.scope.kind().to_owned(),
            account_id: e.scope.account().to_string(),
            profile_id: match e.scope {
                Scope::Profile { profile, .. } => Some(profile.to_string()),
                Scope::Account(_) => None,
            },
            state: e.state().to_owned(),
            requested_at: e.requested_at.to_rfc3339(),
            completed_at: e.completed_at.map(|t| t.to_rfc3339()),
            steps: e
                .steps
                .iter()
                .map(|s| ErasureStepDto {
                    step: s.step.as_str().to_owned(),
                    state: match s.state {
                        StepState::Pending => "pending",
                        StepState::Retrying => "retrying",
                        StepState::Failing => "failing",
                        StepState::Done => "done",
                    }
                    .to_owned(),
                    attempts: s.attempts,
                    last_error: s.last_error.clone(),
                    done_at: s.done_at.map(|t| t.to_rfc3339()),
                })
                .collect(),
        }
    }
}

fn accepted(e: &Erasure) -> Response {
    let status = format!("/v1/erasures/{}", e.id);
    let mut res = (
        StatusCode::ACCEPTED,
        Json(ErasureAcceptedDto { erasure_id: e.id.to_string(), status: status.clone() }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&status) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// Erase an account: its profiles, their history, resume points, recommendations signals, sign-in
/// state and the account itself, in every store (a saga; follow its status). Needs a recent
/// sign-in; the last admin account is refused.
#[utoipa::path(delete, path = "/v1/accounts/{account_id}", tag = "erasure", security(("bearer" = [])),
    params(("account_id" = String, Path, description = "account id")), responses(
    (status = 202, body = ErasureAcceptedDto, description = "erasure started (or already running: the same saga)",
        headers(("Location" = String, description = "the saga's status"))),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem), (status = 409, body = Problem, description = "the last admin account")))]
pub async fn erase_account(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let saga = s.app.erase_account(&p, account_id(&id)?).await?;
    Ok(accepted(&saga))
}

/// Erase one profile: its history, resume points, hidden titles, recommendation signals and
/// queued events, in every store (a saga; follow its status). Asking again returns the same saga.
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}", tag = "erasure", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), responses(
    (status = 202, body = ErasureAcceptedDto, description = "erasure started (or asked before: the same saga)",
        headers(("Location" = String, description = "the saga's status"))),
    (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem)))]
pub async fn erase_profile(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let saga = s.app.erase_profile(&p, profile_id(&id)?).await?;
    Ok(accepted(&saga))
}

/// An erasure saga's status: each step and its state.
#[utoipa::path(get, path = "/v1/erasures/{erasure_id}", tag = "erasure", security(("bearer" = [])),
    params(("erasure_id" = String, Path, description = "erasure id")), responses(
    (status = 200, body = ErasureDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_erasure(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<ErasureDto>, ApiError> {
    let id = ErasureId::parse(&id)
        .map_err(|_| ApiError::from(FieldError::new("erasure_id", "invalid", "must be a UUID")))?;
    let saga = s.app.erasure_status(&p, id).await?;
    Ok(Json(ErasureDto::from(&saga)))
}
