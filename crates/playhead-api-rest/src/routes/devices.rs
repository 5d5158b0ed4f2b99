//! The account's devices: signed-in sessions, sign one out, sign out everywhere (decision 0091).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use playhead_core::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::oauth::{Peer, client_addr};
use crate::RestState;
use crate::auth::Auth;
use crate::dto::Page;
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;

/// A signed-in device (one session: one sign-in, its refresh-token family).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionDto {
    /// Session id (the `sid` of its tokens): pass it to DELETE to sign this device out.
    pub session_id: String,
    /// The app it signed in through.
    pub client_id: String,
    /// That app's name.
    pub client_name: String,
    /// The profile its tokens are bound to (a TV signed in as one profile), if any.
    pub profile_id: Option<String>,
    /// What it may do (space-separated scopes).
    pub scope: String,
    /// First seen: when it signed in (RFC 3339).
    pub first_seen_at: String,
    /// Last seen: its last sign-in or token refresh (RFC 3339; at most one access-token
    /// lifetime behind its last request).
    pub last_seen_at: String,
    /// The client address it signed in from, when known.
    pub first_seen_from: Option<String>,
    /// The client address it was last seen from, when known.
    pub last_seen_from: Option<String>,
    /// This is the session of the token asking.
    pub current: bool,
}

/// Answer to sign out everywhere.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevokedDto {
    /// Sessions signed out now.
    pub revoked: usize,
}

/// Query of revoke-all.
#[derive(Debug, Deserialize)]
pub struct RevokeAllParams {
    keep_current: Option<String>,
}

/// The account's signed-in devices, most recently seen first (a person's own token, not bound
/// to a profile).
#[utoipa::path(get, path = "/v1/me/sessions", tag = "profiles", security(("bearer" = [])),
    responses((status = 200, body = Page<SessionDto>), (status = 401, body = Problem), (status = 403, body = Problem),
    (status = 404, body = Problem)))]
pub async fn list_sessions(
    State(s): State<RestState>,
    Auth(p): Auth,
) -> Result<Json<Page<SessionDto>>, ApiError> {
    let sessions = s.identity.list_sessions(&p).await?;
    Ok(Json(Page {
        items: sessions
            .into_iter()
            .map(|d| SessionDto {
                session_id: d.id,
                client_id: d.client_id,
                client_name: d.client_name,
                profile_id: d.profile.map(|p| p.to_string()),
                scope: d.scopes.to_string(),
                first_seen_at: d.created_at.to_rfc3339(),
                last_seen_at: d.last_seen_at.to_rfc3339(),
                first_seen_from: d.first_addr,
                last_seen_from: d.last_addr,
                current: d.current,
            })
            .collect(),
        next_cursor: None,
    }))
}

/// Sign one device out: its refresh token stops at once, its access tokens within 30 s on
/// every replica. 404 for a session that is not the account's (or already signed out).
#[utoipa::path(delete, path = "/v1/me/sessions/{session_id}", tag = "profiles", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "session id", min_length = 1, max_length = 64)),
    responses((status = 204, description = "signed out"), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_session(
    State(s): State<RestState>,
    Auth(p): Auth,
    headers: HeaderMap,
    Peer(peer): Peer,
    Path(sid): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Characters, as the document's maxLength counts them (not bytes).
    if sid.is_empty() || sid.chars().count() > 64 {
        return Err(FieldError::new("session_id", "invalid", "must be 1-64 characters").into());
    }
    let addr = client_addr(&s, &headers, peer);
    let revoked = s.identity.revoke_own_session(&p, &sid, Some(&addr)).await?;
    s.gate.authenticator().note_revoked(&[revoked]);
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere: every session of the account (with `keep_current=true`, all but the
/// one asking). Effective as for DELETE.
#[utoipa::path(post, path = "/v1/me/sessions/revoke-all", tag = "profiles", security(("bearer" = [])),
    params(("keep_current" = Option<bool>, Query, description = "keep the session of the token asking")),
    responses((status = 200, body = RevokedDto), (status = 400, body = Problem), (status = 401, body = Problem),
    (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_all(
    State(s): State<RestState>,
    Auth(p): Auth,
    headers: HeaderMap,
    Peer(peer): Peer,
    ApiQuery(q): ApiQuery<RevokeAllParams>,
) -> Result<Json<RevokedDto>, ApiError> {
    let keep_current = match q.keep_current.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(FieldError::new("keep_current", "invalid", "must be true or false").into()),
    };
    let addr = client_addr(&s, &headers, peer);
    let revoked = s.identity.revoke_all_sessions(&p, keep_current, Some(&addr)).await?;
    s.gate.authenticator().note_revoked(&revoked);
    Ok(Json(RevokedDto { revoked: revoked.len() }))
}
