//! Watched marks, My list and kids filtering everywhere (issue 17), as a viewer sees them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["title_id"].as_str().unwrap().to_owned()).collect()
}

async fn put(t: &TestApp, token: &str, path: &str) -> reqwest::Response {
    t.http.put(t.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn delete(t: &TestApp, token: &str, path: &str) -> reqwest::Response {
    t.http.delete(t.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn marks_make_titles_watched_and_rows_and_history_follow() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(
        &ops,
        &[
            movie("m1", 100),
            series("s"),
            episode("s", 1, 1, 45),
            episode("s", 1, 2, 45),
            episode("s", 2, 1, 45),
        ],
    )
    .await;
    let v = t.viewer("ann@example.com").await;
    let base = format!("/v1/profiles/{}", v.profile);
    // Half of m1: in Continue watching, one unfinished play.
    t.events(&v, watching("m1", 0, 30, 60)).await;
    t.settle().await;
    assert_eq!(ids(&t.get_json(&v.token, &format!("{base}/continue-watching")).await), ["m1"]);
    let cw = t.get_json(&v.token, &format!("{base}/continue-watching")).await;
    assert_eq!(cw["items"][0]["title"]["watched"], false);
    assert_eq!(cw["items"][0]["title"]["play_count"], 1);

    let r = put(&t, &v.token, &format!("{base}/watched/m1")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["marked"].as_array().unwrap().len(), 1);
    let mark = body["marked"][0]["play_id"].as_str().unwrap().to_owned();
    // Marked means done: gone from Continue watching; history shows the manual play first.
    assert!(ids(&t.get_json(&v.token, &format!("{base}/continue-watching")).await).is_empty());
    let h = t.get_json(&v.token, &format!("{base}/history")).await;
    assert_eq!(h["items"][0]["play_id"], mark.as_str());
    assert_eq!(h["items"][0]["manual"], true);
    assert_eq!(h["items"][1]["manual"], false);
    assert_eq!(h["items"][0]["title"]["watched"], true);
    assert_eq!(h["items"][0]["title"]["play_count"], 2);
    // Marking again changes nothing.
    let again: Value = put(&t, &v.token, &format!("{base}/watched/m1")).await.json().await.unwrap();
    assert_eq!(again["marked"][0]["play_id"], mark.as_str());
    assert_eq!(t.get_json(&v.token, &format!("{base}/history")).await["items"].as_array().unwrap().len(), 2);

    // A season mark drives Next up to the next season.
    let r = put(&t, &v.token, &format!("{base}/watched/s.s1e1?scope=season&watched_at=2026-01-02T03:04:05Z"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let mut marked: Vec<&str> =
        body["marked"].as_array().unwrap().iter().map(|m| m["title_id"].as_str().unwrap()).collect();
    marked.sort_unstable();
    assert_eq!(marked, ["s.s1e1", "s.s1e2"]);
    let nu = t.get_json(&v.token, &format!("{base}/next-up")).await;
    assert_eq!(ids(&nu), ["s.s2e1"]);
    assert_eq!(nu["items"][0]["title"]["watched"], false);

    // Unmarking the series leaves nothing watched there; Next up has no series to continue.
    let r = delete(&t, &v.token, &format!("{base}/watched/s?scope=series")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(ids(&t.get_json(&v.token, &format!("{base}/next-up")).await).is_empty());
    // Unmarking m1 keeps its real (unfinished) play; plays=all removes it too.
    assert_eq!(delete(&t, &v.token, &format!("{base}/watched/m1")).await.status(), StatusCode::NO_CONTENT);
    let h = t.get_json(&v.token, &format!("{base}/history")).await;
    assert_eq!(ids(&h), ["m1"]);
    assert_eq!(h["items"][0]["title"]["watched"], false);
    assert_eq!(
        delete(&t, &v.token, &format!("{base}/watched/m1?plays=all")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(ids(&t.get_json(&v.token, &format!("{base}/history")).await).is_empty());
    t.stop().await;
}

async fn bad_marks_are_refused_with_a_problem_naming_the_field() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), series("s")]).await;
    let v = t.viewer("ann@example.com").await;
    let base = format!("/v1/profiles/{}", v.profile);
    for (path, status, field) in [
        ("watched/nope", StatusCode::NOT_FOUND, None),
        ("watched/m1?scope=episode", StatusCode::BAD_REQUEST, Some("scope")),
        ("watched/m1?scope=season", StatusCode::BAD_REQUEST, Some("scope")),
        ("watched/s", StatusCode::BAD_REQUEST, Some("scope")), // a series with no episodes
        ("watched/m1?watched_at=yesterday", StatusCode::BAD_REQUEST, Some("watched_at")),
        ("watched/m1?watched_at=2999-01-01T00:00:00Z", StatusCode::BAD_REQUEST, Some("watched_at")),
    ] {
        let r = put(&t, &v.token, &format!("{base}/{path}")).await;
        assert_eq!(r.status(), status, "PUT {path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "PUT {path}");
        let p: Value = r.json().await.unwrap();
        if let Some(f) = field {
            assert!(p.to_string().contains(f), "PUT {path}: {p}");
        }
    }
    assert!(t.get_json(&v.token, &format!("{base}/history")).await["items"].as_array().unwrap().is_empty());
    t.stop().await;
}

async fn my_list_is_newest_first_by_cursor_and_finished_titles_leave_it_when_asked() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let mut later = movie("later", 100);
    later["available_from"] = json!("2999-01-01T00:00:00Z");
    t.import(&ops, &[movie("a", 100), movie("b", 100), movie("c", 100), later]).await;
    let v = t.viewer("ann@example.com").await;
    let list = format!("/v1/profiles/{}/list", v.profile);
    for title in ["a", "b", "c", "later"] {
        assert_eq!(put(&t, &v.token, &format!("{list}/{title}")).await.status(), StatusCode::CREATED);
        // Distinct added_at instants, so the order below is the order added.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    assert_eq!(put(&t, &v.token, &format!("{list}/a")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(put(&t, &v.token, &format!("{list}/nope")).await.status(), StatusCode::NOT_FOUND);
    let page = t.get_json(&v.token, &format!("{list}?limit=3")).await;
    assert_eq!(ids(&page), ["later", "c", "b"]);
    assert_eq!(page["items"][0]["title"]["watched"], false);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = t.get_json(&v.token, &format!("{list}?limit=3&cursor={cursor}")).await;
    assert_eq!(ids(&rest), ["a"]);
    assert!(rest["next_cursor"].is_null());
    // A cursor of another query is refused.
    let r = t.get(&v.token, &format!("{list}?limit=3&available=true&cursor={cursor}")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(ids(&t.get_json(&v.token, &format!("{list}?available=true")).await), ["c", "b", "a"]);

    // Finishing b keeps it listed until the profile opts in.
    // Finished just now, after it was added (a finish before the addition is a rewatch wish).
    t.events(&v, watching("b", 0, 100, 0)).await;
    t.settle().await;
    let all = t.get_json(&v.token, &list).await;
    assert_eq!(ids(&all), ["later", "c", "b", "a"]);
    assert_eq!(all["items"][2]["title"]["watched"], true);
    let settings = format!("/v1/profiles/{}/list-settings", v.profile);
    assert_eq!(t.get_json(&v.token, &settings).await["leave_when_finished"], false);
    let r = t
        .http
        .put(t.url(&settings))
        .bearer_auth(&v.token)
        .json(&json!({"leave_when_finished": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(ids(&t.get_json(&v.token, &list).await), ["later", "c", "a"]);

    assert_eq!(delete(&t, &v.token, &format!("{list}/c")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(delete(&t, &v.token, &format!("{list}/c")).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(ids(&t.get_json(&v.token, &list).await), ["later", "a"]);
    t.stop().await;
}

/// The sweep (issue 17): every GET route of the table that answers for a profile is called as
/// a kids profile whose data names an adult title everywhere it could (a play, a resume point,
/// a mark, a list entry); no answer may name that title. A new GET route with a `{profile_id}`
/// is swept without editing this test.
async fn no_route_returns_a_title_above_a_kids_profiles_limit() {
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
    // The adult title in every place a row or page reads (as if the limit was lowered after).
    let mut evs = watching("adult", 0, 100, 200);
    evs.extend(watching("adult", 0, 20, 50));
    evs.extend(watching("family", 0, 20, 10));
    t.events(&v, evs).await;
    t.settle().await;
    let adult_id = playhead_core::TitleId::parse("adult").unwrap();
    let viewing = &t.app.ports().viewing;
    viewing.list_add(kid, &adult_id, playhead_core::Timestamp(now_ms())).await.unwrap();
    viewing
        .list_add(kid, &playhead_core::TitleId::parse("family").unwrap(), playhead_core::Timestamp(now_ms()))
        .await
        .unwrap();
    // The API refuses to mark or list it for the kid: to a kids profile it does not exist.
    assert_eq!(
        put(&t, &v.token, &format!("/v1/profiles/{kid}/watched/adult")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        put(&t, &v.token, &format!("/v1/profiles/{kid}/list/adult")).await.status(),
        StatusCode::NOT_FOUND
    );
    let r = t.get(&v.token, &format!("/v1/titles/adult/similar?profile_id={kid}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let mut swept = 0;
    for e in playhead_api_rest::table() {
        if *e.method() != reqwest::Method::GET || !e.documented() {
            continue;
        }
        let path = e.path();
        let url = if path.contains("{profile_id}") {
            path.replace("{profile_id}", &kid.to_string()).replace("{title_id}", "family")
        } else if path == "/v1/titles/{title_id}/similar" {
            format!("/v1/titles/family/similar?profile_id={kid}")
        } else {
            continue;
        };
        let r = t.get(&v.token, &url).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(status.is_success(), "GET {url}: {status} {body}");
        assert!(!body.contains("\"adult\""), "GET {url} names a title above the kid's limit: {body}");
        swept += 1;
    }
    assert!(swept >= 8, "only {swept} routes swept");

    // The same sweep with a token bound to the kid (a kids TV): every documented GET route it
    // can reach, the catalog's included, answers without the adult title; asked for by id, the
    // adult title does not exist for it (the account's own token still reads the catalog).
    let tv = t.bound_token(account, kid);
    let mut swept = 0;
    for e in playhead_api_rest::table() {
        if *e.method() != reqwest::Method::GET || !e.documented() {
            continue;
        }
        let path = e.path().replace("{profile_id}", &kid.to_string()).replace("{title_id}", "family");
        if !path.starts_with("/v1/") || path.contains('{') {
            continue; // an export, an erasure, an account: none returns titles
        }
        let r = t.get(&tv, &path).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(!body.contains("\"adult\""), "GET {path} names a title above the kid's limit: {body}");
        if status == StatusCode::FORBIDDEN {
            continue; // account-wide routes (devices, streams, admin) are not a TV's
        }
        assert!(status.is_success(), "GET {path} with the kid's TV: {status} {body}");
        swept += 1;
    }
    assert!(swept >= 12, "only {swept} routes swept with the bound token");
    assert_eq!(t.get(&tv, "/v1/titles/adult").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(t.get(&v.token, "/v1/titles/adult").await.status(), StatusCode::OK);
    assert!(t.get(&v.token, "/v1/titles").await.text().await.unwrap().contains("\"adult\""));
    // The sweep can fail: the family title does show up where it should.
    assert!(
        t.get(&v.token, &format!("/v1/profiles/{kid}/list"))
            .await
            .text()
            .await
            .unwrap()
            .contains("\"family\"")
    );
    assert!(
        t.get(&v.token, &format!("/v1/profiles/{kid}/history"))
            .await
            .text()
            .await
            .unwrap()
            .contains("\"family\"")
    );
    t.stop().await;
}

// Every test above runs twice: on the embedded SQLite store and on PostgreSQL.
on_both_backends!(
    marks_make_titles_watched_and_rows_and_history_follow,
    bad_marks_are_refused_with_a_problem_naming_the_field,
    my_list_is_newest_first_by_cursor_and_finished_titles_leave_it_when_asked,
    no_route_returns_a_title_above_a_kids_profiles_limit,
);
