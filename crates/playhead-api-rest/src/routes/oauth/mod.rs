//! The built-in authorization server over HTTP: metadata (RFC 8414), JWKS, the token, device
//! authorization, revocation (RFC 7009) and introspection (RFC 7662) endpoints here, and the
//! hosted HTML pages (sign-in, consent, device, sign-out) in `pages`.
//!
//! The rules a contributor must keep here:
//! - `/oauth/*` answers errors in RFC 6749's JSON format (`error`, `error_description`), never
//!   problem+json, through [`OAuthErrorResponse`]; `/v1` keeps problem+json. Token responses carry
//!   `Cache-Control: no-store`.
//! - Pages work without JavaScript, every form carries a CSRF token (bound to the browser session
//!   once signed in, a double-submit cookie before), and the session cookie is `__Host-`, Secure,
//!   HttpOnly, SameSite=Lax.
//! - Decisions live in `playhead_app::identity`; an endpoint parses the form, calls one method
//!   there and shapes the answer.

mod html;
mod pages;
pub(crate) mod qr;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use playhead_app::identity::{
    ClientAuth, Introspection, OAuthError, OAuthErrorCode, TokenGrant, TokenResponse,
};
use playhead_core::identity::GrantType;
use serde_json::json;

pub(crate) use pages::{
    authorize_page, authorize_submit, device_page, device_submit, signin_page, signin_submit, signout,
};

use crate::RestState;
use crate::error::OAuthErrorResponse;

type Params = HashMap<String, String>;

fn token_json(t: &TokenResponse) -> Response {
    let mut body = json!({
        "access_token": t.access_token, "token_type": "Bearer", "expires_in": t.expires_in,
        "scope": t.scope.to_string(),
    });
    if let Some(r) = &t.refresh_token {
        body["refresh_token"] = json!(r);
    }
    no_store(axum::Json(body).into_response())
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

// ----- client address -----

/// The client's address: the peer, or the nearest untrusted X-Forwarded-For entry when the peer
/// is one of the configured trusted proxies (anything else could be set by the client itself).
pub(crate) fn client_addr(s: &RestState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    playhead_app::access::client_address(
        &s.trusted_proxies,
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()),
        peer.map(|p| p.ip()),
    )
}

/// The TCP peer, when the server recorded it (tests driving the router in-process have none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

// ----- metadata and keys -----

/// RFC 8414 metadata (also served as the OpenID configuration path clients probe).
pub(crate) async fn metadata(State(s): State<RestState>) -> Response {
    let iss = s.identity.config().issuer.trim_end_matches('/').to_owned();
    let body = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "device_authorization_endpoint": format!("{iss}/oauth/device_authorization"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "introspection_endpoint": format!("{iss}/oauth/introspect"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": playhead_core::auth::Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
    });
    axum::Json(body).into_response()
}

/// The JWK Set: the current signing key and the previous one.
pub(crate) async fn jwks(State(s): State<RestState>) -> Response {
    let mut res = axum::Json(s.identity.keys().jwks()).into_response();
    // Short: a rotation must reach verifiers well before the previous key is dropped.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

// ----- parsing -----

/// The client's credentials from HTTP Basic (client_secret_basic) or the form
/// (client_secret_post).
fn client_credentials(headers: &HeaderMap, form: &Params) -> Result<ClientAuth, OAuthError> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let malformed = || OAuthError::invalid_request("malformed Basic credentials");
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(malformed)?;
            let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
            // RFC 6749 section 2.3.1: both parts are form-urlencoded.
            let client_id = form_decode(id);
            let secret = form_decode(secret);
            if form.get("client_id").is_some_and(|f| *f != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the form and the Authorization header differ",
                ));
            }
            return Ok(ClientAuth { client_id, secret: Some(secret) });
        }
    }
    let client_id = form
        .get("client_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthError::new(OAuthErrorCode::InvalidClient, "client authentication is required"))?;
    let secret = form.get("client_secret").filter(|s| !s.is_empty()).cloned();
    Ok(ClientAuth { client_id: client_id.clone(), secret })
}

fn form_decode(s: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("x={s}"))
        .ok()
        .and_then(|mut v| v.pop())
        .map_or_else(|| s.to_owned(), |(_, v)| v)
}

fn param<'a>(form: &'a Params, name: &'static str) -> Result<&'a str, OAuthError> {
    form.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

fn owned_param(form: &Params, name: &'static str) -> Result<String, OAuthError> {
    param(form, name).map(str::to_owned)
}

async fn read_form(req: Request) -> Result<Params, OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::invalid_request("send application/x-www-form-urlencoded"));
    }
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| OAuthError::invalid_request("the form is larger than 64 KiB"))?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| OAuthError::invalid_request("the form is not urlencoded"))?;
    let mut out = Params::new();
    for (k, v) in pairs {
        // RFC 6749 section 3.2: parameters must not repeat.
        if out.insert(k.clone(), v).is_some() {
            return Err(OAuthError::invalid_request(format!("{k} is repeated")));
        }
    }
    Ok(out)
}

