//! The built-in authorization server end to end over HTTP: metadata and JWKS, the device and
//! authorization-code + PKCE flows through the hosted pages, refresh rotation and reuse,
//! client credentials, revocation, introspection, key rotation, and a table of hostile tokens.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use playhead_app::identity::{RedirectUri, RegisteredClient};
use playhead_core::auth::Scopes;
use playhead_core::identity::{ClientType, GrantType};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

const PASSWORD: &str = "correct horse battery";

pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
}

pub(crate) async fn client(
    t: &TestApp,
    kind: ClientType,
    grants: &[GrantType],
    redirect: Option<&str>,
) -> Client {
    let RegisteredClient { client: c, secret } = t
        .identity
        .create_client(
            "Living-room TV",
            kind,
            redirect.map(|r| vec![RedirectUri::parse(r).unwrap()]).unwrap_or_default(),
            grants.to_vec(),
            Scopes::parse(&TestApp::viewer_scopes()).unwrap(),
        )
        .await
        .unwrap();
    Client { id: c.client_id, secret }
}

pub(crate) async fn form(t: &TestApp, path: &str, c: Option<&Client>, fields: &[(&str, &str)]) -> Response {
    let mut fields: Vec<(&str, &str)> = fields.to_vec();
    let mut req = t.http.post(t.url(path));
    if let Some(c) = c {
        match &c.secret {
            Some(s) => req = req.basic_auth(&c.id, Some(s)),
            None => fields.push(("client_id", &c.id)),
        }
    }
    req.form(&fields).send().await.unwrap()
}

pub(crate) async fn oauth_err(r: Response) -> (StatusCode, String) {
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "application/json", "OAuth errors are RFC 6749 JSON");
    let v: Value = r.json().await.unwrap();
    assert!(v["error_description"].is_string(), "{v}");
    (status, v["error"].as_str().unwrap().to_owned())
}

pub(crate) fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let first = v.split(';').next()?;
        let (k, val) = first.split_once('=')?;
        (k == name && !val.is_empty()).then(|| {
            for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
                assert!(v.contains(attr), "{name} cookie lacks {attr}: {v}");
            }
            val.to_owned()
        })
    })
}

pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().replace("&amp;", "&")
}

