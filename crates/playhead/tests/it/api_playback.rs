//! Events, resume points, history: what a player and a viewer see.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn events_become_a_resume_point_and_a_play() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    // 20 minutes of a 100-minute film.
    let res = t.events(&v, watching("m1", 0, 20, 5)).await;
    assert_eq!(res["accepted"], 41);
    t.settle().await;

    let p = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
    assert_eq!(p["position_ms"], 20 * 60_000);
    assert_eq!(p["state"], "in_progress");
    assert_eq!(p["percent"], 20.0);

    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    let plays = h["items"].as_array().unwrap();
    assert_eq!(plays.len(), 1);
    assert_eq!(plays[0]["watched_ms"], 20 * 60_000);
    assert_eq!(plays[0]["completed"], false);
    assert_eq!(plays[0]["title"]["name"], "Movie m1");
    t.stop().await;
}

async fn resending_a_batch_changes_nothing() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let batch = watching("m1", 0, 10, 5);
    t.events(&v, batch.clone()).await;
    let again = t.events(&v, batch).await;
    assert_eq!(again["duplicate"], 21);
    assert_eq!(again["accepted"], 0);
    t.settle().await;
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 1);
    assert_eq!(h["items"][0]["watched_ms"], 10 * 60_000);
    t.stop().await;
}

