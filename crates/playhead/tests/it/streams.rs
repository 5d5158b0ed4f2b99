//! Concurrent streams (issue 17, decision 0092): a start beyond the account's limit is answered
//! `too_many_streams` with the live streams listed; stopping one lets a new start in and its
//! player learns at its next event; the timeout frees a slot; an operator sets an account's own
//! limit; a start flood never passes the limit, on one server and across two replicas.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// One player event now, in `session` on `device`.
fn play(title: &str, kind: &str, position_ms: i64, session: &str, device: &str) -> Value {
    json!({"event_id": uuid::Uuid::new_v4().to_string(), "title_id": title, "kind": kind,
           "position_ms": position_ms, "occurred_at": playhead_core::Timestamp(now_ms()).to_rfc3339(),
           "device_id": device, "session_id": session})
}

/// Send one event to `t` and return the whole batch answer.
async fn send(t: &TestApp, v: &Viewer, event: Value) -> Value {
    t.events(v, vec![event]).await
}

/// The status of the one event of a batch answer.
fn status(answer: &Value) -> &str {
    answer["results"][0]["status"].as_str().unwrap()
}

async fn delete(t: &TestApp, token: &str, path: &str) -> StatusCode {
    t.http.delete(t.url(path)).bearer_auth(token).send().await.unwrap().status()
}

async fn setup(t: &TestApp) -> Viewer {
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 100)]).await;
    t.viewer("streams@example.com").await
}

