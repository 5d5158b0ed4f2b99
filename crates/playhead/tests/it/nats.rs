//! Scale-out with the JetStream pipeline (`nats_url`): outbox -> relay -> stream -> durable
//! consumers on every replica. Every test counts the events answered `accepted` and checks each
//! is applied exactly once: stored once, and its outbox row gone (a row is deleted only by the
//! transaction that applies its event), with the plays they make intact.
//!
//! The happy path and the dead-letter test use the shared NATS server (`PLAYHEAD_TEST_NATS_URL`,
//! default nats://127.0.0.1:4222) with a stream of their own, so they run in parallel; the fault
//! tests start a throwaway nats-server on a free port with its own store dir. Under `CI=true` a
//! missing server is a failure, never a skip.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::*;

const NATS_BIN: &str = "/usr/sbin/nats-server";
const BIN: &str = env!("CARGO_BIN_EXE_playhead");

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The shared NATS server, or `None` (a notice) when it is down outside CI.
pub(crate) fn shared_nats() -> Option<String> {
    let url = std::env::var("PLAYHEAD_TEST_NATS_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let addr = url.trim_start_matches("nats://").to_owned();
    if std::net::TcpStream::connect(&addr).is_ok() {
        return Some(url);
    }
    assert!(!under_ci(), "NATS is unreachable at {url} and CI=true (scripts/ci-services starts it)");
    eprintln!("SKIPPED: NATS unreachable at {url}");
    None
}

fn nats_bin_present() -> bool {
    if std::path::Path::new(NATS_BIN).exists() {
        return true;
    }
    assert!(!under_ci(), "{NATS_BIN} is needed under CI (scripts/ci-services installs nats-server)");
    eprintln!("SKIPPED: {NATS_BIN} not installed");
    false
}

/// A nats-server of this test's own, with JetStream in its own store dir, so killing it or
/// deleting its store disturbs nobody.
struct ThrowawayNats {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl ThrowawayNats {
    fn start() -> Self {
        let mut n = Self::not_started();
        n.up();
        n
    }

    /// A free port and a store dir, nothing listening yet.
    fn not_started() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self { dir, port, child: None }
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("js")
    }

    fn up(&mut self) {
        let child = Command::new(NATS_BIN)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: whatever it had not synced to disk is gone.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for ThrowawayNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A stream name of this test's own.
fn stream_name() -> String {
    format!("T{}", uuid::Uuid::new_v4().simple())
}

/// Point a replica at NATS with short timings (a 2 s sweep horizon keeps the fault tests quick).
fn with_nats(s: &mut playhead::Settings, url: &str, stream: &str) {
    s.nats_url = Some(url.into());
    s.nats.stream = stream.to_owned();
    s.nats.sweep_after_secs = 2;
    s.nats.duplicate_window_secs = 4;
    s.nats.max_age_secs = 600;
    s.nats.max_bytes = 64 * 1024 * 1024;
    s.nats.max_msgs = 100_000;
    s.nats.ack_wait_secs = 5;
}

/// A second replica on the first one's schema, data dir, issuer and stream.
async fn second_replica(a: &TestApp) -> TestApp {
    let (schema, dir, issuer) =
        (a.settings.database_schema.clone(), a.settings.data_dir.clone(), a.settings.issuer.clone());
    let (url, stream) =
        (a.settings.nats_url.clone().unwrap().expose().to_owned(), a.settings.nats.stream.clone());
    spawn_with(move |s| {
        s.database_schema = schema;
        s.data_dir = dir;
        s.issuer = issuer;
        with_nats(s, &url, &stream);
    })
    .await
}

async fn js(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.unwrap())
}

async fn drop_streams(url: &str, stream: &str) {
    let js = js(url).await;
    let _ = js.delete_stream(stream).await;
    let _ = js.delete_stream(format!("{stream}_DLQ")).await;
}

/// Wait until a replica's relay has created stream `name`.
async fn wait_for_stream(url: &str, name: &str) {
    let js = js(url).await;
    let t0 = Instant::now();
    while js.get_stream(name).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "stream {name} not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An event written straight into the log as ingestion would (a pause of `m1` at `position_ms`,
/// an hour ago), without its outbox row: each test queues it in the state it needs.
async fn log_raw_event(
    conn: &mut PgConnection,
    profile: playhead_core::ids::ProfileId,
    position_ms: i64,
) -> uuid::Uuid {
    let event_id = uuid::Uuid::new_v4();
    let at = now_ms() - 3_600_000;
    sqlx::query(
        "INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at, \
         occurred_at_raw, received_at, device_id, session_id, state) \
         VALUES ($1, $2, 'm1', 'pause', $4, NULL, $3, $3, $3, 'tv', NULL, 'logged')",
    )
    .bind(event_id)
    .bind(profile.0)
    .bind(at)
    .bind(position_ms)
    .execute(conn)
    .await
    .unwrap();
    event_id
}

/// Events answered `accepted`, by id.
#[derive(Default)]
struct Accepted(BTreeSet<String>);

impl Accepted {
    fn record(&mut self, r: &Value) {
        for x in r["results"].as_array().unwrap() {
            if x["status"] == "accepted" {
                assert!(self.0.insert(x["event_id"].as_str().unwrap().to_owned()), "accepted twice: {x}");
            }
        }
    }
}

async fn post_events(t: &TestApp, v: &Viewer, batch: &[Value]) -> reqwest::Response {
    t.http
        .post(t.url(&format!("/v1/profiles/{}/events", v.profile)))
        .bearer_auth(&v.token)
        .json(&json!({"events": batch}))
        .send()
        .await
        .unwrap()
}

async fn pg_count(schema: &str, sql: &str) -> i64 {
    let mut conn = PgConnection::connect(&pg::url()).await.unwrap();
    sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    let _ = conn.close().await;
    n
}

/// Wait (bounded) until the outbox is empty: every row claimed by an apply.
async fn until_applied(schema: &str, within: Duration) {
    let t0 = Instant::now();
    loop {
        if pg_count(schema, "SELECT count(*) FROM event_queue").await == 0 {
            return;
        }
        assert!(t0.elapsed() < within, "events still unapplied after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every accepted event is stored once and applied (its outbox row is gone), and each viewer's
/// viewing is one play.
async fn assert_applied_once(t: &TestApp, accepted: &Accepted, expected: usize, viewers: &[Viewer]) {
    let schema = t.settings.database_schema.clone().unwrap();
    assert_eq!(accepted.0.len(), expected, "every event was accepted once");
    let ids: Vec<uuid::Uuid> = accepted.0.iter().map(|s| s.parse().unwrap()).collect();
    let mut conn = PgConnection::connect(&pg::url()).await.unwrap();
    sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_id = ANY($1)")
        .bind(&ids)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut conn).await.unwrap();
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_queue").fetch_one(&mut conn).await.unwrap();
    let _ = conn.close().await;
    assert_eq!((stored, all, queued), (expected as i64, expected as i64, 0));
    for v in viewers {
        let hist = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
        assert_eq!(hist["items"].as_array().unwrap().len(), 1, "{hist}");
    }
}

/// Two replicas on one schema and one stream: batches alternate between them, every accepted
/// event is applied exactly once, and then, after a play is deleted and a title hidden, the
/// whole stream is delivered again (the durable consumer deleted, so the replicas re-create it
/// from the first message) and nothing changes.
#[tokio::test]
async fn nats_two_replicas_apply_every_event_once_and_replaying_the_stream_changes_nothing() {
    let Some(url) = shared_nats() else { return };
    if !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async move {
        let stream = stream_name();
        let (u, st) = (url.clone(), stream.clone());
        let a = spawn_with(move |s| with_nats(s, &u, &st)).await;
        let b = second_replica(&a).await;
        let ops = a.catalog_token().await;
        let titles: Vec<Value> = (0..4).map(|i| movie(&format!("m{i}"), 100)).collect();
        a.import(&ops, &titles).await;
        let mut viewers = Vec::new();
        for i in 0..4 {
            viewers.push(a.viewer(&format!("nats{i}@example.com")).await);
        }
        let mut accepted = Accepted::default();
        let mut expected = 0;
        for (i, v) in viewers.iter().enumerate() {
            let events = watching(&format!("m{i}"), 0, 10, 30 + i as i64);
            expected += events.len();
            for (n, batch) in events.chunks(5).enumerate() {
                let t = if n % 2 == 0 { &a } else { &b };
                let r = post_events(t, v, batch).await;
                assert_eq!(r.status(), StatusCode::ACCEPTED);
                accepted.record(&r.json().await.unwrap());
            }
        }
        let schema = a.settings.database_schema.clone().unwrap();
        until_applied(&schema, Duration::from_secs(30)).await;
        assert_applied_once(&a, &accepted, expected, &viewers).await;

        // Through the broker: the stream holds one message per event.
        let js = js(&url).await;
        let mut s = js.get_stream(&stream).await.unwrap();
        assert_eq!(s.info().await.unwrap().state.messages, expected as u64);

        // Deletes and hides, then the whole stream again.
        let v0 = &viewers[0];
        let hist = a.get_json(&v0.token, &format!("/v1/profiles/{}/history", v0.profile)).await;
        let play = hist["items"][0]["play_id"].as_str().unwrap().to_owned();
        let del = a
            .http
            .delete(a.url(&format!("/v1/profiles/{}/history/{play}", v0.profile)))
            .bearer_auth(&v0.token)
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), StatusCode::NO_CONTENT);
        let v1 = &viewers[1];
        let hide = b
            .http
            .delete(b.url(&format!("/v1/profiles/{}/continue-watching/m1", v1.profile)))
            .bearer_auth(&v1.token)
            .send()
            .await
            .unwrap();
        assert!(hide.status().is_success(), "{}", hide.status());
        let snapshot = async || {
            let mut out = Vec::new();
            for v in &viewers {
                for path in ["history", "continue-watching"] {
                    out.push(a.get_json(&v.token, &format!("/v1/profiles/{}/{path}", v.profile)).await);
                }
            }
            out
        };
        let before = snapshot().await;
        assert_eq!(before[0]["items"].as_array().unwrap().len(), 0, "the play is deleted");
        assert_eq!(before[3]["items"].as_array().unwrap().len(), 0, "m1 is hidden");

        js.delete_consumer_from_stream(playhead_nats::CONSUMER, &stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        let t0 = Instant::now();
        loop {
            let consumer: Result<jetstream::consumer::PullConsumer, _> =
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
        assert_eq!(snapshot().await, before, "replaying the whole stream changed something");
        assert_eq!(pg_count(&schema, "SELECT count(*) FROM events").await, expected as i64);

        b.stop().await;
        a.stop().await;
        drop_streams(&url, &stream).await;
    })
    .await;
}

/// NATS stopped mid-load: writes are still accepted into the outbox, up to its bound (then 503
/// with Retry-After); when NATS returns the relay catches up, and every accepted event is applied
/// exactly once.
#[tokio::test]
async fn fault_nats_down_accepts_writes_into_the_bounded_outbox_and_catches_up() {
    if !nats_bin_present() || !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async {
        let mut nats = ThrowawayNats::start();
        let (url, stream) = (nats.url(), stream_name());
        let (u, st) = (url.clone(), stream.clone());
        let t = spawn_with(move |s| {
            with_nats(s, &u, &st);
            s.limits.max_backlog = 60;
        })
        .await;
        let ops = t.catalog_token().await;
        t.import(&ops, &[movie("m1", 100)]).await;
        let v = t.viewer("natsdown@example.com").await;
        let events = watching("m1", 0, 40, 60); // 81 events
        let mut accepted = Accepted::default();
        let r = post_events(&t, &v, &events[..10]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        accepted.record(&r.json().await.unwrap());
        let schema = t.settings.database_schema.clone().unwrap();
        until_applied(&schema, Duration::from_secs(30)).await;

        nats.kill();
        // Accepted while NATS is down, until the outbox is full.
        let mut sent = 10;
        let mut refused = None;
        while sent < events.len() {
            let batch = &events[sent..(sent + 10).min(events.len())];
            let r = post_events(&t, &v, batch).await;
            if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                assert!(r.headers().contains_key("retry-after"), "503 carries Retry-After");
                refused = Some(sent);
                break;
            }
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            accepted.record(&r.json().await.unwrap());
            sent += batch.len();
        }
        let refused_at = refused.expect("the outbox is bounded: a full one answers 503");
        assert!(
            refused_at >= 60,
            "writes were accepted while NATS was down (outbox bound 60), refused at {refused_at}"
        );
        let unapplied = pg_count(&schema, "SELECT count(*) FROM event_queue").await;
        assert_eq!(unapplied, (refused_at - 10) as i64, "everything accepted meanwhile waits in the outbox");

        nats.up();
        until_applied(&schema, Duration::from_secs(60)).await;
        // The client retries what was refused.
        for batch in events[refused_at..].chunks(10) {
            let r = post_events(&t, &v, batch).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            accepted.record(&r.json().await.unwrap());
        }
        until_applied(&schema, Duration::from_secs(30)).await;
        assert_applied_once(&t, &accepted, events.len(), &[v]).await;
        t.stop().await;
    })
    .await;
}

/// NATS SIGKILLed with messages published but not applied, its store deleted, restarted empty:
/// the sweeper publishes the unapplied rows again and every accepted event is applied once.
/// (The applies are held back by taking the profile's apply lock, so the messages are in the
/// stream, and only there, when NATS dies.)
#[tokio::test]
async fn fault_nats_restart_loses_data_and_the_sweeper_republishes() {
    if !nats_bin_present() || !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async {
        let mut nats = ThrowawayNats::start();
        let (url, stream) = (nats.url(), stream_name());
        let (u, st) = (url.clone(), stream.clone());
        let t = spawn_with(move |s| with_nats(s, &u, &st)).await;
        let ops = t.catalog_token().await;
        t.import(&ops, &[movie("m1", 100)]).await;
        let v = t.viewer("natslost@example.com").await;
        let schema = t.settings.database_schema.clone().unwrap();

        // Hold the profile's apply lock: appends go on, applies wait (and NAK on lock timeout).
        let mut lock = PgConnection::connect(&pg::url()).await.unwrap();
        let key = playhead_store_postgres::profile_lock_key(v.profile);
        sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut lock).await.unwrap();

        let events = watching("m1", 0, 10, 30);
        let mut accepted = Accepted::default();
        for batch in events.chunks(7) {
            let r = post_events(&t, &v, batch).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            accepted.record(&r.json().await.unwrap());
        }
        // Wait until the relay has handed everything to NATS and NATS holds it.
        let js = js(&url).await;
        let t0 = Instant::now();
        loop {
            let unpublished =
                pg_count(&schema, "SELECT count(*) FROM event_queue WHERE published_at IS NULL").await;
            let held = match js.get_stream(&stream).await {
                Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            };
            if unpublished == 0 && held >= events.len() as u64 {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "the relay did not publish everything");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            pg_count(&schema, "SELECT count(*) FROM event_queue").await,
            events.len() as i64,
            "nothing applied yet"
        );

        // The broker loses everything. An apply already waiting for the lock with messages it
        // fetched before is cancelled (rolled back, as a crash would), so the events can only
        // come back through the sweeper.
        nats.kill();
        for _ in 0..15 {
            // Only waiters for this profile's key (a bigint key is classid = high 32 bits, objid =
            // low 32 bits, objsubid = 1): the server is shared with other tests, whose migrations
            // wait on advisory locks of their own and must not be cancelled.
            sqlx::query(
                "SELECT pg_cancel_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND objsubid = 1 AND classid::bigint = ($1 >> 32) & 4294967295 AND objid::bigint = $1 & 4294967295",
            )
            .bind(key)
            .execute(&mut lock)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::remove_dir_all(nats.store()).unwrap();
        nats.up();
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(key).execute(&mut lock).await.unwrap();
        let _ = lock.close().await;

        until_applied(&schema, Duration::from_secs(60)).await;
        assert_applied_once(&t, &accepted, events.len(), &[v]).await;
        // What was applied came from the new, empty broker: the sweeper published it again.
        let js = self::js(&url).await;
        let mut s = js.get_stream(&stream).await.unwrap();
        assert!(
            s.info().await.unwrap().state.messages >= events.len() as u64,
            "republished after the restart"
        );
        t.stop().await;
    })
    .await;
}

/// A poison message is dead-lettered (once) and its outbox row parked, so the sweeper does not
/// republish it for ever; `admin dlq list` shows it; `admin dlq replay` re-queues its event from
/// the outbox (the good copy) and it is applied; a dead letter nothing can decode is kept and
/// reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_poison_messages_go_to_the_dlq_and_replay_applies_the_fixed_event() {
    let Some(url) = shared_nats() else { return };
    if !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async move {
        let stream = stream_name();
        let (u, st) = (url.clone(), stream.clone());
        let t = spawn_with(move |s| with_nats(s, &u, &st)).await;
        let ops = t.catalog_token().await;
        t.import(&ops, &[movie("m1", 100)]).await;
        let v = t.viewer("poison@example.com").await;
        let schema = t.settings.database_schema.clone().unwrap();
        // Wait for the streams (the relay creates them).
        wait_for_stream(&url, &format!("{stream}_DLQ")).await;
        let js = js(&url).await;

        // An event in the log whose outbox row a relay has "published" as a corrupted message
        // (a buggy publisher, bytes damaged in transit): written directly, as the relay would.
        let mut conn = PgConnection::connect(&pg::url()).await.unwrap();
        sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
        let event_id = log_raw_event(&mut conn, v.profile, 1800000).await;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO event_queue (event_id, published_at) VALUES ($1, $2) RETURNING seq",
        )
        .bind(event_id)
        .bind(now_ms())
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("{event_id}:{seq}").as_str());
        h.insert("Playhead-Seq", seq.to_string().as_str());
        h.insert("Playhead-Event-Id", event_id.to_string().as_str());
        js.publish_with_headers(format!("{stream}.events"), h, "{\"v\":1,\"seq\":".into())
            .await
            .unwrap()
            .await
            .unwrap();
        // And one with no outbox row and no hope: garbage from elsewhere.
        js.publish(format!("{stream}.events"), "\u{0}garbage".into()).await.unwrap().await.unwrap();

        let dlq_cmd = |args: &[&str]| tokio::task::block_in_place(|| admin_dlq(&t, &url, args));

        // Both are dead-lettered; the row is parked, not applied.
        let t0 = Instant::now();
        let list = loop {
            let list = dlq_cmd(&["list"]);
            if list["count"] == 2 {
                break list;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "not dead-lettered: {list}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let items = list["items"].as_array().unwrap();
        let poison = items.iter().find(|i| i["outbox_seq"] == seq).expect("the poison names its row");
        assert!(poison["reason"].as_str().unwrap().contains("undecodable"), "{poison}");
        assert_eq!(poison["event_id"], event_id.to_string());
        let garbage = items.iter().find(|i| i["outbox_seq"].is_null()).unwrap();
        // Past the sweep horizon the parked row is still parked (not republished for ever).
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(pg_count(&schema, "SELECT count(*) FROM event_queue WHERE dead_at IS NOT NULL").await, 1);
        assert_eq!(dlq_cmd(&["list"])["count"], 2, "dead-lettered once");

        // Replay all: the poison's event is re-queued from the outbox and applied; the garbage
        // cannot be replayed, so it is kept and reported.
        let r = dlq_cmd(&["replay", "--all"]);
        assert_eq!((r["replayed"].as_u64(), r["kept"].as_u64()), (Some(1), Some(1)), "{r}");
        let kept = r["items"].as_array().unwrap().iter().find(|i| i["outcome"] == "kept").unwrap();
        assert_eq!(kept["id"], garbage["id"]);
        until_applied(&schema, Duration::from_secs(30)).await;
        let progress = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
        assert_eq!(progress["position_ms"], 1_800_000, "{progress}");
        let list = dlq_cmd(&["list"]);
        assert_eq!(list["count"], 1, "only the undecodable letter remains: {list}");
        let one = dlq_cmd(&["replay", &garbage["id"].to_string()]);
        assert_eq!(one["kept"], 1, "{one}");

        t.stop().await;
        drop_streams(&url, &stream).await;
    })
    .await;
}

