//! The built-in authorization server over HTTP: metadata (RFC 8414), JWKS, the token, device
//! authorization, revocation (RFC 7009) and introspection (RFC 7662) endpoints, and the hosted
//! HTML pages (sign-in, consent, device, sign-out).
//!
//! The rules a contributor must keep here:
//! - `/oauth/*` answers errors in RFC 6749's JSON format (`error`, `error_description`), never
//!   problem+json; `/v1` keeps problem+json. Token responses carry `Cache-Control: no-store`.
//! - Pages work without JavaScript, every form carries a CSRF token (bound to the browser session
//!   once signed in, a double-submit cookie before), and the session cookie is `__Host-`, Secure,
//!   HttpOnly, SameSite=Lax.
//! - Decisions live in `playhead_app::identity`; this module parses, renders and redirects.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use playhead_app::identity::{AuthorizeRequest, OAuthError, TokenResponse, WebUser};
use playhead_core::identity::GrantType;
use playhead_core::ids::ProfileId;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::RestState;

/// The session cookie's name (`__Host-`: Secure, Path=/, no Domain, so no other host can set it).
pub const SESSION_COOKIE: &str = "__Host-playhead-session";
/// The pre-sign-in CSRF cookie (double submit).
pub const CSRF_COOKIE: &str = "__Host-playhead-csrf";

/// Leeway for our own tokens at revoke/introspect (as the resource server uses).
const LEEWAY_SECS: u64 = 30;

type Params = HashMap<String, String>;

// ----- errors -----

/// An RFC 6749 error response.
pub fn oauth_error(e: &OAuthError) -> Response {
    let (status, retry) = match e {
        OAuthError::Protocol { error: "invalid_client", .. } => (StatusCode::UNAUTHORIZED, None),
        OAuthError::Protocol { .. } => (StatusCode::BAD_REQUEST, None),
        OAuthError::RateLimited { retry_after_secs } => {
            (StatusCode::TOO_MANY_REQUESTS, Some(*retry_after_secs))
        }
        OAuthError::Unavailable(m) => {
            tracing::warn!(error = %m, "identity store unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, Some(2))
        }
        OAuthError::Internal(m) => {
            tracing::error!(error = %m, "identity internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    };
    let description = match e {
        OAuthError::Protocol { description, .. } => description.clone(),
        OAuthError::RateLimited { .. } => "too many attempts; wait and retry".into(),
        OAuthError::Unavailable(_) => "temporarily unavailable; retry shortly".into(),
        OAuthError::Internal(_) => "internal error".into(),
    };
    let mut res =
        (status, axum::Json(json!({"error": e.code(), "error_description": description}))).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"playhead\""));
    }
    if let Some(secs) = retry
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        h.insert(header::RETRY_AFTER, v);
    }
    res
}

fn invalid_request(d: &str) -> OAuthError {
    OAuthError::Protocol { error: "invalid_request", description: d.to_owned() }
}

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
pub fn client_addr(s: &RestState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let Some(peer) = peer.map(|p| p.ip()) else { return "unknown".into() };
    if !s.trusted_proxies.contains(&peer) {
        return peer.to_string();
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    // Walk from the right: the last hop our proxies did not add is the client.
    forwarded
        .iter()
        .rev()
        .find(|ip| !s.trusted_proxies.contains(ip))
        .map_or(peer.to_string(), ToString::to_string)
}

fn peer_of(req_ext: Option<&ConnectInfo<SocketAddr>>) -> Option<SocketAddr> {
    req_ext.map(|c| c.0)
}

/// The TCP peer, when the server recorded it (tests driving the router in-process have none).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

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
pub async fn metadata(State(s): State<RestState>) -> Response {
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
pub async fn jwks(State(s): State<RestState>) -> Response {
    let mut res = axum::Json(s.identity.keys().jwks()).into_response();
    // Short: a rotation must reach verifiers well before the previous key is dropped.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    res
}

// ----- client authentication -----

/// (client_id, secret) from HTTP Basic (client_secret_basic) or the form (client_secret_post).
fn client_credentials(headers: &HeaderMap, form: &Params) -> Result<(String, Option<String>), OAuthError> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid_request("malformed Basic credentials"))?;
            let (id, secret) =
                decoded.split_once(':').ok_or_else(|| invalid_request("malformed Basic credentials"))?;
            // RFC 6749 section 2.3.1: both parts are form-urlencoded.
            let id = form_decode(id);
            let secret = form_decode(secret);
            if form.get("client_id").is_some_and(|f| *f != id) {
                return Err(invalid_request("client_id in the form and the Authorization header differ"));
            }
            return Ok((id, Some(secret)));
        }
    }
    let id = form.get("client_id").filter(|s| !s.is_empty()).ok_or_else(|| OAuthError::Protocol {
        error: "invalid_client",
        description: "client authentication is required".into(),
    })?;
    Ok((id.clone(), form.get("client_secret").filter(|s| !s.is_empty()).cloned()))
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
        .ok_or_else(|| invalid_request(&format!("{name} is required")))
}

