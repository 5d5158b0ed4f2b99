//! Data export (issue 16): what the API shows for an account is in its archive, on both
//! backends; another account's token gets 404; an erased account has no export.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

on_both_backends!(an_export_round_trips_what_the_api_shows);

async fn archive(app: &TestApp, token: &str, account: &str) -> (StatusCode, Option<Value>) {
    let r = app.post(token, &format!("/v1/accounts/{account}/exports"), &json!({})).await;
    if r.status() != StatusCode::ACCEPTED {
        return (r.status(), None);
    }
    let url = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["archive"], url.as_str());
    let r = app.get(token, &url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    (StatusCode::OK, Some(r.json().await.unwrap()))
}

async fn an_export_round_trips_what_the_api_shows() {
    let app = spawn_app().await;
    let ops = app.catalog_token().await;
    app.import(&ops, &[movie("m1", 20), movie("m2", 20), movie("m3", 60)]).await;
    let v = app.viewer("export@example.com").await;
    let second: Value = app
        .post(
            &v.token,
            &format!("/v1/accounts/{}/profiles", v.account),
            &json!({"name": "Kid", "kids": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let kid = second["profile_id"].as_str().unwrap().to_owned();
    app.events(&v, watching("m1", 0, 19, 300)).await;
    app.events(&v, watching("m1", 0, 19, 200)).await;
    app.events(&v, watching("m2", 0, 15, 100)).await;
    app.events(&v, watching("m3", 0, 10, 30)).await;
    let kid_events = json!({"events": watching("m2", 0, 10, 50)});
    let r = app.post(&v.token, &format!("/v1/profiles/{kid}/events"), &kid_events).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.settle().await;
    let p = |path: &str| format!("/v1/profiles/{}/{path}", v.profile);
    let r = app.post(&v.token, &p("feedback"), &json!({"title_id": "m2", "kind": "not_interested"})).await;
    assert!(r.status().is_success());
    let r = app.http.delete(app.url(&p("continue-watching/m3"))).bearer_auth(&v.token).send().await.unwrap();
    assert!(r.status().is_success());

    let (status, doc) = archive(&app, &v.token, &v.account.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let doc = doc.unwrap();
    assert_eq!(doc["format"], "playhead.export.v1");
    assert_eq!(doc["account"]["account_id"], v.account.to_string());
    assert_eq!(doc["account"]["email"], "export@example.com");
    assert!(doc["follows"].is_null());
    let profiles = doc["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2);
    let by_id: BTreeMap<&str, &Value> =
        profiles.iter().map(|x| (x["profile_id"].as_str().unwrap(), x)).collect();

    // Every play the API lists, with its period and watched figures, for each profile.
    for (id, token) in [(v.profile.to_string(), &v.token), (kid.clone(), &v.token)] {
        let shown = app.get_json(token, &format!("/v1/profiles/{id}/history?limit=100")).await;
        let shown: Vec<Value> = shown["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                json!([
                    x["play_id"],
                    x["title_id"],
                    x["started_at"],
                    x["ended_at"],
                    x["watched_ms"],
                    x["completed"]
                ])
            })
            .collect();
        let exported: Vec<Value> = by_id[id.as_str()]["plays"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                json!([
                    x["play_id"],
                    x["title_id"],
                    x["started_at"],
                    x["ended_at"],
                    x["watched_ms"],
                    x["completed"]
                ])
            })
            .collect();
        assert!(!shown.is_empty());
        assert_eq!(exported, shown, "profile {id}: the archive's plays are the API's");
    }
    let main = by_id[v.profile.to_string().as_str()];
    assert_eq!(main["plays"].as_array().unwrap().len(), 4, "{main}");
    // Resume points as the progress endpoint shows them.
    for t in ["m1", "m2", "m3"] {
        let shown = app.get_json(&v.token, &p(&format!("progress/{t}"))).await;
        let exported = main["resume_points"].as_array().unwrap().iter().find(|r| r["title_id"] == t).unwrap();
        assert_eq!(exported["position_ms"], shown["position_ms"], "{t}");
        assert_eq!(exported["duration_ms"], shown["duration_ms"], "{t}");
    }
    assert_eq!(main["hidden_titles"][0]["title_id"], "m3");
    assert_eq!(
        main["feedback"],
        json!([{"title_id": "m2", "kind": "not_interested", "at": main["feedback"][0]["at"]}])
    );

    // Someone else's account or export: not found.
    let other = app.viewer("other@example.com").await;
    let (status, _) = archive(&app, &other.token, &v.account.to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mine: Value = app
        .post(&v.token, &format!("/v1/accounts/{}/exports", v.account), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let r = app.get(&other.token, mine["archive"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .get(
            &other.token,
            &format!("/v1/accounts/{}/exports/{}", other.account, mine["export_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "an export id of another account");
    app.stop().await;
}