#[tokio::test]
async fn a_start_beyond_the_limit_lists_the_streams_and_stopping_one_lets_it_in() {
    let t = spawn_with(|s| s.streams.max_per_account = 2).await;
    let v = setup(&t).await;
    assert_eq!(status(&send(&t, &v, play("m1", "start", 60_000, "s-tv", "tv")).await), "accepted");
    assert_eq!(status(&send(&t, &v, play("m2", "start", 0, "s-phone", "phone")).await), "accepted");

    // The third player is refused, told why and shown what plays (device, title, since).
    let refused = send(&t, &v, play("m2", "start", 0, "s-pc", "pc")).await;
    assert_eq!((status(&refused), refused["too_many_streams"].as_u64()), ("too_many_streams", Some(1)));
    let problem = &refused["results"][0]["problem"];
    assert_eq!(problem["type"], "/problems/too-many-streams", "{problem}");
    assert_eq!(problem["limit"], "2 simultaneous streams per account");
    let listed: Vec<(&str, &str)> = problem["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["device_id"].as_str().unwrap(), s["title_id"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [("tv", "m1"), ("phone", "m2")]);
    assert!(problem["streams"][0]["started_at"].as_str().is_some(), "{problem}");

    // The same list, from any of the account's players.
    let mine = t.get_json(&v.token, "/v1/me/streams").await;
    assert_eq!(mine["limit"], 2);
    assert_eq!(mine["items"], problem["streams"]);

    // "Stop one": the TV's slot is free at once and the refused player gets in.
    let tv = mine["items"][0]["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(delete(&t, &v.token, &format!("/v1/me/streams/{tv}")).await, StatusCode::NO_CONTENT);
    assert_eq!(t.get_json(&v.token, "/v1/me/streams").await["items"].as_array().unwrap().len(), 1);
    assert_eq!(status(&send(&t, &v, play("m2", "start", 0, "s-pc", "pc")).await), "accepted");

    // The TV learns at its next heartbeat, which is not recorded: its resume point stays put.
    let stopped = send(&t, &v, play("m1", "heartbeat", 30 * 60_000, "s-tv", "tv")).await;
    assert_eq!((status(&stopped), stopped["stream_stopped"].as_u64()), ("stream_stopped", Some(1)));
    assert_eq!(stopped["results"][0]["problem"]["type"], "/problems/stream-stopped");
    t.settle().await;
    let progress = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
    assert_eq!(progress["position_ms"], 60_000, "{progress}");

    // A stopped, unknown or malformed stream id is not found / invalid; so is another account's.
    assert_eq!(delete(&t, &v.token, &format!("/v1/me/streams/{tv}")).await, StatusCode::NOT_FOUND);
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(delete(&t, &v.token, &format!("/v1/me/streams/{unknown}")).await, StatusCode::NOT_FOUND);
    assert_eq!(delete(&t, &v.token, "/v1/me/streams/not-a-uuid").await, StatusCode::BAD_REQUEST);
    let other = t.viewer("other@example.com").await;
    let phone =
        t.get_json(&v.token, "/v1/me/streams").await["items"][0]["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(delete(&t, &other.token, &format!("/v1/me/streams/{phone}")).await, StatusCode::NOT_FOUND);
    assert_eq!(t.get_json(&other.token, "/v1/me/streams").await["items"], json!([]));
    assert_eq!(t.get_json(&v.token, "/v1/me/streams").await["items"].as_array().unwrap().len(), 2);

    // Importing history (a backfill) plays nothing, so the limit does not apply to it.
    let r = t
        .post(
            &v.token,
            &format!("/v1/profiles/{}/events", v.profile),
            &json!({"backfill": true, "events": [play("m2", "start", 0, "s-old", "laptop")]}),
        )
        .await;
    assert_eq!(status(&r.json::<Value>().await.unwrap()), "accepted");

    // A player that ends its stream frees the slot for the next one.
    assert_eq!(status(&send(&t, &v, play("m2", "stop", 1_000, "s-phone", "phone")).await), "accepted");
    assert_eq!(status(&send(&t, &v, play("m1", "start", 0, "s-tv2", "tv")).await), "accepted");
    t.stop().await;
}

#[tokio::test]
async fn the_timeout_frees_the_slot_of_a_player_that_vanished() {
    let t = spawn_with(|s| {
        s.streams.max_per_account = 1;
        s.streams.timeout_secs = 1;
    })
    .await;
    let v = setup(&t).await;
    assert_eq!(status(&send(&t, &v, play("m1", "start", 0, "s-tv", "tv")).await), "accepted");
    assert_eq!(status(&send(&t, &v, play("m2", "start", 0, "s-pc", "pc")).await), "too_many_streams");
    // The TV goes silent (unplugged): one timeout later its slot is free.
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert_eq!(t.get_json(&v.token, "/v1/me/streams").await["items"], json!([]));
    assert_eq!(status(&send(&t, &v, play("m2", "start", 0, "s-pc", "pc")).await), "accepted");
    let items = t.get_json(&v.token, "/v1/me/streams").await["items"].clone();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["device_id"], "pc");
    t.stop().await;
}

#[tokio::test]
async fn an_operator_sets_and_clears_an_accounts_own_limit() {
    let t = spawn_with(|s| s.streams.max_per_account = 1).await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("family@example.com").await;
    let path = format!("/v1/admin/accounts/{}/stream-limit", v.account);
    let put = |token: &str, body: Value| {
        let req = t.http.put(t.url(&path)).bearer_auth(token).json(&body);
        async move { req.send().await.unwrap() }
    };
    let r = put(&ops, json!({"max_streams": 2})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let state: Value = r.json().await.unwrap();
    assert_eq!((state["max_streams"].clone(), state["effective"].clone()), (json!(2), json!(2)));
    assert_eq!(status(&send(&t, &v, play("m1", "start", 0, "a", "tv")).await), "accepted");
    assert_eq!(status(&send(&t, &v, play("m1", "start", 0, "b", "pc")).await), "accepted");
    let third = send(&t, &v, play("m1", "start", 0, "c", "phone")).await;
    assert_eq!(third["results"][0]["problem"]["limit"], "2 simultaneous streams per account");
    assert_eq!(t.get_json(&v.token, "/v1/me/streams").await["limit"], 2);

    // Back to the default: streams already playing play on, new ones wait.
    let state: Value = put(&ops, json!({"max_streams": null})).await.json().await.unwrap();
    assert_eq!((state["max_streams"].clone(), state["effective"].clone()), (Value::Null, json!(1)));
    assert_eq!(t.get_json(&v.token, "/v1/me/streams").await["limit"], 1);
    assert_eq!(status(&send(&t, &v, play("m1", "heartbeat", 1_000, "a", "tv")).await), "accepted");
    assert_eq!(status(&send(&t, &v, play("m1", "start", 0, "c", "phone")).await), "too_many_streams");

    // Bad input names the field; a viewer may not; an unknown account is 404.
    for body in [json!({}), json!({"max_streams": 1001}), json!({"max_streams": -1})] {
        let r = put(&ops, body.clone()).await;
        assert!(r.status().is_client_error(), "{body}: {}", r.status());
        let p: Value = r.json().await.unwrap();
        assert!(p.to_string().contains("max_streams"), "{body}: {p}");
    }
    assert_eq!(put(&v.token, json!({"max_streams": 9})).await.status(), StatusCode::FORBIDDEN);
    let unknown = format!("/v1/admin/accounts/{}/stream-limit", uuid::Uuid::now_v7());
    let r =
        t.http.put(t.url(&unknown)).bearer_auth(&ops).json(&json!({"max_streams": 3})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}

/// `n` concurrent single-start batches for `v`, sent round-robin to `servers`, each from its own
/// device: returns how many were accepted and how many refused.
async fn flood(servers: &[&TestApp], v: &Viewer, n: usize) -> (usize, usize) {
    let calls = (0..n).map(|i| {
        let t = servers[i % servers.len()];
        let body = json!({"events": [play("m1", "start", 0, &format!("s{i}"), &format!("dev{i}"))]});
        let req = t
            .http
            .post(t.url(&format!("/v1/profiles/{}/events", v.profile)))
            .bearer_auth(&v.token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            r.json::<Value>().await.unwrap()
        }
    });
    let answers = futures::future::join_all(calls).await;
    let count = |s: &str| answers.iter().filter(|a| status(a) == s).count();
    (count("accepted"), count("too_many_streams"))
}

#[tokio::test]
async fn a_concurrent_start_flood_never_passes_the_limit() {
    let t = spawn_with(|s| {
        s.streams.max_per_account = 3;
        s.rate_limits.ingest.limit = 10_000;
    })
    .await;
    let v = setup(&t).await;
    assert_eq!(flood(&[&t], &v, 24).await, (3, 21));
    assert_eq!(t.get_json(&v.token, "/v1/me/streams").await["items"].as_array().unwrap().len(), 3);
    t.stop().await;
}

/// Two replicas on one PostgreSQL schema: starts sent to both at once never pass the limit (no
/// double counting), and a stream stopped through one replica is refused on the other.
#[tokio::test]
async fn two_replicas_share_the_limit_and_the_stops() {
    if !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async move {
        let a = spawn_with(|s| {
            s.streams.max_per_account = 3;
            s.rate_limits.ingest.limit = 10_000;
        })
        .await;
        let b = spawn_replica(&a, |s| {
            s.streams.max_per_account = 3;
            s.rate_limits.ingest.limit = 10_000;
        })
        .await;
        let v = setup(&a).await;
        assert_eq!(flood(&[&a, &b], &v, 24).await, (3, 21));
        let on_a = a.get_json(&v.token, "/v1/me/streams").await;
        assert_eq!(on_a["items"].as_array().unwrap().len(), 3);
        assert_eq!(b.get_json(&v.token, "/v1/me/streams").await["items"], on_a["items"]);

        // Stop one through A; its player's next heartbeat reaches B and learns; the slot is
        // free on B.
        let stopped = &on_a["items"][0];
        let id = stopped["stream_id"].as_str().unwrap();
        assert_eq!(delete(&a, &v.token, &format!("/v1/me/streams/{id}")).await, StatusCode::NO_CONTENT);
        let dev = stopped["device_id"].as_str().unwrap();
        let session = format!("s{}", dev.trim_start_matches("dev"));
        assert_eq!(
            status(&send(&b, &v, play("m1", "heartbeat", 1_000, &session, dev)).await),
            "stream_stopped"
        );
        assert_eq!(status(&send(&b, &v, play("m1", "start", 0, "late", "late-dev")).await), "accepted");
        assert_eq!(
            status(&send(&a, &v, play("m1", "start", 0, "later", "later-dev")).await),
            "too_many_streams"
        );
        b.stop().await;
        a.stop().await;
    })
    .await;
}
