//! Test harness: `spawn_app()` starts Playhead on 127.0.0.1:0 with a fresh data dir and hands
//! back a client, the base URL, and helpers to mint tokens and seed data.
//!
//! Backends: a test body runs on the embedded SQLite store unless it is listed in
//! [`on_both_backends!`], which runs it once per backend; on PostgreSQL each run gets a schema of
//! its own on the server named by `PLAYHEAD_TEST_DATABASE_URL` (default the local test server),
//! dropped afterwards, and Redis (`PLAYHEAD_TEST_REDIS_URL`, default the local server) with a key
//! prefix of its own, as scale-out mode is deployed. An unreachable server fails the PostgreSQL runs under `CI=true` and skips
//! them (with a notice on stderr) elsewhere.

use std::sync::Arc;
use std::time::Duration;

use playhead::{Settings, open};
use playhead_app::App;
use playhead_auth::TokenIssuer;
use playhead_core::auth::{Scope, Scopes};
use playhead_core::ids::{AccountId, ProfileId};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// The backend of the running test (SQLite unless it runs inside [`on`]).
pub fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// Run a test body with `spawn_app`/`spawn_with` on `backend`; on PostgreSQL, skip (outside CI)
/// or fail (under CI) when the server is unreachable.
pub async fn on(backend: Backend, body: impl Future<Output = ()>) {
    if backend == Backend::Postgres && !pg::reachable().await {
        return;
    }
    BACKEND.scope(backend, body).await;
}

/// Generate `sqlite::NAME` and `postgres::NAME` tests for each listed `async fn NAME()`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::support::on($crate::support::Backend::Sqlite, super::$name()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    $crate::support::on($crate::support::Backend::Postgres, super::$name()).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;

/// Throwaway schemas on the PostgreSQL test server.
pub mod pg {
    use std::io::Write;
    use std::time::Duration;

    use sqlx::{Connection, PgConnection};

    /// The server the tests use unless `PLAYHEAD_TEST_DATABASE_URL` names another.
    pub fn url() -> String {
        std::env::var("PLAYHEAD_TEST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    fn under_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    /// Whether the server answers; panics under CI when it does not.
    pub async fn reachable() -> bool {
        let url = url();
        let why = match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
            Ok(Ok(c)) => {
                let _ = c.close().await;
                return true;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 10 s".to_owned(),
        };
        assert!(
            !under_ci(),
            "PostgreSQL is unreachable at {url} ({why}) and CI=true: the PostgreSQL runs of the HTTP \
             tests must run in CI (scripts/ci-services starts the server)"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED on PostgreSQL: unreachable at {url} ({why})");
        false
    }

    /// A schema of its own, dropped (with the connections of the server using it) on drop.
    pub struct Schema {
        pub name: String,
    }

    impl Schema {
        pub async fn create() -> Self {
            let mut conn = PgConnection::connect(&url()).await.expect("connect to the test server");
            let name = format!("ph_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.expect("create schema");
            let _ = conn.close().await;
            Self { name }
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let name = self.name.clone();
            // Its own thread and runtime: `drop` cannot await inside the test's runtime.
            let done = std::thread::spawn(move || -> Option<()> {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async move {
                    let mut conn = PgConnection::connect(&url()).await.ok()?;
                    // The server's pools may still hold connections (one in a transaction): end
                    // them, the revocation poll's (`playhead/<schema>/revocation-poll`) too.
                    sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE (application_name = $1 OR starts_with(application_name, $1 || '/')) \
                         AND pid <> pg_backend_pid()",
                    )
                    .bind(format!("playhead/{name}"))
                    .execute(&mut conn)
                    .await
                    .ok()?;
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut conn)
                        .await
                        .ok()?;
                    conn.close().await.ok()
                })
            });
            if !matches!(done.join(), Ok(Some(()))) {
                let _ = writeln!(std::io::stderr(), "note: test schema {} was not dropped", self.name);
            }
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub http: Client,
    pub app: App,
    pub identity: Arc<playhead_app::identity::AuthServer>,
    pub settings: Settings,
    /// The store the server runs on (for jobs a test drives itself, e.g. the roll-up).
    pub store: playhead::Store,
    pub _dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Dropped after the server's handles.
    _streams: Option<Streams>,
    /// The last field: dropped after the server's handles.
    _schema: Option<pg::Schema>,
}

/// A test's JetStream streams (events and dead letters), deleted when the test ends so runs do
/// not pile streams up on the shared server.
pub struct Streams {
    url: String,
    name: String,
}

impl Streams {
    /// Delete stream `name` (and its dead-letter stream) on the server at `url` when dropped.
    pub fn new(url: &str, name: &str) -> Self {
        Self { url: url.to_owned(), name: name.to_owned() }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Its own thread and runtime: `drop` cannot await inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async move {
                let js = async_nats::jetstream::new(async_nats::connect(&url).await.ok()?);
                let _ = js.delete_stream(&name).await;
                let _ = js.delete_stream(format!("{name}_DLQ")).await;
                Some(())
            })
        })
        .join();
    }
}

