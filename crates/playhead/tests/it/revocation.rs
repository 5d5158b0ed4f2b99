//! Revocation that works for every token (issue 16): a client-credentials access token revoked
//! with RFC 7009 stops working on every replica within the revocation poll and introspection
//! (RFC 7662) says inactive at once; deleting an OAuth client revokes everything it issued; an
//! API key is not an OAuth token (`unsupported_token_type`). On both backends; on PostgreSQL a
//! second replica over the same database learns the revocation through its own poll.

use std::time::Duration;

use playhead_app::identity::RegisteredClient;
use playhead_core::auth::Scopes;
use playhead_core::identity::{ClientType, GrantType};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::oauth::{Client, client, form, oauth_err, person, tokens_via_device};
use crate::support::*;

async fn confidential(t: &TestApp, name: &str, scope: &str) -> Client {
    let RegisteredClient { client: c, secret } = t
        .identity
        .create_client(
            name,
            ClientType::Confidential,
            vec![],
            vec![GrantType::ClientCredentials],
            Scopes::parse(scope).unwrap(),
        )
        .await
        .unwrap();
    Client { id: c.client_id, secret }
}

async fn service_token(t: &TestApp, c: &Client) -> String {
    let r = form(t, "/oauth/token", Some(c), &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

async fn introspect(t: &TestApp, rs: &Client, token: &str) -> Value {
    let r = form(t, "/oauth/introspect", Some(rs), &[("token", token)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Poll until `path` answers `status` with `token`; the revocation poll runs every 100 ms in
/// tests, and the documented bound is 30 s, so 30 s is the most this waits.
async fn eventually(t: &TestApp, token: &str, path: &str, status: StatusCode) {
    for _ in 0..300 {
        if t.get(token, path).await.status() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} at {} never answered {status}", t.base);
}

/// A second replica over the same database (PostgreSQL only): same issuer, so it accepts the
/// first one's tokens.
async fn second_replica(a: &TestApp) -> Option<TestApp> {
    if backend() != Backend::Postgres {
        return None;
    }
    let (issuer, url, schema, nats) = (
        a.settings.issuer.clone(),
        a.settings.database_url.clone(),
        a.settings.database_schema.clone(),
        a.settings.nats.clone(),
    );
    Some(
        spawn_with(move |s| {
            s.issuer = issuer;
            s.database_url = url;
            s.database_schema = schema;
            s.nats = nats;
        })
        .await,
    )
}

async fn a_revoked_service_token_stops_everywhere_and_introspection_agrees() {
    let t = spawn_app().await;
    let b = second_replica(&t).await;
    let svc = confidential(&t, "Partner", "catalog:write").await;
    let rs = confidential(&t, "Resource server", "").await;
    let token = service_token(&t, &svc).await;
    let other = service_token(&t, &svc).await;
    let put =
        |tok: &str| t.http.put(t.url("/v1/titles/m1")).bearer_auth(tok.to_owned()).json(&movie("m1", 90));
    assert!(put(&token).send().await.unwrap().status().is_success());
    for replica in std::iter::once(&t).chain(b.as_ref()) {
        assert_eq!(replica.get(&token, "/v1/titles/m1").await.status(), StatusCode::OK);
    }
    let info = introspect(&t, &rs, &token).await;
    assert_eq!(
        (info["active"].clone(), info["sub"].clone()),
        (json!(true), json!(format!("client:{}", svc.id)))
    );

    // RFC 7009 section 2.1: a client revokes only its own tokens; another's request is ignored.
    assert_eq!(form(&t, "/oauth/revoke", Some(&rs), &[("token", &token)]).await.status(), StatusCode::OK);
    assert_eq!(introspect(&t, &rs, &token).await["active"], true);

    let r = form(&t, "/oauth/revoke", Some(&svc), &[("token", &token), ("token_type_hint", "access_token")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(introspect(&t, &rs, &token).await, json!({"active": false}), "inactive at once");
    for replica in std::iter::once(&t).chain(b.as_ref()) {
        eventually(replica, &token, "/v1/titles/m1", StatusCode::UNAUTHORIZED).await;
    }
    let r = put(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("invalid_token") && challenge.contains("revoked"), "{challenge}");
    // Revoking again is fine (RFC 7009: 200), and only that token was revoked.
    assert_eq!(form(&t, "/oauth/revoke", Some(&svc), &[("token", &token)]).await.status(), StatusCode::OK);
    assert!(put(&other).send().await.unwrap().status().is_success());
    assert_eq!(introspect(&t, &rs, &other).await["active"], true);

    // An API key is not an OAuth token: saying "revoked" while it keeps working would lie.
    let key = t.app.create_api_key("ingest".into(), Scopes::parse("history:write").unwrap()).await.unwrap();
    let r = form(&t, "/oauth/revoke", Some(&svc), &[("token", key.secret.expose())]).await;
    assert_eq!(oauth_err(r).await, (StatusCode::BAD_REQUEST, "unsupported_token_type".into()));
    if let Some(b) = b {
        b.stop().await;
    }
    t.stop().await;
}

async fn deleting_a_client_revokes_everything_it_issued() {
    let t = spawn_app().await;
    let b = second_replica(&t).await;
    let tv = client(&t, ClientType::Public, &[GrantType::DeviceCode, GrantType::RefreshToken], None).await;
    let svc = confidential(&t, "Partner", "catalog:write").await;
    let rs = confidential(&t, "Resource server", "").await;
    let v = person(&t, "dc@example.com").await;
    let tok = tokens_via_device(&t, &tv, &v, true).await;
    let (at, rt) = (tok["access_token"].as_str().unwrap(), tok["refresh_token"].as_str().unwrap());
    let service = service_token(&t, &svc).await;
    let history = format!("/v1/profiles/{}/history", v.profile);
    assert_eq!(t.get(at, &history).await.status(), StatusCode::OK);
    let admin = t.catalog_token().await;

    // Only an operator may delete a client; an unknown one is 404.
    let delete = |who: &str, id: &str| {
        t.http.delete(t.url(&format!("/v1/admin/clients/{id}"))).bearer_auth(who.to_owned())
    };
    assert_eq!(delete(&v.token, &tv.id).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let r = delete(&admin, "phc_nobody").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    for c in [&tv, &svc] {
        assert_eq!(delete(&admin, &c.id).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(delete(&admin, &tv.id).send().await.unwrap().status(), StatusCode::NOT_FOUND, "gone");
    assert_eq!(introspect(&t, &rs, at).await, json!({"active": false}));
    assert_eq!(introspect(&t, &rs, rt).await, json!({"active": false}), "its sessions are revoked");
    assert_eq!(introspect(&t, &rs, &service).await, json!({"active": false}));
    for replica in std::iter::once(&t).chain(b.as_ref()) {
        eventually(replica, at, &history, StatusCode::UNAUTHORIZED).await;
        eventually(replica, &service, "/v1/titles", StatusCode::UNAUTHORIZED).await;
    }
    // The client can no longer authenticate, so nothing new is issued to it.
    let r =
        form(&t, "/oauth/token", Some(&tv), &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await;
    assert_eq!(oauth_err(r).await, (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    let r = form(&t, "/oauth/token", Some(&svc), &[("grant_type", "client_credentials")]).await;
    assert_eq!(oauth_err(r).await, (StatusCode::UNAUTHORIZED, "invalid_client".into()));
    // Other people's tokens are untouched.
    assert_eq!(t.get(&v.token, &history).await.status(), StatusCode::OK);
    if let Some(b) = b {
        b.stop().await;
    }
    t.stop().await;
}

/// The revocation poll reads through a connection of its own (decision 0115): with every pooled
/// connection of a replica held (here by an open transaction, in production by request traffic on
/// a slow database), the replica still learns of a revocation made on another one and refuses the
/// token. Sharing the pool, the poll would wait for a connection until its timeout, keep the old
/// list, and after 30 s refuse every person token with 503 instead.
#[tokio::test]
async fn a_full_pool_does_not_starve_the_revocation_poll() {
    on(Backend::Postgres, async {
        let t = spawn_with(|s| s.database_max_connections = 1).await;
        let b = second_replica(&t).await.expect("PostgreSQL has replicas");
        let svc = confidential(&t, "Partner", "catalog:write").await;
        let token = service_token(&t, &svc).await;
        let put = t.http.put(t.url("/v1/titles/m1")).bearer_auth(&token).json(&movie("m1", 90));
        assert!(put.send().await.unwrap().status().is_success());

        // The replica's only pooled connection, held until the end.
        let held = t.app.ports().viewing.begin().await.unwrap();
        let r = form(&b, "/oauth/revoke", Some(&svc), &[("token", &token)]).await;
        assert_eq!(r.status(), StatusCode::OK);
        eventually(&t, &token, "/v1/titles/m1", StatusCode::UNAUTHORIZED).await;
        drop(held);
        b.stop().await;
        t.stop().await;
    })
    .await;
}

on_both_backends!(
    a_revoked_service_token_stops_everywhere_and_introspection_agrees,
    deleting_a_client_revokes_everything_it_issued
);
