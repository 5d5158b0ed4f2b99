//! Followers and the activity feed over HTTP (issue 14): follow, request, approve, block,
//! unfollow and share-off flows on both backends (PostgreSQL runs with Redis and the NATS
//! pipeline), and on SQLite the rules around them: rewatches and old backfills, maturity,
//! deleted plays, cursors, a threshold change across a restart, bad input, the spam-follow quota
//! and the object-level sweep of every feed route.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn kinds(feed: &Value) -> Vec<(String, String)> {
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["kind"].as_str().unwrap().to_owned(), i["title"]["id"].as_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, t)| ((*k).to_owned(), (*t).to_owned())).collect()
}

fn film(id: &str, maturity: u8) -> Value {
    json!({"id": id, "kind": "movie", "name": format!("Movie {id}"), "duration_ms": 10 * 60_000, "maturity": maturity})
}

fn catalog() -> Vec<Value> {
    vec![
        film("m1", 7),
        film("m2", 7),
        film("adult", 18),
        series("show"),
        episode("show", 1, 1, 10),
        episode("show", 1, 2, 10),
    ]
}

async fn profile(t: &TestApp, email: &str, new: playhead_app::accounts::NewProfile) -> Viewer {
    let account = t.app.create_account(email).await.unwrap().id;
    let profile = t.app.insert_profile(account, new).await.unwrap().id;
    Viewer { account, profile, token: t.token(account, &TestApp::viewer_scopes(), 3600) }
}

fn named(private: bool, maturity_limit: Option<u8>, kids: bool) -> playhead_app::accounts::NewProfile {
    playhead_app::accounts::NewProfile { name: "Main".into(), kids, maturity_limit, private }
}

async fn follow(t: &TestApp, who: &Viewer, whom: &Viewer) -> reqwest::Response {
    let body = json!({"profile_id": whom.profile.to_string()});
    t.post(&who.token, &format!("/v1/profiles/{}/following", who.profile), &body).await
}