pub struct Viewer {
    pub account: AccountId,
    pub profile: ProfileId,
    pub token: String,
}

pub fn settings_for(dir: &std::path::Path) -> Settings {
    Settings { data_dir: dir.to_path_buf(), metrics_listen: None, ..Settings::default() }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let mut settings = settings_for(dir.path());
    // The issuer is the server's own URL, as in production (RFC 8414 metadata derives from it).
    settings.issuer = base.clone();
    // Cheap password hashing and a fast revocation poll keep the tests quick.
    settings.identity.argon2_memory_kib = 1024;
    settings.identity.argon2_iterations = 1;
    settings.identity.revocation_poll_ms = 100;
    let mut streams = None;
    let schema = match backend() {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let schema = pg::Schema::create().await;
            settings.database_url = Some(pg::url().into());
            settings.database_schema = Some(schema.name.clone());
            // Tests run in parallel and share the server's max_connections.
            settings.database_max_connections = 4;
            // Scale-out mode as deployed: PostgreSQL and Redis (shared rate limits and row
            // cache), with a key prefix of this test's own.
            if let Some(redis) = crate::scale_out::redis_url() {
                settings.redis_url = Some(redis.into());
                settings.redis_key_prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
            }
            // ...and events through NATS JetStream, on a stream of this test's own (deleted
            // afterwards). A second replica joins with `s.nats = a.settings.nats.clone()`.
            if let Some(nats) = crate::nats::shared_nats() {
                let name = format!("T{}", uuid::Uuid::new_v4().simple());
                settings.nats_url = Some(nats.as_str().into());
                settings.nats.stream = name.clone();
                settings.nats.max_bytes = 64 * 1024 * 1024;
                settings.nats.max_msgs = 100_000;
                settings.nats.max_age_secs = 600;
                streams = Some(Streams::new(&nats, &name));
            }
            Some(schema)
        }
    };
    tweak(&mut settings);
    let rt = open(settings.clone()).await.expect("open runtime");
    let (app, identity, store) = (rt.app.clone(), rt.identity.clone(), rt.store.clone());
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(playhead::launch(rt, listener, rx));
    let http = Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    TestApp {
        base,
        http,
        app,
        identity,
        settings,
        store,
        _dir: dir,
        stop,
        task: Some(task),
        _streams: streams,
        _schema: schema,
    }
}

