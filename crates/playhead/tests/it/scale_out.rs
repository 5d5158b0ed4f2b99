//! Scale-out mode selected by configuration, through the real binary: `migrate`, `admin` and
//! `serve` all act on the PostgreSQL database named by `database_url` (file or environment), and
//! never print the URL.

use std::process::Command;

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_playhead");

/// `playhead --data-dir DIR --config FILE ARGS...`: its JSON output (the environment's database
/// URL removed, so only the file selects the backend).
pub(crate) fn run(dir: &std::path::Path, config: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("PLAYHEAD_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test]
async fn migrate_and_admin_commands_use_the_configured_postgres_database() {
    if !pg::reachable().await {
        return;
    }
    let schema = pg::Schema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scale-out.toml");
    std::fs::write(
        &config,
        format!("database_url = \"{}\"\ndatabase_schema = \"{}\"\n", pg::url(), schema.name),
    )
    .unwrap();

    let m = run(dir.path(), &config, &["migrate"]);
    assert_eq!(m["backend"], "postgres");
    assert!(!m.to_string().contains("postgres://"), "the URL is never printed: {m}");
    let a = run(dir.path(), &config, &["admin", "create-account", "--email", "ops@example.com"]);
    let account = a["account_id"].as_str().unwrap().to_owned();
    let k = run(
        dir.path(),
        &config,
        &["admin", "api-key", "create", "--name", "ingest", "--scope", "history:write"],
    );
    assert!(k["api_key"].as_str().unwrap().starts_with("phk_"));

    // The rows are in PostgreSQL, in the configured schema, and not in a SQLite file.
    let mut conn = PgConnection::connect(&pg::url()).await.unwrap();
    let n: i64 =
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}.accounts WHERE id::text = $1", schema.name))
            .bind(&account)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(n, 1);
    let keys: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}.api_keys", schema.name))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, 1);
    let _ = conn.close().await;
    assert!(!dir.path().join("playhead.db").exists(), "no SQLite database in scale-out mode");

    // The same account through the environment instead of the file's database_url.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, format!("database_schema = \"{}\"\n", schema.name)).unwrap();
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&empty)
        .args(["admin", "token", "--account", &account])
        .env("PLAYHEAD_DATABASE_URL", pg::url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_scale_out_settings_stop_the_process_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    // NATS without PostgreSQL: the JetStream pipeline relays the PostgreSQL outbox.
    std::fs::write(&config, "nats_url = \"nats://u:secret@127.0.0.1:4222\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .env_remove("PLAYHEAD_DATABASE_URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("nats_url need database_url") && !err.contains("secret"), "{err}");
    // A sweep horizon the duplicate window does not cover would let sweeps duplicate messages.
    std::fs::write(
        &config,
        "database_url = \"postgres://u:secret@h/db\"\nnats_url = \"nats://127.0.0.1:4222\"\n\
         [nats]\nsweep_after_secs = 300\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("--config").arg(&config).arg("migrate").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("nats.duplicate_window_secs") && !err.contains("secret"), "{err}");
}

#[tokio::test]
async fn migrate_data_moves_an_embedded_deployment_and_its_rows_read_the_same() {
    if !pg::reachable().await {
        return;
    }
    // An embedded deployment with a catalog, plays, a resume point and a hidden title.
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 100), movie("m3", 100)]).await;
    let v = t.viewer("mig@example.com").await;
    t.events(&v, watching("m1", 0, 20, 30)).await;
    t.events(&v, watching("m2", 0, 15, 10)).await;
    t.events(&v, watching("m3", 0, 12, 5)).await;
    t.settle().await;
    let r = t
        .http
        .delete(t.url(&format!("/v1/profiles/{}/continue-watching/m3", v.profile)))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let cw = format!("/v1/profiles/{}/continue-watching", v.profile);
    let hist = format!("/v1/profiles/{}/history?limit=50", v.profile);
    let before = (t.get_json(&v.token, &cw).await, t.get_json(&v.token, &hist).await);
    assert_eq!(before.0["items"].as_array().unwrap().len(), 2);
    let dir = t.stop_keep_dir().await;

    let schema = pg::Schema::create().await;
    let out = Command::new(BIN)
        .args(["migrate-data", "--from"])
        .arg(format!("sqlite://{}", dir.path().join("playhead.db").display()))
        .args(["--to", &pg::url(), "--to-schema", &schema.name])
        .env_remove("PLAYHEAD_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verified"], true);
    let rows = |table: &str| {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"] == table)
            .map(|x| x["rows"].as_u64().unwrap())
    };
    assert_eq!(rows("accounts"), Some(2));
    assert_eq!(rows("titles"), Some(3));
    assert_eq!(rows("events"), Some(41 + 31 + 25));
    assert_eq!(rows("hides"), Some(1));
    assert!(rows("viewings").unwrap() >= 3);

    // A second run refuses: the target is no longer empty.
    let again = Command::new(BIN)
        .args(["migrate-data", "--from"])
        .arg(format!("sqlite://{}", dir.path().join("playhead.db").display()))
        .args(["--to", &pg::url(), "--to-schema", &schema.name])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // A scale-out server on the migrated schema answers the same rows.
    let name = schema.name.clone();
    on(Backend::Postgres, async move {
        let p = spawn_with(|s| s.database_schema = Some(name)).await;
        let token = p.token(v.account, &TestApp::viewer_scopes(), 600);
        let after = (p.get_json(&token, &cw).await, p.get_json(&token, &hist).await);
        assert_eq!(after.0["items"], before.0["items"]);
        assert_eq!(after.1["items"], before.1["items"]);
        p.stop().await;
    })
    .await;
    drop(schema);
}

