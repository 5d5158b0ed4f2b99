//! The retention roll-up (issue 16, decision 0083), on both backends: plays older than the
//! horizon become per-title monthly roll-ups with the right figures, newer plays are untouched,
//! history shows the months in order under stable cursors, the title stays watched, running the
//! job twice changes nothing, exports carry the roll-ups and an erasure deletes them.

use playhead_app::prune::{PruneConfig, Pruning};
use playhead_core::Timestamp;
use playhead_core::rules::rollup::{cutoff, month_start};
use playhead_core::time::DAY_MS;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

on_both_backends!(old_plays_become_monthly_rollups_in_history);

const HORIZON_DAYS: u32 = 60;

fn backfilled(title: &str, at: Timestamp, minutes: i64, completed: bool) -> Value {
    json!({"title_id": title, "started_at": at.to_rfc3339(), "watched_ms": minutes * 60_000, "completed": completed})
}

/// Every item of the profile's history, `limit` per page, following the cursors.
async fn walk(app: &TestApp, v: &Viewer, query: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut path = format!("/v1/profiles/{}/history?limit={limit}{query}", v.profile);
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get_json(&v.token, &path).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
    panic!("history never ended");
}

/// What an item is: a play's title, or a roll-up's (month, title, plays, watched ms, completed).
fn shape(item: &Value) -> Value {
    if item["kind"] == "rollup" {
        json!([item["month"], item["title_id"], item["plays"], item["watched_ms"], item["completed_plays"]])
    } else {
        json!(item["title_id"])
    }
}

async fn roll_up(app: &TestApp) -> playhead_core::ports::RolledUp {
    let config = PruneConfig { rollup_after_days: Some(HORIZON_DAYS), ..PruneConfig::default() };
    Pruning::new(app.store.pruner(), app.app.clock().clone(), config).roll_up().await.unwrap()
}

async fn old_plays_become_monthly_rollups_in_history() {
    // The test drives the job itself (the server's own rounds would race it).
    let app = spawn_with(|s| {
        s.retention.rollup_after_days = HORIZON_DAYS;
        s.retention.prune_interval_secs = 0;
    })
    .await;
    let ops = app.catalog_token().await;
    app.import(&ops, &[movie("m1", 20), movie("m2", 20)]).await;
    let v = app.viewer("rollup@example.com").await;
    let now = Timestamp(now_ms());
    let old = month_start(now.plus_ms(-200 * DAY_MS));
    let older = month_start(now.plus_ms(-300 * DAY_MS));
    assert!(old < cutoff(now, HORIZON_DAYS));
    let plays = json!({"plays": [
        backfilled("m1", old.plus_ms(DAY_MS), 20, true),
        backfilled("m1", old.plus_ms(2 * DAY_MS), 5, false),
        backfilled("m2", old.plus_ms(3 * DAY_MS), 18, true),
        backfilled("m1", older.plus_ms(5 * DAY_MS), 19, true),
        backfilled("m2", now.plus_ms(-10 * DAY_MS), 18, true),
    ]});
    let r = app.post(&v.token, &format!("/v1/profiles/{}/history", v.profile), &plays).await;
    assert!(r.status().is_success(), "{}", r.status());
    app.events(&v, watching("m1", 0, 19, 30)).await;
    app.settle().await;
    assert_eq!(walk(&app, &v, "", 100).await.len(), 6);

    let done = roll_up(&app).await;
    assert_eq!((done.plays, done.viewings), (4, 4), "{done:?}");

    // Newest first: the two recent plays, then the old month (m2 before m1: title order,
    // descending), then the older month.
    let items = walk(&app, &v, "", 100).await;
    let month = |t: Timestamp| t.to_rfc3339()[..7].to_owned();
    assert_eq!(
        items.iter().map(shape).collect::<Vec<_>>(),
        [
            json!("m1"),
            json!("m2"),
            json!([month(old), "m2", 1, 18 * 60_000, 1]),
            json!([month(old), "m1", 2, 25 * 60_000, 1]),
            json!([month(older), "m1", 1, 19 * 60_000, 1]),
        ]
    );
    let rollup = &items[3];
    assert_eq!(rollup["period"]["start"], old.to_rfc3339());
    assert_eq!(rollup["title"]["watched"], true, "a title completed in a rolled-up month stays watched");
    assert_eq!(rollup["title"]["play_count"], 4, "rolled-up plays still count: {rollup}");
    // v2 shows the same items.
    let v2 = app
        .http
        .get(app.url(&format!("/v1/profiles/{}/history", v.profile)))
        .bearer_auth(&v.token)
        .header("accept", "application/vnd.playhead.v2+json")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.status(), StatusCode::OK);
    let v2: Value = v2.json().await.unwrap();
    assert_eq!(v2["items"][2]["kind"], "rollup");
    assert_eq!(v2["items"].as_array().unwrap().len(), 5);

    // Cursors: one item per page walks the same list, across plays and roll-ups.
    assert_eq!(walk(&app, &v, "", 1).await, items);
    assert_eq!(walk(&app, &v, "", 2).await, items);
    // Filters apply to roll-ups: only the month with an unfinished play; only m2.
    let unfinished = walk(&app, &v, "&completed=false", 1).await;
    assert_eq!(
        unfinished.iter().map(shape).collect::<Vec<_>>(),
        [json!([month(old), "m1", 2, 25 * 60_000, 1])]
    );
    let m2 = walk(&app, &v, "&title_id=m2", 1).await;
    assert_eq!(
        m2.iter().map(shape).collect::<Vec<_>>(),
        [json!("m2"), json!([month(old), "m2", 1, 18 * 60_000, 1])]
    );

    // Running it again changes nothing.
    let again = roll_up(&app).await;
    assert_eq!((again.plays, again.viewings, again.events), (0, 0, 0));
    assert_eq!(walk(&app, &v, "", 100).await, items);

    // The export carries the months.
    let r = app.post(&v.token, &format!("/v1/accounts/{}/exports", v.account), &json!({})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let url = r.headers()["location"].to_str().unwrap().to_owned();
    let doc = app.get_json(&v.token, &url).await;
    let exported = &doc["profiles"][0]["rollups"];
    assert_eq!(exported.as_array().unwrap().len(), 3, "{exported}");
    assert_eq!(
        exported[1],
        json!({"month": month(old), "title_id": "m1", "plays": 2, "watched_ms": 25 * 60_000, "completed_plays": 1})
    );
    assert_eq!(doc["profiles"][0]["plays"].as_array().unwrap().len(), 2);

    // An erasure deletes them.
    let r = app
        .http
        .delete(app.url(&format!("/v1/profiles/{}", v.profile)))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["erasure_id"].as_str().unwrap().to_owned();
    crate::erase::wait_done(&app, &v.token, &id).await;
    let q = format!("SELECT COUNT(*) FROM play_rollups WHERE profile_id = '{}'", v.profile);
    assert_eq!(crate::erase::scalar(&app, &q, &q).await, 0);
    app.stop().await;
}