async fn send(
    t: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = t.http.request(method, t.url(path)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn feed(t: &TestApp, v: &Viewer) -> Value {
    t.get_json(&v.token, &format!("/v1/profiles/{}/feed", v.profile)).await
}

/// Watch a whole 10-minute title, ending `ago` minutes ago, and wait until it is applied.
async fn finish(t: &TestApp, v: &Viewer, title: &str, ago: i64) {
    t.events(v, watching(title, 0, 10, ago)).await;
    t.settle().await;
}

async fn flows() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    let alice = profile(&t, "alice@example.com", named(false, None, false)).await;
    let bob = profile(&t, "bob@example.com", named(false, None, false)).await;
    let carol = profile(&t, "carol@example.com", named(true, None, false)).await;

    // Follow a public profile: following at once.
    let r = follow(&t, &bob, &alice).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"state": "following"}));
    finish(&t, &alice, "m1", 5).await;
    let f = feed(&t, &bob).await;
    assert_eq!(kinds(&f), pairs(&[("finished", "m1")]), "{f}");
    let item = &f["items"][0];
    assert_eq!(item["actor"], json!({"profile_id": alice.profile.to_string(), "name": "Main"}));
    assert_eq!(item["title"]["name"], "Movie m1");
    assert!(item["activity_id"].is_string() && item["at"].is_string(), "{item}");
    let following = t.get_json(&bob.token, &format!("/v1/profiles/{}/following", bob.profile)).await;
    assert_eq!(following["items"][0]["profile_id"], alice.profile.to_string());
    let followers = t.get_json(&alice.token, &format!("/v1/profiles/{}/followers", alice.profile)).await;
    assert_eq!(followers["items"][0]["profile_id"], bob.profile.to_string());

    // A private profile must approve.
    let r = follow(&t, &bob, &carol).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"state": "requested"}));
    finish(&t, &carol, "show.s1e1", 4).await;
    assert_eq!(kinds(&feed(&t, &bob).await), pairs(&[("finished", "m1")]), "not before approval");
    let requests = t.get_json(&carol.token, &format!("/v1/profiles/{}/follow-requests", carol.profile)).await;
    assert_eq!(requests["items"][0]["profile_id"], bob.profile.to_string(), "{requests}");
    let path = format!("/v1/profiles/{}/follow-requests/{}", carol.profile, bob.profile);
    let r = send(&t, reqwest::Method::PUT, &carol.token, &path, Some(json!({"decision": "approve"}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"state": "following"}));
    let got = kinds(&feed(&t, &bob).await);
    assert!(got.contains(&("started_series".into(), "show".into())), "{got:?}");
    assert!(got.contains(&("finished".into(), "show.s1e1".into())), "{got:?}");
    assert_eq!(got.last(), Some(&("finished".into(), "m1".into())), "newest first: {got:?}");

    // Sharing off takes everything alice published out of the feed; on again brings it back.
    let settings = format!("/v1/profiles/{}/feed-settings", alice.profile);
    let r =
        send(&t, reqwest::Method::PUT, &alice.token, &settings, Some(json!({"share_activity": false}))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!kinds(&feed(&t, &bob).await).iter().any(|(_, title)| title == "m1"));
    assert_eq!(t.get_json(&alice.token, &settings).await, json!({"share_activity": false}));
    finish(&t, &alice, "m2", 3).await;
    send(&t, reqwest::Method::PUT, &alice.token, &settings, Some(json!({"share_activity": true}))).await;
    let got = kinds(&feed(&t, &bob).await);
    assert!(got.contains(&("finished".into(), "m1".into())), "{got:?}");
    assert!(
        !got.iter().any(|(_, title)| title == "m2"),
        "nothing is published while sharing is off: {got:?}"
    );

    // Block: the follow ends both ways and carol leaves bob's feed; bob cannot follow again.
    let r = t
        .post(
            &carol.token,
            &format!("/v1/profiles/{}/blocks", carol.profile),
            &json!({"profile_id": bob.profile.to_string()}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(!kinds(&feed(&t, &bob).await).iter().any(|(_, title)| title.starts_with("show")));
    let r = follow(&t, &bob, &carol).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let path = format!("/v1/profiles/{}/blocks/{}", carol.profile, bob.profile);
    assert_eq!(
        send(&t, reqwest::Method::DELETE, &carol.token, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&t, reqwest::Method::DELETE, &carol.token, &path, None).await.status(),
        StatusCode::NOT_FOUND
    );

    // Unfollow: alice leaves bob's feed.
    let path = format!("/v1/profiles/{}/following/{}", bob.profile, alice.profile);
    assert_eq!(
        send(&t, reqwest::Method::DELETE, &bob.token, &path, None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&t, reqwest::Method::DELETE, &bob.token, &path, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(feed(&t, &bob).await["items"], json!([]));
    t.stop().await;
}

on_both_backends!(flows);

#[tokio::test]
async fn rewatches_old_plays_maturity_deletes_and_cursors() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    let alice = profile(&t, "alice@example.com", named(false, None, false)).await;
    let teen = profile(&t, "teen@example.com", named(false, Some(12), false)).await;
    assert_eq!(follow(&t, &teen, &alice).await.status(), StatusCode::CREATED);

    finish(&t, &alice, "m1", 120).await;
    finish(&t, &alice, "m1", 20).await; // a rewatch, more than a session gap later
    finish(&t, &alice, "m2", 4 * 24 * 60).await; // backfilled from four days ago
    finish(&t, &alice, "adult", 10).await;
    finish(&t, &alice, "show.s1e1", 8).await;
    finish(&t, &alice, "show.s1e2", 6).await;
    t.app.fanout(1_000).await.unwrap();
    let f = feed(&t, &teen).await;
    assert_eq!(kinds(&f).len(), 6, "{f}");
    let got = kinds(&f);
    assert_eq!(
        got.iter().filter(|(k, t)| k == "finished" && t == "m1").count(),
        1,
        "a rewatch is not news: {got:?}"
    );
    assert!(!got.iter().any(|(_, t)| t == "m2"), "an old backfill is not news: {got:?}");
    assert!(!got.iter().any(|(_, t)| t == "adult"), "above the reader's maturity limit: {got:?}");
    assert!(got.contains(&("finished_season".into(), "show".into())), "{got:?}");
    assert!(got.contains(&("finished_series".into(), "show".into())), "{got:?}");
    assert!(got.contains(&("started_series".into(), "show".into())), "{got:?}");
    assert_eq!(
        f["items"].as_array().unwrap().iter().find(|i| i["kind"] == "finished_season").unwrap()["season"],
        1
    );

    // Pages of one: every item once, in the same order, then no cursor.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/v1/profiles/{}/feed?limit=1", teen.profile),
            Some(c) => format!("/v1/profiles/{}/feed?limit=1&cursor={c}", teen.profile),
        };
        let page = t.get_json(&teen.token, &path).await;
        paged.extend(kinds(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(paged.len() <= got.len(), "paging never ends");
    }
    assert_eq!(paged, got);
    let r = t.get(&teen.token, &format!("/v1/profiles/{}/feed?cursor=forged", teen.profile)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Deleting the play removes what it published; hiding a title too.
    let history =
        t.get_json(&alice.token, &format!("/v1/profiles/{}/history?title_id=m1", alice.profile)).await;
    for play in history["items"].as_array().unwrap() {
        let path = format!("/v1/profiles/{}/history/{}", alice.profile, play["play_id"].as_str().unwrap());
        assert_eq!(
            send(&t, reqwest::Method::DELETE, &alice.token, &path, None).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let got = kinds(&feed(&t, &teen).await);
    assert!(!got.iter().any(|(_, t)| t == "m1"), "{got:?}");
    let hide = format!("/v1/profiles/{}/continue-watching/show.s1e2", alice.profile);
    assert_eq!(
        send(&t, reqwest::Method::DELETE, &alice.token, &hide, None).await.status(),
        StatusCode::NO_CONTENT
    );
    let got = kinds(&feed(&t, &teen).await);
    assert!(!got.iter().any(|(_, t)| t == "show.s1e2"), "{got:?}");

    // A thumbs-up publishes `loved`; a thumbs-down takes it back.
    let fb = format!("/v1/profiles/{}/feedback", alice.profile);
    assert_eq!(
        t.post(&alice.token, &fb, &json!({"title_id": "m2", "kind": "up"})).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(kinds(&feed(&t, &teen).await)[0], ("loved".into(), "m2".into()));
    t.post(&alice.token, &fb, &json!({"title_id": "m2", "kind": "down"})).await;
    assert!(!kinds(&feed(&t, &teen).await).iter().any(|(k, _)| k == "loved"));
    t.stop().await;
}

/// The threshold is configuration: restarting with another one changes how new activities
/// travel (pulled, then pushed) and the feed stays whole without any rebuild.
#[tokio::test]
async fn a_threshold_change_needs_no_rebuild() {
    let t = spawn_with(|s| s.feed.fanout_threshold = 1).await;
    let ops = t.catalog_token().await;
    t.import(&ops, &catalog()).await;
    let alice = profile(&t, "alice@example.com", named(false, None, false)).await;
    let bob = profile(&t, "bob@example.com", named(false, None, false)).await;
    follow(&t, &bob, &alice).await;
    finish(&t, &alice, "m1", 9).await;
    t.app.fanout(1_000).await.unwrap();
    assert_eq!(kinds(&feed(&t, &bob).await), pairs(&[("finished", "m1")]), "pulled");
    let dir = t.stop_keep_dir().await;
    let t = spawn_with(|s| {
        s.data_dir = dir.path().to_path_buf();
        s.feed.fanout_threshold = 1_000;
    })
    .await;
    let alice = Viewer { token: t.token(alice.account, &TestApp::viewer_scopes(), 3600), ..alice };
    let bob = Viewer { token: t.token(bob.account, &TestApp::viewer_scopes(), 3600), ..bob };
    finish(&t, &alice, "m2", 5).await;
    t.app.fanout(1_000).await.unwrap();
    assert_eq!(
        kinds(&feed(&t, &bob).await),
        pairs(&[("finished", "m2"), ("finished", "m1")]),
        "pushed and pulled"
    );
    t.stop().await;
    drop(dir);
}

#[tokio::test]
async fn bad_follows_are_clear_4xx_problems() {
    let t = spawn_app().await;
    let alice = profile(&t, "alice@example.com", named(false, None, false)).await;
    let kid = profile(&t, "kid@example.com", named(false, None, true)).await;
    let problem = |r: reqwest::Response| async move {
        let status = r.status();
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        (status, r.json::<Value>().await.unwrap())
    };
    let (s, p) = problem(follow(&t, &alice, &alice).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        (p["errors"][0]["field"].as_str(), p["errors"][0]["code"].as_str()),
        (Some("profile_id"), Some("self_follow")),
        "{p}"
    );
    let (s, p) = problem(follow(&t, &alice, &kid).await).await;
    assert_eq!((s, p["errors"][0]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("kids_profile")), "{p}");
    let (s, p) = problem(follow(&t, &kid, &alice).await).await;
    assert_eq!((s, p["errors"][0]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("kids_profile")), "{p}");
    let ghost = json!({"profile_id": uuid::Uuid::now_v7().to_string()});
    let (s, p) =
        problem(t.post(&alice.token, &format!("/v1/profiles/{}/following", alice.profile), &ghost).await)
            .await;
    assert_eq!(
        (s, p["errors"][0]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_profile")),
        "{p}"
    );
    let (s, p) = problem(
        t.post(
            &alice.token,
            &format!("/v1/profiles/{}/following", alice.profile),
            &json!({"profile_id": "nope"}),
        )
        .await,
    )
    .await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("profile_id")), "{p}");
    let path = format!("/v1/profiles/{}/follow-requests/{}", alice.profile, kid.profile);
    let (s, p) = problem(
        send(&t, reqwest::Method::PUT, &alice.token, &path, Some(json!({"decision": "maybe"}))).await,
    )
    .await;
    assert_eq!((s, p["errors"][0]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("decision")), "{p}");
    let (s, _) = problem(
        send(&t, reqwest::Method::PUT, &alice.token, &path, Some(json!({"decision": "approve"}))).await,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no such request");
    // Without feed scopes: 403 naming the scope.
    let token = t.token(alice.account, "history:read", 600);
    let (s, p) = problem(t.get(&token, &format!("/v1/profiles/{}/feed", alice.profile)).await).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(p.to_string().contains("feed:read"), "{p}");
    t.stop().await;
}

/// A spam-follow run is refused with 429 once the per-profile follow quota is spent, and each
/// refusal is in the audit log.
#[tokio::test]
async fn a_spam_follow_run_is_refused_and_audited() {
    let t = spawn_with(|s| s.feed.follows_per_hour = 3).await;
    let spammer = profile(&t, "spam@example.com", named(false, None, false)).await;
    let mut statuses = Vec::new();
    for n in 0..5 {
        let target = profile(&t, &format!("t{n}@example.com"), named(false, None, false)).await;
        statuses.push(follow(&t, &spammer, &target).await.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429]);
    let audit = t.identity.store().audit_since(playhead_core::Timestamp(0), 100).await.unwrap();
    let refused: Vec<_> = audit.iter().filter(|e| e.action == "feed.follow_refused").collect();
    assert_eq!(refused.len(), 2, "{audit:?}");
    assert!(refused[0].detail.contains(&spammer.profile.to_string()), "{}", refused[0].detail);
    t.stop().await;
}

/// Generated from the route table: every feed route answers another account's token with 404
/// for this profile (never 403 or 200), so ids cannot be probed or used.
#[tokio::test]
async fn every_feed_route_hides_other_accounts_profiles() {
    let t = spawn_app().await;
    let owner = profile(&t, "owner@example.com", named(false, None, false)).await;
    let other = profile(&t, "other@example.com", named(false, None, false)).await;
    let mut checked = 0;
    for entry in playhead_api_rest::table().iter().filter(|e| e.op().name().starts_with("feed.")) {
        let (method, path) = (entry.method().clone(), entry.path());
        let url = path
            .replace("{profile_id}", &owner.profile.to_string())
            .replace("{other_id}", &other.profile.to_string())
            .replace("{requester_id}", &other.profile.to_string());
        let body = match method {
            reqwest::Method::POST => Some(json!({"profile_id": other.profile.to_string()})),
            reqwest::Method::PUT if path.ends_with("feed-settings") => Some(json!({"share_activity": false})),
            reqwest::Method::PUT => Some(json!({"decision": "approve"})),
            _ => None,
        };
        let r = send(&t, method.clone(), &other.token, &url, body).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
        checked += 1;
    }
    assert_eq!(checked, 11, "every feed route swept");
    t.stop().await;
}
