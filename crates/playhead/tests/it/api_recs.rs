//! Recommendations over HTTP: a trained model in service, rows that react to a new play within
//! seconds (next episode, and the model's neighbours of what was just watched), filters (watched,
//! not interested, kids maturity), similar titles, feedback and impressions, and bad input.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn ids(row: &Value) -> Vec<String> {
    row["items"].as_array().unwrap().iter().map(|i| i["title_id"].as_str().unwrap().to_owned()).collect()
}

fn item<'a>(row: &'a Value, title: &str) -> Option<&'a Value> {
    row["items"].as_array().unwrap().iter().find(|i| i["title_id"] == title)
}

fn film(id: &str, genre: &str, maturity: u8) -> Value {
    json!({"id": id, "kind": "movie", "name": format!("Movie {id}"), "duration_ms": 10 * 60_000,
           "genres": [genre], "maturity": maturity, "release_year": 2020})
}

/// The catalog: a series of four episodes and eight movies in two genres, one of them for adults.
fn catalog() -> Vec<Value> {
    let mut c = vec![series("show")];
    c.extend((1..=4).map(|e| episode("show", 1, e, 10)));
    for (id, genre) in [("d1", "Drama"), ("d2", "Drama"), ("d3", "Drama"), ("d4", "Drama")] {
        c.push(film(id, genre, 7));
    }
    for (id, genre) in [("c1", "Comedy"), ("c2", "Comedy"), ("c3", "Comedy")] {
        c.push(film(id, genre, 7));
    }
    c.push(film("adult", "Drama", 18));
    c
}

/// Train from the store, as `playhead recs train` does, and wait until the server serves it.
async fn train(t: &TestApp) -> String {
    train_with(t, &playhead_recs_config()).await
}