async fn a_put_resume_point_is_visible_at_once_and_recorded_as_a_pause() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let path = format!("/v1/profiles/{}/progress/m1", v.profile);
    let r = t
        .http
        .put(t.url(&path))
        .bearer_auth(&v.token)
        .json(&json!({"position_ms": 1_800_000, "device_id": "phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["position_ms"], 1_800_000);
    // No consumer round trip needed: the read right after sees it.
    let got = t.get(&v.token, &path).await;
    assert_eq!(got.headers()["etag"].to_str().unwrap(), etag);
    // Conditional GET.
    let r =
        t.http.get(t.url(&path)).bearer_auth(&v.token).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // A stale If-Match is refused; a current one is honoured; none is fine (last writer wins).
    let stale = "\"p1-00000000000000000000000000000000\"";
    let r = t
        .http
        .put(t.url(&path))
        .bearer_auth(&v.token)
        .header("if-match", stale)
        .json(&json!({"position_ms": 60_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = t
        .http
        .put(t.url(&path))
        .bearer_auth(&v.token)
        .header("if-match", &etag)
        .json(&json!({"position_ms": 2_000_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // An older write (by occurred_at) loses: last writer wins by the client's clock.
    let old = playhead_core::Timestamp(now_ms() - 3_600_000).to_rfc3339();
    let r = t
        .http
        .put(t.url(&path))
        .bearer_auth(&v.token)
        .json(&json!({"position_ms": 120_000, "occurred_at": old}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["position_ms"], 2_000_000);
    t.stop().await;
}

async fn reaching_the_credits_completes_and_resets_the_resume_point() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let mut m = movie("m1", 100);
    m["credits_start_ms"] = json!(95 * 60_000);
    t.import(&ops, &[m]).await;
    let v = t.viewer("ann@example.com").await;
    // 91% is past the default 90% but before the credits: not finished.
    t.events(&v, vec![ev("m1", "start", 0, 200), ev("m1", "heartbeat", 91 * 60_000, 100)]).await;
    t.settle().await;
    let p = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
    assert_eq!(p["state"], "in_progress");
    t.events(&v, vec![ev("m1", "heartbeat", 95 * 60_000, 96)]).await;
    t.settle().await;
    let p = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
    assert_eq!((p["state"].as_str(), p["position_ms"].as_i64()), (Some("finished"), Some(0)));
    t.stop().await;
}

async fn events_for_a_title_not_yet_imported_are_held_then_applied() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let v = t.viewer("ann@example.com").await;
    let res = t.events(&v, watching("premiere", 0, 10, 1)).await;
    assert_eq!(res["held"], 21);
    assert_eq!(res["results"][0]["status"], "held");
    t.settle().await;
    let r = t.get(&v.token, &format!("/v1/profiles/{}/progress/premiere", v.profile)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the title is unknown until imported");
    let summary = t.import(&ops, &[movie("premiere", 50)]).await;
    assert_eq!(summary["released_held"], 21);
    t.settle().await;
    let p = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/premiere", v.profile)).await;
    assert_eq!(p["position_ms"], 10 * 60_000);
    t.stop().await;
}

async fn a_wrong_device_clock_is_corrected_by_sent_at() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    // The TV believes it is two hours later than it is.
    let skew = 2 * 3_600_000;
    let sent_at = playhead_core::Timestamp(now_ms() + skew).to_rfc3339();
    let at = playhead_core::Timestamp(now_ms() + skew - 60_000).to_rfc3339();
    let event = json!({"event_id": uuid::Uuid::new_v4().to_string(), "title_id": "m1", "kind": "pause", "position_ms": 600_000, "occurred_at": at});
    // Without sent_at the event is in the future and rejected...
    let r: Value = t
        .post(&v.token, &format!("/v1/profiles/{}/events", v.profile), &json!({"events": [event]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["problem"]["errors"][0]["field"], "occurred_at");
    // ...with sent_at it is shifted back and accepted.
    let mut event = event.clone();
    event["event_id"] = json!(uuid::Uuid::new_v4().to_string());
    let r: Value = t
        .post(
            &v.token,
            &format!("/v1/profiles/{}/events", v.profile),
            &json!({"sent_at": sent_at, "events": [event]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["accepted"], 1);
    t.settle().await;
    let p = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
    let updated = playhead_core::Timestamp::parse_rfc3339(p["updated_at"].as_str().unwrap()).unwrap();
    assert!((updated.0 - now_ms()).abs() < 60_000, "stored time is server time, not the TV's");
    t.stop().await;
}

async fn positions_slightly_past_the_end_are_clamped_far_past_rejected() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let r = t
        .events(
            &v,
            vec![
                ev("m1", "heartbeat", 100 * 60_000 + 30_000, 1),
                ev("m1", "heartbeat", 120 * 60_000, 1),
                ev("m1", "heartbeat", -5, 1),
            ],
        )
        .await;
    let st: Vec<&str> =
        r["results"].as_array().unwrap().iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(st, ["accepted", "rejected", "rejected"]);
    assert_eq!(r["results"][1]["problem"]["errors"][0]["field"], "position_ms");
    t.stop().await;
}

async fn a_full_backlog_answers_503_with_retry_after_and_stores_nothing() {
    let t = spawn_with(|s| s.limits.max_backlog = 5).await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let batch = watching("m1", 0, 5, 1); // 11 events > 5
    let r = t.post(&v.token, &format!("/v1/profiles/{}/events", v.profile), &json!({"events": batch})).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // The same batch in small pieces goes through: nothing from the refused one was stored.
    for chunk in batch.chunks(3) {
        let res = t.events(&v, chunk.to_vec()).await;
        assert_eq!(res["accepted"].as_u64().unwrap() as usize, chunk.len());
        t.settle().await;
    }
    t.stop().await;
}

async fn history_pages_cover_every_play_once_newest_first() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let plays: Vec<Value> = (0..45)
        .map(|i| json!({"title_id": "m1", "started_at": playhead_core::Timestamp(now_ms() - (i + 1) * 86_400_000 / 2).to_rfc3339(), "completed": i % 2 == 0}))
        .collect();
    let r = t.post(&v.token, &format!("/v1/profiles/{}/history", v.profile), &json!({"plays": plays})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map_or(String::from("?limit=10"), |c| format!("?limit=10&cursor={c}"));
        let page = t.get_json(&v.token, &format!("/v1/profiles/{}/history{q}", v.profile)).await;
        seen.extend(
            page["items"].as_array().unwrap().iter().map(|p| p["started_at"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 45);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, sorted, "newest first, no repeats");
    // Filters compose with the cursor.
    let done =
        t.get_json(&v.token, &format!("/v1/profiles/{}/history?completed=true&limit=100", v.profile)).await;
    assert_eq!(done["items"].as_array().unwrap().len(), 23);
    // A cursor from one query is refused on another.
    let first = t.get_json(&v.token, &format!("/v1/profiles/{}/history?limit=5", v.profile)).await;
    let c = first["next_cursor"].as_str().unwrap();
    let r = t
        .get(&v.token, &format!("/v1/profiles/{}/history?limit=5&completed=true&cursor={c}", v.profile))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    t.stop().await;
}

async fn backfilled_plays_are_deduplicated_and_deleted_plays_stay_deleted() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 90)]).await;
    let v = t.viewer("ann@example.com").await;
    let started = playhead_core::Timestamp(now_ms() - 400 * 86_400_000).to_rfc3339();
    let body = json!({"plays": [{"title_id": "m1", "started_at": started}, {"title_id": "m1", "started_at": started}, {"title_id": "nope", "started_at": started}]});
    let r: Value =
        t.post(&v.token, &format!("/v1/profiles/{}/history", v.profile), &body).await.json().await.unwrap();
    let st: Vec<&str> =
        r["results"].as_array().unwrap().iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(st, ["created", "duplicate", "rejected"]);
    let play_id = r["results"][0]["play_id"].as_str().unwrap().to_owned();
    let del = t
        .http
        .delete(t.url(&format!("/v1/profiles/{}/history/{play_id}", v.profile)))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    // Sending the same backfill again does not bring it back.
    let r: Value = t
        .post(
            &v.token,
            &format!("/v1/profiles/{}/history", v.profile),
            &json!({"plays": [{"title_id": "m1", "started_at": started}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"][0]["status"], "deleted");
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert!(h["items"].as_array().unwrap().is_empty());
    // Deleting it twice, or deleting a play that is not there, is a 404.
    let del = t
        .http
        .delete(t.url(&format!("/v1/profiles/{}/history/{play_id}", v.profile)))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NOT_FOUND);
    t.stop().await;
}

async fn a_deleted_live_play_is_not_rebuilt_by_late_or_resent_events() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let events = watching("m1", 0, 20, 60);
    t.events(&v, events[..30].to_vec()).await;
    t.settle().await;
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    let play = h["items"][0]["play_id"].as_str().unwrap().to_owned();
    t.http
        .delete(t.url(&format!("/v1/profiles/{}/history/{play}", v.profile)))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    // The rest of the viewing arrives late, and the first part is resent.
    t.events(&v, events[30..].to_vec()).await;
    t.events(&v, events[..30].to_vec()).await;
    t.settle().await;
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert!(h["items"].as_array().unwrap().is_empty(), "{h}");
    t.stop().await;
}

async fn an_autoplay_preview_leaves_no_play() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    t.events(&v, watching("m1", 0, 2, 1)).await;
    t.settle().await;
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert!(h["items"].as_array().unwrap().is_empty());
    t.stop().await;
}

/// How players really report: one heartbeat per request, each applied on its own (the apply
/// then extends the viewing instead of re-reading the session). The plays must be exactly those of
/// the same events sent in one batch, including after a late event lands in the middle, a gap
/// starts a second viewing, and the credits complete it.
async fn one_heartbeat_at_a_time_gives_the_same_plays_as_one_batch() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 30)]).await;
    let live = t.viewer("live@example.com").await;
    let batch = t.viewer("batch@example.com").await;
    // 12 minutes, then (after a gap longer than a session's) 20 more to the end of the film.
    let mut events = watching("m1", 0, 12, 60);
    events.extend(watching("m1", 10, 20, 0));
    let late = events.remove(7);
    for e in &events {
        t.events(&live, vec![e.clone()]).await;
        t.settle().await;
    }
    t.events(&live, vec![late.clone()]).await;
    events.push(late);
    // The same events under new ids (an event id is stored once, whoever sends it).
    for e in &mut events {
        e["event_id"] = json!(uuid::Uuid::new_v4().to_string());
    }
    assert_eq!(t.events(&batch, events).await["accepted"], 66);
    t.settle().await;
    let plays = |v: &Viewer| {
        let path = format!("/v1/profiles/{}/history", v.profile);
        let token = v.token.clone();
        let t = &t;
        async move {
            let h = t.get_json(&token, &path).await;
            h["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["started_at"].clone(),
                        p["ended_at"].clone(),
                        p["watched_ms"].clone(),
                        p["completed"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let (got, want) = (plays(&live).await, plays(&batch).await);
    assert_eq!(want.len(), 2, "two viewings: {want:?}");
    assert_eq!(want[0].2, 20 * 60_000);
    assert_eq!(want[0].3, true, "the second viewing reached the credits");
    assert_eq!(got, want);
    t.stop().await;
}

/// A resume-point write holds a store transaction while it applies: it must never wait for a
/// second connection from the same pool (the 30-minute scale-out soak found the apply reading
/// the catalog inside its transaction; with the pool full of such writes, each waited for the
/// others until the acquire timeout and every request answered 503). Many concurrent writes on
/// a pool of two connections all succeed.
async fn concurrent_resume_point_writes_never_wait_on_their_own_pool() {
    let t = spawn_with(|s| s.database_max_connections = 2).await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    let writes = (0..16).map(|i| {
        let path = format!("/v1/profiles/{}/progress/m{}", v.profile, 1 + i % 2);
        let req = t
            .http
            .put(t.url(&path))
            .bearer_auth(&v.token)
            .json(&json!({"position_ms": 60_000 * (i + 1), "device_id": "phone"}));
        async move { req.send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    t.events(&v, watching("m1", 0, 10, 0)).await;
    t.settle().await;
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert!(!h["items"].as_array().unwrap().is_empty(), "{h}");
    t.stop().await;
}

// Every test above runs twice: on the embedded SQLite store and on PostgreSQL.
on_both_backends!(
    events_become_a_resume_point_and_a_play,
    resending_a_batch_changes_nothing,
    a_put_resume_point_is_visible_at_once_and_recorded_as_a_pause,
    reaching_the_credits_completes_and_resets_the_resume_point,
    events_for_a_title_not_yet_imported_are_held_then_applied,
    a_wrong_device_clock_is_corrected_by_sent_at,
    positions_slightly_past_the_end_are_clamped_far_past_rejected,
    a_full_backlog_answers_503_with_retry_after_and_stores_nothing,
    history_pages_cover_every_play_once_newest_first,
    backfilled_plays_are_deduplicated_and_deleted_plays_stay_deleted,
    a_deleted_live_play_is_not_rebuilt_by_late_or_resent_events,
    an_autoplay_preview_leaves_no_play,
    one_heartbeat_at_a_time_gives_the_same_plays_as_one_batch,
    concurrent_resume_point_writes_never_wait_on_their_own_pool,
);