/// A full stream (discard=new) refuses publishes: events wait in the outbox, and once the outbox
/// is at its bound ingestion answers 503 + Retry-After (back pressure, nothing dropped). After the
/// operator makes room (here: a purge) the relay catches up and every accepted event is applied
/// once.
#[tokio::test]
async fn nats_a_full_stream_pushes_back_to_the_api_and_loses_nothing() {
    let Some(url) = shared_nats() else { return };
    if !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async move {
        let stream = stream_name();
        let (u, st) = (url.clone(), stream.clone());
        let t = spawn_with(move |s| {
            with_nats(s, &u, &st);
            s.nats.max_msgs = 20;
            s.limits.max_backlog = 15;
        })
        .await;
        let ops = t.catalog_token().await;
        t.import(&ops, &[movie("m1", 100)]).await;
        let v = t.viewer("full@example.com").await;
        let schema = t.settings.database_schema.clone().unwrap();
        // 39 events: 20 fill the stream, 10 wait in the outbox, 9 are refused (10 + 9 > 15) and,
        // after the purge, fit (10 + 9 <= 20).
        let events = watching("m1", 0, 19, 30);
        let mut accepted = Accepted::default();
        for batch in events[..20].chunks(10) {
            let r = post_events(&t, &v, batch).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            accepted.record(&r.json().await.unwrap());
            until_applied(&schema, Duration::from_secs(30)).await;
        }
        // The stream is full (applied messages stay for max_age): the next events are accepted
        // into the outbox but not published, and the outbox bound then refuses more.
        let r = post_events(&t, &v, &events[20..30]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        accepted.record(&r.json().await.unwrap());
        let r = post_events(&t, &v, &events[30..]).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key("retry-after"), "503 carries Retry-After");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(pg_count(&schema, "SELECT count(*) FROM event_queue").await, 10, "waiting in the outbox");

        let js = js(&url).await;
        js.get_stream(&stream).await.unwrap().purge().await.unwrap();
        until_applied(&schema, Duration::from_secs(30)).await;
        let r = post_events(&t, &v, &events[30..]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        accepted.record(&r.json().await.unwrap());
        until_applied(&schema, Duration::from_secs(30)).await;
        assert_applied_once(&t, &accepted, events.len(), &[v]).await;
        t.stop().await;
        drop_streams(&url, &stream).await;
    })
    .await;
}