pub(crate) fn redis_url() -> Option<String> {
    let url = std::env::var("PLAYHEAD_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap_or_default().to_owned();
    if std::net::TcpStream::connect(&addr).is_ok() {
        return Some(url);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    assert!(!ci, "Redis is unreachable at {url} and CI=true (scripts/ci-services starts it)");
    eprintln!("SKIPPED: Redis unreachable at {url}");
    None
}

/// Two replicas (two servers in this process) on one PostgreSQL schema, one Redis and one set of
/// keys: one rate limit across both, and an idempotency key replays on the other replica.
#[tokio::test]
async fn two_replicas_share_rate_limits_and_idempotency_keys() {
    if !pg::reachable().await {
        return;
    }
    let Some(redis) = redis_url() else { return };
    on(Backend::Postgres, async move {
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let quota = playhead::config::QuotaSetting { limit: 6, window_secs: 600 };
        let (r, p) = (redis.clone(), prefix.clone());
        let a = spawn_with(move |s| {
            s.redis_url = Some(r.into());
            s.redis_key_prefix = p;
            s.rate_limits.read = quota;
        })
        .await;
        let schema = a.settings.database_schema.clone();
        let issuer = a.settings.issuer.clone();
        let (nats_url, nats) = (a.settings.nats_url.clone(), a.settings.nats.clone());
        let b = spawn_with(move |s| {
            s.nats_url = nats_url; // one stream, one durable consumer for both replicas
            s.nats = nats;
            s.redis_url = Some(redis.into());
            s.redis_key_prefix = prefix;
            s.rate_limits.read = quota;
            s.database_schema = schema;
            s.issuer = issuer; // replicas behind one balancer share one public issuer URL
        })
        .await;
        let ops = a.catalog_token().await;
        a.import(&ops, &[movie("m1", 100)]).await;
        let v = a.viewer("two@example.com").await;

        // Idempotency: the first answer on A is replayed by B, and the events apply once.
        let body = json!({"events": watching("m1", 0, 3, 1)});
        let path = format!("/v1/profiles/{}/events", v.profile);
        let send = |t: &TestApp| {
            t.http
                .post(t.url(&path))
                .bearer_auth(&v.token)
                .header("idempotency-key", "k-two")
                .json(&body)
                .send()
        };
        let first = send(&a).await.unwrap();
        assert_eq!(first.status(), reqwest::StatusCode::ACCEPTED);
        let first: Value = first.json().await.unwrap();
        let again = send(&b).await.unwrap();
        assert_eq!(again.status(), reqwest::StatusCode::ACCEPTED);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.json::<Value>().await.unwrap(), first);
        a.settle().await;
        b.settle().await;

        // One read quota across both replicas: 6 of 12 alternating requests pass, not 12.
        let cw = format!("/v1/profiles/{}/continue-watching", v.profile);
        let mut ok = 0;
        for i in 0..12 {
            let t = if i % 2 == 0 { &a } else { &b };
            let r = t.get(&v.token, &cw).await;
            match r.status() {
                reqwest::StatusCode::OK => ok += 1,
                reqwest::StatusCode::TOO_MANY_REQUESTS => {}
                s => panic!("unexpected {s}"),
            }
        }
        assert_eq!(ok, 6, "one quota shared by both replicas");
        b.stop().await;
        a.stop().await;
    })
    .await;
}

/// Two replicas sharing rows through Redis: a row read (and cached) on one replica reflects a
/// write applied through the other at the next read, and the row really is kept in Redis.
#[tokio::test]
async fn two_replicas_share_cached_rows_and_never_serve_a_stale_resume_point() {
    if !pg::reachable().await {
        return;
    }
    let Some(redis) = redis_url() else { return };
    on(Backend::Postgres, async move {
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let (r, p) = (redis.clone(), prefix.clone());
        let a = spawn_with(move |s| {
            s.redis_url = Some(r.into());
            s.redis_key_prefix = p;
        })
        .await;
        let (schema, issuer) = (a.settings.database_schema.clone(), a.settings.issuer.clone());
        let (nats_url, nats) = (a.settings.nats_url.clone(), a.settings.nats.clone());
        let (r, p) = (redis.clone(), prefix.clone());
        let b = spawn_with(move |s| {
            s.nats_url = nats_url;
            s.nats = nats;
            s.redis_url = Some(r.into());
            s.redis_key_prefix = p;
            s.database_schema = schema;
            s.issuer = issuer;
        })
        .await;
        let ops = a.catalog_token().await;
        a.import(&ops, &[movie("m1", 100)]).await;
        let v = a.viewer("rows@example.com").await;
        let cw = format!("/v1/profiles/{}/continue-watching", v.profile);
        let position = |row: &Value| row["items"][0]["position_ms"].as_i64();

        a.events(&v, watching("m1", 0, 10, 60)).await;
        a.settle().await;
        b.settle().await;
        let on_b = b.get_json(&v.token, &cw).await;
        assert_eq!(position(&on_b), Some(10 * 60_000), "{on_b}");
        assert_eq!(position(&a.get_json(&v.token, &cw).await), Some(10 * 60_000));
        // The row is in Redis, under this deployment's prefix.
        let key = format!("{prefix}rows:{}:cw", v.profile);
        let exists = Command::new("redis-cli").args(["-u", &redis, "EXISTS", &key]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&exists.stdout).trim(), "1", "row not cached in Redis");

        // A write through B (applied by whichever replica's consumer claims it)...
        b.events(&v, watching("m1", 10, 20, 1)).await;
        a.settle().await;
        b.settle().await;
        // ...is what both replicas serve next: no replica keeps the old resume point.
        assert_eq!(position(&a.get_json(&v.token, &cw).await), Some(30 * 60_000));
        assert_eq!(position(&b.get_json(&v.token, &cw).await), Some(30 * 60_000));
        b.stop().await;
        a.stop().await;
    })
    .await;
}