// ----- endpoints -----

/// POST /oauth/token.
pub async fn token(State(s): State<RestState>, headers: HeaderMap, req: Request) -> Response {
    let peer = peer_of(req.extensions().get());
    let addr = client_addr(&s, &headers, peer);
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(e) => return oauth_error(&e),
    };
    match token_inner(&s, &headers, &form, &addr).await {
        Ok(t) => token_json(&t),
        Err(e) => oauth_error(&e),
    }
}

async fn read_form(req: Request) -> Result<Params, OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(invalid_request("send application/x-www-form-urlencoded"));
    }
    let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024)
        .await
        .map_err(|_| invalid_request("the form is larger than 64 KiB"))?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| invalid_request("the form is not urlencoded"))?;
    let mut out = Params::new();
    for (k, v) in pairs {
        // RFC 6749 section 3.2: parameters must not repeat.
        if out.insert(k.clone(), v).is_some() {
            return Err(invalid_request(&format!("{k} is repeated")));
        }
    }
    Ok(out)
}

async fn token_inner(
    s: &RestState,
    headers: &HeaderMap,
    form: &Params,
    addr: &str,
) -> Result<TokenResponse, OAuthError> {
    let grant = param(form, "grant_type")?;
    let (client_id, secret) = client_credentials(headers, form)?;
    let client = s.identity.authenticate_client(&client_id, secret.as_deref(), Some(addr)).await?;
    let scope = form.get("scope").map(String::as_str);
    match GrantType::parse(grant).filter(|_| grant != "device_code") {
        Some(GrantType::DeviceCode) => s.identity.token_device(&client, param(form, "device_code")?).await,
        Some(GrantType::AuthorizationCode) => {
            s.identity
                .token_code(
                    &client,
                    param(form, "code")?,
                    param(form, "redirect_uri")?,
                    param(form, "code_verifier")?,
                    Some(addr),
                )
                .await
        }
        Some(GrantType::RefreshToken) => {
            s.identity.token_refresh(&client, param(form, "refresh_token")?, scope, Some(addr)).await
        }
        Some(GrantType::ClientCredentials) => s.identity.token_client_credentials(&client, scope).await,
        None => Err(OAuthError::Protocol {
            error: "unsupported_grant_type",
            description: "supported: device_code, authorization_code, refresh_token, client_credentials (no password grant)".into(),
        }),
    }
}

/// POST /oauth/device_authorization (RFC 8628 section 3.1).
pub async fn device_authorization(State(s): State<RestState>, headers: HeaderMap, req: Request) -> Response {
    let peer = peer_of(req.extensions().get());
    let addr = client_addr(&s, &headers, peer);
    let result = async {
        let form = read_form(req).await?;
        let (client_id, secret) = client_credentials(&headers, &form)?;
        let client = s.identity.authenticate_client(&client_id, secret.as_deref(), Some(&addr)).await?;
        s.identity.device_authorization(&client, form.get("scope").map(String::as_str)).await
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
        Err(e) => oauth_error(&e),
    }
}

/// POST /oauth/revoke (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(State(s): State<RestState>, headers: HeaderMap, req: Request) -> Response {
    let peer = peer_of(req.extensions().get());
    let addr = client_addr(&s, &headers, peer);
    let result = async {
        let form = read_form(req).await?;
        let (client_id, secret) = client_credentials(&headers, &form)?;
        let client = s.identity.authenticate_client(&client_id, secret.as_deref(), Some(&addr)).await?;
        s.identity.revoke(&client, param(&form, "token")?, LEEWAY_SECS).await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => oauth_error(&e),
    }
}

