//! Issue 17's capabilities on two replicas of one scale-out deployment (one PostgreSQL schema,
//! one Redis, one JetStream stream): what a viewer does through one replica is what the other
//! shows at once (watched marks, My list, the rows cached in Redis), a device signed out through
//! one is refused by the other within the revocation bound, and PIN guesses spread over both
//! replicas share one lockout. Concurrent streams across replicas are in `streams.rs`.

use std::time::Duration;

use playhead_core::identity::{ClientType, GrantType};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::oauth::{client, form, oauth_err, person, tokens_via_device};
use crate::support::*;

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["title_id"].as_str().unwrap().to_owned()).collect()
}

async fn put(t: &TestApp, token: &str, path: &str) -> StatusCode {
    t.http.put(t.url(path)).bearer_auth(token).send().await.unwrap().status()
}

async fn delete(t: &TestApp, token: &str, path: &str) -> StatusCode {
    t.http.delete(t.url(path)).bearer_auth(token).send().await.unwrap().status()
}

/// Poll `t` until `path` answers `status` with `token` (revocations reach a replica with its
/// next poll of the store: `identity.revocation_poll_ms`, 100 ms in the tests).
async fn eventually(t: &TestApp, token: &str, path: &str, status: StatusCode) {
    for _ in 0..100 {
        if t.get(token, path).await.status() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never answered {status}");
}

/// Marks and My list written through A are read through B at once, including rows B had just
/// cached (the row cache is shared in Redis and its generation moves with the write); an unmark
/// through B shows through A.
#[tokio::test]
async fn marks_and_my_list_written_through_one_replica_show_through_the_other() {
    on(Backend::Postgres, async {
        let a = spawn_app().await;
        let b = spawn_replica(&a, |_| {}).await;
        let ops = a.catalog_token().await;
        a.import(&ops, &[movie("m1", 100), movie("m2", 90), series("s"), episode("s", 1, 1, 45)]).await;
        let v = a.viewer("ann@example.com").await;
        let base = format!("/v1/profiles/{}", v.profile);
        a.events(&v, watching("m1", 0, 30, 60)).await;
        a.settle().await;
        b.settle().await;

        // B serves (and caches) Continue watching with m1 half watched.
        let cw = b.get_json(&v.token, &format!("{base}/continue-watching")).await;
        assert_eq!(ids(&cw), ["m1"]);
        assert_eq!(cw["items"][0]["title"]["watched"], false);
        assert_eq!(cw["items"][0]["title"]["play_count"], 1);

        // Marked through A: B's next read no longer offers it and its history shows the mark.
        assert_eq!(put(&a, &v.token, &format!("{base}/watched/m1")).await, StatusCode::OK);
        assert!(ids(&b.get_json(&v.token, &format!("{base}/continue-watching")).await).is_empty());
        let h = b.get_json(&v.token, &format!("{base}/history")).await;
        assert_eq!(h["items"][0]["manual"], true);
        assert_eq!(h["items"][0]["title"]["watched"], true);
        assert_eq!(h["items"][0]["title"]["play_count"], 2);

        // A season mark through B drives Next up on A.
        assert_eq!(put(&b, &v.token, &format!("{base}/watched/s.s1e1")).await, StatusCode::OK);
        let h = a.get_json(&v.token, &format!("{base}/history?title_id=s.s1e1")).await;
        assert_eq!(h["items"][0]["title"]["watched"], true);

        // Unmarked through B: A shows m1 unwatched again, its real play kept.
        assert_eq!(delete(&b, &v.token, &format!("{base}/watched/m1")).await, StatusCode::NO_CONTENT);
        let h = a.get_json(&v.token, &format!("{base}/history")).await;
        let m1: Vec<&Value> =
            h["items"].as_array().unwrap().iter().filter(|i| i["title_id"] == "m1").collect();
        assert_eq!(m1.len(), 1);
        assert_eq!(
            (m1[0]["manual"].clone(), m1[0]["title"]["watched"].clone()),
            (json!(false), json!(false))
        );

        // My list: added through both, read through either, newest first; removed through A.
        assert_eq!(put(&a, &v.token, &format!("{base}/list/m2")).await, StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(put(&b, &v.token, &format!("{base}/list/m1")).await, StatusCode::CREATED);
        assert_eq!(
            put(&a, &v.token, &format!("{base}/list/m1")).await,
            StatusCode::NO_CONTENT,
            "already there"
        );
        let on_a = a.get_json(&v.token, &format!("{base}/list")).await;
        assert_eq!(ids(&on_a), ["m1", "m2"]);
        assert_eq!(b.get_json(&v.token, &format!("{base}/list")).await["items"], on_a["items"]);
        assert_eq!(delete(&a, &v.token, &format!("{base}/list/m1")).await, StatusCode::NO_CONTENT);
        assert_eq!(ids(&b.get_json(&v.token, &format!("{base}/list")).await), ["m2"]);
        assert_eq!(delete(&b, &v.token, &format!("{base}/list/m1")).await, StatusCode::NOT_FOUND);

        b.stop().await;
        a.stop().await;
    })
    .await;
}

/// Devices signed in through A are listed by B; one signed out through B loses its refresh
/// token at once on A and its access token on A within the revocation bound; "sign out
/// everywhere" through A reaches B the same way, and another account is untouched.
#[tokio::test]
async fn devices_signed_out_through_one_replica_are_refused_by_the_other() {
    on(Backend::Postgres, async {
        let a = spawn_app().await;
        let b = spawn_replica(&a, |_| {}).await;
        let tv =
            client(&a, ClientType::Public, &[GrantType::DeviceCode, GrantType::RefreshToken], None).await;
        let v = person(&a, "dee@example.com").await;
        let kids_tv = tokens_via_device(&a, &tv, &v, true).await;
        let phone = tokens_via_device(&a, &tv, &v, false).await;
        let (phone_at, kids_at) =
            (phone["access_token"].as_str().unwrap(), kids_tv["access_token"].as_str().unwrap());
        let other = person(&a, "eve@example.com").await;
        let eve_at =
            tokens_via_device(&a, &tv, &other, false).await["access_token"].as_str().unwrap().to_owned();

        let on_b = b.get_json(phone_at, "/v1/me/sessions").await;
        assert_eq!(on_b["items"].as_array().unwrap().len(), 2, "{on_b}");
        let kids_sid =
            on_b["items"].as_array().unwrap().iter().find(|d| d["current"] == false).unwrap()["session_id"]
                .as_str()
                .unwrap()
                .to_owned();
        // Another account cannot sign it out through either replica.
        assert_eq!(delete(&b, &eve_at, &format!("/v1/me/sessions/{kids_sid}")).await, StatusCode::NOT_FOUND);

        // Signed out through B: the refresh token dies at once on A, the access token soon.
        assert_eq!(
            delete(&b, phone_at, &format!("/v1/me/sessions/{kids_sid}")).await,
            StatusCode::NO_CONTENT
        );
        let kids_rt = kids_tv["refresh_token"].as_str().unwrap();
        let r = form(
            &a,
            "/oauth/token",
            Some(&tv),
            &[("grant_type", "refresh_token"), ("refresh_token", kids_rt)],
        )
        .await;
        assert_eq!(oauth_err(r).await.1, "invalid_grant");
        eventually(&a, kids_at, &format!("/v1/profiles/{}/history", v.profile), StatusCode::UNAUTHORIZED)
            .await;
        assert_eq!(a.get_json(phone_at, "/v1/me/sessions").await["items"].as_array().unwrap().len(), 1);

        // Everywhere, through A: B refuses the phone's token too; Eve keeps hers.
        let r = a.post(phone_at, "/v1/me/sessions/revoke-all", &json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 1);
        eventually(&b, phone_at, "/v1/me", StatusCode::UNAUTHORIZED).await;
        let phone_rt = phone["refresh_token"].as_str().unwrap();
        let r = form(
            &b,
            "/oauth/token",
            Some(&tv),
            &[("grant_type", "refresh_token"), ("refresh_token", phone_rt)],
        )
        .await;
        assert_eq!(oauth_err(r).await.1, "invalid_grant");
        assert_eq!(b.get(&eve_at, "/v1/me/sessions").await.status(), StatusCode::OK);

        b.stop().await;
        a.stop().await;
    })
    .await;
}

async fn verify_pin(t: &TestApp, token: &str, profile: &str, pin: &str) -> reqwest::Response {
    t.post(token, &format!("/v1/profiles/{profile}/pin/verify"), &json!({"pin": pin})).await
}

/// PIN guesses alternating between the replicas count against one lockout (the failure
/// counter is in Redis): the fifth wrong guess locks the profile on both, the right PIN
/// included; a PIN set through A is checked by B, and removing it through B frees A.
#[tokio::test]
async fn pin_guesses_spread_over_replicas_share_one_lockout() {
    on(Backend::Postgres, async {
        // The per-address limit (shared with sign-in) is not what this test is about.
        let a = spawn_with(|s| s.identity.attempts_per_address_per_minute = 1_000).await;
        let b = spawn_replica(&a, |s| s.identity.attempts_per_address_per_minute = 1_000).await;
        let v = person(&a, "pin@example.com").await;
        let profile = v.profile.to_string();
        let r = a
            .http
            .put(a.url(&format!("/v1/profiles/{profile}/pin")))
            .bearer_auth(&v.token)
            .json(&json!({"pin": "2580"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(verify_pin(&b, &v.token, &profile, "2580").await.status(), StatusCode::NO_CONTENT);

        for (i, left) in ["4 attempts left", "3 attempts left", "2 attempts left", "1 attempt left"]
            .into_iter()
            .enumerate()
        {
            let t = if i % 2 == 0 { &a } else { &b };
            let r = verify_pin(t, &v.token, &profile, "0000").await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "guess {i}");
            let detail = r.json::<Value>().await.unwrap()["detail"].as_str().unwrap().to_owned();
            assert!(detail.contains(left), "guess {i} ({left}): {detail}");
        }
        let r = verify_pin(&a, &v.token, &profile, "0000").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the fifth failure locks the profile");
        for t in [&a, &b] {
            let r = verify_pin(t, &v.token, &profile, "2580").await;
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "locked on both replicas");
            assert!(r.headers().contains_key("retry-after"));
        }

        // The account removes the PIN through B: nothing to guess, A lets the profile in.
        let r = b
            .http
            .delete(b.url(&format!("/v1/profiles/{profile}/pin")))
            .bearer_auth(&v.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(verify_pin(&a, &v.token, &profile, "1111").await.status(), StatusCode::NO_CONTENT);

        b.stop().await;
        a.stop().await;
    })
    .await;
}
