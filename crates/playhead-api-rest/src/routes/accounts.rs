//! The caller, accounts and profiles.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use playhead_app::accounts::{NewProfile, ProfilePatch};
use playhead_core::profile::Profile;
use sha2::{Digest, Sha256};

use super::{account_id, if_match, none_match, profile_id, version_of};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::{MeDto, NewProfileDto, ProfileDto, ProfilePatchDto};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

fn with_etag(status: StatusCode, p: &Profile) -> Response {
    let mut res = (status, Json(ProfileDto::from(p))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"v{}\"", p.version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The caller's account and its profiles.
#[utoipa::path(get, path = "/v1/me", tag = "profiles", security(("bearer" = [])), responses(
        (status = 200, body = MeDto, headers(("ETag" = String, description = "account and profile versions"))),
    (status = 304, description = "If-None-Match matched"), (status = 401, body = Problem), (status = 404, body = Problem, description = "a service token has no account")))]
pub async fn me(State(s): State<RestState>, Auth(p): Auth, headers: HeaderMap) -> Result<Response, ApiError> {
    let me = s.app.me(&p).await?;
    // The account's ETag covers its profiles' versions: any profile change changes it.
    let mut h = Sha256::new();
    h.update(me.account.id.to_string());
    h.update(me.account.email.as_str());
    for pr in &me.profiles {
        h.update(format!("{}:{}", pr.id, pr.version));
    }
    let etag = format!("\"m{}\"", hex::encode(&h.finalize()[..12]));
    if none_match(&headers, &etag) {
        return Err(ApiError::NotModified(etag));
    }
    let mut res = Json(MeDto {
        account_id: me.account.id.to_string(),
        email: me.account.email.as_str().to_owned(),
        profiles: me.profiles.iter().map(ProfileDto::from).collect(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}

/// Create a profile in an account (profiles:write; the caller's own account).
#[utoipa::path(post, path = "/v1/accounts/{account_id}/profiles", tag = "profiles", security(("bearer" = [])),
    params(("account_id" = String, Path, description = "account id")), request_body = NewProfileDto, responses(
    (status = 201, body = ProfileDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem, description = "profile limit reached")))]
pub async fn create_profile(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(account): Path<String>,
    ApiJson(body): ApiJson<NewProfileDto>,
) -> Result<Response, ApiError> {
    let account = account_id(&account)?;
    let maturity_limit = body
        .maturity_limit
        .map(|m| playhead_core::profile::parse_maturity_limit(i64::from(m)))
        .transpose()
        .map_err(ApiError::BadParam)?;
    let new = NewProfile { name: body.name, kids: body.kids, maturity_limit, private: body.private };
    let profile = s.app.create_profile(&p, account, new).await?;
    let mut res = with_etag(StatusCode::CREATED, &profile);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/profiles/{}", profile.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// Read a profile.
#[utoipa::path(get, path = "/v1/profiles/{profile_id}", tag = "profiles", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id")), responses(
    (status = 200, body = ProfileDto, headers(("ETag" = String, description = "profile version"))),
    (status = 304, description = "If-None-Match matched"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_profile(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let profile = s.app.get_profile(&p, profile_id(&id)?).await?;
    let etag = format!("\"v{}\"", profile.version);
    if none_match(&headers, &etag) {
        return Err(ApiError::NotModified(etag));
    }
    Ok(with_etag(StatusCode::OK, &profile))
}

/// Change a profile's settings. If-Match is required (428 without it, 412 when stale).
#[utoipa::path(patch, path = "/v1/profiles/{profile_id}", tag = "profiles", security(("bearer" = [])),
    params(("profile_id" = String, Path, description = "profile id"),
        ("If-Match" = String, Header, description = "the ETag from your last GET (required: 428 without it, 412 when stale)")), request_body = ProfilePatchDto, responses(
    (status = 200, body = ProfileDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
pub async fn patch_profile(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ProfilePatchDto>,
) -> Result<Response, ApiError> {
    let id = profile_id(&id)?;
    let maturity_limit = match body.maturity_limit {
        Some(Some(m)) => Some(Some(
            playhead_core::profile::parse_maturity_limit(i64::from(m)).map_err(ApiError::BadParam)?,
        )),
        other => other,
    };
    let patch = ProfilePatch {
        name: body.name,
        kids: body.kids,
        maturity_limit,
        private: body.private,
        history_paused: body.history_paused,
        keep_resume_points_while_paused: body.keep_resume_points_while_paused,
    };
    let if_version = if_match(&headers).map(|t| version_of(&t));
    let profile = s.app.patch_profile(&p, id, patch, if_version).await?;
    Ok(with_etag(StatusCode::OK, &profile))
}
