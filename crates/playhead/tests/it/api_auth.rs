//! Authentication and object-level authorization on every route.

use playhead_auth::ApiKey;
use playhead_core::auth::Scopes;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// Every operation in the OpenAPI document, with placeholders filled.
async fn operations(t: &TestApp) -> Vec<(String, String)> {
    let doc: Value = t.http.get(t.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn every_v1_route_refuses_requests_without_a_valid_token() {
    // Three unauthenticated requests per route exceed the default per-address quota for
    // unauthenticated callers (60 a minute); this test is about the 401s, not that quota.
    let t = spawn_with(|s| s.rate_limits.auth.limit = 10_000).await;
    let expired = t.token(playhead_core::ids::AccountId(uuid::Uuid::now_v7()), "history:read", -120);
    let ops = operations(&t).await;
    assert!(ops.len() >= 17, "the OpenAPI document lists the routes");
    for (method, path) in ops.iter().filter(|(_, p)| p.starts_with("/v1/")) {
        let url = t.url(
            &path
                .replace("{profile_id}", &uuid::Uuid::now_v7().to_string())
                .replace("{account_id}", &uuid::Uuid::now_v7().to_string())
                .replace("{play_id}", &uuid::Uuid::now_v7().to_string())
                .replace("{title_id}", "m1"),
        );
        for auth in [None, Some("garbage"), Some(expired.as_str())] {
            let mut req = t
                .http
                .request(method.parse().unwrap(), &url)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(a) = auth {
                req = req.bearer_auth(a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path} with {auth:?}");
            assert!(
                r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"),
                "{method} {path}"
            );
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
    }
    t.stop().await;
}

#[tokio::test]
async fn another_accounts_profile_is_not_found_on_every_profile_route() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let a = t.viewer("a@example.com").await;
    let b = t.viewer("b@example.com").await;
    t.events(&a, watching("m1", 0, 20, 5)).await;
    t.settle().await;
    let h = t.get_json(&a.token, &format!("/v1/profiles/{}/history", a.profile)).await;
    let play = h["items"][0]["play_id"].as_str().unwrap().to_owned();
    // A real export of A's: B must not fetch it either.
    let export: Value = t
        .post(&a.token, &format!("/v1/accounts/{}/exports", a.account), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let export = export["export_id"].as_str().unwrap().to_owned();
    // A live stream of A's (a start now), for the stream routes.
    let start = json!({"event_id": uuid::Uuid::new_v4().to_string(), "title_id": "m1", "kind": "start",
        "position_ms": 0, "occurred_at": playhead_core::Timestamp(now_ms()).to_rfc3339(), "session_id": "bola"});
    t.events(&a, vec![start]).await;
    let streams = t.get_json(&a.token, "/v1/me/streams").await;
    let stream = streams["items"][0]["stream_id"].as_str().unwrap().to_owned();
    for (method, path) in operations(&t)
        .await
        .into_iter()
        // Operator routes act on any account by design (an operator's token is not B's): the
        // admin sweep below checks that a viewer's token is refused there.
        .filter(|(_, p)| !p.starts_with("/v1/admin/"))
        .filter(|(_, p)| {
            p.contains("{profile_id}") || p.contains("{account_id}") || p.contains("{stream_id}")
        })
    {
        let url = t.url(
            &path
                .replace("{profile_id}", &a.profile.to_string())
                .replace("{account_id}", &a.account.to_string())
                .replace("{play_id}", &play)
                .replace("{export_id}", &export)
                .replace("{other_id}", &b.profile.to_string())
                .replace("{requester_id}", &b.profile.to_string())
                .replace("{stream_id}", &stream)
                .replace("{title_id}", "m1"),
        );
        let body = match (method.as_str(), path.as_str()) {
            ("POST", p) if p.ends_with("/events") => json!({"events": [ev("m1", "pause", 1, 0)]}),
            ("POST", p) if p.ends_with("/history") => json!({"plays": []}),
            ("POST", p) if p.ends_with("/feedback") => json!({"title_id": "m1", "kind": "up"}),
            ("POST", p) if p.ends_with("/impressions") => json!({"title_ids": ["m1"]}),
            ("PUT", p) if p.ends_with("/list-settings") => json!({"leave_when_finished": true}),
            // Well-formed bodies, so only the ownership check can refuse (the feed, the PIN).
            ("POST", p) if p.ends_with("/following") || p.ends_with("/blocks") => {
                json!({"profile_id": b.profile.to_string()})
            }
            ("PUT", p) if p.contains("/follow-requests/") => json!({"decision": "approve"}),
            ("PUT", p) if p.ends_with("/feed-settings") => json!({"share_activity": false}),
            ("PUT", p) if p.ends_with("/pin") => json!({"pin": "4321"}),
            ("POST", p) if p.ends_with("/pin/verify") => json!({"pin": "4321"}),
            ("POST", _) => json!({"name": "x"}),
            ("PUT", _) => json!({"position_ms": 1}),
            _ => json!({}),
        };
        let r = t
            .http
            .request(method.parse().unwrap(), &url)
            .bearer_auth(&b.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "B reaching A's data: {method} {path}");
    }
    // And A's data is untouched.
    let h2 = t.get_json(&a.token, &format!("/v1/profiles/{}/history", a.profile)).await;
    assert_eq!(h, h2);
    assert_eq!(t.get_json(&a.token, "/v1/me/streams").await["items"], streams["items"]);
    t.stop().await;
}

#[tokio::test]
async fn missing_scopes_are_403_naming_the_scope() {
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    let read_only = t.token(v.account, "history:read", 600);
    let r = t
        .post(
            &read_only,
            &format!("/v1/profiles/{}/events", v.profile),
            &json!({"events": [ev("m1", "pause", 1, 0)]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    let p: Value = r.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("history:write"));
    // Viewers cannot write the catalog.
    let r =
        t.http.put(t.url("/v1/titles/m1")).bearer_auth(&v.token).json(&movie("m1", 10)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    t.stop().await;
}

#[tokio::test]
async fn api_keys_authenticate_services_and_need_profiles_any_for_profiles() {
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    let store = t.app.ports().api_keys.clone();
    let (narrow, rec) =
        ApiKey::generate("narrow", Scopes::parse("history:read").unwrap(), t.app.clock().now());
    store.create_api_key(&rec).await.unwrap();
    let (wide, rec) =
        ApiKey::generate("wide", Scopes::parse("history:read profiles:any").unwrap(), t.app.clock().now());
    store.create_api_key(&rec).await.unwrap();
    let path = format!("/v1/profiles/{}/continue-watching", v.profile);
    assert_eq!(t.get(narrow.expose(), &path).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(t.get(wide.expose(), &path).await.status(), StatusCode::OK);
    // Every profiles:any access is in the audit log: who, what, which profile, from where.
    let audited = async {
        loop {
            let entries = t.identity.store().audit_since(playhead_core::Timestamp(0), 100).await.unwrap();
            if let Some(e) = entries.into_iter().find(|e| e.action == "profiles_any.access") {
                return e;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let entry = tokio::time::timeout(std::time::Duration::from_secs(10), audited).await.expect("audited");
    assert!(entry.actor.starts_with("service:"), "{entry:?}");
    assert!(entry.detail.contains(&v.profile.to_string()) && entry.detail.contains("200"), "{entry:?}");
    assert_eq!(entry.client_addr.as_deref(), Some("127.0.0.1"));
    assert!(!entry.detail.contains(wide.expose()), "never the secret");
    // A wrong secret with a real prefix is refused.
    let forged = format!("{}AAAA", &wide.expose()[..wide.expose().len() - 4]);
    assert_eq!(t.get(&forged, &path).await.status(), StatusCode::UNAUTHORIZED);
    // A revoked key is refused (a fresh key, so no replica cache holds it).
    let (gone, rec) =
        ApiKey::generate("gone", Scopes::parse("history:read profiles:any").unwrap(), t.app.clock().now());
    store.create_api_key(&rec).await.unwrap();
    store.revoke_api_key(&rec.prefix, t.app.clock().now()).await.unwrap();
    assert_eq!(t.get(gone.expose(), &path).await.status(), StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn a_profile_bound_token_reaches_only_its_profile_and_cannot_change_settings() {
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    let sibling = t
        .app
        .insert_profile(
            v.account,
            playhead_app::accounts::NewProfile { name: "Kid".into(), kids: true, ..Default::default() },
        )
        .await
        .unwrap()
        .id;
    let issuer = playhead_auth::TokenIssuer::new(
        t.identity.keys(),
        t.identity.config().issuer.clone(),
        t.settings.audience.clone(),
        600,
    );
    let claims = issuer
        .account_claims(
            v.account,
            "tv",
            Scopes::parse(&TestApp::viewer_scopes()).unwrap(),
            "sid",
            t.app.clock().now().0 / 1000,
        )
        .bound_to(sibling);
    let tv = issuer.issue(&claims).unwrap();
    assert_eq!(
        t.get(&tv, &format!("/v1/profiles/{sibling}/continue-watching")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        t.get(&tv, &format!("/v1/profiles/{}/continue-watching", v.profile)).await.status(),
        StatusCode::NOT_FOUND
    );
    let r = t
        .http
        .patch(t.url(&format!("/v1/profiles/{sibling}")))
        .bearer_auth(&tv)
        .json(&json!({"kids": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let me: Value = t.get_json(&tv, "/v1/me").await;
    assert_eq!(me["profiles"].as_array().unwrap().len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn owners_manage_their_profiles() {
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    let r = t
        .post(
            &v.token,
            &format!("/v1/accounts/{}/profiles", v.account),
            &json!({"name": "Guest", "kids": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let p: Value = r.json().await.unwrap();
    let id = p["profile_id"].as_str().unwrap();
    let got = t.get(&v.token, &format!("/v1/profiles/{id}")).await;
    let etag = got.headers()["etag"].to_str().unwrap().to_owned();
    let r = t
        .http
        .patch(t.url(&format!("/v1/profiles/{id}")))
        .bearer_auth(&v.token)
        .header("if-match", "\"v7\"")
        .json(&json!({"name": "G"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = t
        .http
        .patch(t.url(&format!("/v1/profiles/{id}")))
        .bearer_auth(&v.token)
        .header("if-match", &etag)
        .json(&json!({"name": "Guest 2", "maturity_limit": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p: Value = r.json().await.unwrap();
    assert_eq!((p["name"].as_str(), p["maturity_limit"].as_u64()), (Some("Guest 2"), Some(7)));
    let me = t.get_json(&v.token, "/v1/me").await;
    assert_eq!(me["profiles"].as_array().unwrap().len(), 2);
    t.stop().await;
}

/// Generated from the route table (the router is built from it) and the policy table keyed by
/// operation: every /v1 route whose operation needs a scope a viewer does not hold (catalog,
/// admin) answers a viewer's token with 403 naming the scope, before any body is read; and no
/// viewer route is accidentally among them.
#[tokio::test]
async fn a_viewer_token_gets_403_on_every_admin_and_catalog_route() {
    use playhead_core::auth::Scope;
    let t = spawn_app().await;
    let v = t.viewer("viewer@example.com").await;
    let mut checked = 0;
    for entry in playhead_api_rest::table().iter().filter(|e| e.path().starts_with("/v1/")) {
        let (method, path) = (entry.method().as_str(), entry.path());
        let Some(scope) = entry.op().scope() else { continue };
        if Scope::VIEWER.contains(&scope) {
            continue;
        }
        let url = t.url(
            &path
                .replace("{profile_id}", &v.profile.to_string())
                .replace("{account_id}", &v.account.to_string())
                .replace("{play_id}", &uuid::Uuid::now_v7().to_string())
                .replace("{title_id}", "m1"),
        );
        let r = t
            .http
            .request(method.parse().unwrap(), &url)
            .bearer_auth(&v.token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{method} {path}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body.to_string().contains(scope.as_str()),
            "{method} {path}: the problem names the missing scope {}: {body}",
            scope.as_str()
        );
        checked += 1;
    }
    // catalog: PUT/PATCH title, import; admin: client registration.
    assert!(checked >= 4, "only {checked} admin/catalog routes found in the route table");
    t.stop().await;
}

/// The unauthenticated quota is per client address: behind a trusted proxy that is the
/// X-Forwarded-For client (two clients behind one balancer do not share a quota); from any other
/// peer the header is ignored (a client cannot pick a fresh address per request).
#[tokio::test]
async fn the_unauthenticated_quota_follows_x_forwarded_for_only_from_trusted_proxies() {
    let quota = playhead::config::QuotaSetting { limit: 2, window_secs: 600 };
    let statuses = |t: &TestApp, forwarded: &'static [&'static str]| {
        let (http, url) = (t.http.clone(), t.url("/v1/me"));
        async move {
            let mut out = Vec::new();
            for xff in forwarded {
                let r = http.get(&url).header("x-forwarded-for", *xff).send().await.unwrap();
                out.push(r.status().as_u16());
            }
            out
        }
    };
    // 127.0.0.1 (the test client) is the trusted balancer.
    let behind = spawn_with(|s| {
        s.rate_limits.auth = quota;
        s.identity.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let got =
        statuses(&behind, &["203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"]).await;
    assert_eq!(got, [401, 401, 429, 401, 401], "one quota per forwarded client");
    behind.stop().await;

    let direct = spawn_with(|s| s.rate_limits.auth = quota).await;
    let got = statuses(&direct, &["203.0.113.1", "203.0.113.2", "203.0.113.3"]).await;
    assert_eq!(got, [401, 401, 429], "an untrusted peer's X-Forwarded-For is ignored");
    direct.stop().await;
}