/// A second replica of `a` (scale-out): the same PostgreSQL schema, issuer, JetStream stream and
/// Redis keys, its own listener and process state. `tweak` runs after the shared settings.
pub async fn spawn_replica(a: &TestApp, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let shared = a.settings.clone();
    spawn_with(move |s| {
        s.database_schema = shared.database_schema;
        s.issuer = shared.issuer;
        s.nats_url = shared.nats_url;
        s.nats = shared.nats;
        s.redis_url = shared.redis_url;
        s.redis_key_prefix = shared.redis_key_prefix;
        tweak(s);
    })
    .await
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn token(&self, account: AccountId, scopes: &str, ttl_secs: i64) -> String {
        let issuer = TokenIssuer::new(
            self.identity.keys(),
            self.identity.config().issuer.clone(),
            self.settings.audience.clone(),
            ttl_secs,
        );
        let now = self.app.clock().now().0 / 1000;
        let claims = issuer
            .account_claims(account, "tests", Scopes::parse(scopes).expect("scopes"), "sid-1", now)
            .with_auth_time(now);
        issuer.issue(&claims).expect("issue")
    }

    /// A viewer token bound to `profile` (a TV signed in as that profile).
    pub fn bound_token(&self, account: AccountId, profile: ProfileId) -> String {
        let issuer = TokenIssuer::new(
            self.identity.keys(),
            self.identity.config().issuer.clone(),
            self.settings.audience.clone(),
            600,
        );
        let now = self.app.clock().now().0 / 1000;
        let scopes = Scopes::parse(&Self::viewer_scopes()).expect("scopes");
        let claims = issuer
            .account_claims(account, "tests", scopes, "sid-tv", now)
            .with_auth_time(now)
            .bound_to(profile);
        issuer.issue(&claims).expect("issue")
    }

    pub fn viewer_scopes() -> String {
        Scope::VIEWER.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// An account with one profile and a viewer token.
    pub async fn viewer(&self, email: &str) -> Viewer {
        let account = self.app.create_account(email).await.expect("account").id;
        let profile = self
            .app
            .insert_profile(
                account,
                playhead_app::accounts::NewProfile { name: "Main".into(), ..Default::default() },
            )
            .await
            .expect("profile")
            .id;
        Viewer { account, profile, token: self.token(account, &Self::viewer_scopes(), 3600) }
    }

    /// A token that may write the catalog.
    pub async fn catalog_token(&self) -> String {
        let a = self
            .app
            .create_account(&format!("ops-{}@example.com", uuid::Uuid::new_v4().simple()))
            .await
            .expect("ops");
        self.token(a.id, "catalog:write admin", 3600)
    }

    pub async fn import(&self, token: &str, lines: &[Value]) -> Value {
        let body = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
        let r = self
            .http
            .post(self.url("/v1/titles/import"))
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("import");
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.expect("json")
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("get")
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let r = self.get(token, path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.expect("json")
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("post")
    }

    pub async fn events(&self, v: &Viewer, events: Vec<Value>) -> Value {
        let r = self
            .post(&v.token, &format!("/v1/profiles/{}/events", v.profile), &json!({"events": events}))
            .await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        r.json().await.expect("json")
    }

    /// Wait until the consumer has applied everything queued and every apply has committed and
    /// invalidated its caches: an empty queue, then no apply in progress (the apply that took the
    /// last rows deletes them in its commit and finishes after invalidating).
    pub async fn settle(&self) {
        let mut applying = self.app.applying();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.app.ports().log.backlog().await.expect("backlog") == 0
                && *applying.borrow_and_update() == 0
            {
                return;
            }
            // Woken when an apply finishes; the timeout re-reads the queue (events appended by
            // a request still in flight start no apply until the consumer wakes).
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                applying.changed(),
            )
            .await;
            assert!(tokio::time::Instant::now() < deadline, "consumer did not drain the backlog");
        }
    }

    /// Stop the server but keep its data dir (to read the database afterwards).
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("server");
        }
        self._dir
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("server");
        }
    }
}

pub fn movie(id: &str, minutes: i64) -> Value {
    json!({"id": id, "kind": "movie", "name": format!("Movie {id}"), "duration_ms": minutes * 60_000, "genres": ["Drama"], "maturity": 12, "release_year": 2020})
}

pub fn episode(series: &str, season: i32, ep: i32, minutes: i64) -> Value {
    json!({"id": format!("{series}.s{season}e{ep}"), "kind": "episode", "name": format!("E{ep}"), "duration_ms": minutes * 60_000,
           "series_id": series, "season": season, "episode": ep, "maturity": 7})
}

pub fn series(id: &str) -> Value {
    json!({"id": id, "kind": "series", "name": format!("Series {id}"), "maturity": 7})
}

/// An event at `mins_ago` minutes before now.
pub fn ev(title: &str, kind: &str, position_ms: i64, mins_ago: i64) -> Value {
    let at = playhead_core::Timestamp(now_ms() - mins_ago * 60_000).to_rfc3339();
    json!({"event_id": uuid::Uuid::new_v4().to_string(), "title_id": title, "kind": kind, "position_ms": position_ms, "occurred_at": at, "device_id": "tv"})
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Watching `title` for `minutes` from `from_min`, ending `ends_mins_ago` minutes ago: heartbeats every 30 s.
pub fn watching(title: &str, from_min: i64, minutes: i64, ends_mins_ago: i64) -> Vec<Value> {
    let start_ms = now_ms() - (ends_mins_ago + minutes) * 60_000;
    (0..=minutes * 2)
        .map(|i| {
            let at = playhead_core::Timestamp(start_ms + i * 30_000).to_rfc3339();
            json!({"event_id": uuid::Uuid::new_v4().to_string(), "title_id": title, "kind": if i == 0 {"start"} else {"heartbeat"},
                   "position_ms": from_min * 60_000 + i * 30_000, "occurred_at": at, "device_id": "tv"})
        })
        .collect()
}

/// A free loopback port (bound and released; good enough for a test's own servers).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `playhead serve` process on `port` over `data` with `config`; returns once it prints its
/// listening line, so requests can follow at once.
pub fn spawn_serve(data: &std::path::Path, config: &std::path::Path, port: u16) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_playhead"))
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "off"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains(&port.to_string()), "server did not start: {line:?}");
    child
}