/// The grant a token request names, with its parameters.
fn token_grant(form: &Params) -> Result<TokenGrant, OAuthError> {
    let grant = param(form, "grant_type")?;
    let scope = form.get("scope").cloned();
    // The short `device_code` is the command line's spelling, not a grant_type value.
    match GrantType::parse(grant).filter(|_| grant != "device_code") {
        Some(GrantType::DeviceCode) => {
            Ok(TokenGrant::DeviceCode { device_code: owned_param(form, "device_code")? })
        }
        Some(GrantType::AuthorizationCode) => Ok(TokenGrant::AuthorizationCode {
            code: owned_param(form, "code")?,
            redirect_uri: owned_param(form, "redirect_uri")?,
            code_verifier: owned_param(form, "code_verifier")?,
        }),
        Some(GrantType::RefreshToken) => {
            Ok(TokenGrant::RefreshToken { refresh_token: owned_param(form, "refresh_token")?, scope })
        }
        Some(GrantType::ClientCredentials) => Ok(TokenGrant::ClientCredentials { scope }),
        None => Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "supported: device_code, authorization_code, refresh_token, client_credentials (no password grant)",
        )),
    }
}

// ----- endpoints -----

/// POST /oauth/token.
pub(crate) async fn token(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    req: Request,
) -> Response {
    let addr = client_addr(&s, &headers, peer);
    let result = async {
        let form = read_form(req).await?;
        param(&form, "grant_type")?;
        let client = client_credentials(&headers, &form)?;
        s.identity.token(&client, token_grant(&form), &addr).await
    }
    .await;
    match result {
        Ok(t) => token_json(&t),
        Err(e) => OAuthErrorResponse(e).into_response(),
    }
}

/// POST /oauth/device_authorization (RFC 8628 section 3.1).
pub(crate) async fn device_authorization(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    req: Request,
) -> Response {
    let addr = client_addr(&s, &headers, peer);
    let result = async {
        let form = read_form(req).await?;
        let client = client_credentials(&headers, &form)?;
        s.identity.device_authorization(&client, form.get("scope").map(String::as_str), &addr).await
    }
    .await;
    match result {
        Ok(g) => {
            let iss = s.identity.config().issuer.trim_end_matches('/');
            let uri = format!("{iss}/device");
            no_store(
                axum::Json(json!({
                    "device_code": g.device_code, "user_code": g.user_code,
                    "verification_uri": uri,
                    "verification_uri_complete": format!("{uri}?user_code={}", g.user_code),
                    "expires_in": g.expires_in, "interval": g.interval,
                }))
                .into_response(),
            )
        }
        Err(e) => OAuthErrorResponse(e).into_response(),
    }
}

/// POST /oauth/revoke (RFC 7009): 200 whether or not the token was known.
pub(crate) async fn revoke(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    req: Request,
) -> Response {
    let addr = client_addr(&s, &headers, peer);
    let result = async {
        let form = read_form(req).await?;
        let client = client_credentials(&headers, &form)?;
        s.identity.revoke(&client, owned_param(&form, "token"), &addr).await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => OAuthErrorResponse(e).into_response(),
    }
}

/// POST /oauth/introspect (RFC 7662): confidential clients only; inactive is `{"active":false}`.
pub(crate) async fn introspect(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    req: Request,
) -> Response {
    let addr = client_addr(&s, &headers, peer);
    let result = async {
        let form = read_form(req).await?;
        let client = client_credentials(&headers, &form)?;
        s.identity.introspect(&client, owned_param(&form, "token"), &addr).await
    }
    .await;
    match result {
        Ok(found) => no_store(axum::Json(introspection_json(found)).into_response()),
        Err(e) => OAuthErrorResponse(e).into_response(),
    }
}

/// RFC 7662 section 2.2's members for what introspection found.
fn introspection_json(found: Introspection) -> serde_json::Value {
    match found {
        Introspection::Inactive => json!({"active": false}),
        Introspection::Refresh { client_id, account, scope, exp, iat, sid, iss } => json!({
            "active": true, "token_type": "refresh_token", "client_id": client_id, "sub": account.to_string(),
            "scope": scope.to_string(), "exp": exp, "iat": iat, "sid": sid, "iss": iss,
        }),
        Introspection::Access(c) => {
            let mut out = json!({
                "active": true, "token_type": "access_token", "client_id": c.client_id, "sub": c.sub,
                "scope": c.scope.to_string(), "exp": c.exp, "iat": c.iat, "iss": c.iss, "aud": c.aud, "jti": c.jti,
            });
            if let Some(sid) = &c.sid {
                out["sid"] = json!(sid);
            }
            if let Some(p) = c.profile_id {
                out["profile_id"] = json!(p.to_string());
            }
            out
        }
    }
}
