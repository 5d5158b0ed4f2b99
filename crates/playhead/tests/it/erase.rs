//! Erasure as a saga (issue 16): after an account's erasure no table, Redis key, message still to
//! be applied or recommendation counter holds the person's data, on both backends; a second
//! erase request is answered with the same saga; the last admin account is refused; and a
//! process SIGKILLed between two steps resumes the saga when it starts again.

use std::time::{Duration, Instant};

use playhead_core::Timestamp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::*;

on_both_backends!(an_erased_account_leaves_nothing_in_any_store, the_last_admin_account_is_not_erased);

/// Poll the saga until every step is done.
pub(crate) async fn wait_done(app: &TestApp, token: &str, id: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let s = app.get_json(token, &format!("/v1/erasures/{id}")).await;
        if s["state"] == "done" {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "erasure never finished: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every (table, column, rows) that mentions one of `needles`, on the app's store; the saga's own
/// records (`erasures`, the watermark) and the one audit entry are the allowed remainder.
async fn traces(app: &TestApp, needles: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    match &app.settings.database_schema {
        None => {
            let url = format!("sqlite://{}?mode=ro", app.settings.db_path().display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            for t in tables {
                let cols: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{t}')"))
                        .fetch_all(&mut c)
                        .await
                        .unwrap();
                for col in cols {
                    for n in needles {
                        let q = format!(
                            "SELECT COUNT(*) FROM {t} WHERE CAST({col} AS TEXT) LIKE '%' || ?1 || '%'"
                        );
                        let k: i64 = sqlx::query_scalar(&q).bind(n).fetch_one(&mut c).await.unwrap();
                        if k > 0 {
                            found.push(format!("{t}.{col}: {k}"));
                        }
                    }
                }
            }
        }
        Some(schema) => {
            let mut c = sqlx::PgConnection::connect(&pg::url()).await.unwrap();
            let cols: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c \
                 JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                 WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE'",
            )
            .bind(schema)
            .fetch_all(&mut c)
            .await
            .unwrap();
            for (t, col) in cols {
                for n in needles {
                    let q = format!(
                        "SELECT COUNT(*) FROM {schema}.\"{t}\" WHERE \"{col}\"::text LIKE '%' || $1 || '%'"
                    );
                    let k: i64 = sqlx::query_scalar(&q).bind(n).fetch_one(&mut c).await.unwrap();
                    if k > 0 {
                        found.push(format!("{t}.{col}: {k}"));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// One statement's single integer answer on the app's store.
pub(crate) async fn scalar(app: &TestApp, sqlite: &str, postgres: &str) -> i64 {
    match &app.settings.database_schema {
        None => {
            let url = format!("sqlite://{}?mode=ro", app.settings.db_path().display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(sqlite).fetch_one(&mut c).await.unwrap()
        }
        Some(schema) => {
            let mut c = sqlx::PgConnection::connect(&pg::url()).await.unwrap();
            sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut c).await.unwrap();
            sqlx::query_scalar(postgres).fetch_one(&mut c).await.unwrap()
        }
    }
}

/// The co-watch count of the pair (m1, m2).
async fn pair(app: &TestApp) -> i64 {
    scalar(
        app,
        "SELECT COALESCE(SUM(count), 0) FROM recs_cowatch WHERE a = 'm1' AND b = 'm2'",
        "SELECT COALESCE(SUM(count), 0)::bigint FROM recs_cowatch WHERE a = 'm1' AND b = 'm2'",
    )
    .await
}

/// Redis keys under the app's prefix that name one of `needles` (scale-out only): `KEYS` over
/// a plain connection, the test's prefix keeps it small.
async fn redis_keys(app: &TestApp, needles: &[String]) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(url) = &app.settings.redis_url else { return Vec::new() };
    let addr = url.expose().trim_start_matches("redis://").split('/').next().unwrap().to_owned();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let pattern = format!("{}*", app.settings.redis_key_prefix);
    let cmd = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
    s.write_all(cmd.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    // The reply is small; read until the connection is quiet.
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    text.lines().filter(|l| needles.iter().any(|n| l.contains(n.as_str()))).map(str::to_owned).collect()
}

/// Make `gone` follow `kept` and `kept` follow `gone`, `gone` ask to follow a private profile
/// and block another one. Returns the private profile's id.
async fn feed_graph(app: &TestApp, gone: &Viewer, kept: &Viewer) -> String {
    let account = app.app.create_account("closed@example.com").await.unwrap().id;
    let closed = playhead_app::accounts::NewProfile {
        name: "Closed".into(),
        kids: false,
        maturity_limit: None,
        private: true,
    };
    let closed = app.app.insert_profile(account, closed).await.unwrap().id.to_string();
    let other = app.viewer("blocked@example.com").await;
    let post = |who: &Viewer, path: &str, whom: String| {
        let (token, path) = (who.token.clone(), format!("/v1/profiles/{}/{path}", who.profile));
        async move { app.post(&token, &path, &json!({"profile_id": whom})).await.status() }
    };
    assert_eq!(post(gone, "following", kept.profile.to_string()).await, StatusCode::CREATED);
    assert_eq!(post(kept, "following", gone.profile.to_string()).await, StatusCode::CREATED);
    assert_eq!(post(gone, "following", closed.clone()).await, StatusCode::CREATED);
    assert!(post(gone, "blocks", other.profile.to_string()).await.is_success());
    closed
}

/// Wait until every activity's fan-out finished (inbox rows written).
async fn fanned_out(app: &TestApp) {
    let t0 = Instant::now();
    while app.app.ports().feed.fanout_backlog().await.unwrap() > 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "fan-out never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_erased_account_leaves_nothing_in_any_store() {
    let app = spawn_app().await;
    let ops = app.catalog_token().await;
    app.import(&ops, &[movie("m1", 20), movie("m2", 20), movie("m3", 20)]).await;
    let gone = app.viewer("gone@example.com").await;
    let kept = app.viewer("kept@example.com").await;
    // The feed: the person follows and is followed, asks to follow a private profile, blocks
    // someone, and the plays below put activities in each other's inboxes.
    let closed = feed_graph(&app, &gone, &kept).await;
    for v in [&gone, &kept] {
        app.events(v, watching("m1", 0, 19, 120)).await;
        app.events(v, watching("m2", 0, 19, 60)).await;
        app.events(v, watching("m3", 0, 5, 30)).await;
    }
    app.settle().await;
    assert_eq!(pair(&app).await, 2, "both profiles watched m1 then m2");
    fanned_out(&app).await;
    let feed_rows =
        |who: &Viewer| format!("SELECT COUNT(*) FROM feed_inbox WHERE reader = '{}'", who.profile);
    for (reader, actor) in [(&kept, &gone), (&gone, &kept)] {
        let f = app.get_json(&reader.token, &format!("/v1/profiles/{}/feed", reader.profile)).await;
        let from = f["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["actor"]["profile_id"] == actor.profile.to_string())
            .count();
        assert!(from >= 2, "each finished the other's m1 and m2 in the feed: {f}");
        let q = feed_rows(reader);
        assert!(scalar(&app, &q, &q).await >= 2, "pushed into the inbox");
    }
    let p = |path: &str| format!("/v1/profiles/{}/{path}", gone.profile);
    // Everything else a person leaves behind: feedback, impressions, a hide, an event held for
    // a title the catalog does not have yet, an idempotency record, cached rows.
    let r = app.post(&gone.token, &p("feedback"), &json!({"title_id": "m1", "kind": "up"})).await;
    assert!(r.status().is_success(), "{}", r.status());
    let r = app.post(&gone.token, &p("impressions"), &json!({"title_ids": ["m1", "m2"]})).await;
    assert!(r.status().is_success(), "{}", r.status());
    let r =
        app.http.delete(app.url(&p("continue-watching/m3"))).bearer_auth(&gone.token).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let held = app
        .http
        .post(app.url(&p("events")))
        .bearer_auth(&gone.token)
        .header("idempotency-key", "erase-k1")
        .json(&json!({"events": [ev("premiere", "start", 0, 1)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), StatusCode::ACCEPTED);
    app.get_json(&gone.token, &p("continue-watching")).await;
    app.get_json(&gone.token, &p("next-up")).await;
    let needles = vec![gone.account.to_string(), gone.profile.to_string()];
    if app.settings.redis_url.is_some() {
        assert!(!redis_keys(&app, &needles).await.is_empty(), "the shared cache holds the profile's rows");
    }

    let r = app
        .http
        .delete(app.url(&format!("/v1/accounts/{}", gone.account)))
        .bearer_auth(&gone.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["erasure_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/erasures/{id}"));
    let status = wait_done(&app, &gone.token, &id).await;
    let steps: Vec<&str> =
        status["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        ["stop_accepting", "drop_queued", "recs_signals", "delete_rows", "evict_cache", "audit"]
    );
    assert!(status["steps"].as_array().unwrap().iter().all(|s| s["state"] == "done"), "{status}");

    // New events for the erased profile get a clear, final answer; others get "not found".
    let r = app.post(&gone.token, &p("events"), &json!({"events": [ev("m1", "start", 0, 1)]})).await;
    assert_eq!(r.status(), StatusCode::GONE);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("erased"), "{problem}");
    let r = app.post(&kept.token, &p("events"), &json!({"events": [ev("m1", "start", 0, 1)]})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another account learns nothing");

    // No table holds the person's data; what is left is the saga, the watermark and one audit entry.
    let allowed = |t: &str| ["erasures.", "erased_profiles.", "audit_log."].iter().any(|a| t.starts_with(a));
    let left = traces(&app, &needles).await;
    assert!(left.iter().all(|t| allowed(t)), "data left after the erasure: {left:?}");
    let audit = scalar(
        &app,
        "SELECT COUNT(*) FROM audit_log WHERE action = 'erasure.completed'",
        "SELECT COUNT(*) FROM audit_log WHERE action = 'erasure.completed'",
    )
    .await;
    assert_eq!(audit, 1);
    let other_audit = format!(
        "SELECT COUNT(*) FROM audit_log WHERE action <> 'erasure.completed' \
         AND (actor LIKE '%{a}%' OR detail LIKE '%{a}%' OR detail LIKE '%{p}%')",
        a = gone.account,
        p = gone.profile
    );
    assert_eq!(
        scalar(&app, &other_audit, &other_audit).await,
        0,
        "the audit keeps only the erasure's own entry"
    );
    // Nothing left to apply, and the recommendation counters hold only the other profile's plays.
    let queued = scalar(&app, "SELECT COUNT(*) FROM event_queue", "SELECT COUNT(*) FROM event_queue").await;
    assert_eq!(queued, 0, "no queue or outbox row left");
    assert_eq!(pair(&app).await, 1, "co-watch keeps only the other profile's pair");
    // The token still in use keeps a rate-limit key (`rl:`, a timestamp) until its window passes;
    // the erasure deleted the one it had.
    let left: Vec<String> =
        redis_keys(&app, &needles).await.into_iter().filter(|k| !k.contains(":rl:")).collect();
    assert!(left.is_empty(), "Redis keys name the erased account or profile: {left:?}");

    // A replay of the whole log, and (scale-out) of the whole JetStream stream, brings nothing back.
    app.app.replay_log().await.unwrap();
    app.settle().await;
    if let (Some(url), false) = (&app.settings.nats_url, app.settings.nats.stream.is_empty()) {
        let js = async_nats::jetstream::new(async_nats::connect(url.expose()).await.unwrap());
        let stream = app.settings.nats.stream.clone();
        let mut s = js.get_stream(&stream).await.unwrap();
        js.delete_consumer_from_stream(playhead_nats::CONSUMER, &stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        let t0 = Instant::now();
        loop {
            let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
                s.get_consumer(playhead_nats::CONSUMER).await;
            if let Ok(mut c) = consumer {
                let info = c.info().await.unwrap();
                if info.delivered.stream_sequence >= last && info.num_ack_pending == 0 {
                    break;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "the stream was not delivered again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let left = traces(&app, &needles).await;
    assert!(left.iter().all(|t| allowed(t)), "a replay resurrected data: {left:?}");

    // The other account is untouched; its feed and graph no longer show the person.
    let h = app.get_json(&kept.token, &format!("/v1/profiles/{}/history", kept.profile)).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 3, "{h}");
    let f = app.get_json(&kept.token, &format!("/v1/profiles/{}/feed", kept.profile)).await;
    assert_eq!(f["items"], json!([]), "the person's activities left the follower's feed");
    for list in ["following", "followers"] {
        let l = app.get_json(&kept.token, &format!("/v1/profiles/{}/{list}", kept.profile)).await;
        assert_eq!(l["items"], json!([]), "{list}: {l}");
    }
    let q = format!("SELECT COUNT(*) FROM follows WHERE followee = '{closed}'");
    assert_eq!(scalar(&app, &q, &q).await, 0, "the private profile's waiting request is gone");
    let count = format!(
        "SELECT COALESCE(SUM(followers), 0) FROM feed_profiles WHERE profile_id = '{}'",
        kept.profile
    );
    let pg_count = format!(
        "SELECT COALESCE(SUM(followers), 0)::bigint FROM feed_profiles WHERE profile_id = '{}'",
        kept.profile
    );
    assert_eq!(scalar(&app, &count, &pg_count).await, 0, "the follower count lost the erased follower");
    app.stop().await;
}

async fn the_last_admin_account_is_not_erased() {
    let app = spawn_app().await;
    let admin = app.viewer("admin@example.com").await;
    let now = Timestamp(now_ms());
    let session = |id: &str, account| playhead_core::identity::Session {
        id: id.to_owned(),
        account,
        client_id: "tests".into(),
        scopes: playhead_core::auth::Scopes::parse("admin history:read").unwrap(),
        profile: None,
        auth_time: now,
        created_at: now,
        revoked_at: None,
    };
    app.identity.store().create_session(&session("admin-session", admin.account)).await.unwrap();
    let r = app
        .http
        .delete(app.url(&format!("/v1/accounts/{}", admin.account)))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("last account with an admin"), "{problem}");

    // With a second operator it goes ahead; asking twice gives the same saga.
    let other = app.viewer("admin2@example.com").await;
    app.identity.store().create_session(&session("admin-session-2", other.account)).await.unwrap();
    let url = app.url(&format!("/v1/profiles/{}", admin.profile));
    let first: Value =
        app.http.delete(&url).bearer_auth(&admin.token).send().await.unwrap().json().await.unwrap();
    let again = app.http.delete(&url).bearer_auth(&admin.token).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["erasure_id"], again["erasure_id"], "erasing twice is the same saga");
    wait_done(&app, &admin.token, first["erasure_id"].as_str().unwrap()).await;
    let after = app.http.delete(&url).bearer_auth(&admin.token).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::ACCEPTED, "after it finished, still the same saga");
    let after: Value = after.json().await.unwrap();
    assert_eq!(after["erasure_id"], first["erasure_id"]);
    // Someone else's erasure is not found.
    let r = app.get(&other.token, &format!("/v1/erasures/{}", first["erasure_id"].as_str().unwrap())).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .http
        .delete(app.url(&format!("/v1/accounts/{}", admin.account)))
        .bearer_auth(&other.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

/// `playhead serve` SIGKILLed between two steps of a saga (the test hook stalls the runner after
/// `drop_queued`, holding its lease); started again, its runner takes the saga over once the
/// lease expires and finishes it.
#[tokio::test]
async fn fault_a_saga_interrupted_by_sigkill_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("playhead.toml");
    std::fs::write(&config, "[limits]\nerasure_lease_secs = 1\n").unwrap();
    let run = |args: &[&str]| crate::scale_out::run(dir.path(), &config, args);
    let account = run(&["admin", "create-account", "--email", "crash@example.com"])["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let profile = run(&["admin", "create-profile", "--account", &account, "--name", "P"])["profile_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = run(&["admin", "token", "--account", &account])["access_token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();

    let port = free_port();
    let mut child = {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_playhead"));
        cmd.arg("--data-dir").arg(dir.path()).arg("--config").arg(&config);
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "off"]);
        cmd.env("PLAYHEAD_TEST_ERASURE_STALL_AFTER", "drop_queued").env("RUST_LOG", "error");
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        let mut c = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(c.stdout.take().unwrap()), &mut line)
            .unwrap();
        assert!(line.contains(&port.to_string()), "server did not start: {line:?}");
        c
    };
    let base = format!("http://127.0.0.1:{port}");
    let r = http
        .post(format!("{base}/v1/profiles/{profile}/events"))
        .bearer_auth(&token)
        .json(&json!({"events": [ev("not-yet", "start", 0, 1)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = http.delete(format!("{base}/v1/profiles/{profile}")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<Value>().await.unwrap()["erasure_id"].as_str().unwrap().to_owned();
    let status_url = format!("/v1/erasures/{id}");
    let step_state = |s: &Value, name: &str| {
        s["steps"].as_array().unwrap().iter().find(|x| x["step"] == name).unwrap()["state"].clone()
    };
    let t0 = Instant::now();
    loop {
        let s: Value = http
            .get(format!("{base}{status_url}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if step_state(&s, "drop_queued") == "done" {
            assert_eq!(step_state(&s, "delete_rows"), "pending", "{s}");
            assert_eq!(s["state"], "running");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the saga did not reach drop_queued: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let port = free_port();
    let mut child = spawn_serve(dir.path(), &config, port);
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    let done = loop {
        let s: Value = http
            .get(format!("{base}{status_url}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["state"] == "done" {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the saga did not resume: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(done["steps"].as_array().unwrap().iter().all(|s| s["state"] == "done"), "{done}");
    let r = http
        .post(format!("{base}/v1/profiles/{profile}/events"))
        .bearer_auth(&token)
        .json(&json!({"events": [ev("m1", "start", 0, 1)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE, "a player still sending is told to stop");
    let r =
        http.get(format!("{base}/v1/profiles/{profile}/history")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    child.kill().unwrap();
    child.wait().unwrap();
    let url = format!("sqlite://{}?mode=ro", dir.path().join("playhead.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE profile_id = ?1")
        .bind(&profile)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(events, 0, "the held event is gone");
    drop(c);

    // The account stays, without the profile: its export says so (`playhead admin export`).
    let out = dir.path().join("export.json");
    let done = run(&["admin", "export", "--account", &account, "--out", out.to_str().unwrap()]);
    assert_eq!(done["status"], "exported");
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["format"], "playhead.export.v2");
    assert_eq!(doc["account"]["account_id"], account.as_str());
    assert_eq!(doc["profiles"], json!([]));
}
