//! The hosted HTML pages: sign-in, sign-out, the device page and the consent page of the
//! authorization endpoint. Plain forms, no JavaScript; every form carries a CSRF token. The
//! layout, style sheet and content security policy are in `html.rs`.
//!
//! The device page has two steps: type the code (a GET form, so `verification_uri_complete`
//! lands on step two directly), then see which app asks for what, pick a profile and allow or
//! deny. A code that is malformed, unknown, expired or already used brings step one back with
//! the reason beside the field.

use std::collections::HashSet;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playhead_app::identity::{
    AuthorizeError, AuthorizeParams, AuthorizeRequest, DeviceRefusal, OAuthError, OAuthErrorCode, PinRefusal,
    UserCodeProblem, WebUser,
};
use playhead_core::identity::{display_user_code, normalize_user_code};
use playhead_core::ids::ProfileId;
use sha2::{Digest, Sha256};

use super::html::{error_box, esc, page, page_with, profile_chooser, scope_list};
use super::{Params, Peer, client_addr};
use crate::RestState;
use crate::error::log_oauth_failure;

/// The session cookie's name (`__Host-`: Secure, Path=/, no Domain, so no other host can set it).
const SESSION_COOKIE: &str = "__Host-playhead-session";
/// The pre-sign-in CSRF cookie (double submit).
const CSRF_COOKIE: &str = "__Host-playhead-csrf";

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
    let (title, msg) = match e {
        OAuthError::Protocol { description, .. } => ("That did not work", description.clone()),
        OAuthError::RateLimited { retry_after_secs } => (
            "Too many attempts",
            format!("Too many attempts. Wait {retry_after_secs} seconds and try again."),
        ),
        OAuthError::Unavailable(_) => {
            ("Try again shortly", "Playhead is briefly unavailable. Try again in a moment.".into())
        }
        OAuthError::Internal(_) => ("Something went wrong", "Something went wrong on our side.".into()),
    };
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = page_with(
        status,
        title,
        &format!("{}<p><a href=\"/device\">Start again</a></p>", error_box("problem", &msg)),
        None,
    );
    if let Some(secs) = e.retry_after_secs() {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// The sign-in form, with an error beside the fields when the last try failed.
fn signin_form(csrf: &str, return_to: &str, email: &str, error: Option<&str>) -> String {
    let (alert, invalid) = match error {
        Some(m) => (error_box("signin-error", m), " aria-invalid=\"true\" aria-describedby=\"signin-error\""),
        None => (String::new(), ""),
    };
    format!(
        "<p class=\"lead\">Use your Playhead account to connect a device or an app.</p>{alert}\
         <form method=\"post\" action=\"/signin\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{rt}\">\
         <div class=\"field\"><label for=\"email\">E-mail address</label>\
         <input id=\"email\" type=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"username\" \
         inputmode=\"email\" autocapitalize=\"none\" spellcheck=\"false\" required{invalid}></div>\
         <div class=\"field\"><label for=\"password\">Password</label>\
         <input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required{invalid}></div>\
         <div class=\"actions\"><button type=\"submit\">Sign in</button></div></form>",
        csrf = esc(csrf),
        rt = esc(return_to),
        email = esc(email),
    )
}

/// GET /signin.
pub(crate) async fn signin_page(Query(q): Query<Params>) -> Response {
    let csrf = secret_token();
    let return_to = safe_return(q.get("return_to"));
    let mut res = page("Sign in", &signin_form(&csrf, &return_to, "", None));
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
    let return_to = safe_return(form.get("return_to"));
    let email = form.get("email").cloned().unwrap_or_default();
    if expected.is_empty() || !same(&expected, &given) {
        // A fresh form: the old one expired (or came from elsewhere); nothing was checked.
        let csrf = secret_token();
        let mut res = page_with(
            StatusCode::FORBIDDEN,
            "Sign in",
            &signin_form(&csrf, &return_to, &email, Some("The form expired. Sign in again.")),
            None,
        );
        set_cookie(&mut res, CSRF_COOKIE, &csrf, 3600);
        return res;
    }
    let password = form.get("password").cloned().unwrap_or_default();
    match s.identity.sign_in(&email, &password, &addr).await {
        Ok(signed_in) => {
            let mut res = Redirect::to(&return_to).into_response();
            set_cookie(&mut res, SESSION_COOKIE, &signed_in.cookie, s.identity.config().web_session_ttl_secs);
            set_cookie(&mut res, CSRF_COOKIE, "", 0);
            res
        }
        // Wrong e-mail or password: the form again, the e-mail kept, the reason beside it.
        Err(e @ OAuthError::Protocol { .. }) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let msg = format!("{}. Check both and try again.", capitalised(e.public_description()));
            page_with(status, "Sign in", &signin_form(&given, &return_to, &email, Some(&msg)), None)
        }
        Err(e) => page_error(&e),
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
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
    let mut res = page(
        "Signed out",
        "<p class=\"done\">You are signed out of Playhead in this browser.</p>\
         <p>Devices and apps you connected stay signed in.</p>\
         <p><a href=\"/signin\">Sign in again</a></p>",
    );
    set_cookie(&mut res, SESSION_COOKIE, "", 0);
    res
}

fn csrf_refused() -> Response {
    page_with(
        StatusCode::FORBIDDEN,
        "Please try again",
        &format!(
            "{}<p><a href=\"/device\">Start again</a></p>",
            error_box("problem", "The form expired or came from another site. Nothing was changed.")
        ),
        None,
    )
}

/// "Not you? Sign out": the signed-in footer of every page.
fn signout_form(user: &WebUser) -> String {
    format!(
        "<div class=\"who\"><span>Not your account?</span><form method=\"post\" action=\"/signout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" class=\"linkish\">Sign out</button></form></div>",
        session_csrf(user)
    )
}

/// Step one of the device page: type the code shown on the device.
fn code_form(typed: &str, problem: Option<UserCodeProblem>, user: &WebUser) -> Response {
    let (alert, aria) = match problem {
        Some(p) => (
            error_box("code-error", p.message()),
            " aria-invalid=\"true\" aria-describedby=\"code-hint code-error\"",
        ),
        None => (String::new(), " aria-describedby=\"code-hint\""),
    };
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page_with(
        status,
        "Connect a device",
        &format!(
            "<p class=\"lead\">Your TV or other device shows a code. Type it here to sign it in.</p>{alert}\
             <form method=\"get\" action=\"/device\">\
             <div class=\"field\"><label for=\"user_code\">Code shown on the device</label>\
             <span class=\"hint\" id=\"code-hint\">8 letters, like BCDF-GHJK. Capitals and the dash are optional.</span>\
             <input id=\"user_code\" class=\"code\" type=\"text\" name=\"user_code\" value=\"{typed}\" \
             autocomplete=\"one-time-code\" autocapitalize=\"characters\" autocorrect=\"off\" spellcheck=\"false\" \
             maxlength=\"16\" required{aria}></div>\
             <div class=\"actions\"><button type=\"submit\">Continue</button></div></form>{signout}",
            typed = esc(typed),
            signout = signout_form(user),
        ),
        None,
    )
}

/// GET /device: step one (type the code), or step two (confirm) when a code is given.
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
    let typed = q.get("user_code").map(|c| c.trim().to_owned()).unwrap_or_default();
    if typed.is_empty() {
        return code_form("", None, &user);
    }
    let peer_addr = client_addr(&s, &headers, peer);
    let consent = match s.identity.device_consent(&user, Some(&typed), &peer_addr).await {
        Ok(c) => c,
        Err(DeviceRefusal::Code(problem)) => return code_form(&typed, Some(problem), &user),
        // A lookup asks for no PIN; were it ever to, the code step is where to start again.
        Err(DeviceRefusal::Pin(_)) => return code_form(&typed, None, &user),
        Err(DeviceRefusal::Other(e)) => return page_error(&e),
    };
    let Some((client, scopes)) = &consent.pending else {
        return code_form(&typed, Some(UserCodeProblem::Unknown), &user);
    };
    let pinned = match s.identity.pinned_profiles(&consent.profiles).await {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
    let view =
        ConfirmView { typed: &typed, client, scopes: *scopes, profiles: &consent.profiles, pinned: &pinned };
    confirm_page(&view, &user, None, None)
}

/// What step two of the device page shows.
struct ConfirmView<'a> {
    typed: &'a str,
    client: &'a playhead_core::identity::OAuthClient,
    scopes: playhead_core::auth::Scopes,
    profiles: &'a [playhead_core::profile::Profile],
    pinned: &'a HashSet<ProfileId>,
}