/// POST /oauth/introspect (RFC 7662): confidential clients only; inactive is `{"active":false}`.
pub async fn introspect(State(s): State<RestState>, headers: HeaderMap, req: Request) -> Response {
    let peer = peer_of(req.extensions().get());
    let addr = client_addr(&s, &headers, peer);
    let result = async {
        let form = read_form(req).await?;
        let (client_id, secret) = client_credentials(&headers, &form)?;
        if secret.is_none() {
            return Err(OAuthError::Protocol {
                error: "invalid_client",
                description: "introspection needs a confidential client's credentials".into(),
            });
        }
        let _client = s.identity.authenticate_client(&client_id, secret.as_deref(), Some(&addr)).await?;
        s.identity.introspect(param(&form, "token")?, LEEWAY_SECS).await
    }
    .await;
    match result {
        Ok(Some(v)) => no_store(axum::Json(v).into_response()),
        Ok(None) => no_store(axum::Json(json!({"active": false})).into_response()),
        Err(e) => oauth_error(&e),
    }
}

// ----- hosted pages -----

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} - Playhead</title></head><body><main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    ))
    .into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(res: &mut Response, name: &str, value: &str, max_age: i64) {
    let v = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}");
    if let Ok(v) = HeaderValue::from_str(&v) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The CSRF token of a signed-in browser: derived from its session, so a page on another site
/// (which cannot read the cookie) cannot produce it.
fn session_csrf(user: &WebUser) -> String {
    let mut h = Sha256::new();
    h.update(b"playhead csrf v1");
    h.update(user.session_hash);
    URL_SAFE_NO_PAD.encode(&h.finalize()[..24])
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn signed_in(s: &RestState, headers: &HeaderMap) -> Result<Option<WebUser>, OAuthError> {
    match cookie(headers, SESSION_COOKIE) {
        Some(c) => s.identity.web_user(&c).await,
        None => Ok(None),
    }
}

/// Only same-site relative paths may be returned to (no open redirect).
fn safe_return(to: Option<&String>) -> String {
    to.filter(|t| t.starts_with('/') && !t.starts_with("//") && !t.contains('\\'))
        .cloned()
        .unwrap_or_else(|| "/device".to_owned())
}

fn to_signin(return_to: &str) -> Response {
    let q = serde_urlencoded::to_string([("return_to", return_to)]).unwrap_or_default();
    Redirect::to(&format!("/signin?{q}")).into_response()
}

fn page_error(e: &OAuthError) -> Response {
    let (status, msg) = match e {
        OAuthError::Protocol { description, .. } => (StatusCode::BAD_REQUEST, description.clone()),
        OAuthError::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many attempts. Wait {retry_after_secs} seconds and try again."),
        ),
        OAuthError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Temporarily unavailable; try again shortly.".into())
        }
        OAuthError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.".into()),
    };
    let mut res = page("Sorry", &format!("<p role=\"alert\">{}</p>", esc(&msg)));
    *res.status_mut() = status;
    if let OAuthError::RateLimited { retry_after_secs } = e
        && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if matches!(e, OAuthError::Unavailable(_)) {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    res
}

/// GET /signin.
pub async fn signin_page(Query(q): Query<Params>) -> Response {
    let csrf = secret_token();
    let return_to = safe_return(q.get("return_to"));
    let mut res = page(
        "Sign in",
        &format!(
            "<form method=\"post\" action=\"/signin\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"return_to\" value=\"{rt}\">\
             <p><label>E-mail <input type=\"email\" name=\"email\" autocomplete=\"username\" required></label></p>\
             <p><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label></p>\
             <p><button type=\"submit\">Sign in</button></p></form>",
            rt = esc(&return_to)
        ),
    );
    set_cookie(&mut res, CSRF_COOKIE, &csrf, 3600);
    res
}

