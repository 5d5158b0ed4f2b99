//! Operator routes: OAuth client registration (the CLI's `admin client create` over HTTP) and
//! the recommendation model in service.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use playhead_app::identity::{OAuthError, OAuthErrorCode, RedirectUri, RegisteredClient};
use playhead_core::FieldError;
use playhead_core::auth::{Scope, Scopes, Subject};
use playhead_core::identity::{ClientType, GrantType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::RestState;
use crate::auth::Auth;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;

/// A client to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientDto {
    /// Shown on the consent and device pages (1-100 characters).
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `public` (TV, phone, browser: no secret) or `confidential` (a backend).
    #[serde(rename = "type")]
    #[schema(pattern = "^(public|confidential)$")]
    pub client_type: String,
    /// Exact redirect URIs (authorization_code).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grants: `device_code`, `authorization_code`, `refresh_token`, `client_credentials`.
    pub grants: Vec<String>,
    /// The most the client may ask for (space-separated; default: a viewer's scopes).
    pub scope: Option<String>,
}

/// A registered client; the secret is shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientCreatedDto {
    /// The client's id.
    pub client_id: String,
    /// Confidential clients only, shown once (stored as SHA-256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// `public` or `confidential`.
    #[serde(rename = "type")]
    pub client_type: String,
    /// Grants, wire names.
    pub grants: Vec<String>,
    /// Scope ceiling.
    pub scope: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
}

/// Register an OAuth client (operators only).
#[utoipa::path(post, path = "/v1/admin/clients", tag = "operations", security(("bearer" = [])), request_body = NewClientDto,
    responses((status = 201, body = ClientCreatedDto), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn create_client(
    State(s): State<RestState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<NewClientDto>,
) -> Result<Response, ApiError> {
    playhead_app::policy::require(&p, playhead_app::access::Operation::CreateClient)?;
    let client_type = ClientType::parse(&body.client_type)
        .ok_or_else(|| FieldError::new("type", "invalid", "must be public or confidential"))?;
    let grants = body
        .grants
        .iter()
        .map(|g| {
            GrantType::parse(g)
                .ok_or_else(|| FieldError::new("grants", "invalid", format!("unknown grant {g:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scopes = match &body.scope {
        Some(sc) => Scopes::parse(sc).map_err(|e| FieldError::new("scope", "invalid", e.to_string()))?,
        None => Scope::VIEWER.into_iter().collect(),
    };
    let redirect_uris = body
        .redirect_uris
        .iter()
        .enumerate()
        .map(|(i, u)| {
            RedirectUri::parse(u)
                .map_err(|e| FieldError::new(format!("redirect_uris[{i}]"), "invalid", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let RegisteredClient { client, secret } =
        s.identity.create_client(&body.name, client_type, redirect_uris, grants, scopes).await.map_err(
            |e| match e {
                OAuthError::Protocol { code, description } => {
                    let field = match code {
                        OAuthErrorCode::InvalidRedirectUri => "redirect_uris",
                        _ => "grants",
                    };
                    ApiError::from(FieldError::new(field, "invalid", description))
                }
                OAuthError::Unavailable(m) => ApiError::App(playhead_app::AppError::Unavailable(m)),
                other => ApiError::App(playhead_app::AppError::Internal(other.to_string())),
            },
        )?;
    let dto = ClientCreatedDto {
        client_id: client.client_id,
        client_secret: secret,
        client_type: client.client_type.as_str().into(),
        grants: client.grants.iter().map(|g| g.as_str().to_owned()).collect(),
        scope: client.scopes.to_string(),
        redirect_uris: client.redirect_uris,
    };
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

/// Delete an OAuth client (operators): it can no longer authenticate, its sessions are revoked
/// and every access token it was issued is refused on every replica within 30 s (RFC 7662
/// introspection says inactive at once). 404 when there is no such client.
#[utoipa::path(delete, path = "/v1/admin/clients/{client_id}", tag = "operations", security(("bearer" = [])),
    params(("client_id" = String, Path, max_length = 100, description = "the client's id")),
    responses((status = 204, description = "deleted; everything it issued is revoked"), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_client(
    State(s): State<RestState>,
    Auth(p): Auth,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    playhead_app::policy::require(&p, playhead_app::access::Operation::DeleteClient)?;
    let actor = match &p.subject {
        Subject::Account(a) => a.to_string(),
        Subject::Service { id } => format!("service:{id}"),
    };
    let deleted = s.identity.delete_client(&client_id, &actor).await.map_err(|e| match e {
        OAuthError::Unavailable(m) => ApiError::App(playhead_app::AppError::Unavailable(m)),
        other => ApiError::App(playhead_app::AppError::Internal(other.to_string())),
    })?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::App(playhead_app::AppError::NotFound("client")))
    }
}

/// The recommendation model in service: version, training metadata, settings and the
/// self-tuning report (chosen settings, every candidate's validation scores with intervals, the
/// guard's verdict, the diversity cost, why the winner won). 404 before the first model.
#[utoipa::path(get, path = "/v1/admin/recs/model", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn recs_model(
    State(s): State<RestState>,
    Auth(p): Auth,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(s.app.recs_model(&p)?))
}
