//! Pause history (issue 16): a profile that paused its history has its new playback events
//! answered `paused` (a `history-paused` problem, so players stop retrying) and recorded nowhere;
//! with `keep_resume_points_while_paused` the resume point still moves, and nothing else does.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// PATCH the profile's settings (with its current ETag); the new profile.
async fn set(t: &TestApp, v: &Viewer, body: Value) -> Value {
    let path = format!("/v1/profiles/{}", v.profile);
    let etag = t.get(&v.token, &path).await.headers()["etag"].to_str().unwrap().to_owned();
    let r = t
        .http
        .patch(t.url(&path))
        .bearer_auth(&v.token)
        .header("if-match", etag)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn paused_history_records_nothing_and_says_so_per_event() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 100)]).await;
    let v = t.viewer("pa@example.com").await;
    let profile = t.get_json(&v.token, &format!("/v1/profiles/{}", v.profile)).await;
    assert_eq!(
        (profile["history_paused"].clone(), profile["keep_resume_points_while_paused"].clone()),
        (json!(false), json!(false))
    );
    let p = set(&t, &v, json!({"history_paused": true})).await;
    assert_eq!(p["history_paused"], true);

    let mut batch = watching("m1", 0, 20, 5);
    batch.push(json!({"event_id": "not-a-uuid", "title_id": "m1", "kind": "start", "position_ms": 0,
                      "occurred_at": playhead_core::Timestamp(now_ms()).to_rfc3339()}));
    let res = t.events(&v, batch).await;
    assert_eq!(
        (res["paused"].as_u64(), res["accepted"].as_u64(), res["rejected"].as_u64()),
        (Some(41), Some(0), Some(1))
    );
    let first = &res["results"][0];
    assert_eq!(first["status"], "paused");
    assert_eq!(first["problem"]["type"], "/problems/history-paused");
    assert!(first["problem"]["detail"].as_str().unwrap().contains("paused"), "{first}");
    assert_eq!(res["results"][41]["status"], "rejected", "a malformed event is still named as such");
    t.settle().await;
    let progress = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
    assert_eq!(progress["position_ms"], 0, "{progress}");
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert_eq!(h["items"], json!([]));

    // Resume points kept: the resume point moves, no play appears.
    set(&t, &v, json!({"keep_resume_points_while_paused": true})).await;
    let res = t.events(&v, watching("m2", 0, 30, 5)).await;
    assert_eq!(res["paused"], 61);
    assert!(res["results"][0]["problem"]["detail"].as_str().unwrap().contains("resume point was kept"));
    t.settle().await;
    let progress = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m2", v.profile)).await;
    assert_eq!(progress["position_ms"], 30 * 60_000, "{progress}");
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert_eq!(h["items"], json!([]), "no play while paused");

    // Resumed: events are recorded again.
    set(&t, &v, json!({"history_paused": false})).await;
    let res = t.events(&v, watching("m1", 0, 20, 2)).await;
    assert_eq!((res["accepted"].as_u64(), res["paused"].as_u64()), (Some(41), Some(0)));
    t.settle().await;
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 1);
    t.stop().await;
}

on_both_backends!(paused_history_records_nothing_and_says_so_per_event);