/// Step two of the device page: the app, what it asks, the profile chooser; `pin_error` (with
/// the profile that was chosen) when a PIN was missing or wrong.
fn confirm_page(
    v: &ConfirmView<'_>,
    user: &WebUser,
    chosen: Option<&str>,
    pin_error: Option<&str>,
) -> Response {
    // Shown as the device shows it, whatever the person typed.
    let code = normalize_user_code(v.typed).map_or_else(|| v.typed.to_owned(), |c| display_user_code(&c));
    let status = if pin_error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    page_with(
        status,
        "Connect a device",
        &format!(
            "<p><strong>{name}</strong> with the code <strong class=\"nowrap\">{code}</strong> \
             asks to use your Playhead account to:</p>{scopes}\
             <form method=\"post\" action=\"/device\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"user_code\" value=\"{code}\">{profiles}\
             <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
             <button type=\"submit\" class=\"secondary\" name=\"decision\" value=\"deny\">Deny</button></div>\
             </form><p><a href=\"/device\">Not the code on your device? Type it again</a></p>{signout}",
            name = esc(&v.client.name),
            code = esc(&code),
            scopes = scope_list(v.scopes),
            csrf = session_csrf(user),
            profiles = profile_chooser(v.profiles, v.pinned, chosen, pin_error),
            signout = signout_form(user),
        ),
        None,
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
    let typed = form.get("user_code").map_or("", String::as_str);
    let pin = form.get("pin").map(String::as_str);
    let result = async {
        let profile = chosen_profile(&form)?;
        s.identity.decide_device(&user, typed, approve, profile, pin, &addr).await
    }
    .await;
    match result {
        Ok(()) if approve => page(
            "Device connected",
            "<p class=\"done\" role=\"status\">Your device is signed in.</p>\
             <p>You can put this phone away: the device continues by itself in a few seconds.</p>",
        ),
        Ok(()) => page(
            "Device not connected",
            "<p role=\"status\">You denied the request. The device was not signed in.</p>\
             <p><a href=\"/device\">Connect a device</a></p>",
        ),
        Err(DeviceRefusal::Code(problem)) => code_form(typed, Some(problem), &user),
        Err(DeviceRefusal::Pin(refusal)) => {
            // Step two again, the chosen profile kept, the reason beside the PIN field.
            let consent = match s.identity.device_consent(&user, Some(typed), &addr).await {
                Ok(c) => c,
                Err(DeviceRefusal::Code(problem)) => return code_form(typed, Some(problem), &user),
                Err(DeviceRefusal::Pin(_)) => return code_form(typed, None, &user),
                Err(DeviceRefusal::Other(e)) => return page_error(&e),
            };
            let (Some((client, scopes)), Ok(pinned)) =
                (&consent.pending, s.identity.pinned_profiles(&consent.profiles).await)
            else {
                return code_form(typed, Some(UserCodeProblem::Unknown), &user);
            };
            let view =
                ConfirmView { typed, client, scopes: *scopes, profiles: &consent.profiles, pinned: &pinned };
            let message = refusal.message();
            let chosen = form.get("profile_id").map(String::as_str);
            let mut res = confirm_page(&view, &user, chosen, Some(&message));
            if let PinRefusal::Locked { retry_after_secs } = refusal {
                *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            res
        }
        Err(DeviceRefusal::Other(e)) => page_error(&e),
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
    consent_page(&s, &q, &req, &user, None, None).await
}

/// The consent page; `pin_error` (with the profile that was chosen) when a PIN was missing or
/// wrong.
async fn consent_page(
    s: &RestState,
    q: &Params,
    req: &AuthorizeRequest,
    user: &WebUser,
    chosen: Option<&str>,
    pin_error: Option<&PinRefusal>,
) -> Response {
    let profiles = match s.identity.consent_profiles(user).await {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
    let pinned = match s.identity.pinned_profiles(&profiles).await {
        Ok(p) => p,
        Err(e) => return page_error(&e),
    };
    // The decision redirects to the client: the policy's form-action must admit its origin.
    let origin = redirect_origin(req.redirect_uri.as_str());
    let status = match pin_error {
        None => StatusCode::OK,
        Some(PinRefusal::Locked { .. }) => StatusCode::TOO_MANY_REQUESTS,
        Some(_) => StatusCode::BAD_REQUEST,
    };
    let mut res = page_with(
        status,
        "Allow access?",
        &format!(
            "<p><strong>{name}</strong> asks to use your Playhead account to:</p>{scopes}\
             <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{profiles}\
             <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
             <button type=\"submit\" class=\"secondary\" name=\"decision\" value=\"deny\">Deny</button></div>\
             </form>{signout}",
            name = esc(&req.client.name),
            scopes = scope_list(req.scopes),
            hidden = hidden_fields(q),
            csrf = session_csrf(user),
            profiles =
                profile_chooser(&profiles, &pinned, chosen, pin_error.map(PinRefusal::message).as_deref()),
            signout = signout_form(user),
        ),
        origin.as_deref(),
    );
    if let Some(PinRefusal::Locked { retry_after_secs }) = pin_error {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    res
}

/// `scheme://host[:port]` of a redirect URI (a registered one: it parsed when registered), for
/// the consent page's `form-action`; `None` for what a policy cannot name safely.
fn redirect_origin(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let safe = |s: &str, extra: &[u8]| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    };
    (safe(scheme, b"+-.") && safe(authority, b"-.:[]")).then(|| format!("{scheme}://{authority}"))
}

/// POST /oauth/authorize: the consent decision; redirects back to the client.
pub(crate) async fn authorize_submit(
    State(s): State<RestState>,
    headers: HeaderMap,
    Peer(peer): Peer,
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
        let addr = client_addr(&s, &headers, peer);
        let issued = async {
            let profile = chosen_profile(&form)?;
            s.identity.issue_code(&user, &req, profile, form.get("pin").map(String::as_str), &addr).await
        }
        .await;
        match issued {
            Ok(code) => params.push(("code", code)),
            Err(PinRefusal::Other(e)) => return page_error(&e),
            Err(refusal) => {
                let chosen = form.get("profile_id").map(String::as_str);
                return consent_page(&s, &form, &req, &user, chosen, Some(&refusal)).await;
            }
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
        assert!(html.contains("briefly unavailable") && !html.contains("db.internal"), "{html}");

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

    #[test]
    fn the_consent_policy_names_only_a_plain_redirect_origin() {
        assert_eq!(redirect_origin("https://app.example/cb?x=1").as_deref(), Some("https://app.example"));
        assert_eq!(redirect_origin("http://127.0.0.1:8080/cb").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(redirect_origin("com.example.app://cb").as_deref(), Some("com.example.app://cb"));
        assert_eq!(redirect_origin("https://a.example; script-src *"), None);
        assert_eq!(redirect_origin("no-scheme"), None);
    }
}