/// NATS unreachable when the replica starts: it starts and is ready (ingestion needs only
/// PostgreSQL), accepts writes into the outbox, and applies them once NATS comes up.
#[tokio::test]
async fn fault_nats_unreachable_at_start_still_accepts_writes() {
    if !nats_bin_present() || !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async {
        let mut nats = ThrowawayNats::not_started();
        let (url, stream) = (nats.url(), stream_name());
        let (u, st) = (url.clone(), stream.clone());
        let t = tokio::time::timeout(Duration::from_secs(20), spawn_with(move |s| with_nats(s, &u, &st)))
            .await
            .expect("a replica starts without NATS");
        let ready = t.http.get(t.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "NATS is not needed to be ready");
        let ops = t.catalog_token().await;
        t.import(&ops, &[movie("m1", 100)]).await;
        let v = t.viewer("natslate@example.com").await;
        let events = watching("m1", 0, 10, 30);
        let mut accepted = Accepted::default();
        for batch in events.chunks(7) {
            let r = post_events(&t, &v, batch).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            accepted.record(&r.json().await.unwrap());
        }
        let schema = t.settings.database_schema.clone().unwrap();
        assert_eq!(pg_count(&schema, "SELECT count(*) FROM event_queue").await, events.len() as i64);

        nats.up();
        until_applied(&schema, Duration::from_secs(60)).await;
        assert_applied_once(&t, &accepted, events.len(), &[v]).await;
        t.stop().await;
    })
    .await;
}