fn secret_token() -> String {
    let mut b = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// POST /signin.
pub async fn signin_submit(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    Form(form): Form<Params>,
) -> Response {
    let addr = client_addr(&s, &headers, peer);
    let expected = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let given = form.get("csrf").cloned().unwrap_or_default();
    if expected.is_empty() || !same(&expected, &given) {
        let mut res =
            page("Sign in", "<p role=\"alert\">The form expired. <a href=\"/signin\">Try again</a>.</p>");
        *res.status_mut() = StatusCode::FORBIDDEN;
        return res;
    }
    let email = form.get("email").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    match s.identity.sign_in(&email, &password, &addr).await {
        Ok((cookie_value, _user)) => {
            let mut res = Redirect::to(&safe_return(form.get("return_to"))).into_response();
            set_cookie(&mut res, SESSION_COOKIE, &cookie_value, s.identity.config().web_session_ttl_secs);
            set_cookie(&mut res, CSRF_COOKIE, "", 0);
            res
        }
        Err(e) => page_error(&e),
    }
}

/// POST /signout.
pub async fn signout(State(s): State<RestState>, headers: HeaderMap, Form(form): Form<Params>) -> Response {
    let user = match signed_in(&s, &headers).await {
        Ok(Some(u)) => u,
        Ok(None) => return Redirect::to("/signin").into_response(),
        Err(e) => return page_error(&e),
    };
    if !form.get("csrf").is_some_and(|c| same(c, &session_csrf(&user))) {
        return csrf_refused();
    }
    if let Some(c) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = s.identity.sign_out(&c).await
    {
        return page_error(&e);
    }
    let mut res = page("Signed out", "<p>You are signed out.</p>");
    set_cookie(&mut res, SESSION_COOKIE, "", 0);
    res
}

fn csrf_refused() -> Response {
    let mut res = page(
        "Refused",
        "<p role=\"alert\">The form expired or came from another site. Go back and try again.</p>",
    );
    *res.status_mut() = StatusCode::FORBIDDEN;
    res
}

async fn profile_options(s: &RestState, user: &WebUser) -> String {
    let profiles = s.app.ports().accounts.profiles_of(user.account).await.unwrap_or_default();
    let mut out = String::from("<option value=\"\">Whole account</option>");
    for p in profiles {
        out.push_str(&format!(
            "<option value=\"{}\">{}{}</option>",
            p.id,
            esc(p.name.as_str()),
            if p.kids { " (kids)" } else { "" }
        ));
    }
    out
}

fn signout_form(user: &WebUser) -> String {
    format!(
        "<form method=\"post\" action=\"/signout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Sign out</button></form>",
        session_csrf(user)
    )
}

fn scope_list(scopes: playhead_core::auth::Scopes) -> String {
    scopes.iter().map(|s| format!("<li><code>{}</code></li>", s.as_str())).collect()
}

/// GET /device: enter (or confirm) a user code.
pub async fn device_page(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    Query(q): Query<Params>,
) -> Response {
    let user = match signed_in(&s, &headers).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let rt = match q.get("user_code") {
                Some(c) => {
                    format!("/device?{}", serde_urlencoded::to_string([("user_code", c)]).unwrap_or_default())
                }
                None => "/device".into(),
            };
            return to_signin(&rt);
        }
        Err(e) => return page_error(&e),
    };
    let code = q.get("user_code").cloned().unwrap_or_default();
    let details = if code.is_empty() {
        String::new()
    } else {
        let peer_addr = client_addr(&s, &headers, peer);
        match s.identity.pending_device(&code, &peer_addr).await {
            Ok((device, client)) => format!(
                "<p>The device <strong>{}</strong> asks for:</p><ul>{}</ul>",
                esc(&client.name),
                scope_list(device.scopes)
            ),
            Err(e) => return page_error(&e),
        }
    };
    page(
        "Connect a device",
        &format!(
            "{details}<form method=\"post\" action=\"/device\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <p><label>Code shown on the device <input name=\"user_code\" value=\"{code}\" autocomplete=\"off\" required></label></p>\
             <p><label>Profile <select name=\"profile_id\">{profiles}</select></label></p>\
             <p><button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></p></form>{signout}",
            csrf = session_csrf(&user),
            code = esc(&code),
            profiles = profile_options(&s, &user).await,
            signout = signout_form(&user),
        ),
    )
}

fn chosen_profile(form: &Params) -> Result<Option<ProfileId>, OAuthError> {
    match form.get("profile_id").filter(|p| !p.is_empty()) {
        Some(p) => {
            ProfileId::parse(p).map(Some).map_err(|_| invalid_request("profile_id is not a profile id"))
        }
        None => Ok(None),
    }
}

/// POST /device: approve or deny.
pub async fn device_submit(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
    Form(form): Form<Params>,
) -> Response {
    let addr = client_addr(&s, &headers, peer);
    let user = match signed_in(&s, &headers).await {
        Ok(Some(u)) => u,
        Ok(None) => return to_signin("/device"),
        Err(e) => return page_error(&e),
    };
    if !form.get("csrf").is_some_and(|c| same(c, &session_csrf(&user))) {
        return csrf_refused();
    }
    let approve = form.get("decision").is_some_and(|d| d == "approve");
    let result = async {
        let profile = chosen_profile(&form)?;
        s.identity
            .decide_device(&user, form.get("user_code").map_or("", String::as_str), approve, profile, &addr)
            .await
    }
    .await;
    match result {
        Ok(()) if approve => page("Device connected", "<p>You can go back to your device now.</p>"),
        Ok(()) => page("Device refused", "<p>The device was not connected.</p>"),
        Err(e) => page_error(&e),
    }
}

