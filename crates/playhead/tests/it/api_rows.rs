//! Continue watching and Next up as a viewer sees them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn ids(row: &Value) -> Vec<String> {
    row["items"].as_array().unwrap().iter().map(|i| i["title_id"].as_str().unwrap().to_owned()).collect()
}

async fn continue_watching_orders_by_activity_and_hide_lasts_until_the_next_play() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 100), movie("m3", 100)]).await;
    let v = t.viewer("ann@example.com").await;
    t.events(&v, watching("m1", 0, 15, 300)).await;
    t.events(&v, watching("m2", 0, 15, 200)).await;
    t.events(&v, watching("m3", 0, 2, 100)).await; // before the resume window
    t.settle().await;
    let cw = format!("/v1/profiles/{}/continue-watching", v.profile);
    assert_eq!(ids(&t.get_json(&v.token, &cw).await), ["m2", "m1"]);

    let r = t.http.delete(t.url(&format!("{cw}/m2"))).bearer_auth(&v.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(ids(&t.get_json(&v.token, &cw).await), ["m1"]);
    // The resume point is kept while hidden.
    let p = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m2", v.profile)).await;
    assert_eq!(p["position_ms"], 15 * 60_000);
    // A resent old event does not unhide it; a new one does.
    t.events(&v, vec![ev("m2", "heartbeat", 14 * 60_000, 190)]).await;
    t.settle().await;
    assert_eq!(ids(&t.get_json(&v.token, &cw).await), ["m1"]);
    t.events(&v, vec![ev("m2", "pause", 16 * 60_000, 0)]).await;
    t.settle().await;
    assert_eq!(ids(&t.get_json(&v.token, &cw).await), ["m2", "m1"]);
    t.stop().await;
}

async fn one_card_per_series_and_next_up_after_a_completed_episode() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let mut catalog = vec![series("s")];
    for e in 1..=3 {
        catalog.push(episode("s", 1, e, 30));
    }
    t.import(&ops, &catalog).await;
    let v = t.viewer("ann@example.com").await;
    // e1 watched to the end, e2 half-way.
    let mut evs = watching("s.s1e1", 0, 30, 120);
    evs.extend(watching("s.s1e2", 0, 15, 60));
    t.events(&v, evs).await;
    t.settle().await;
    let cw = t.get_json(&v.token, &format!("/v1/profiles/{}/continue-watching", v.profile)).await;
    assert_eq!(ids(&cw), ["s.s1e2"]);
    let nu = t.get_json(&v.token, &format!("/v1/profiles/{}/next-up", v.profile)).await;
    assert_eq!(ids(&nu), ["s.s1e2"]);
    assert_eq!(nu["items"][0]["position_ms"], 15 * 60_000, "a started next episode carries its resume point");
    // Finishing e2 moves Next up to e3 and empties Continue watching.
    t.events(&v, watching("s.s1e2", 15, 15, 10)).await;
    t.settle().await;
    assert!(
        ids(&t.get_json(&v.token, &format!("/v1/profiles/{}/continue-watching", v.profile)).await).is_empty()
    );
    assert_eq!(ids(&t.get_json(&v.token, &format!("/v1/profiles/{}/next-up", v.profile)).await), ["s.s1e3"]);
    t.stop().await;
}

async fn kids_profiles_never_see_titles_above_their_limit() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let mut adult = movie("adult", 100);
    adult["maturity"] = json!(18);
    let mut family = movie("family", 100);
    family["maturity"] = json!(0);
    t.import(&ops, &[adult, family]).await;
    let account = t.app.create_account("fam@example.com").await.unwrap().id;
    let kid = t
        .app
        .insert_profile(
            account,
            playhead_app::accounts::NewProfile { name: "Kid".into(), kids: true, ..Default::default() },
        )
        .await
        .unwrap()
        .id;
    let v = Viewer { account, profile: kid, token: t.token(account, &TestApp::viewer_scopes(), 600) };
    let mut evs = watching("adult", 0, 20, 50);
    evs.extend(watching("family", 0, 20, 10));
    t.events(&v, evs).await;
    t.settle().await;
    let cw = t.get_json(&v.token, &format!("/v1/profiles/{kid}/continue-watching")).await;
    assert_eq!(ids(&cw), ["family"]);
    t.stop().await;
}

async fn row_limits_are_checked_not_truncated_silently() {
    let t = spawn_app().await;
    let v = t.viewer("ann@example.com").await;
    for bad in ["0", "101", "ten"] {
        let r = t.get(&v.token, &format!("/v1/profiles/{}/continue-watching?limit={bad}", v.profile)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "limit={bad}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], "limit");
    }
    t.stop().await;
}

// Every test above runs twice: on the embedded SQLite store and on PostgreSQL.
on_both_backends!(
    continue_watching_orders_by_activity_and_hide_lasts_until_the_next_play,
    one_card_per_series_and_next_up_after_a_completed_episode,
    kids_profiles_never_see_titles_above_their_limit,
    row_limits_are_checked_not_truncated_silently,
);