async fn train_with(t: &TestApp, config: &playhead_recs::TrainConfig) -> String {
    let ports = t.app.ports();
    let report = playhead::recs::train_from_store(
        ports.catalog.as_ref(),
        ports.recs.as_ref(),
        config,
        t.app.clock().now(),
    )
    .await
    .expect("train");
    let deadline = Instant::now() + Duration::from_secs(20);
    while t.app.recs_engine().version().as_deref() != Some(report.version.as_str()) {
        assert!(Instant::now() < deadline, "the server did not pick up {}", report.version);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.version
}

fn playhead_recs_config() -> playhead_recs::TrainConfig {
    // These tests pin the blend: no self-tuning on seven viewers.
    playhead_recs::TrainConfig {
        tune: playhead_recs::TuneConfig { enabled: false, ..Default::default() },
        ..Default::default()
    }
}

async fn spawn() -> TestApp {
    // Reload every second so the test sees a model trained on demand quickly.
    spawn_with(|s| s.recs.reload_interval_secs = 1).await
}

/// Six viewers who watch drama together (d1 with d2, d1 with d3) and one comedy fan.
async fn seed(t: &TestApp) {
    let plan: [&[&str]; 7] = [
        &["d1", "d2"],
        &["d1", "d2", "c1"],
        &["d1", "d2"],
        &["d1", "d3"],
        &["d2", "d1", "d4"],
        &["show.s1e1", "show.s1e2", "d4"],
        &["c1", "c2", "c3"],
    ];
    for (n, titles) in plan.iter().enumerate() {
        let v = t.viewer(&format!("seed{n}@example.com")).await;
        let mut evs = Vec::new();
        for (i, title) in titles.iter().enumerate() {
            evs.extend(watching(title, 0, 10, 600 - 30 * i as i64));
        }
        t.events(&v, evs).await;
    }
    t.settle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_play_changes_the_row_within_seconds_with_reasons() {
    let t = spawn().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    seed(&t).await;
    train(&t).await;

    let v = t.viewer("new@example.com").await;
    let url = format!("/v1/profiles/{}/recommendations?limit=10", v.profile);
    // A new profile: cold start, trending within its maturity limit.
    let cold = t.get_json(&v.token, &url).await;
    assert!(!ids(&cold).is_empty(), "cold start serves trending: {cold}");
    assert!(
        cold["items"].as_array().unwrap().iter().all(|i| i["reason"]["kind"] == "trending_now"),
        "{cold}"
    );
    assert!(item(&cold, "show.s1e2").is_none());

    // Watch the first episode: its next episode is recommended as soon as the play is applied.
    t.events(&v, watching("show.s1e1", 0, 10, 30)).await;
    let started = Instant::now();
    t.settle().await;
    let row = t.get_json(&v.token, &url).await;
    let next = item(&row, "show.s1e2").unwrap_or_else(|| panic!("next episode missing: {row}"));
    assert_eq!(next["reason"]["kind"], "next_episode");
    assert_eq!(next["reason"]["title_id"], "show");
    assert!(next["reason"]["text"].as_str().unwrap().contains("Series show"), "{next}");
    assert!(item(&row, "show.s1e1").is_none(), "watched titles never come back");
    assert!(next["score"].is_number() && next["title"]["name"] == "E2", "{next}");

    // Watch d1: the model's neighbours of d1 (d2 first) now appear, explained by d1. No retraining.
    t.events(&v, watching("d1", 0, 10, 10)).await;
    t.settle().await;
    let row = t.get_json(&v.token, &url).await;
    let d2 = item(&row, "d2").unwrap_or_else(|| panic!("d2 missing after watching d1: {row}"));
    assert_eq!(d2["reason"]["kind"], "because_you_watched", "{d2}");
    assert_eq!(d2["reason"]["title_id"], "d1");
    assert_eq!(d2["reason"]["text"], "Because you watched Movie d1");
    assert!(item(&row, "d1").is_none());
    assert!(started.elapsed() < Duration::from_secs(10), "reacted within seconds");

    // The because-you-watched row anchors on the latest play.
    let byw = t
        .get_json(&v.token, &format!("/v1/profiles/{}/recommendations?row=because-you-watched", v.profile))
        .await;
    assert_eq!(ids(&byw).first().map(String::as_str), Some("d2"), "{byw}");

    // Not interested: gone from every row, at once.
    let r = t
        .post(
            &v.token,
            &format!("/v1/profiles/{}/feedback", v.profile),
            &json!({"title_id": "d2", "kind": "not_interested"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let row = t.get_json(&v.token, &url).await;
    assert!(item(&row, "d2").is_none(), "{row}");
    let byw = t
        .get_json(&v.token, &format!("/v1/profiles/{}/recommendations?row=because-you-watched", v.profile))
        .await;
    assert!(item(&byw, "d2").is_none(), "{byw}");

    // Impressions are accepted (and counted: see the store contract).
    let r = t
        .post(&v.token, &format!("/v1/profiles/{}/impressions", v.profile), &json!({"title_ids": ids(&row)}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_co_watch_counters_serve_a_title_newer_than_the_model_within_seconds() {
    let t = spawn().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    seed(&t).await;
    let version = train(&t).await;
    // A premiere imported after training: the model has no weights for it at all.
    t.import(&ops, &[film("premiere", "Drama", 7)]).await;
    // Four viewers watch c3 and then the premiere: the consumer counts the pair as it applies.
    for n in 0..4 {
        let v = t.viewer(&format!("fan{n}@example.com")).await;
        let mut evs = watching("c3", 0, 10, 60);
        evs.extend(watching("premiere", 0, 10, 30));
        t.events(&v, evs).await;
    }
    t.settle().await;
    let v = t.viewer("late@example.com").await;
    let url = format!("/v1/profiles/{}/recommendations?limit=10", v.profile);
    t.events(&v, watching("c3", 0, 10, 10)).await;
    t.settle().await;
    // Only the live counters link c3 to the premiere (a Drama: no genre overlap with the Comedy
    // c3 either). The server re-joins the catalog every second, so poll for a few seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let row = loop {
        let row = t.get_json(&v.token, &url).await;
        if item(&row, "premiere").is_some() || Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let p = item(&row, "premiere").unwrap_or_else(|| panic!("premiere missing after watching c3: {row}"));
    assert_eq!(p["reason"]["kind"], "because_you_watched", "{p}");
    assert_eq!(p["reason"]["title_id"], "c3", "{p}");
    assert_eq!(t.app.recs_engine().version(), Some(version), "no retraining happened");
    t.stop().await;
}

/// Poll `url` until `done` holds of the row (the served row may be cached for a few seconds
/// after another profile's write), or the deadline passes; the last row either way.
async fn poll_row(t: &TestApp, token: &str, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let row = t.get_json(token, url).await;
        if done(&row) || Instant::now() > deadline {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_plays_stop_driving_co_watch_recommendations() {
    let t = spawn().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    seed(&t).await;
    train(&t).await;
    // A premiere newer than the model, linked to c3 only by the live counters of four viewers.
    t.import(&ops, &[film("premiere", "Drama", 7)]).await;
    let mut fans = Vec::new();
    for n in 0..4 {
        let v = t.viewer(&format!("fan{n}@example.com")).await;
        let mut evs = watching("c3", 0, 10, 60);
        evs.extend(watching("premiere", 0, 10, 30));
        t.events(&v, evs).await;
        fans.push(v);
    }
    t.settle().await;
    let v = t.viewer("late@example.com").await;
    let url = format!("/v1/profiles/{}/recommendations?limit=10", v.profile);
    t.events(&v, watching("c3", 0, 10, 10)).await;
    t.settle().await;
    let row = poll_row(&t, &v.token, &url, |r| item(r, "premiere").is_some()).await;
    assert!(item(&row, "premiere").is_some(), "the live pair serves the premiere first: {row}");

    // Every fan deletes their premiere play: the pairs (and votes) leave the counters with it.
    for fan in &fans {
        let history = t.get_json(&fan.token, &format!("/v1/profiles/{}/history", fan.profile)).await;
        let play = history["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title_id"] == "premiere")
            .unwrap_or_else(|| panic!("the premiere play: {history}"))["play_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let del = t
            .http
            .delete(t.url(&format!("/v1/profiles/{}/history/{play}", fan.profile)))
            .bearer_auth(&fan.token)
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), StatusCode::NO_CONTENT);
    }
    let row = poll_row(&t, &v.token, &url, |r| item(r, "premiere").is_none()).await;
    assert!(item(&row, "premiere").is_none(), "deleted plays still drive the row: {row}");
    assert!(!ids(&row).is_empty(), "the row still serves the rest: {row}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfilled_plays_feed_the_live_co_watch_counters() {
    let t = spawn().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    seed(&t).await;
    train(&t).await;
    t.import(&ops, &[film("premiere", "Drama", 7)]).await;
    // Four viewers import their history from elsewhere: c3, then the premiere, two days ago.
    let at = |hours_ago: i64| playhead_core::Timestamp(now_ms() - hours_ago * 3_600_000).to_rfc3339();
    for n in 0..4 {
        let v = t.viewer(&format!("importer{n}@example.com")).await;
        let body = json!({"plays": [{"title_id": "c3", "started_at": at(49)}, {"title_id": "premiere", "started_at": at(48)}]});
        let r: Value = t
            .post(&v.token, &format!("/v1/profiles/{}/history", v.profile), &body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r["results"][1]["status"], "created", "{r}");
    }
    let v = t.viewer("late@example.com").await;
    let url = format!("/v1/profiles/{}/recommendations?limit=10", v.profile);
    t.events(&v, watching("c3", 0, 10, 10)).await;
    t.settle().await;
    let row = poll_row(&t, &v.token, &url, |r| item(r, "premiere").is_some()).await;
    let p = item(&row, "premiere").unwrap_or_else(|| panic!("backfilled plays were not counted: {row}"));
    assert_eq!(p["reason"]["title_id"], "c3", "{p}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_the_model_and_why_its_settings_won() {
    let t = spawn().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    seed(&t).await;
    // The server's own training settings: self-tuning on.
    let version = train_with(&t, &playhead::recs::settings_train_config(&t.settings.recs)).await;
    let m = t.get_json(&ops, "/v1/admin/recs/model").await;
    assert_eq!(m["version"], version.as_str(), "{m}");
    let tuning = &m["tuning"];
    assert!(tuning["candidates"].as_array().is_some_and(|c| !c.is_empty()), "{m}");
    assert!(tuning["single_sources"].as_array().is_some_and(|c| c.len() == 3), "{m}");
    assert!(tuning["why"].as_str().is_some_and(|w| !w.is_empty()), "{m}");
    assert!(tuning["served"]["recall_at_20"]["lo"].is_number(), "{m}");
    assert_eq!(m["served"], tuning["guard"]["served"], "{m}");
    // Viewers may not read it.
    let v = t.viewer("curious@example.com").await;
    assert_eq!(t.get(&v.token, "/v1/admin/recs/model").await.status(), StatusCode::FORBIDDEN);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kids_profiles_similar_titles_and_trending() {
    let t = spawn().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    seed(&t).await;
    // Adults made "adult" the most watched title of the week (six fresh votes beat the five older
    // ones of d1).
    for n in 0..6 {
        let v = t.viewer(&format!("grown{n}@example.com")).await;
        t.events(&v, watching("adult", 0, 10, 20)).await;
    }
    t.settle().await;
    train(&t).await;

    let adult = t.viewer("parent@example.com").await;
    let trending = t
        .get_json(&adult.token, &format!("/v1/profiles/{}/recommendations?row=trending", adult.profile))
        .await;
    assert_eq!(ids(&trending).first().map(String::as_str), Some("adult"), "{trending}");

    let kid = t
        .app
        .insert_profile(
            adult.account,
            playhead_app::accounts::NewProfile {
                name: "Kid".into(),
                kids: true,
                maturity_limit: Some(7),
                private: false,
            },
        )
        .await
        .unwrap()
        .id;
    for row in ["top", "trending", "because-you-watched"] {
        let r = t.get_json(&adult.token, &format!("/v1/profiles/{kid}/recommendations?row={row}")).await;
        assert!(item(&r, "adult").is_none(), "{row}: above the kids limit: {r}");
    }
    let top = t.get_json(&adult.token, &format!("/v1/profiles/{kid}/recommendations")).await;
    assert!(!ids(&top).is_empty());

    let sim = t.get_json(&adult.token, "/v1/titles/d1/similar?limit=5").await;
    assert!(ids(&sim).len() <= 5);
    assert_eq!(ids(&sim).first().map(String::as_str), Some("d2"), "{sim}");
    assert!(sim["items"].as_array().unwrap().iter().all(|i| i["reason"]["kind"] == "similar_to"));
    assert!(item(&sim, "d1").is_none());
    let r = t.get(&adult.token, "/v1/titles/nope/similar").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}

#[tokio::test]
async fn bad_recommendation_requests_are_problems_naming_the_field() {
    let t = spawn().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    let v = t.viewer("ann@example.com").await;
    let other = t.viewer("bob@example.com").await;
    let problem = |r: reqwest::Response| async move {
        let status = r.status();
        assert_eq!(r.headers()["content-type"], "application/problem+json", "status {status}");
        (status, r.json::<Value>().await.unwrap())
    };
    let base = format!("/v1/profiles/{}", v.profile);

    let (s, p) = problem(t.get(&v.token, &format!("{base}/recommendations?row=sideways")).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "row");
    let (s, p) = problem(t.get(&v.token, &format!("{base}/recommendations?limit=0")).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "limit");
    let (s, _) = problem(t.get(&other.token, &format!("{base}/recommendations")).await).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another account's profile is not found");

    let fb = format!("{base}/feedback");
    let (s, p) = problem(t.post(&v.token, &fb, &json!({"title_id": "d1", "kind": "meh"})).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "kind");
    let (s, p) = problem(t.post(&v.token, &fb, &json!({"title_id": "nope", "kind": "up"})).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "title_id");
    let (s, p) = problem(t.post(&v.token, &fb, &json!({"title_id": "d1"})).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        p["detail"].as_str().unwrap_or_default().contains("kind") || p["errors"][0]["field"] == "kind",
        "{p}"
    );
    let (s, _) = problem(t.post(&other.token, &fb, &json!({"title_id": "d1", "kind": "up"})).await).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let im = format!("{base}/impressions");
    let (s, p) = problem(t.post(&v.token, &im, &json!({"title_ids": []})).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "title_ids");
    let (s, p) = problem(t.post(&v.token, &im, &json!({"title_ids": ["ok", "not ok"]})).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(p["errors"][0]["field"], "title_ids[1]");
    let many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let (s, _) = problem(t.post(&v.token, &im, &json!({"title_ids": many})).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Without a model yet, rows are empty, not errors.
    let r = t.get_json(&v.token, &format!("{base}/recommendations")).await;
    assert!(r["items"].is_array());
    t.stop().await;
}
