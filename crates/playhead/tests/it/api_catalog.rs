//! The catalog: PUT, GET, list, NDJSON import.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn import_is_an_idempotent_upsert_with_line_errors_named() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let lines = [
        movie("a", 90),
        json!({"id": "bad id", "kind": "movie", "name": "x", "duration_ms": 1}),
        movie("b", 80),
    ];
    let s = t.import(&ops, &lines).await;
    assert_eq!((s["created"].as_u64(), s["rejected"].as_u64()), (Some(2), Some(1)));
    assert_eq!(s["errors"][0]["line"], 2);
    assert_eq!(s["errors"][0]["errors"][0]["field"], "id");
    let again = t.import(&ops, &lines).await;
    assert_eq!((again["created"].as_u64(), again["unchanged"].as_u64()), (Some(0), Some(2)));
    let mut changed = movie("a", 91);
    changed["name"] = json!("Renamed");
    let s = t.import(&ops, &[changed]).await;
    assert_eq!(s["updated"], 1);
    let got = t.get_json(&ops, "/v1/titles/a").await;
    assert_eq!(got["name"], "Renamed");
    t.stop().await;
}

async fn put_creates_then_replaces_and_honours_if_match() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let body = movie("m1", 100);
    let r = t.http.put(t.url("/v1/titles/m1")).bearer_auth(&ops).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = t
        .http
        .put(t.url("/v1/titles/m1"))
        .bearer_auth(&ops)
        .header("if-match", "\"v99\"")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = t
        .http
        .put(t.url("/v1/titles/m1"))
        .bearer_auth(&ops)
        .header("if-match", &etag)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The id in the body must match the URL.
    let r = t.http.put(t.url("/v1/titles/other")).bearer_auth(&ops).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "id");
    t.stop().await;
}

async fn titles_are_listed_by_cursor() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let lines: Vec<Value> = (0..25).map(|i| movie(&format!("t{i:02}"), 90)).collect();
    t.import(&ops, &lines).await;
    let p1 = t.get_json(&ops, "/v1/titles?limit=10").await;
    let c = p1["next_cursor"].as_str().unwrap();
    let p2 = t.get_json(&ops, &format!("/v1/titles?limit=10&cursor={c}")).await;
    assert_eq!(p1["items"][9]["id"], "t09");
    assert_eq!(p2["items"][0]["id"], "t10");
    let r = t.get(&ops, "/v1/titles?cursor=forged.cursor").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    t.stop().await;
}

async fn imports_need_ndjson_and_catalog_write() {
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    let r = t
        .http
        .post(t.url("/v1/titles/import"))
        .bearer_auth(&v.token)
        .header("content-type", "application/x-ndjson")
        .body(movie("a", 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let ops = t.catalog_token().await;
    let r = t
        .http
        .post(t.url("/v1/titles/import"))
        .bearer_auth(&ops)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    t.stop().await;
}

// Every test above runs twice: on the embedded SQLite store and on PostgreSQL.
on_both_backends!(
    import_is_an_idempotent_upsert_with_line_errors_named,
    put_creates_then_replaces_and_honours_if_match,
    titles_are_listed_by_cursor,
    imports_need_ndjson_and_catalog_write,
);