/// Sign in through the hosted page; returns the session cookie value.
pub(crate) async fn sign_in(t: &TestApp, email: &str) -> String {
    let page = t.http.get(t.url("/signin")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf_cookie = set_cookie(&page, "__Host-playhead-csrf").expect("csrf cookie");
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    let r = t
        .http
        .post(t.url("/signin"))
        .header("cookie", format!("__Host-playhead-csrf={csrf_cookie}"))
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", PASSWORD), ("return_to", "/device")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    set_cookie(&r, "__Host-playhead-session").expect("session cookie")
}

pub(crate) async fn person(t: &TestApp, email: &str) -> Viewer {
    let v = t.viewer(email).await;
    t.identity.set_password(v.account, PASSWORD).await.unwrap();
    v
}

pub(crate) fn session(cookie: &str) -> String {
    format!("__Host-playhead-session={cookie}")
}

/// Run the device flow up to approval; returns the device_code.
async fn approved_device(t: &TestApp, c: &Client, v: &Viewer, bind: bool) -> String {
    let r = form(t, "/oauth/device_authorization", Some(c), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let d: Value = r.json().await.unwrap();
    let user_code = d["user_code"].as_str().unwrap().to_owned();
    let cookie = sign_in_as(t, v).await;
    let page = t
        .http
        .get(t.url(&format!("/device?user_code={user_code}")))
        .header("cookie", session(&cookie))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("Living-room TV") && html.contains("See what you watched"), "{html}");
    let csrf = hidden(&html, "csrf");
    let profile = v.profile.to_string();
    let mut fields =
        vec![("csrf", csrf.as_str()), ("user_code", user_code.as_str()), ("decision", "approve")];
    if bind {
        fields.push(("profile_id", &profile));
    }
    let r =
        t.http.post(t.url("/device")).header("cookie", session(&cookie)).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    d["device_code"].as_str().unwrap().to_owned()
}

pub(crate) async fn sign_in_as(t: &TestApp, v: &Viewer) -> String {
    let me = t.get_json(&v.token, "/v1/me").await;
    sign_in(t, me["email"].as_str().unwrap()).await
}

pub(crate) async fn tokens_via_device(t: &TestApp, c: &Client, v: &Viewer, bind: bool) -> Value {
    let device_code = approved_device(t, c, v, bind).await;
    let r = form(
        t,
        "/oauth/token",
        Some(c),
        &[("grant_type", GrantType::DeviceCode.as_str()), ("device_code", &device_code)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

pub(crate) async fn poll_device(t: &TestApp, c: &Client, device_code: &str) -> Response {
    form(
        t,
        "/oauth/token",
        Some(c),
        &[("grant_type", GrantType::DeviceCode.as_str()), ("device_code", device_code)],
    )
    .await
}

/// Poll until `path` answers `status` with `token` (revocations arrive with the next poll).
async fn eventually(t: &TestApp, token: &str, path: &str, status: StatusCode) {
    for _ in 0..60 {
        if t.get(token, path).await.status() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never answered {status}");
}

#[tokio::test]
async fn metadata_and_jwks_describe_the_server() {
    let t = spawn_app().await;
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        let m: Value = t.http.get(t.url(path)).send().await.unwrap().json().await.unwrap();
        assert_eq!(m["issuer"], t.base);
        assert_eq!(m["token_endpoint"], t.url("/oauth/token"));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        let grants = m["grant_types_supported"].as_array().unwrap();
        assert!(!grants.contains(&json!("password")));
        assert!(grants.contains(&json!("urn:ietf:params:oauth:grant-type:device_code")));
    }
    let jwks: Value = t.http.get(t.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], t.identity.keys().signing_kid());
    assert!(keys[0].get("d").is_none());
    t.stop().await;
}

#[tokio::test]
async fn the_device_flow_signs_a_tv_in_bound_to_one_profile() {
    let t = spawn_app().await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode, GrantType::RefreshToken], None).await;
    let v = person(&t, "ann@example.com").await;
    let other = t
        .app
        .insert_profile(
            v.account,
            playhead_app::accounts::NewProfile { name: "Other".into(), ..Default::default() },
        )
        .await
        .unwrap()
        .id;

    let r =
        form(&t, "/oauth/device_authorization", Some(&tv), &[("scope", "history:read history:write")]).await;
    let d: Value = r.json().await.unwrap();
    let code = d["user_code"].as_str().unwrap();
    assert_eq!(code.len(), 9);
    assert_eq!(&code[4..5], "-");
    assert!(code.chars().filter(|c| *c != '-').all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c)), "{code}");
    assert_eq!((d["expires_in"].as_i64(), d["interval"].as_i64()), (Some(1800), Some(5)));
    assert_eq!(d["verification_uri"], t.url("/device"));
    let device_code = d["device_code"].as_str().unwrap();
    let poll = || poll_device(&t, &tv, device_code);
    assert_eq!(oauth_err(poll().await).await, (StatusCode::BAD_REQUEST, "authorization_pending".into()));
    assert_eq!(oauth_err(poll().await).await.1, "slow_down", "a poll inside the interval");

    // Not signed in: the device page sends the person to sign in first.
    let r = t.http.get(t.url(&format!("/device?user_code={code}"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/signin?return_to="));

    let cookie = sign_in(&t, "ann@example.com").await;
    let html = t
        .http
        .get(t.url("/device"))
        .header("cookie", session(&cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    // A form without the CSRF token (a cross-site post) is refused.
    let r = t
        .http
        .post(t.url("/device"))
        .header("cookie", session(&cookie))
        .form(&[("user_code", code), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let lower = code.to_lowercase();
    let r = t
        .http
        .post(t.url("/device"))
        .header("cookie", session(&cookie))
        .form(&[
            ("csrf", csrf.as_str()),
            ("user_code", lower.as_str()),
            ("decision", "approve"),
            ("profile_id", &v.profile.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = poll().await;
    assert_eq!(r.status(), StatusCode::OK);
    let tok: Value = r.json().await.unwrap();
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 600);
    assert_eq!(tok["scope"], "history:read history:write");
    assert!(tok["refresh_token"].is_string());
    let at = tok["access_token"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(at.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some("at+jwt"), Some("EdDSA")));
    assert_eq!(header["kid"], t.identity.keys().signing_kid());
    assert_eq!(
        t.get(at, &format!("/v1/profiles/{}/continue-watching", v.profile)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        t.get(at, &format!("/v1/profiles/{other}/continue-watching")).await.status(),
        StatusCode::NOT_FOUND
    );
    // Both codes are consumed: the user code is gone and the device code says expired.
    assert_eq!(oauth_err(poll().await).await.1, "expired_token");
    let r = t
        .http
        .get(t.url(&format!("/device?user_code={code}")))
        .header("cookie", session(&cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    t.stop().await;
}

#[tokio::test]
async fn a_denied_or_expired_device_code_issues_nothing() {
    let t = spawn_with(|s| s.identity.device_code_ttl_secs = 1).await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode], None).await;
    let d: Value = form(&t, "/oauth/device_authorization", Some(&tv), &[]).await.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let r = form(
        &t,
        "/oauth/token",
        Some(&tv),
        &[
            ("grant_type", GrantType::DeviceCode.as_str()),
            ("device_code", d["device_code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(oauth_err(r).await, (StatusCode::BAD_REQUEST, "expired_token".into()));

    person(&t, "bo@example.com").await;
    let d: Value = form(&t, "/oauth/device_authorization", Some(&tv), &[]).await.json().await.unwrap();
    let cookie = sign_in(&t, "bo@example.com").await;
    let html = t
        .http
        .get(t.url("/device"))
        .header("cookie", session(&cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = t
        .http
        .post(t.url("/device"))
        .header("cookie", session(&cookie))
        .form(&[
            ("csrf", hidden(&html, "csrf").as_str()),
            ("user_code", d["user_code"].as_str().unwrap()),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = form(
        &t,
        "/oauth/token",
        Some(&tv),
        &[
            ("grant_type", GrantType::DeviceCode.as_str()),
            ("device_code", d["device_code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(oauth_err(r).await.1, "access_denied");
    t.stop().await;
}

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand_bytes());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_bytes() -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    out
}

#[tokio::test]
async fn the_authorization_code_flow_needs_pkce_and_a_code_works_once() {
    let t = spawn_app().await;
    let redirect = "http://127.0.0.1:9/callback";
    let web = client(
        &t,
        ClientType::Public,
        &[GrantType::AuthorizationCode, GrantType::RefreshToken],
        Some(redirect),
    )
    .await;
    let v = person(&t, "cy@example.com").await;
    let (verifier, challenge) = pkce();
    let authorize = |method: &str, redirect_uri: &str| {
        t.url(&format!(
            "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&scope=history:read&state=xyz&code_challenge={challenge}&code_challenge_method={method}",
            web.id,
            urlencode(redirect_uri)
        ))
    };
    // plain PKCE is refused, back at the client's redirect URI.
    let r = t.http.get(authorize("plain", redirect)).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        loc.starts_with(redirect) && loc.contains("error=invalid_request") && loc.contains("state=xyz"),
        "{loc}"
    );
    // An unregistered redirect URI is never redirected to.
    let r = t.http.get(authorize("S256", "http://127.0.0.1:9/evil")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());

    let cookie = sign_in(&t, "cy@example.com").await;
    let html = t
        .http
        .get(authorize("S256", redirect))
        .header("cookie", session(&cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Living-room TV") && html.contains("See what you watched"), "{html}");
    let mut fields: Vec<(String, String)> = [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "code_challenge",
        "code_challenge_method",
        "state",
        "csrf",
    ]
    .iter()
    .map(|k| ((*k).to_owned(), hidden(&html, k)))
    .collect();
    fields.push(("decision".into(), "approve".into()));
    let r = t
        .http
        .post(t.url("/oauth/authorize"))
        .header("cookie", session(&cookie))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with(redirect), "{loc}");
    let q: Vec<(String, String)> = serde_urlencoded::from_str(loc.split_once('?').unwrap().1).unwrap();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("state"), "xyz");
    assert_eq!(get("iss"), t.base);
    let code = get("code");

    let exchange = |verifier: String| {
        let code = code.clone();
        let web = &web;
        let t = &t;
        async move {
            form(
                t,
                "/oauth/token",
                Some(web),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let r = exchange(verifier.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let tok: Value = r.json().await.unwrap();
    let at = tok["access_token"].as_str().unwrap().to_owned();
    let me = format!("/v1/profiles/{}/continue-watching", v.profile);
    assert_eq!(t.get(&at, &me).await.status(), StatusCode::OK);
    // Used again: refused, and the tokens it issued are revoked.
    assert_eq!(oauth_err(exchange(verifier).await).await, (StatusCode::BAD_REQUEST, "invalid_grant".into()));
    eventually(&t, &at, &me, StatusCode::UNAUTHORIZED).await;
    let r = form(
        &t,
        "/oauth/token",
        Some(&web),
        &[("grant_type", "refresh_token"), ("refresh_token", tok["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(oauth_err(r).await.1, "invalid_grant");
    t.stop().await;
}

#[tokio::test]
async fn a_wrong_verifier_fails_the_exchange() {
    let t = spawn_app().await;
    let redirect = "http://127.0.0.1:9/cb";
    let web = client(&t, ClientType::Public, &[GrantType::AuthorizationCode], Some(redirect)).await;
    person(&t, "di@example.com").await;
    let (_, challenge) = pkce();
    let cookie = sign_in(&t, "di@example.com").await;
    let url = t.url(&format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        web.id,
        urlencode(redirect)
    ));
    let html = t.http.get(url).header("cookie", session(&cookie)).send().await.unwrap().text().await.unwrap();
    let mut fields: Vec<(String, String)> =
        ["client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "csrf"]
            .iter()
            .map(|k| ((*k).to_owned(), hidden(&html, k)))
            .collect();
    fields.push(("decision".into(), "approve".into()));
    let r = t
        .http
        .post(t.url("/oauth/authorize"))
        .header("cookie", session(&cookie))
        .form(&fields)
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let q: Vec<(String, String)> = serde_urlencoded::from_str(loc.split_once('?').unwrap().1).unwrap();
    let code = q.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let (other_verifier, _) = pkce();
    let r = form(
        &t,
        "/oauth/token",
        Some(&web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &other_verifier),
        ],
    )
    .await;
    assert_eq!(oauth_err(r).await.1, "invalid_grant");
    t.stop().await;
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
}

#[tokio::test]
async fn refresh_rotates_and_a_reuse_revokes_the_family() {
    let t = spawn_with(|s| s.identity.refresh_reuse_grace_ms = 0).await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode, GrantType::RefreshToken], None).await;
    let v = person(&t, "ed@example.com").await;
    let first = tokens_via_device(&t, &tv, &v, false).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    let refresh = |rt: String| {
        let (t, tv) = (&t, &tv);
        async move {
            form(t, "/oauth/token", Some(tv), &[("grant_type", "refresh_token"), ("refresh_token", &rt)])
                .await
        }
    };
    let r = refresh(r1.to_owned()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2, "every refresh returns a new refresh token");
    let at2 = second["access_token"].as_str().unwrap();
    let path = format!("/v1/profiles/{}/history", v.profile);
    assert_eq!(t.get(at2, &path).await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(5)).await;
    // The old one again (a thief, or a replay after the grace): the whole family goes.
    assert_eq!(oauth_err(refresh(r1.to_owned()).await).await.1, "invalid_grant");
    assert_eq!(
        oauth_err(refresh(r2.to_owned()).await).await.1,
        "invalid_grant",
        "the newest token died with its family"
    );
    eventually(&t, at2, &path, StatusCode::UNAUTHORIZED).await;
    let audit = t.identity.store().audit_since(playhead_core::Timestamp(0), 100).await.unwrap();
    let reuse = audit.iter().find(|e| e.action == "refresh.reuse_revoked_family").expect("audited");
    assert!(!reuse.detail.contains(r1), "the audit log never holds a secret");
    t.stop().await;
}

#[tokio::test]
async fn a_reuse_by_the_same_client_within_the_grace_gets_a_new_pair() {
    let t = spawn_app().await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode, GrantType::RefreshToken], None).await;
    let v = person(&t, "fa@example.com").await;
    let first = tokens_via_device(&t, &tv, &v, false).await;
    let r1 = first["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let r =
            form(&t, "/oauth/token", Some(&tv), &[("grant_type", "refresh_token"), ("refresh_token", r1)])
                .await;
        assert_eq!(r.status(), StatusCode::OK, "the lost response is retried within 10 s");
    }
    t.stop().await;
}

#[tokio::test]
async fn client_credentials_are_for_confidential_clients_only() {
    let t = spawn_app().await;
    let RegisteredClient { client: svc, secret } = t
        .identity
        .create_client(
            "Partner",
            ClientType::Confidential,
            vec![],
            vec![GrantType::ClientCredentials],
            Scopes::parse("catalog:write").unwrap(),
        )
        .await
        .unwrap();
    let svc = Client { id: svc.client_id, secret };
    let r = form(&t, "/oauth/token", Some(&svc), &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let tok: Value = r.json().await.unwrap();
    assert!(tok.get("refresh_token").is_none());
    assert_eq!(tok["scope"], "catalog:write");
    let r = t
        .http
        .put(t.url("/v1/titles/m1"))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .json(&movie("m1", 90))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = form(&t, "/oauth/token", Some(&svc), &[("grant_type", "client_credentials"), ("scope", "admin")])
        .await;
    assert_eq!(oauth_err(r).await.1, "invalid_scope");
    let wrong = Client { id: svc.id.clone(), secret: Some("phs_wrong".into()) };
    let r = form(&t, "/oauth/token", Some(&wrong), &[("grant_type", "client_credentials")]).await;
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(oauth_err(r).await, (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    let public = client(&t, ClientType::Public, &[GrantType::DeviceCode], None).await;
    let r = form(&t, "/oauth/token", Some(&public), &[("grant_type", "client_credentials")]).await;
    assert_eq!(oauth_err(r).await.1, "unauthorized_client");
    let r = form(
        &t,
        "/oauth/token",
        Some(&public),
        &[("grant_type", "password"), ("username", "a"), ("password", "b")],
    )
    .await;
    assert_eq!(oauth_err(r).await.1, "unsupported_grant_type");
    t.stop().await;
}

#[tokio::test]
async fn revocation_and_introspection() {
    let t = spawn_app().await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode, GrantType::RefreshToken], None).await;
    let RegisteredClient { client: rs, secret } = t
        .identity
        .create_client(
            "Resource server",
            ClientType::Confidential,
            vec![],
            vec![GrantType::ClientCredentials],
            Scopes::empty(),
        )
        .await
        .unwrap();
    let rs = Client { id: rs.client_id, secret };
    let v = person(&t, "gi@example.com").await;
    let tok = tokens_via_device(&t, &tv, &v, true).await;
    let at = tok["access_token"].as_str().unwrap();
    let rt = tok["refresh_token"].as_str().unwrap();

    // Introspection needs a confidential client.
    let r = form(&t, "/oauth/introspect", Some(&tv), &[("token", at)]).await;
    assert_eq!(oauth_err(r).await.0, StatusCode::UNAUTHORIZED);
    let info: Value = form(&t, "/oauth/introspect", Some(&rs), &[("token", at)]).await.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], v.account.to_string());
    assert_eq!(info["profile_id"], v.profile.to_string());
    let info: Value =
        form(&t, "/oauth/introspect", Some(&rs), &[("token", "nonsense")]).await.json().await.unwrap();
    assert_eq!(info, json!({"active": false}));

    // RFC 7009: unknown tokens are fine; a refresh token takes its family with it.
    assert_eq!(form(&t, "/oauth/revoke", Some(&tv), &[("token", "nonsense")]).await.status(), StatusCode::OK);
    assert_eq!(form(&t, "/oauth/revoke", Some(&tv), &[("token", rt)]).await.status(), StatusCode::OK);
    let info: Value = form(&t, "/oauth/introspect", Some(&rs), &[("token", at)]).await.json().await.unwrap();
    assert_eq!(info, json!({"active": false}));
    eventually(&t, at, &format!("/v1/profiles/{}/history", v.profile), StatusCode::UNAUTHORIZED).await;
    let r =
        form(&t, "/oauth/token", Some(&tv), &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(oauth_err(r).await.1, "invalid_grant");
    t.stop().await;
}

#[tokio::test]
async fn rotated_keys_keep_the_previous_one_and_drop_older_ones() {
    let t = spawn_app().await;
    let v = t.viewer("hu@example.com").await;
    let path = format!("/v1/profiles/{}/history", v.profile);
    let old = v.token.clone();
    let first_kid = t.identity.keys().signing_kid().to_owned();
    t.identity.rotate_keys().await.unwrap();
    let jwks: Value = t.http.get(t.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let kids: Vec<&str> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&first_kid.as_str()));
    assert_eq!(t.get(&old, &path).await.status(), StatusCode::OK, "the previous key still verifies");
    let middle = t.token(v.account, &TestApp::viewer_scopes(), 600);
    t.identity.rotate_keys().await.unwrap();
    // The server learns of the rotation at its next poll; the first key is then gone.
    eventually(&t, &old, &path, StatusCode::UNAUTHORIZED).await;
    assert_eq!(t.get(&middle, &path).await.status(), StatusCode::OK);
    t.stop().await;
}

fn claims(t: &TestApp, v: &Viewer) -> Value {
    let now = t.app.clock().now().0 / 1000;
    json!({"iss": t.identity.config().issuer, "sub": v.account.to_string(), "aud": t.settings.audience, "exp": now + 600, "iat": now,
           "jti": uuid::Uuid::new_v4().to_string(), "sid": "s-hostile", "scope": "history:read", "client_id": "tests"})
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn hostile_tokens_are_refused_with_a_challenge() {
    let t = spawn_app().await;
    let v = t.viewer("io@example.com").await;
    let path = format!("/v1/profiles/{}/history", v.profile);
    let keys = t.identity.store().signing_keys().await.unwrap();
    let pem = keys.last().unwrap().pem.clone();
    let kid = t.identity.keys().signing_kid().to_owned();
    let ours = EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
    let sign = |header: Header, c: &Value| jsonwebtoken::encode(&header, c, &ours).unwrap();
    let header = |typ: &str, kid: &str| {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some(typ.into());
        h.kid = Some(kid.into());
        h
    };
    let good = claims(&t, &v);
    // The control: our own header and claims pass, so each refusal below is for its one defect.
    assert_eq!(t.get(&sign(header("at+jwt", &kid), &good), &path).await.status(), StatusCode::OK);

    let with = |k: &str, val: Value| {
        let mut c = good.clone();
        c[k] = val;
        c
    };
    let now = t.app.clock().now().0 / 1000;
    let public_x = t.identity.keys().jwks().keys[0].x.clone();
    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(public_x.as_bytes())).unwrap()
    };
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})), b64(&good));
    let foreign_key = {
        let (other_kid, other_pem) = playhead_auth::KeySet::generate_pem().unwrap();
        let key = EncodingKey::from_ed_pem(other_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header("at+jwt", &other_kid), &good, &key).unwrap()
    };
    let forged_with_our_kid = {
        let (_, other_pem) = playhead_auth::KeySet::generate_pem().unwrap();
        let key = EncodingKey::from_ed_pem(other_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header("at+jwt", &kid), &good, &key).unwrap()
    };
    let revoked_sid = "s-revoked";
    let session = playhead_core::identity::Session {
        id: revoked_sid.into(),
        account: v.account,
        client_id: "tests".into(),
        scopes: Scopes::parse("history:read").unwrap(),
        profile: None,
        auth_time: playhead_core::Timestamp(0),
        created_at: playhead_core::Timestamp(0),
        revoked_at: None,
    };
    t.identity.store().create_session(&session).await.unwrap();
    t.identity.store().revoke_session(revoked_sid, t.app.clock().now()).await.unwrap();
    let table: Vec<(&str, String)> = vec![
        ("alg none", none),
        ("HS256 keyed with our public key", hs256),
        ("wrong iss", sign(header("at+jwt", &kid), &with("iss", json!("https://evil.example")))),
        ("wrong aud", sign(header("at+jwt", &kid), &with("aud", json!("someone-else")))),
        ("expired", sign(header("at+jwt", &kid), &with("exp", json!(now - 120)))),
        ("nbf in the future", sign(header("at+jwt", &kid), &with("nbf", json!(now + 600)))),
        ("unknown kid", sign(header("at+jwt", "AAAAAAAAAAAAAAAA"), &good)),
        ("typ JWT (an ID token)", sign(header("JWT", &kid), &good)),
        ("signed by a key that is not in the set", foreign_key),
        ("another key's signature under our kid", forged_with_our_kid),
        ("revoked session", sign(header("at+jwt", &kid), &with("sid", json!(revoked_sid)))),
    ];
    // The revocation reaches this replica with its next poll (the tests poll every 100 ms; the
    // documented bound is 30 s): wait for the revoked one to be refused, then check them all.
    let revoked = &table.last().expect("the revoked session's token").1;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while t.get(revoked, &path).await.status() != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "the revocation never reached this replica");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (what, token) in &table {
        let r = t.get(token, &path).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = r.headers().get("www-authenticate").unwrap_or_else(|| panic!("{what}: no challenge"));
        assert!(challenge.to_str().unwrap().contains("error=\"invalid_token\""), "{what}: {challenge:?}");
    }

    // A token signed by a key rotated out of the set (current, previous, then gone).
    let was_ours = sign(header("at+jwt", &kid), &good);
    assert_eq!(t.get(&was_ours, &path).await.status(), StatusCode::OK);
    t.identity.rotate_keys().await.unwrap();
    t.identity.rotate_keys().await.unwrap();
    let fresh = t.token(v.account, "history:read", 600);
    eventually(&t, &fresh, &path, StatusCode::OK).await;
    eventually(&t, &was_ours, &path, StatusCode::UNAUTHORIZED).await;
    t.stop().await;
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_address_and_audited() {
    let t = spawn_with(|s| s.identity.attempts_per_address_per_minute = 3).await;
    person(&t, "jo@example.com").await;
    let page = t.http.get(t.url("/signin")).send().await.unwrap();
    let csrf_cookie = set_cookie(&page, "__Host-playhead-csrf").unwrap();
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = t
            .http
            .post(t.url("/signin"))
            .header("cookie", format!("__Host-playhead-csrf={csrf_cookie}"))
            .form(&[("csrf", csrf.as_str()), ("email", "jo@example.com"), ("password", "wrong password")])
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert_eq!(statuses[..3], [StatusCode::BAD_REQUEST; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    let audit = t.identity.store().audit_since(playhead_core::Timestamp(0), 100).await.unwrap();
    let failed: Vec<_> = audit.iter().filter(|e| e.action == "signin.failed").collect();
    assert_eq!(failed.len(), 3);
    assert!(
        failed
            .iter()
            .all(|e| e.client_addr.as_deref() == Some("127.0.0.1") && !e.detail.contains("wrong password"))
    );
    // Without the CSRF cookie the form is refused outright.
    let r = t
        .http
        .post(t.url("/signin"))
        .form(&[("csrf", csrf.as_str()), ("email", "jo@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    t.stop().await;
}

#[tokio::test]
async fn maturity_changes_need_a_recent_sign_in() {
    let t = spawn_app().await;
    let v = t.viewer("ka@example.com").await;
    let issuer = playhead_auth::TokenIssuer::new(
        t.identity.keys(),
        t.identity.config().issuer.clone(),
        t.settings.audience.clone(),
        600,
    );
    let now = t.app.clock().now().0 / 1000;
    let stale = issuer
        .issue(
            &issuer
                .account_claims(v.account, "tv", Scopes::parse(&TestApp::viewer_scopes()).unwrap(), "s", now)
                .with_auth_time(now - 3600),
        )
        .unwrap();
    let path = format!("/v1/profiles/{}", v.profile);
    let etag = t.get(&stale, &path).await.headers()["etag"].to_str().unwrap().to_owned();
    let patch = |tok: String, body: Value| {
        let (t, path, etag) = (&t, path.clone(), etag.clone());
        async move {
            t.http
                .patch(t.url(&path))
                .bearer_auth(tok)
                .header("if-match", etag)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(patch(stale.clone(), json!({"kids": true})).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(patch(stale.clone(), json!({"maturity_limit": 7})).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        patch(stale, json!({"name": "Renamed"})).await.status(),
        StatusCode::OK,
        "other settings need no fresh sign-in"
    );
    let etag = t.get(&v.token, &path).await.headers()["etag"].to_str().unwrap().to_owned();
    let r = t
        .http
        .patch(t.url(&path))
        .bearer_auth(&v.token)
        .header("if-match", etag)
        .json(&json!({"kids": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    t.stop().await;
}

#[tokio::test]
async fn an_admin_registers_clients_over_rest() {
    let t = spawn_app().await;
    let admin = t.catalog_token().await;
    let body = json!({"name": "Partner", "type": "confidential", "grants": ["client_credentials"], "scope": "catalog:write"});
    let r = t.post(&admin, "/v1/admin/clients", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c: Value = r.json().await.unwrap();
    assert!(c["client_secret"].as_str().unwrap().starts_with("phs_"));
    let v = t.viewer("li@example.com").await;
    assert_eq!(t.post(&v.token, "/v1/admin/clients", &body).await.status(), StatusCode::FORBIDDEN);
    let bad = json!({"name": "TV", "type": "public", "grants": ["client_credentials"]});
    let r = t.post(&admin, "/v1/admin/clients", &bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    t.stop().await;
}

/// Approve an authorization request on the consent page; returns the redirect's `code`.
async fn consent_code(t: &TestApp, authorize_url: &str, cookie: &str) -> (String, String) {
    let html = t
        .http
        .get(authorize_url)
        .header("cookie", session(cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut fields: Vec<(String, String)> =
        ["client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "csrf"]
            .iter()
            .map(|k| ((*k).to_owned(), hidden(&html, k)))
            .collect();
    fields.push(("decision".into(), "approve".into()));
    let r = t
        .http
        .post(t.url("/oauth/authorize"))
        .header("cookie", session(cookie))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let (target, query) = loc.split_once('?').unwrap();
    let q: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    (target.to_owned(), q.iter().find(|(k, _)| k == "code").unwrap().1.clone())
}

/// Issue 10: redirect URIs were checked by prefix, so `http://127.0.0.1.evil.example` passed as
/// loopback. Registration refuses every host that only starts like a loopback literal (and
/// `localhost`, fragments, plain http elsewhere), naming the entry; the authorization endpoint
/// neither matches nor redirects to such a URI, even one stored before the check existed.
#[tokio::test]
async fn redirect_uris_are_https_or_exact_loopback_at_registration_and_authorize() {
    let t = spawn_app().await;
    let v = person(&t, "ro@example.com").await;
    let admin = t.token(v.account, "admin", 600);
    let register = |uris: Vec<&str>| {
        let (t, admin) = (&t, &admin);
        let body =
            json!({"name": "Web", "type": "public", "grants": ["authorization_code"], "redirect_uris": uris});
        async move { t.post(admin, "/v1/admin/clients", &body).await }
    };
    let ok =
        register(vec!["https://app.example.com/cb", "http://127.0.0.1/cb", "http://[::1]:8080/cb"]).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    for (bad, why) in [
        ("http://127.0.0.1.evil.example/cb", "127.0.0.1"),
        ("http://127.0.0.1.evil.example", "127.0.0.1"),
        ("http://127.0.0.1@evil.example/cb", "user information"),
        ("http://localhost:3000/cb", "localhost"),
        ("https://app.example.com/cb#top", "fragment"),
        ("http://192.168.1.5/cb", "https"),
    ] {
        let r = register(vec!["https://app.example.com/cb", bad]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "redirect_uris[1]", "{bad}: {p}");
        assert!(p["errors"][0]["message"].as_str().unwrap().contains(why), "{bad}: {p}");
    }

    // A client registered before the check, with the hostile URI beside a good one.
    let legacy = playhead_core::identity::OAuthClient {
        client_id: "legacy-web".into(),
        name: "Legacy".into(),
        client_type: ClientType::Public,
        secret_hash: None,
        redirect_uris: vec!["http://127.0.0.1.evil.example/cb".into(), "http://127.0.0.1/cb".into()],
        grants: vec![GrantType::AuthorizationCode],
        scopes: Scopes::parse(&TestApp::viewer_scopes()).unwrap(),
        created_at: t.app.clock().now(),
    };
    t.identity.store().create_client(&legacy).await.unwrap();
    let (_, challenge) = pkce();
    // response_type=token is refused *at the client's redirect URI* once that URI is known to be
    // the client's: where the refusal goes shows whether the URI matched.
    let authorize = |uri: &str| {
        t.url(&format!(
            "/oauth/authorize?response_type=token&client_id=legacy-web&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=s",
            urlencode(uri)
        ))
    };
    for hostile in ["http://127.0.0.1.evil.example/cb", "http://127.0.0.1.evil.example:8080/cb"] {
        let r = t.http.get(authorize(hostile)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{hostile}");
        assert!(r.headers().get("location").is_none(), "{hostile} must never be redirected to");
    }
    let r = t.http.get(authorize("http://127.0.0.1:51234/cb")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the good loopback URI matches, on any port");
    let loc = r.headers()["location"].to_str().unwrap();
    assert!(loc.starts_with("http://127.0.0.1:51234/cb?error=unsupported_response_type"), "{loc}");
    t.stop().await;
}

/// RFC 8252 section 7.3: a native app registers `http://127.0.0.1/callback` and listens on
/// whatever port it gets; the code goes to that port and the exchange names the same URI.
#[tokio::test]
async fn a_loopback_redirect_uri_matches_on_any_port() {
    let t = spawn_app().await;
    let web =
        client(&t, ClientType::Public, &[GrantType::AuthorizationCode], Some("http://127.0.0.1/callback"))
            .await;
    person(&t, "np@example.com").await;
    let cookie = sign_in(&t, "np@example.com").await;
    let (verifier, challenge) = pkce();
    let asked = "http://127.0.0.1:49152/callback";
    let url = t.url(&format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        web.id,
        urlencode(asked)
    ));
    let (target, code) = consent_code(&t, &url, &cookie).await;
    assert_eq!(target, asked);
    let exchange = |redirect_uri: &'static str| {
        let (t, web, code, verifier) = (&t, &web, code.clone(), verifier.clone());
        async move {
            form(
                t,
                "/oauth/token",
                Some(web),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    // The exchange must name the URI of the request, port included (RFC 6749 section 4.1.3)...
    assert_eq!(oauth_err(exchange("http://127.0.0.1/callback").await).await.1, "invalid_grant");
    // ...and that refusal used the code up (codes are single-use): a fresh one for the real one.
    let (_, code) = consent_code(&t, &url, &cookie).await;
    let r = form(
        &t,
        "/oauth/token",
        Some(&web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", asked),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    t.stop().await;
}

/// Issue 10: the consent page read the person's profiles with `unwrap_or_default()`, so a store
/// failure showed a page offering only "Whole account". Now it is an error page.
#[tokio::test]
async fn a_store_failure_on_the_consent_page_is_an_error_page_not_an_empty_list() {
    use sqlx::Connection as _;
    let t = spawn_app().await;
    let redirect = "http://127.0.0.1:9/cb";
    let web = client(&t, ClientType::Public, &[GrantType::AuthorizationCode], Some(redirect)).await;
    let v = person(&t, "pf@example.com").await;
    let cookie = sign_in(&t, "pf@example.com").await;
    let (_, challenge) = pkce();
    let url = t.url(&format!(
        "/oauth/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256",
        web.id,
        urlencode(redirect)
    ));
    let consent = || t.http.get(&url).header("cookie", session(&cookie)).send();
    let r = consent().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains(&v.profile.to_string()), "the control lists the profile");
    // Break the profiles table under the running server (the sessions and clients still work).
    let db = format!("sqlite://{}", t.settings.db_path().display());
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("ALTER TABLE profiles RENAME TO profiles_gone").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let r = consent().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let html = r.text().await.unwrap();
    assert!(html.contains("Something went wrong") && !html.contains("the whole account"), "{html}");
    assert!(!html.contains("profiles"), "the cause stays in the log: {html}");
    t.stop().await;
}

/// Devices (issue 17): the account lists its signed-in devices with their app, where and when
/// they were seen; signs one out (its refresh token dies at once, its access token within the
/// revocation bound) or every one; a TV bound to a profile cannot, and another account's
/// session is not found.
#[tokio::test]
async fn devices_are_listed_and_signed_out_one_by_one_or_everywhere() {
    let t = spawn_app().await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode, GrantType::RefreshToken], None).await;
    let v = person(&t, "dee@example.com").await;
    let kids_tv = tokens_via_device(&t, &tv, &v, true).await;
    let phone = tokens_via_device(&t, &tv, &v, false).await;
    let phone_at = phone["access_token"].as_str().unwrap();
    let kids_at = kids_tv["access_token"].as_str().unwrap();

    let list = t.get_json(phone_at, "/v1/me/sessions").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    for d in items {
        assert_eq!(d["client_name"], "Living-room TV");
        assert_eq!(d["first_seen_from"], "127.0.0.1");
        assert!(d["first_seen_at"].is_string() && d["last_seen_at"].is_string());
    }
    let current: Vec<&Value> = items.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1, "exactly the asking session is current: {list}");
    assert!(current[0]["profile_id"].is_null());
    let kids_sid =
        items.iter().find(|d| d["current"] == false).unwrap()["session_id"].as_str().unwrap().to_owned();
    assert_eq!(items.iter().find(|d| d["current"] == false).unwrap()["profile_id"], v.profile.to_string());

    // A kids TV cannot see or sign out the family's devices; another account cannot find them.
    assert_eq!(t.get(kids_at, "/v1/me/sessions").await.status(), StatusCode::FORBIDDEN);
    let other = person(&t, "eve@example.com").await;
    let eve_at = tokens_via_device(&t, &tv, &other, false).await["access_token"].as_str().unwrap().to_owned();
    let r = t
        .http
        .delete(t.url(&format!("/v1/me/sessions/{kids_sid}")))
        .bearer_auth(&eve_at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Sign the kids TV out: its refresh token is refused at once, its access token soon.
    let r = t
        .http
        .delete(t.url(&format!("/v1/me/sessions/{kids_sid}")))
        .bearer_auth(phone_at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let kids_rt = kids_tv["refresh_token"].as_str().unwrap();
    let r =
        form(&t, "/oauth/token", Some(&tv), &[("grant_type", "refresh_token"), ("refresh_token", kids_rt)])
            .await;
    assert_eq!(oauth_err(r).await.1, "invalid_grant");
    eventually(&t, kids_at, &format!("/v1/profiles/{}/history", v.profile), StatusCode::UNAUTHORIZED).await;
    let r = t
        .http
        .delete(t.url(&format!("/v1/me/sessions/{kids_sid}")))
        .bearer_auth(phone_at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "already signed out");

    // A refresh moves "last seen".
    let before = t.get_json(phone_at, "/v1/me/sessions").await["items"][0]["last_seen_at"].clone();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = form(
        &t,
        "/oauth/token",
        Some(&tv),
        &[("grant_type", "refresh_token"), ("refresh_token", phone["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let phone_at: String = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let after = t.get_json(&phone_at, "/v1/me/sessions").await["items"][0]["last_seen_at"].clone();
    assert_ne!(before, after);

    // Everywhere but here: nothing else is left; then everywhere.
    let r = t.post(&phone_at, "/v1/me/sessions/revoke-all?keep_current=true", &json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 0);
    let r = t.post(&phone_at, "/v1/me/sessions/revoke-all", &json!({})).await;
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 1);
    eventually(&t, &phone_at, "/v1/me", StatusCode::UNAUTHORIZED).await;
    // Eve is still signed in.
    assert_eq!(t.get(&eve_at, "/v1/me/sessions").await.status(), StatusCode::OK);
    let audit = t.identity.store().audit_since(playhead_core::Timestamp(0), 100).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "session.revoked_all"));
    t.stop().await;
}
