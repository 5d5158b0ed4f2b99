//! A fresh schema per test on the shared test server, dropped afterwards, and the rule for an
//! unreachable server: fail under `CI=true`, skip (with a notice) anywhere else.
//!
//! Why the skip exits the process: the shared `contract_suite!` calls our factory and then the
//! check, so the factory has no way to skip one check. Outside CI a developer without PostgreSQL
//! gets one notice and a successful exit of this binary (no check ran, and the notice says so);
//! under CI every test fails with the reason instead, so the suite can never pass silently there.

use std::io::Write;
use std::sync::Once;
use std::time::Duration;

use playhead_store_postgres::{PgConfig, PgStore};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The server the tests use unless `PLAYHEAD_TEST_DATABASE_URL` names another.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL.
pub fn url() -> String {
    std::env::var("PLAYHEAD_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A schema of its own for one test: its name is also the `application_name` of the store's
/// connections, so the tests can find them in `pg_stat_activity` and `pg_locks`. Dropped (with
/// everything in it, best effort) when this value is dropped.
pub struct TestSchema {
    /// `ph_` and a random UUID's hex digits.
    pub name: String,
    url: String,
}

impl TestSchema {
    /// The store configuration for this schema (a small pool: tests run in parallel and share
    /// the server's `max_connections` with other projects' tests).
    pub fn config(&self) -> PgConfig {
        PgConfig {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(30),
            schema: Some(self.name.clone()),
            application_name: self.name.clone(),
            ..PgConfig::default()
        }
    }

    /// A store on this schema (migrations run on first connect).
    pub async fn store(&self) -> PgStore {
        PgStore::connect_with(&self.url, &self.config()).await.expect("connect a store to the test schema")
    }

    /// A plain connection with this schema first on its search path, for inspecting the catalog
    /// and locks.
    pub async fn connection(&self) -> PgConnection {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect to the test server");
        sqlx::query(&format!("SET search_path TO {}", self.name))
            .execute(&mut conn)
            .await
            .expect("set search_path");
        conn
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (name, url) = (self.name.clone(), self.url.clone());
        // Its own thread and runtime: `drop` cannot await, and the test's runtime may be the
        // current-thread one that is running this very drop.
        let cleanup = std::thread::spawn(move || -> Option<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                // The store's connections may outlive it briefly, one of them in a transaction a
                // failed check left open (its locks would make the DROP wait): end them first.
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&name)
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
        if !matches!(cleanup.join(), Ok(Some(()))) {
            let _ = writeln!(std::io::stderr(), "note: test schema {} was not dropped", self.name);
        }
    }
}

/// A fresh, empty schema; `None` when the server is unreachable and this is not CI (a notice is
/// printed once). Panics with the reason under `CI=true`.
pub async fn fresh_schema() -> Option<TestSchema> {
    let url = url();
    let mut conn = match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return unreachable(&url, &e.to_string()),
        Err(_) => return unreachable(&url, "no answer within 10 s"),
    };
    let name = format!("ph_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.expect("create a test schema");
    let _ = conn.close().await;
    Some(TestSchema { name, url })
}

/// A store on a fresh schema, or `None` (see [`fresh_schema`]).
pub async fn fresh_store() -> Option<(PgStore, TestSchema)> {
    let schema = fresh_schema().await?;
    Some((schema.store().await, schema))
}

/// A store on a fresh schema; when the server is unreachable outside CI, ends this test binary
/// successfully after the notice (the contract suite's factory cannot skip a single check).
pub async fn fresh_store_or_skip() -> (PgStore, TestSchema) {
    match fresh_store().await {
        Some(pair) => pair,
        None => std::process::exit(0),
    }
}

fn unreachable<T>(url: &str, why: &str) -> Option<T> {
    if under_ci() {
        panic!(
            "PostgreSQL is unreachable at {url} ({why}) and CI=true: the PostgreSQL adapter's tests \
             must run in CI. Start the server (`pg_ctlcluster --skip-systemctl-redirect 15 main start`) \
             or point PLAYHEAD_TEST_DATABASE_URL at one."
        );
    }
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: playhead-store-postgres tests: PostgreSQL is unreachable at {url} ({why}). \
             Start it or set PLAYHEAD_TEST_DATABASE_URL; under CI=true these tests fail instead."
        );
    });
    None
}
