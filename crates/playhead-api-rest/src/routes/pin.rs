//! Parental PINs over the API: set, remove, and check one (an app switching to a profile).
//! Who may do it is decided by `playhead_app::App::authorize_pin_*`; the PIN itself by the
//! authorization server (`playhead_app::identity`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use playhead_app::AppError;
use playhead_app::access::Operation;
use playhead_app::identity::{OAuthError, PinRefusal};
use playhead_core::FieldError;
use playhead_core::pin::ProfilePin;
use serde::Deserialize;
use utoipa::ToSchema;

use super::oauth::{Peer, client_addr};
use super::{if_match, profile_id};
use crate::RestState;
use crate::auth::Auth;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

/// Body of PUT /v1/profiles/{profile_id}/pin and POST .../pin/verify.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinDto {
    /// 4-6 digits.
    #[schema(pattern = "^[0-9]{4,6}$", example = "2580")]
    pub pin: String,
}

/// The authorization server's failures in this transport's words.
fn identity_error(e: OAuthError) -> ApiError {
    match e {
        OAuthError::Protocol { .. } => ApiError::App(AppError::NotFound("profile")),
        OAuthError::RateLimited { retry_after_secs } => ApiError::TooManyPinAttempts { retry_after_secs },
        OAuthError::Unavailable(m) => ApiError::App(AppError::Unavailable(m)),
        OAuthError::Internal(m) => ApiError::App(AppError::Internal(m)),
    }
}

fn actor(p: &playhead_core::auth::Principal) -> String {
    p.account().map_or_else(|| playhead_app::access::partition_of(p), |a| a.to_string())
}

/// Set or replace a profile's parental PIN: binding a token to the profile (the device and
/// consent pages) then needs it. The account's own token, not profile-bound, signed in within
/// the last 5 minutes (403 otherwise).
#[utoipa::path(put, path = "/v1/profiles/{profile_id}/pin", tag = "profiles", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = PinDto, responses(
    (status = 204, description = "the PIN is set"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem, description = "a profile-bound token, or no recent sign-in"), (status = 404, body = Problem)))]
pub async fn put_pin(
    State(s): State<RestState>,
    Auth(p): Auth,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PinDto>,
) -> Result<StatusCode, ApiError> {
    let id = profile_id(&id)?;
    let pin = ProfilePin::parse(&body.pin).map_err(ApiError::BadParam)?;
    s.app.authorize_pin_change(&p, id, Operation::SetProfilePin).await?;
    let addr = client_addr(&s, &headers, peer);
    s.identity.set_pin(&actor(&p), id, &pin, Some(&addr)).await.map_err(identity_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a profile's parental PIN (the same rules as setting it). `If-Match: *` removes it only
/// if there is one (412 otherwise); without If-Match the removal is idempotent.
#[utoipa::path(delete, path = "/v1/profiles/{profile_id}/pin", tag = "profiles", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"),
        ("If-Match" = Option<String>, Header, description = "`*`: only if the profile has a PIN")),
    responses((status = 204, description = "the profile has no PIN now"), (status = 400, body = Problem),
    (status = 401, body = Problem), (status = 403, body = Problem, description = "a profile-bound token, or no recent sign-in"),
    (status = 404, body = Problem), (status = 412, body = Problem, description = "If-Match given and the profile had no PIN")))]
pub async fn delete_pin(
    State(s): State<RestState>,
    Auth(p): Auth,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = profile_id(&id)?;
    s.app.authorize_pin_change(&p, id, Operation::RemoveProfilePin).await?;
    let addr = client_addr(&s, &headers, peer);
    let removed = s.identity.remove_pin(&actor(&p), id, Some(&addr)).await.map_err(identity_error)?;
    // A PIN has no entity tag of its own: any If-Match asks that one exists.
    if !removed && if_match(&headers).is_some() {
        return Err(ApiError::App(AppError::PreconditionFailed));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Check a profile's PIN before an app switches to the profile: 204 when it is right (or the
/// profile has none), 403 with the attempts left when wrong, 429 with Retry-After once the
/// profile is locked (failures and lockouts are audited). A token bound to another profile
/// cannot reach this one (404).
#[utoipa::path(post, path = "/v1/profiles/{profile_id}/pin/verify", tag = "profiles", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), request_body = PinDto, responses(
    (status = 204, description = "the PIN is right, or the profile has none"), (status = 400, body = Problem),
    (status = 401, body = Problem), (status = 403, body = Problem, description = "wrong PIN (the problem says how many attempts are left)"),
    (status = 404, body = Problem), (status = 429, body = Problem, description = "too many wrong PINs: locked, see Retry-After")))]
pub async fn verify_pin(
    State(s): State<RestState>,
    Auth(p): Auth,
    Peer(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PinDto>,
) -> Result<StatusCode, ApiError> {
    let id = profile_id(&id)?;
    ProfilePin::parse(&body.pin).map_err(ApiError::BadParam)?;
    s.app.authorize_pin_check(&p, id).await?;
    let addr = client_addr(&s, &headers, peer);
    match s.identity.check_pin(&actor(&p), id, Some(&body.pin), &addr).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(PinRefusal::Required | PinRefusal::Malformed) => {
            Err(ApiError::BadParam(FieldError::new("pin", "invalid", "must be 4-6 digits")))
        }
        Err(PinRefusal::Wrong { attempts_left }) => Err(ApiError::WrongPin { attempts_left }),
        Err(PinRefusal::Locked { retry_after_secs }) => {
            Err(ApiError::TooManyPinAttempts { retry_after_secs })
        }
        Err(PinRefusal::Other(e)) => Err(identity_error(e)),
    }
}
