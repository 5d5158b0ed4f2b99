//! Issue 17 over HTTP: the device page names what is wrong with a code, the hosted pages keep a
//! strict content security policy, parental PINs guard binding a token to a profile and
//! switching to it (API and pages, rate limited, locked and audited), and the edges clients trip
//! on: RateLimit headers on unmatched paths, If-Match on DELETE. The pages' look and
//! accessibility are checked in Chromium by tests/browser (scripts/browser-test).

use playhead_core::identity::{ClientType, GrantType};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::oauth::{Client, client, form, hidden, oauth_err, person, poll_device, session, sign_in};
use crate::support::*;

async fn device_code(t: &TestApp, tv: &Client) -> Value {
    let r = form(t, "/oauth/device_authorization", Some(tv), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn page(t: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let r = t.http.get(t.url(path)).header("cookie", session(cookie)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn decide(t: &TestApp, cookie: &str, fields: &[(&str, &str)]) -> Response {
    let (_, html) = page(t, cookie, "/device").await;
    let csrf = hidden(&html, "csrf");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    t.http.post(t.url("/device")).header("cookie", session(cookie)).form(&all).send().await.unwrap()
}

#[tokio::test]
async fn the_device_page_says_what_is_wrong_with_a_code() {
    let t = spawn_app().await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode], None).await;
    person(&t, "dee@example.com").await;
    let cookie = sign_in(&t, "dee@example.com").await;

    let (status, html) = page(&t, &cookie, "/device?user_code=12345").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("8 letters") && html.contains("aria-invalid=\"true\""), "{html}");
    let (status, html) = page(&t, &cookie, "/device?user_code=BCDF-GHJZ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("not right") && html.contains("role=\"alert\""), "{html}");

    // Typed in lower case, without the dash, with spaces around: the same code.
    let d = device_code(&t, &tv).await;
    let code = d["user_code"].as_str().unwrap();
    let sloppy = format!("%20{}%20", code.replace('-', "").to_lowercase());
    let (status, html) = page(&t, &cookie, &format!("/device?user_code={sloppy}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(code) && html.contains("Living-room TV"), "shown as the TV shows it: {html}");
    let r = decide(&t, &cookie, &[("user_code", &code.to_lowercase()), ("decision", "approve")]).await;
    assert_eq!(r.status(), StatusCode::OK);

    let (status, html) = page(&t, &cookie, &format!("/device?user_code={code}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("already used"), "{html}");
    let r = decide(&t, &cookie, &[("user_code", code), ("decision", "approve")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a second approval is refused");
    assert!(r.text().await.unwrap().contains("already used"));

    // Every refusal is audited with its reason; the typed code is not.
    let audit = t.identity.store().audit_since(playhead_core::Timestamp(0), 100).await.unwrap();
    let reasons: Vec<String> = audit
        .iter()
        .filter(|e| e.action == "device.bad_code")
        .map(|e| serde_json::from_str::<Value>(&e.detail).unwrap()["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["malformed", "unknown", "used", "used"]);
    t.stop().await;
}

#[tokio::test]
async fn an_expired_code_is_named_as_such() {
    let t = spawn_with(|s| s.identity.device_code_ttl_secs = 1).await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode], None).await;
    person(&t, "ex@example.com").await;
    let cookie = sign_in(&t, "ex@example.com").await;
    let d = device_code(&t, &tv).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, html) =
        page(&t, &cookie, &format!("/device?user_code={}", d["user_code"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("expired") && html.contains("Start again on your device"), "{html}");
    t.stop().await;
}

#[tokio::test]
async fn the_pages_admit_only_their_own_style_and_no_script() {
    let t = spawn_app().await;
    let r = t.http.get(t.url("/signin")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"), "{csp}");
    assert!(!csp.contains("unsafe") && !csp.contains("script-src"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "{html}");
    assert!(html.contains("<html lang=\"en\">") && html.contains("<label for=\"email\">"), "{html}");
    // The API docs keep their own (laxer) policy: Swagger UI needs its inline bootstrap.
    let docs = t.http.get(t.url("/docs/")).send().await.unwrap();
    assert!(docs.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    t.stop().await;
}

#[tokio::test]
async fn the_qr_code_draws_the_complete_verification_uri() {
    let t = spawn_app().await;
    let r = t.http.get(t.url("/device/qr?user_code=bcdf-ghjk")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(
        r.headers()["ratelimit"].to_str().unwrap().starts_with("\"auth\""),
        "charged like any anonymous call"
    );
    let svg = r.text().await.unwrap();
    assert!(svg.contains("<svg") && svg.contains("BCDF-GHJK") && svg.contains("/device"), "{svg}");
    for bad in ["", "?user_code=BCDF", "?user_code=AEIO-UAEI", "?user_code=BCDF%20GHJK"] {
        let r = t.http.get(t.url(&format!("/device/qr{bad}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "user_code", "{bad}: {p}");
    }
    t.stop().await;
}

/// A viewer token for `account`, signed in `age_secs` ago, bound to `profile` if given.
fn token_for(t: &TestApp, account: playhead_core::AccountId, age_secs: i64, profile: Option<&str>) -> String {
    let issuer = playhead_auth::TokenIssuer::new(
        t.identity.keys(),
        t.identity.config().issuer.clone(),
        t.settings.audience.clone(),
        600,
    );
    let now = t.app.clock().now().0 / 1000;
    let scopes = playhead_core::auth::Scopes::parse(&TestApp::viewer_scopes()).unwrap();
    let mut claims = issuer.account_claims(account, "tv", scopes, "s", now).with_auth_time(now - age_secs);
    if let Some(p) = profile {
        claims = claims.bound_to(playhead_core::ProfileId::parse(p).unwrap());
    }
    issuer.issue(&claims).unwrap()
}

async fn put_pin(t: &TestApp, token: &str, profile: &str, pin: &str) -> Response {
    t.http
        .put(t.url(&format!("/v1/profiles/{profile}/pin")))
        .bearer_auth(token)
        .json(&json!({"pin": pin}))
        .send()
        .await
        .unwrap()
}

async fn verify_pin(t: &TestApp, token: &str, profile: &str, pin: &str) -> Response {
    t.post(token, &format!("/v1/profiles/{profile}/pin/verify"), &json!({"pin": pin})).await
}

async fn parental_pins_guard_binding_and_switching() {
    // The per-address limit (shared with sign-in) is not what this test is about.
    let t = spawn_with(|s| s.identity.attempts_per_address_per_minute = 1_000).await;
    let v = person(&t, "pin@example.com").await;
    let profile = v.profile.to_string();

    // Shape, who may set it, recent sign-in.
    let r = put_pin(&t, &v.token, &profile, "12a4").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"][0]["field"], "pin");
    let bound = token_for(&t, v.account, 0, Some(&profile));
    assert_eq!(put_pin(&t, &bound, &profile, "2580").await.status(), StatusCode::FORBIDDEN, "a bound token");
    let stale = token_for(&t, v.account, 3600, None);
    assert_eq!(put_pin(&t, &stale, &profile, "2580").await.status(), StatusCode::FORBIDDEN, "an old sign-in");
    let other = person(&t, "other@example.com").await;
    assert_eq!(put_pin(&t, &other.token, &profile, "2580").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(put_pin(&t, &v.token, &profile, "2580").await.status(), StatusCode::NO_CONTENT);

    // Switching in an app: right, wrong (attempts left), then locked.
    assert_eq!(verify_pin(&t, &v.token, &profile, "2580").await.status(), StatusCode::NO_CONTENT);
    let r = verify_pin(&t, &v.token, &profile, "0000").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().contains("4 attempts left"));
    assert_eq!(verify_pin(&t, &other.token, &profile, "2580").await.status(), StatusCode::NOT_FOUND);

    // The device page: a PIN profile needs its PIN to bind the TV to it.
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode], None).await;
    let d = device_code(&t, &tv).await;
    let code = d["user_code"].as_str().unwrap();
    let cookie = sign_in(&t, "pin@example.com").await;
    let (_, html) = page(&t, &cookie, &format!("/device?user_code={code}")).await;
    assert!(html.contains("badge pin") && html.contains("Profile PIN"), "{html}");
    let bind = [("user_code", code), ("decision", "approve"), ("profile_id", profile.as_str())];
    let r = decide(&t, &cookie, &bind).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("has a PIN"));
    let mut wrong = bind.to_vec();
    wrong.push(("pin", "1111"));
    for left in ["3 attempts", "2 attempts", "1 attempt left"] {
        let r = decide(&t, &cookie, &wrong).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let html = r.text().await.unwrap();
        assert!(html.contains(left) && html.contains("aria-invalid=\"true\""), "{left}: {html}");
    }
    let r = decide(&t, &cookie, &wrong).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the fifth failure locks the profile");
    assert!(r.headers().contains_key("retry-after"));
    // Locked: even the right PIN waits, over the API too.
    let mut right = bind.to_vec();
    right.push(("pin", "2580"));
    assert_eq!(decide(&t, &cookie, &right).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = verify_pin(&t, &v.token, &profile, "2580").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        oauth_err(poll_device(&t, &tv, d["device_code"].as_str().unwrap()).await).await.1,
        "authorization_pending"
    );

    let audit = t.identity.store().audit_since(playhead_core::Timestamp(0), 500).await.unwrap();
    let count = |action: &str| audit.iter().filter(|e| e.action == action).count();
    assert_eq!(count("pin.set"), 1);
    assert_eq!(count("pin.failed"), 5);
    assert!(count("pin.locked") >= 3, "the lockout and each refused attempt are audited");
    // As a whole word: ids and timestamps in the details may contain the same digits.
    let has_pin = |d: &str| d.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == "2580" || w == "1111");
    assert!(audit.iter().all(|e| !has_pin(&e.detail)), "no PIN in the audit");

    // The account resets it (a new PIN) or removes it: a profile without a PIN has nothing to
    // guess, so binding to it needs no PIN at all.
    assert_eq!(put_pin(&t, &v.token, &profile, "135790").await.status(), StatusCode::NO_CONTENT);
    let del = |if_match: Option<&str>| {
        let mut req = t.http.delete(t.url(&format!("/v1/profiles/{profile}/pin"))).bearer_auth(&v.token);
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        req.send()
    };
    assert_eq!(del(Some("*")).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(del(Some("*")).await.unwrap().status(), StatusCode::PRECONDITION_FAILED, "no PIN left");
    assert_eq!(del(None).await.unwrap().status(), StatusCode::NO_CONTENT, "idempotent without If-Match");
    let r = decide(&t, &cookie, &bind).await;
    assert_eq!(r.status(), StatusCode::OK, "no PIN, no question");
    assert!(r.text().await.unwrap().contains("Device connected"));
    t.stop().await;
}

async fn delete_honours_if_match() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("im@example.com").await;
    let events = watching("m1", 0, 20, 60);
    t.events(&v, events[..20].to_vec()).await;
    t.settle().await;
    let history = format!("/v1/profiles/{}/history", v.profile);
    let h = t.get_json(&v.token, &history).await;
    let (play, seen) = (h["items"][0]["play_id"].as_str().unwrap(), h["items"][0]["etag"].as_str().unwrap());
    // More of the viewing arrives: the play the client saw is not the play there is now.
    t.events(&v, events[20..].to_vec()).await;
    t.settle().await;
    let delete = |tag: &str| {
        t.http
            .delete(t.url(&format!("{history}/{play}")))
            .bearer_auth(&v.token)
            .header("if-match", tag)
            .send()
    };
    let r = delete(seen).await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let h = t.get_json(&v.token, &history).await;
    let now = h["items"][0]["etag"].as_str().unwrap().to_owned();
    assert_ne!(now, seen);
    let v2: Value = t
        .http
        .get(t.url(&history))
        .bearer_auth(&v.token)
        .header("accept", "application/vnd.playhead.v2+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["items"][0]["etag"], now.as_str(), "both representations carry the same tag");
    assert_eq!(
        delete("W/\"x\"").await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED,
        "weak tags never match"
    );
    assert_eq!(delete(&now).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(delete("*").await.unwrap().status(), StatusCode::NOT_FOUND, "gone");
    t.stop().await;
}

#[tokio::test]
async fn unmatched_paths_and_errors_carry_rate_limit_headers() {
    let t = spawn_app().await;
    let v = t.viewer("rl@example.com").await;
    let anon = t.http.get(t.url("/no/such/path")).send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::NOT_FOUND);
    assert!(anon.headers()["ratelimit-policy"].to_str().unwrap().starts_with("\"auth\";q="));
    assert!(anon.headers()["ratelimit"].to_str().unwrap().starts_with("\"auth\";r="));
    let signed = t.get(&v.token, "/v1/no-such-thing").await;
    assert_eq!(signed.status(), StatusCode::NOT_FOUND);
    assert!(
        signed.headers()["ratelimit"].to_str().unwrap().starts_with("\"read\";r="),
        "the caller's own quota"
    );
    let wrong_method = t.http.patch(t.url("/v1/me")).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.headers().contains_key("ratelimit"));
    let refused = t.get("not-a-token", "/v1/me").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().contains_key("ratelimit"), "errors carry them too");
    t.stop().await;
}

on_both_backends!(parental_pins_guard_binding_and_switching, delete_honours_if_match);
