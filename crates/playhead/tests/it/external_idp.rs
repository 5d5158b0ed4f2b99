//! External issuers (issue #3): access tokens from a platform's own identity provider, served here
//! by a test JWKS endpoint on loopback publishing an RS256 and an ES256 key, as Keycloak would.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use playhead_app::access::{Authenticator, ExternalIssuers};
use playhead_auth::external::{ClaimMapping, ExternalIssuerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const IDP: &str = "https://idp.test/realms/media";
const JWKS: &str = include_str!("../../../../testdata/external-idp/jwks.json");
const RSA_PEM: &[u8] = include_bytes!("../../../../testdata/external-idp/rs256.pem");
const EC_PEM: &[u8] = include_bytes!("../../../../testdata/external-idp/es256.pem");

/// The IdP's JWKS endpoint: what it serves can change (a rotation), it can fail, and it counts
/// how often it was asked.
#[derive(Clone)]
struct Idp {
    jwks_uri: String,
    jwks: Arc<RwLock<String>>,
    fetches: Arc<AtomicUsize>,
    up: Arc<AtomicBool>,
}

async fn idp() -> Idp {
    let jwks = Arc::new(RwLock::new(JWKS.to_owned()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let up = Arc::new(AtomicBool::new(true));
    let (j, f, u) = (jwks.clone(), fetches.clone(), up.clone());
    let router = axum::Router::new().route(
        "/realms/media/certs",
        axum::routing::get(move || {
            let (j, f, u) = (j.clone(), f.clone(), u.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                if !u.load(Ordering::SeqCst) {
                    return AxumStatus::SERVICE_UNAVAILABLE.into_response();
                }
                let body = j.read().unwrap().clone();
                ([("content-type", "application/jwk-set+json")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Idp { jwks_uri: format!("http://{addr}/realms/media/certs"), jwks, fetches, up }
}

/// A Keycloak-like issuer: RS256 only, roles in `realm_access.roles`, at most a service.
fn trust(idp: &Idp) -> ExternalIssuerConfig {
    ExternalIssuerConfig {
        issuer: IDP.into(),
        jwks_uri: idp.jwks_uri.clone(),
        algorithms: vec!["RS256".into()],
        audience: "playhead".into(),
        audience_claim: "aud".into(),
        access_token: Default::default(),
        claims: ClaimMapping {
            roles: "realm_access.roles".into(),
            admin_values: vec!["playhead-admin".into()],
            service_values: vec!["playhead-service".into()],
            ..ClaimMapping::default()
        },
        max_role: "service".into(),
        jwks_max_age_secs: 3_600,
    }
}

fn idp_claims(sub: &str, scope: &str) -> Value {
    let now = now_ms() / 1000;
    json!({
        "iss": IDP, "sub": sub, "aud": ["account", "playhead"], "exp": now + 300, "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(), "azp": "tv-app", "scope": scope,
    })
}

fn idp_sign(alg: Algorithm, typ: &str, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.typ = Some(typ.into());
    h.kid = Some(kid.into());
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PEM).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PEM).unwrap(),
        Algorithm::HS256 => EncodingKey::from_secret(JWKS.as_bytes()),
        _ => unreachable!(),
    };
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

fn access_token(sub: &str, scope: &str) -> String {
    idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-1", &idp_claims(sub, scope))
}

#[tokio::test]
async fn platform_idp_tokens_are_accepted_and_identities_keyed_by_issuer_and_subject() {
    let idp = idp().await;
    let t = spawn_with(|s| s.identity.external_issuers = vec![trust(&idp)]).await;
    let viewer_scope = "openid profile history:read history:write profiles:write";

    let me = t.get_json(&access_token("kc-user-1", viewer_scope), "/v1/me").await;
    let account = me["account_id"].as_str().unwrap().to_owned();
    assert!(me["email"].as_str().unwrap().ends_with("@external.invalid"), "{me}");
    // A second token of the same person (new jti, new iat) reaches the same account.
    let again = t.get_json(&access_token("kc-user-1", viewer_scope), "/v1/me").await;
    assert_eq!(again["account_id"], me["account_id"]);

    let r = t
        .post(
            &access_token("kc-user-1", viewer_scope),
            &format!("/v1/accounts/{account}/profiles"),
            &json!({"name": "Main"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let profile = r.json::<Value>().await.unwrap()["profile_id"].as_str().unwrap().to_owned();
    let history = format!("/v1/profiles/{profile}/history");
    assert_eq!(t.get(&access_token("kc-user-1", viewer_scope), &history).await.status(), StatusCode::OK);

    // Another subject at the same IdP is another person: their own account, and A's profile is
    // not found for them.
    let other = t.get_json(&access_token("kc-user-2", viewer_scope), "/v1/me").await;
    assert_ne!(other["account_id"], me["account_id"]);
    assert_eq!(
        t.get(&access_token("kc-user-2", viewer_scope), &history).await.status(),
        StatusCode::NOT_FOUND
    );
    // The link is stored: (issuer, subject) -> the same account, across restarts and replicas.
    let stored = t
        .identity
        .store()
        .link_external_identity(
            IDP,
            "kc-user-1",
            &playhead_core::profile::Account {
                id: playhead_core::ids::AccountId(uuid::Uuid::now_v7()),
                email: playhead_core::profile::Email::parse("unused@external.invalid").unwrap(),
                created_at: playhead_core::Timestamp(0),
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.to_string(), account);

    // Roles map from the IdP's claim and are capped by max_role: a platform service may act on
    // any profile (audited), an "admin" of this IdP is still only a service here.
    let mut service = idp_claims("svc-recs", "history:read profiles:any admin");
    service["realm_access"] = json!({"roles": ["playhead-service"]});
    let svc = idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-1", &service);
    assert_eq!(t.get(&svc, &history).await.status(), StatusCode::OK);
    let mut admin = idp_claims("kc-admin", "admin catalog:write");
    admin["realm_access"] = json!({"roles": ["playhead-admin"]});
    let adm = idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-1", &admin);
    let r = t
        .post(&adm, "/v1/admin/clients", &json!({"name": "x", "type": "public", "grants": ["device_code"]}))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "admin is above this issuer's max_role");

    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "the key set is fetched once and cached");
    t.stop().await;
}

#[tokio::test]
async fn hostile_external_tokens_are_refused_with_a_challenge() {
    let idp = idp().await;
    let t = spawn_with(|s| s.identity.external_issuers = vec![trust(&idp)]).await;
    let scope = "history:read";
    // The control: each refusal below is for its one defect.
    assert_eq!(t.get(&access_token("kc-user-1", scope), "/v1/me").await.status(), StatusCode::OK);
    let with = |k: &str, v: Value| {
        let mut c = idp_claims("kc-user-1", scope);
        c[k] = v;
        c
    };
    let table: Vec<(&str, String)> = vec![
        (
            "the IdP's ID token (typ JWT)",
            idp_sign(Algorithm::RS256, "JWT", "idp-rsa-1", &idp_claims("kc-user-1", scope)),
        ),
        ("ES256: a real IdP key, but an algorithm not allowed for this issuer", {
            idp_sign(Algorithm::ES256, "at+jwt", "idp-ec-1", &idp_claims("kc-user-1", scope))
        }),
        (
            "HS256 keyed with the IdP's public JWKS",
            idp_sign(Algorithm::HS256, "at+jwt", "idp-rsa-1", &idp_claims("kc-user-1", scope)),
        ),
        (
            "an issuer that is not configured",
            idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-1", &with("iss", json!("https://other-idp.test"))),
        ),
        ("wrong aud", idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-1", &with("aud", json!("account")))),
        (
            "expired",
            idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-1", &with("exp", json!(now_ms() / 1000 - 120))),
        ),
        (
            "the encryption key's kid",
            idp_sign(Algorithm::RS256, "at+jwt", "idp-enc-1", &idp_claims("kc-user-1", scope)),
        ),
    ];
    for (what, token) in &table {
        let r = t.get(token, "/v1/me").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = r.headers().get("www-authenticate").unwrap_or_else(|| panic!("{what}: no challenge"));
        assert!(challenge.to_str().unwrap().contains("error=\"invalid_token\""), "{what}: {challenge:?}");
    }
    // Made-up key ids do not turn us into a load generator against the IdP: within a minute of
    // the last fetch, no refetch.
    for i in 0..10 {
        let token =
            idp_sign(Algorithm::RS256, "at+jwt", &format!("made-up-{i}"), &idp_claims("kc-user-1", scope));
        assert_eq!(t.get(&token, "/v1/me").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    t.stop().await;
}

/// Calls the authenticator the way the gate does, with a bearer token, and answers with the
/// status REST would give.
async fn authenticate(
    auth: &Authenticator,
    token: &str,
) -> Result<playhead_core::auth::Principal, StatusCode> {
    auth.authenticate(format!("Bearer {token}").as_bytes()).await.map_err(|e| {
        let r = playhead_api_rest::ApiError::App(e).into_response();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(r.headers().contains_key("retry-after"), "a 503 says when to retry");
        }
        r.status()
    })
}

#[tokio::test]
async fn an_unreachable_idp_is_a_503_and_a_rotated_key_is_picked_up() {
    let idp = idp().await;
    idp.up.store(false, Ordering::SeqCst);
    let t = spawn_app().await;
    let verifier = playhead_auth::ExternalVerifier::new(0, trust(&idp), &t.settings.issuer, 30).unwrap();
    let refetch = Duration::from_millis(200);
    let external = Arc::new(
        ExternalIssuers::new(
            vec![verifier],
            Arc::new(playhead::jwks::HttpJwksFetcher::new().unwrap()),
            t.identity.store().clone(),
        )
        .with_min_refetch(refetch),
    );
    external.prefetch().await;
    let auth =
        Authenticator::new(t.identity.verifier(30), t.app.ports().api_keys.clone(), t.app.clock().clone())
            .with_external_issuers(external);
    let scope = "history:read";

    // The IdP is down: its tokens cannot be checked, which is our outage, not the caller's fault.
    assert_eq!(
        authenticate(&auth, &access_token("kc-user-1", scope)).await,
        Err(StatusCode::SERVICE_UNAVAILABLE)
    );
    idp.up.store(true, Ordering::SeqCst);
    tokio::time::sleep(refetch * 2).await;
    assert!(
        authenticate(&auth, &access_token("kc-user-1", scope)).await.is_ok(),
        "recovers once the IdP answers"
    );

    // The IdP rotates: a new kid appears, the old one is withdrawn.
    let rotated = JWKS.replace("idp-rsa-1", "idp-rsa-2");
    *idp.jwks.write().unwrap() = rotated;
    let new_key = idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-2", &idp_claims("kc-user-1", scope));
    tokio::time::sleep(refetch * 2).await;
    let fetches = idp.fetches.load(Ordering::SeqCst);
    assert!(authenticate(&auth, &new_key).await.is_ok(), "an unknown kid refetches the key set");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), fetches + 1);
    let old_key = idp_sign(Algorithm::RS256, "at+jwt", "idp-rsa-1", &idp_claims("kc-user-1", scope));
    assert_eq!(
        authenticate(&auth, &old_key).await,
        Err(StatusCode::UNAUTHORIZED),
        "a withdrawn key is refused"
    );
    t.stop().await;
}

#[tokio::test]
async fn unusable_external_issuer_settings_are_refused_at_load_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("playhead.toml");
    std::fs::write(
        &file,
        r#"
[[identity.external_issuers]]
issuer = "https://idp.example"
jwks_uri = "https://idp.example/certs"
algorithms = ["HS256"]
audience = "playhead"
"#,
    )
    .unwrap();
    let err = playhead::config::Settings::load(Some(&file)).unwrap_err().to_string();
    assert!(err.contains("identity.external_issuers[0].algorithms") && err.contains("HMAC"), "{err}");

    std::fs::write(
        &file,
        r#"
[[identity.external_issuers]]
issuer = "https://idp.example"
jwks_uri = "https://idp.example/certs"
algorithms = ["RS256", "ES256"]
audience = "playhead"
max_role = "service"
access_token = { claim = "token_use", value = "access" }
claims = { roles = "cognito:groups", service_values = ["backend"] }
"#,
    )
    .unwrap();
    let s = playhead::config::Settings::load(Some(&file)).unwrap();
    assert_eq!(s.identity.external_issuers[0].claims.roles, "cognito:groups");
    assert_eq!(s.identity.external_issuers[0].claims.subject, "sub", "unset mappings keep their defaults");
}