/// A PostgreSQL cluster of this test's own (initdb + pg_ctl as the postgres user, since the
/// server refuses to run as root), on a free loopback port, so stopping it disturbs nobody.
struct ThrowawayPg {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn as_postgres(args: &[&str]) -> std::process::Output {
    let mut cmd = if nix_is_root() { Command::new("runuser") } else { Command::new(args[0]) };
    if nix_is_root() {
        cmd.args(["-u", "postgres", "--"]).args(args);
    } else {
        cmd.args(&args[1..]);
    }
    cmd.output().unwrap()
}

fn nix_is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl ThrowawayPg {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if nix_is_root() {
            let ok =
                Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()).status().unwrap();
            assert!(ok.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let pg = Self { dir, port };
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn up(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let out = as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &self.data(),
            "-o",
            &opts,
            "-l",
            &log,
            "-w",
            "start",
        ]);
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn down(&self) {
        let out =
            as_postgres(&[&format!("{PG_BIN}/pg_ctl"), "-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for ThrowawayPg {
    fn drop(&mut self) {
        let _ = as_postgres(&[&format!("{PG_BIN}/pg_ctl"), "-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

/// PostgreSQL stops under a running server: writes answer 503 with Retry-After and /readyz is
/// false; when it returns the server recovers by itself, and every event answered `accepted`
/// (before and after) is applied exactly once.
#[tokio::test]
async fn fault_postgres_down_answers_503_then_recovers_without_losing_events() {
    if !std::path::Path::new(PG_BIN).join("initdb").exists() {
        let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        assert!(!ci, "PostgreSQL 15 server binaries are needed under CI (scripts/ci-services)");
        return;
    }
    let pg = ThrowawayPg::start();
    let url = pg.url();
    let t = spawn_with(move |s| {
        s.database_url = Some(url.into());
        s.database_max_connections = 4;
    })
    .await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let v = t.viewer("pgdown@example.com").await;
    let events = watching("m1", 0, 10, 30);
    let mut accepted = std::collections::BTreeSet::new();
    let path = format!("/v1/profiles/{}/events", v.profile);
    let post = |batch: &[Value]| {
        t.http.post(t.url(&path)).bearer_auth(&v.token).json(&json!({"events": batch})).send()
    };
    let mut record = |r: Value| {
        for x in r["results"].as_array().unwrap() {
            if x["status"] == "accepted" {
                accepted.insert(x["event_id"].as_str().unwrap().to_owned());
            }
        }
    };
    let r = post(&events[..7]).await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
    record(r.json().await.unwrap());

    pg.down();
    let r = post(&events[7..14]).await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"), "503 carries Retry-After");
    let ready = t.http.get(t.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);

    pg.up();
    let t0 = std::time::Instant::now();
    while t.http.get(t.url("/readyz")).send().await.unwrap().status() != reqwest::StatusCode::OK {
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "/readyz never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The client retries the refused batch, then sends the rest.
    for batch in [&events[7..14], &events[14..]] {
        let r = post(batch).await.unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::ACCEPTED);
        record(r.json().await.unwrap());
    }
    t.settle().await;
    assert_eq!(accepted.len(), events.len());

    // Exactly once: every accepted event is stored once and applied (none left queued), and the
    // one play they make covers them all.
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&mut conn).await.unwrap();
    let queued: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_queue").fetch_one(&mut conn).await.unwrap();
    assert_eq!((stored, queued), (events.len() as i64, 0));
    let _ = conn.close().await;
    let hist = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    assert_eq!(hist["items"].as_array().unwrap().len(), 1, "{hist}");
    t.stop().await;
}

/// Redis unreachable from the start: the replica still starts and serves (no 5xx caused by it),
/// and its quotas hold per replica.
#[tokio::test]
async fn fault_redis_unreachable_costs_no_5xx_and_limits_hold_per_replica() {
    if !pg::reachable().await {
        return;
    }
    on(Backend::Postgres, async {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let t = spawn_with(move |s| {
            s.redis_url = Some(format!("redis://127.0.0.1:{port}").into());
            s.rate_limits.read = playhead::config::QuotaSetting { limit: 3, window_secs: 600 };
        })
        .await;
        let v = t.viewer("noredis@example.com").await;
        let cw = format!("/v1/profiles/{}/continue-watching", v.profile);
        let statuses: Vec<u16> = {
            let mut out = Vec::new();
            for _ in 0..5 {
                out.push(t.get(&v.token, &cw).await.status().as_u16());
            }
            out
        };
        assert_eq!(statuses, [200, 200, 200, 429, 429]);
        let ready = t.http.get(t.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), reqwest::StatusCode::OK, "Redis is not needed to be ready");
        t.stop().await;
    })
    .await;
}
