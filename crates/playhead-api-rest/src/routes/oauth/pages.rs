//! The hosted HTML pages: sign-in, sign-out, the device page and the consent page of the
//! authorization endpoint. Plain forms, no JavaScript; every form carries a CSRF token.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playhead_app::identity::{
    AuthorizeError, AuthorizeParams, AuthorizeRequest, OAuthError, OAuthErrorCode, WebUser,
};
use playhead_core::ids::ProfileId;
use playhead_core::profile::Profile;
use sha2::{Digest, Sha256};

use super::{Params, Peer, client_addr};
use crate::RestState;
use crate::error::log_oauth_failure;

/// The session cookie's name (`__Host-`: Secure, Path=/, no Domain, so no other host can set it).
const SESSION_COOKIE: &str = "__Host-playhead-session";
/// The pre-sign-in CSRF cookie (double submit).
const CSRF_COOKIE: &str = "__Host-playhead-csrf";

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

/// A failure shown to the person: the error's status and safe text; our own failures are logged
/// once here and shown as a generic sentence.
fn page_error(e: &OAuthError) -> Response {
    log_oauth_failure(e);
    let msg = match e {
        OAuthError::Protocol { description, .. } => description.clone(),
        OAuthError::RateLimited { retry_after_secs } => {
            format!("Too many attempts. Wait {retry_after_secs} seconds and try again.")
        }
        OAuthError::Unavailable(_) => "Temporarily unavailable; try again shortly.".into(),
        OAuthError::Internal(_) => "Something went wrong.".into(),
    };
    let mut res = page("Sorry", &format!("<p role=\"alert\">{}</p>", esc(&msg)));
    *res.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(secs) = e.retry_after_secs() {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// GET /signin.
pub(crate) async fn signin_page(Query(q): Query<Params>) -> Response {
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
pub(crate) async fn signin_submit(
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
        Ok(signed_in) => {
            let mut res = Redirect::to(&safe_return(form.get("return_to"))).into_response();
            set_cookie(&mut res, SESSION_COOKIE, &signed_in.cookie, s.identity.config().web_session_ttl_secs);
            set_cookie(&mut res, CSRF_COOKIE, "", 0);
            res
        }
        Err(e) => page_error(&e),
    }
}

/// POST /signout.
pub(crate) async fn signout(
    State(s): State<RestState>,
    headers: HeaderMap,
    Form(form): Form<Params>,
) -> Response {
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

fn profile_options(profiles: &[Profile]) -> String {
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
pub(crate) async fn device_page(
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
    let peer_addr = client_addr(&s, &headers, peer);
    let consent = match s.identity.device_consent(&user, Some(&code), &peer_addr).await {
        Ok(c) => c,
        Err(e) => return page_error(&e),
    };
    let details = match &consent.pending {
        Some((client, scopes)) => format!(
            "<p>The device <strong>{}</strong> asks for:</p><ul>{}</ul>",
            esc(&client.name),
            scope_list(*scopes)
        ),
        None => String::new(),
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
            profiles = profile_options(&consent.profiles),
            signout = signout_form(&user),
        ),
    )
}

fn chosen_profile(form: &Params) -> Result<Option<ProfileId>, OAuthError> {
    match form.get("profile_id").filter(|p| !p.is_empty()) {
        Some(p) => ProfileId::parse(p)
            .map(Some)
            .map_err(|_| OAuthError::invalid_request("profile_id is not a profile id")),
        None => Ok(None),
    }
}

/// POST /device: approve or deny.
pub(crate) async fn device_submit(
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

fn authorize_params(q: &Params) -> AuthorizeParams {
    let g = |k: &str| q.get(k).cloned();
    AuthorizeParams {
        client_id: g("client_id").unwrap_or_default(),
        redirect_uri: g("redirect_uri").unwrap_or_default(),
        response_type: g("response_type").unwrap_or_default(),
        scope: g("scope"),
        code_challenge: g("code_challenge"),
        code_challenge_method: g("code_challenge_method"),
        state: g("state"),
    }
}

/// The authorization request's parameters, carried through the consent form as sent.
fn hidden_fields(q: &Params) -> String {
    [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "state",
    ]
    .iter()
    .filter_map(|k| q.get(*k).map(|v| format!("<input type=\"hidden\" name=\"{k}\" value=\"{}\">", esc(v))))
    .collect()
}

async fn check(s: &RestState, q: &Params) -> Result<AuthorizeRequest, Response> {
    match s.identity.check_authorize(&authorize_params(q)).await {
        Ok(r) => Ok(r),
        Err(AuthorizeError::RedirectToClient { redirect_uri, error, state }) => {
            log_oauth_failure(&error);
            let mut params = vec![("error", error.code().as_str().to_owned())];
            if let OAuthError::Protocol { description, .. } = &error {
                params.push(("error_description", description.clone()));
            }
            if let Some(st) = state {
                params.push(("state", st));
            }
            params.push(("iss", s.identity.config().issuer.clone()));
            Err(Redirect::to(&with_query(redirect_uri.as_str(), &params)).into_response())
        }
        Err(AuthorizeError::ShowToPerson(e)) => Err(page_error(&e)),
    }
}

fn with_query(uri: &str, params: &[(&str, String)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}

/// GET /oauth/authorize: sign in if needed, then the consent page.
pub(crate) async fn authorize_page(
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
    let profiles = match s.identity.consent_profiles(&user).await {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
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
            hidden = hidden_fields(&q),
            csrf = session_csrf(&user),
            profiles = profile_options(&profiles),
            signout = signout_form(&user),
        ),
    )
}

/// POST /oauth/authorize: the consent decision; redirects back to the client.
pub(crate) async fn authorize_submit(
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
        params.push(("error", OAuthErrorCode::AccessDenied.as_str().to_owned()));
        params.push(("error_description", "the person denied the request".into()));
    }
    if let Some(st) = &req.state {
        params.push(("state", st.clone()));
    }
    // RFC 9207: name the issuer so a client talking to several cannot be mixed up.
    params.push(("iss", iss));
    Redirect::to(&with_query(req.redirect_uri.as_str(), &params)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn our_failures_are_generic_pages_with_their_status() {
        let down = page_error(&OAuthError::Unavailable("pool timed out on db.internal".into()));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "2");
        let html = body(down).await;
        assert!(html.contains("Temporarily unavailable") && !html.contains("db.internal"), "{html}");

        let bug = page_error(&OAuthError::Internal("corrupt row 7".into()));
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body(bug).await.contains("corrupt"));

        let limited = page_error(&OAuthError::RateLimited { retry_after_secs: 9 });
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "9");

        let refused = page_error(&OAuthError::invalid_request("no such profile in your account"));
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(body(refused).await.contains("no such profile"));
    }
}
