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

/// The feed routes and the archive's list each shows.
const FOLLOW_LISTS: [(&str, &str); 3] =
    [("following", "following"), ("followers", "followers"), ("follow-requests", "requests_received")];

/// Give `v`'s account a follow graph from every side: its main profile follows a public profile,
/// asks to follow a private one, is followed, blocks someone and shares nothing; a new private
/// profile of the account has a request waiting. Returns the private profile's id.
async fn feed_graph(app: &TestApp, v: &Viewer) -> String {
    let public = app.viewer("public@example.com").await;
    let blocked = app.viewer("blocked@example.com").await;
    let account = app.app.create_account("closed@example.com").await.unwrap().id;
    let closed = playhead_app::accounts::NewProfile {
        name: "Closed".into(),
        kids: false,
        maturity_limit: None,
        private: true,
    };
    let closed = app.app.insert_profile(account, closed).await.unwrap();
    let follow = |who: &Viewer, whom: String| {
        let path = format!("/v1/profiles/{}/following", who.profile);
        let token = who.token.clone();
        async move { app.post(&token, &path, &json!({"profile_id": whom})).await }
    };
    assert_eq!(follow(v, public.profile.to_string()).await.status(), StatusCode::CREATED);
    let r = follow(v, closed.id.to_string()).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"state": "requested"}));
    assert_eq!(follow(&public, v.profile.to_string()).await.status(), StatusCode::CREATED);
    let r = app
        .post(
            &v.token,
            &format!("/v1/profiles/{}/blocks", v.profile),
            &json!({"profile_id": blocked.profile.to_string()}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let r = app
        .http
        .put(app.url(&format!("/v1/profiles/{}/feed-settings", v.profile)))
        .bearer_auth(&v.token)
        .json(&json!({"share_activity": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let mine: Value = app
        .post(
            &v.token,
            &format!("/v1/accounts/{}/profiles", v.account),
            &json!({"name": "Private", "private": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    let private = mine["profile_id"].as_str().unwrap().to_owned();
    let r = follow(&public, private.clone()).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"state": "requested"}));
    private
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

    let private = feed_graph(&app, &v).await;
    // A watched mark (a manual play) and My list.
    let r = app.http.put(app.url(&p("watched/m3"))).bearer_auth(&v.token).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for t in ["m2", "m1"] {
        let r = app.http.put(app.url(&p(&format!("list/{t}")))).bearer_auth(&v.token).send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }

    let (status, doc) = archive(&app, &v.token, &v.account.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let doc = doc.unwrap();
    assert_eq!(doc["format"], "playhead.export.v2");
    assert_eq!(doc["account"]["account_id"], v.account.to_string());
    assert_eq!(doc["account"]["email"], "export@example.com");
    assert!(doc.get("follows").is_none(), "v2 keeps the follow graph per profile");
    let profiles = doc["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 3);
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
                    x["completed"],
                    x["manual"]
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
                    x["completed"],
                    x["manual"]
                ])
            })
            .collect();
        assert!(!shown.is_empty());
        assert_eq!(exported, shown, "profile {id}: the archive's plays are the API's");
    }
    let main = by_id[v.profile.to_string().as_str()];
    assert_eq!(main["plays"].as_array().unwrap().len(), 5, "{main}");
    assert_eq!(main["plays"].as_array().unwrap().iter().filter(|x| x["manual"] == true).count(), 1);
    assert_eq!(main["history_paused"], false);
    // My list as the API pages it.
    let list = app.get_json(&v.token, &p("list")).await;
    let shown: Vec<Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| json!({"title_id": x["title_id"], "added_at": x["added_at"]}))
        .collect();
    assert_eq!(shown.len(), 2);
    assert_eq!(main["my_list"], json!({"leave_when_finished": false, "items": shown}));
    assert_eq!(main["rollups"], json!([]));
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

    // The follow graph, list by list, as the feed routes show it, for both profiles that have one.
    for (id, lists) in [(v.profile.to_string(), FOLLOW_LISTS), (private.clone(), FOLLOW_LISTS)] {
        let exported = &by_id[id.as_str()]["follows"];
        for (route, field) in lists {
            let shown = app.get_json(&v.token, &format!("/v1/profiles/{id}/{route}?limit=100")).await;
            let shown: Vec<Value> = shown["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| json!({"profile_id": x["profile_id"], "since": x["since"]}))
                .collect();
            assert_eq!(exported[field], json!(shown), "profile {id}: {field} as GET {route} shows it");
        }
        let settings = app.get_json(&v.token, &format!("/v1/profiles/{id}/feed-settings")).await;
        assert_eq!(exported["share_activity"], settings["share_activity"], "profile {id}");
    }
    let follows = &main["follows"];
    assert_eq!(follows["share_activity"], false);
    assert_eq!(follows["following"].as_array().unwrap().len(), 1, "{follows}");
    assert_eq!(follows["followers"].as_array().unwrap().len(), 1, "{follows}");
    // What only the owner knows: a request still waiting, and whom it blocks.
    assert_eq!(follows["requests_sent"].as_array().unwrap().len(), 1, "{follows}");
    assert_eq!(follows["blocked"].as_array().unwrap().len(), 1, "{follows}");
    assert!(follows["blocked"][0]["at"].is_string(), "{follows}");
    let kept = &by_id[private.as_str()]["follows"];
    assert_eq!(kept["requests_received"].as_array().unwrap().len(), 1, "{kept}");
    assert_eq!(by_id[kid.as_str()]["follows"]["following"], json!([]));

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
