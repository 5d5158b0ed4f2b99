//! Bad input gets a clear, specific problem and never changes state.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn problem(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    assert_eq!(r.headers()["content-type"], "application/problem+json", "status {status}");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn whole_request_errors_are_problems_naming_the_cause() {
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    let url = t.url(&format!("/v1/profiles/{}/events", v.profile));
    let send = |body: String| {
        t.http.post(&url).bearer_auth(&v.token).header("content-type", "application/json").body(body).send()
    };

    let (s, p) = problem(send("{\"events\": [".into()).await.unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["type"], "/problems/malformed-request");

    let (s, p) = problem(send(json!({"events": [], "admin": true}).to_string()).await.unwrap()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(p["detail"].as_str().unwrap().contains("admin"));

    let big = json!({"events": [ev("m1", "pause", 1, 0)], "pad": "x".repeat(1024 * 1024)}).to_string();
    let (s, p) = problem(send(big).await.unwrap()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(p["limit"], "1 MiB body");

    let many: Vec<Value> = (0..501).map(|_| ev("m1", "pause", 1, 0)).collect();
    let (s, p) = problem(send(json!({"events": many}).to_string()).await.unwrap()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(p["limit"], "500 events per batch");

    let deep = format!("{{\"events\": [], \"x\": {}{}}}", "[".repeat(40), "]".repeat(40));
    let (s, _) = problem(send(deep).await.unwrap()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);

    let r = t
        .http
        .post(&url)
        .bearer_auth(&v.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (s, p) = problem(
        send(json!({"sent_at": "later", "events": [ev("m1", "pause", 1, 0)]}).to_string()).await.unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "sent_at");

    let r = t.get(&v.token, "/v1/profiles/not-a-uuid/history").await;
    let (s, p) = problem(r).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "profile_id");

    let r = t.get(&v.token, "/v1/nothing-here").await;
    assert_eq!(problem(r).await.0, StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn bad_events_are_rejected_one_by_one_and_the_rest_applied() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let mut events = vec![ev("m1", "pause", 600_000, 1)];
    let mut e = ev("m1", "pause", 1, 0);
    e["kind"] = json!("seek");
    events.push(e);
    let mut e = ev("m1", "pause", 1, 0);
    e.as_object_mut().unwrap().remove("occurred_at");
    events.push(e);
    events.push(ev("m1", "pause", 1, -10)); // ten minutes in the future
    events.push(ev("m1", "pause", 1, 31 * 24 * 60)); // 31 days old
    let mut e = ev("m1", "pause", 1, 0);
    e["event_id"] = json!("not-a-uuid");
    events.push(e);
    let r = t.events(&v, events).await;
    let fields: Vec<String> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["problem"]["errors"][0]["field"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(fields, ["-", "kind", "occurred_at", "occurred_at", "occurred_at", "event_id"]);
    assert_eq!(r["results"][3]["problem"]["errors"][0]["code"], "in_future");
    assert_eq!(r["results"][4]["problem"]["errors"][0]["code"], "too_old");
    assert_eq!(r["accepted"], 1);
    t.settle().await;
    let p = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
    assert_eq!(p["position_ms"], 600_000);
    t.stop().await;
}

#[tokio::test]
async fn old_events_are_accepted_as_a_backfill() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let old = watching("m1", 0, 20, 40 * 24 * 60);
    let r: Value = t
        .post(
            &v.token,
            &format!("/v1/profiles/{}/events", v.profile),
            &json!({"backfill": true, "events": old}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["accepted"], 41);
    t.stop().await;
}

#[tokio::test]
async fn the_openapi_document_and_docs_page_are_served() {
    let t = spawn_app().await;
    let doc: Value = t.http.get(t.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/profiles/{profile_id}/events"]["post"]["responses"]["503"].is_object());
    let r = t.http.get(t.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("swagger"));
    assert_eq!(t.http.get(t.url("/livez")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(t.http.get(t.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    t.stop().await;
}