fn authorize_fields(q: &Params) -> [(&'static str, Option<&str>); 7] {
    let g = |k: &str| q.get(k).map(String::as_str);
    [
        ("client_id", g("client_id")),
        ("redirect_uri", g("redirect_uri")),
        ("response_type", g("response_type")),
        ("scope", g("scope")),
        ("code_challenge", g("code_challenge")),
        ("code_challenge_method", g("code_challenge_method")),
        ("state", g("state")),
    ]
}

async fn check(s: &RestState, q: &Params) -> Result<AuthorizeRequest, Response> {
    let g = |k: &str| q.get(k).map(String::as_str);
    let checked = s
        .identity
        .check_authorize(
            g("client_id").unwrap_or_default(),
            g("redirect_uri").unwrap_or_default(),
            g("response_type").unwrap_or_default(),
            g("scope"),
            g("code_challenge"),
            g("code_challenge_method"),
            g("state"),
        )
        .await;
    match checked {
        Ok(r) => Ok(r),
        Err((e, true)) => {
            let uri = g("redirect_uri").unwrap_or_default();
            let mut params = vec![("error", e.code().to_owned())];
            if let OAuthError::Protocol { description, .. } = &e {
                params.push(("error_description", description.clone()));
            }
            if let Some(st) = g("state") {
                params.push(("state", st.to_owned()));
            }
            params.push(("iss", s.identity.config().issuer.clone()));
            Err(Redirect::to(&with_query(uri, &params)).into_response())
        }
        Err((e, false)) => Err(page_error(&e)),
    }
}

fn with_query(uri: &str, params: &[(&str, String)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}

/// GET /oauth/authorize: sign in if needed, then the consent page.
pub async fn authorize_page(
    State(s): State<RestState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    Query(q): Query<Params>,
) -> Response {
    let req = match check(&s, &q).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let user = match signed_in(&s, &headers).await {
        Ok(Some(u)) => u,
        Ok(None) => return to_signin(&uri.to_string()),
        Err(e) => return page_error(&e),
    };
    let hidden: String = authorize_fields(&q)
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v))))
        .collect();
    page(
        "Allow access?",
        &format!(
            "<p><strong>{name}</strong> asks to use your Playhead account with:</p><ul>{scopes}</ul>\
             <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <p><label>Profile <select name=\"profile_id\">{profiles}</select></label></p>\
             <p><button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></p></form>{signout}",
            name = esc(&req.client.name),
            scopes = scope_list(req.scopes),
            csrf = session_csrf(&user),
            profiles = profile_options(&s, &user).await,
            signout = signout_form(&user),
        ),
    )
}

/// POST /oauth/authorize: the consent decision; redirects back to the client.
pub async fn authorize_submit(
    State(s): State<RestState>,
    headers: HeaderMap,
    Form(form): Form<Params>,
) -> Response {
    let req = match check(&s, &form).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    let user = match signed_in(&s, &headers).await {
        Ok(Some(u)) => u,
        Ok(None) => return to_signin("/device"),
        Err(e) => return page_error(&e),
    };
    if !form.get("csrf").is_some_and(|c| same(c, &session_csrf(&user))) {
        return csrf_refused();
    }
    let iss = s.identity.config().issuer.clone();
    let mut params: Vec<(&str, String)> = Vec::new();
    if form.get("decision").is_some_and(|d| d == "approve") {
        let issued = async {
            let profile = chosen_profile(&form)?;
            s.identity.issue_code(&user, &req, profile).await
        }
        .await;
        match issued {
            Ok(code) => params.push(("code", code)),
            Err(e) => return page_error(&e),
        }
    } else {
        params.push(("error", "access_denied".into()));
        params.push(("error_description", "the person denied the request".into()));
    }
    if let Some(st) = &req.state {
        params.push(("state", st.clone()));
    }
    // RFC 9207: name the issuer so a client talking to several cannot be mixed up.
    params.push(("iss", iss));
    Redirect::to(&with_query(&req.redirect_uri, &params)).into_response()
}