/// `playhead admin dlq ARGS` through the real binary, with a config file naming the test's
/// database schema, NATS and stream.
fn admin_dlq(t: &TestApp, url: &str, args: &[&str]) -> Value {
    let config = t.settings.data_dir.join("nats.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\ndatabase_schema = \"{}\"\nnats_url = \"{url}\"\n[nats]\nstream = \"{}\"\n\
             sweep_after_secs = 2\nduplicate_window_secs = 4\nmax_age_secs = 600\n",
            pg::url(),
            t.settings.database_schema.as_deref().unwrap(),
            t.settings.nats.stream,
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&t.settings.data_dir)
        .arg("--config")
        .arg(&config)
        .args(["admin", "dlq"])
        .args(args)
        .env_remove("PLAYHEAD_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An event the store cannot apply (its title's row is corrupt: a deterministic error, not an
/// outage) is retried, then dead-lettered on its third delivery with the reason; after the data
/// is fixed, `admin dlq replay ID` applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_an_event_that_keeps_failing_is_dead_lettered_and_replayed_after_the_fix() {
    let Some(url) = shared_nats() else { return };
    if !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async move {
        let stream = stream_name();
        let (u, st) = (url.clone(), stream.clone());
        let t = spawn_with(move |s| with_nats(s, &u, &st)).await;
        let ops = t.catalog_token().await;
        t.import(&ops, &[movie("m1", 100)]).await;
        let v = t.viewer("failing@example.com").await;
        let schema = t.settings.database_schema.clone().unwrap();

        // The title's row is damaged after the event was accepted (written here as ingestion
        // would: event logged, outbox row unpublished).
        let mut conn = PgConnection::connect(&pg::url()).await.unwrap();
        sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
        sqlx::query("UPDATE titles SET genres = '{\"not\": \"an array\"}' WHERE id = 'm1'")
            .execute(&mut conn)
            .await
            .unwrap();
        let event_id = log_raw_event(&mut conn, v.profile, 1200000).await;
        sqlx::query("INSERT INTO event_queue (event_id) VALUES ($1)")
            .bind(event_id)
            .execute(&mut conn)
            .await
            .unwrap();

        let t0 = Instant::now();
        let list = loop {
            let list = tokio::task::block_in_place(|| admin_dlq(&t, &url, &["list"]));
            if list["count"] == 1 {
                break list;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "not dead-lettered: {list}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let letter = &list["items"][0];
        let reason = letter["reason"].as_str().unwrap();
        assert!(reason.starts_with("apply failed") && reason.contains("genres"), "{letter}");
        assert_eq!(letter["event_id"], event_id.to_string());
        assert_eq!(pg_count(&schema, "SELECT count(*) FROM event_queue WHERE dead_at IS NOT NULL").await, 1);

        // The fix, then the replay.
        sqlx::query("UPDATE titles SET genres = '[\"Drama\"]' WHERE id = 'm1'")
            .execute(&mut conn)
            .await
            .unwrap();
        let _ = conn.close().await;
        let id = letter["id"].to_string();
        let r = tokio::task::block_in_place(|| admin_dlq(&t, &url, &["replay", &id]));
        assert_eq!(r["items"][0]["outcome"], "requeued", "{r}");
        until_applied(&schema, Duration::from_secs(30)).await;
        let progress = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
        assert_eq!(progress["position_ms"], 1_200_000, "{progress}");
        assert_eq!(tokio::task::block_in_place(|| admin_dlq(&t, &url, &["list"]))["count"], 0);
        t.stop().await;
        drop_streams(&url, &stream).await;
    })
    .await;
}

/// A message naming an outbox seq that holds a different event (another deployment on the same
/// stream, a database restored under a running stream: seqs restart per database) is ignored: it
/// must not claim, and so delete, the other event's row.
#[tokio::test]
async fn nats_a_message_naming_another_events_row_claims_nothing() {
    let Some(url) = shared_nats() else { return };
    if !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async move {
        let stream = stream_name();
        let (u, st) = (url.clone(), stream.clone());
        let t = spawn_with(move |s| with_nats(s, &u, &st)).await;
        let ops = t.catalog_token().await;
        t.import(&ops, &[movie("m1", 100)]).await;
        let v = t.viewer("foreign@example.com").await;
        let schema = t.settings.database_schema.clone().unwrap();
        wait_for_stream(&url, &stream).await;
        let js = js(&url).await;

        // A row of this deployment, parked (so neither the relay nor the sweeper touches it).
        let mut conn = PgConnection::connect(&pg::url()).await.unwrap();
        sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.unwrap();
        let ours = log_raw_event(&mut conn, v.profile, 600000).await;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO event_queue (event_id, published_at, dead_at) VALUES ($1, $2, $2) RETURNING seq",
        )
        .bind(ours)
        .bind(now_ms())
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let _ = conn.close().await;

        // Someone else's event under the same seq, in this build's own format.
        let theirs = uuid::Uuid::new_v4();
        let at = playhead_core::Timestamp(now_ms() - 3_600_000).to_rfc3339();
        let payload = json!({"v": 1, "seq": seq, "event": {
            "event_id": theirs, "profile_id": v.profile.0, "title_id": "m1", "kind": "pause",
            "position_ms": 300000, "duration_ms": null, "occurred_at": at, "occurred_at_raw": at,
            "received_at": at, "device_id": "tv", "session_id": null}});
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("{theirs}:{seq}").as_str());
        js.publish_with_headers(format!("{stream}.events"), h, serde_json::to_vec(&payload).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();

        // Wait until the consumer has dealt with it (delivered and acked).
        let mut s = js.get_stream(&stream).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        let t0 = Instant::now();
        loop {
            let c: Result<jetstream::consumer::PullConsumer, _> =
                s.get_consumer(playhead_nats::CONSUMER).await;
            if let Ok(mut c) = c {
                let info = c.info().await.unwrap();
                if info.ack_floor.stream_sequence >= last {
                    break;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "the message was not consumed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut dlq = js.get_stream(format!("{stream}_DLQ")).await.unwrap();
        assert_eq!(dlq.info().await.unwrap().state.messages, 0, "it decoded: not a poison message");
        assert_eq!(pg_count(&schema, "SELECT count(*) FROM event_queue").await, 1, "our row is still there");
        let progress = t.get_json(&v.token, &format!("/v1/profiles/{}/progress/m1", v.profile)).await;
        assert_eq!(progress["position_ms"], 0, "neither event was applied: {progress}");
        t.stop().await;
        drop_streams(&url, &stream).await;
    })
    .await;
}
