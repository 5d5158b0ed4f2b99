//! `playhead doctor`: checks what a server needs before (or while) it runs, and says for each
//! finding how to fix it. It changes nothing: the database is opened without migrating, and the
//! NATS storage check creates and deletes a probe stream rather than the real one.
//!
//! The rule here: every finding that is not `ok` carries a `fix` an operator can act on, and a
//! `fail` makes the command exit non-zero.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Connection;

use crate::Settings;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Works, but look at it.
    Warn,
    /// Will not work (or not correctly): the command exits non-zero.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked (`config`, `data_dir`, `database`, ...).
    pub check: &'static str,
    /// How bad.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do about it (absent when ok).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Finding {
    Finding { check, level: Level::Ok, detail: detail.into(), fix: None }
}

fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { check, level: Level::Warn, detail: detail.into(), fix: Some(fix.into()) }
}

fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { check, level: Level::Fail, detail: detail.into(), fix: Some(fix.into()) }
}

/// Free space below which the data dir is reported (SQLite answers 503 when it runs out).
const LOW_DISK_BYTES: u64 = 1024 * 1024 * 1024;
/// Clock difference to the database worth a warning, and one that breaks things (lag, TTLs).
const SKEW_WARN_MS: i64 = 1_000;
const SKEW_FAIL_MS: i64 = 30_000;

/// Run every check. `settings` is the result of loading the configuration: an error there is
/// itself the first finding (and the rest is skipped: nothing else can be trusted).
pub async fn run(settings: anyhow::Result<Settings>) -> Vec<Finding> {
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            return vec![fail(
                "config",
                format!("{e:#}"),
                "correct the key named above in the --config file or its PLAYHEAD_* variable \
                 (docs/configuration.md lists every key)",
            )];
        }
    };
    let mut out = vec![ok("config", "the configuration loads and every value is valid")];
    out.push(data_dir(&settings.data_dir));
    if let Some(f) = disk(&settings.data_dir) {
        out.push(f);
    }
    match &settings.database_url {
        None => out.extend(sqlite(&settings.db_path()).await),
        Some(url) => out.extend(postgres(url.expose(), settings.database_schema.as_deref()).await),
    }
    if let Some(url) = &settings.redis_url {
        out.push(redis(url.expose(), &settings.redis_key_prefix).await);
    }
    if let Some(url) = &settings.nats_url {
        out.push(nats(url.expose(), &settings.nats).await);
    }
    for issuer in &settings.identity.external_issuers {
        out.push(issuer_keys(&issuer.issuer, &issuer.jwks_uri).await);
    }
    out
}

fn data_dir(dir: &Path) -> Finding {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return warn(
                "data_dir",
                format!("{} does not exist", dir.display()),
                "nothing to do if this is a first start: serve creates it (owner only)",
            );
        }
        Err(e) => {
            return fail(
                "data_dir",
                format!("{}: {e}", dir.display()),
                "make the data dir readable by the service user",
            );
        }
    };
    if !meta.is_dir() {
        return fail(
            "data_dir",
            format!("{} is not a directory", dir.display()),
            "point data_dir at a directory",
        );
    }
    // Writable: try it (permission bits do not tell about read-only mounts or ACLs).
    let probe = dir.join(".playhead-doctor-probe");
    if let Err(e) = std::fs::write(&probe, b"probe") {
        return fail(
            "data_dir",
            format!("{} is not writable: {e}", dir.display()),
            format!(
                "chown the data dir to the service user, or mount it read-write: chown -R playhead {}",
                dir.display()
            ),
        );
    }
    let _ = std::fs::remove_file(&probe);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return warn(
                "data_dir",
                format!("{} is mode {mode:o}: others can read signing keys and history", dir.display()),
                format!("chmod 700 {}", dir.display()),
            );
        }
    }
    ok("data_dir", format!("{} exists, is writable and private", dir.display()))
}

fn disk(dir: &Path) -> Option<Finding> {
    let (free, size) = crate::ops::disk(dir)?;
    let mib = |b: u64| b / (1024 * 1024);
    Some(if free < LOW_DISK_BYTES || free.saturating_mul(20) < size {
        warn(
            "disk",
            format!("{} MiB free of {} MiB on the data dir's filesystem", mib(free), mib(size)),
            "free space or grow the volume: when SQLite cannot write, ingestion answers 503",
        )
    } else {
        ok("disk", format!("{} MiB free of {} MiB", mib(free), mib(size)))
    })
}

/// The schema version found against the one this build knows.
fn schema(applied: Option<i64>, failed: i64, known: i64) -> Finding {
    match applied {
        _ if failed > 0 => fail(
            "schema",
            "a migration failed part-way (_sqlx_migrations has success = false)",
            "restore the last backup, or repair by hand and delete the failed row, then run playhead migrate",
        ),
        None => warn(
            "schema",
            "the database has no schema yet",
            "run playhead migrate (serve also migrates at start)",
        ),
        Some(v) if v < known => warn(
            "schema",
            format!("schema version {v}, this build's is {known}"),
            "run playhead migrate (serve also migrates at start)",
        ),
        Some(v) if v > known => fail(
            "schema",
            format!("schema version {v} is newer than this build's {known}"),
            "run the newer playhead binary that migrated this database (or restore a backup)",
        ),
        Some(v) => ok("schema", format!("schema version {v} is current")),
    }
}

async fn sqlite(path: &Path) -> Vec<Finding> {
    if !path.exists() {
        return vec![warn(
            "database",
            format!("{} does not exist", path.display()),
            "nothing to do if this is a first start: serve creates it",
        )];
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = match sqlx::SqliteConnection::connect_with(&opts).await {
        Ok(c) => c,
        Err(e) => {
            return vec![fail(
                "database",
                format!("cannot open {}: {e}", path.display()),
                "check the file's owner and permissions (the service user must read and write it and its -wal file)",
            )];
        }
    };
    let mut out = vec![ok("database", format!("{} opens", path.display()))];
    let applied: Result<(Option<i64>, i64), _> =
        sqlx::query_as("SELECT MAX(version), COALESCE(SUM(success = 0), 0) FROM _sqlx_migrations")
            .fetch_one(&mut conn)
            .await;
    match applied {
        Ok((v, failed)) => out.push(schema(v, failed, playhead_store_sqlite::latest_migration())),
        Err(_) => out.push(schema(None, 0, playhead_store_sqlite::latest_migration())),
    }
    out.push(signing_keys(
        sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(&mut conn).await,
    ));
    out.push(ok("clock", "embedded: the database shares this machine's clock"));
    let _ = conn.close().await;
    out
}

async fn postgres(url: &str, schema_name: Option<&str>) -> Vec<Finding> {
    use std::str::FromStr;
    let opts = match sqlx::postgres::PgConnectOptions::from_str(url) {
        Ok(o) => o,
        Err(e) => return vec![fail("database", format!("database_url: {e}"), "fix database_url")],
    };
    let opts = match schema_name {
        Some(s) => opts.options([("search_path", s)]),
        None => opts,
    };
    let conn = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect_with(&opts)).await;
    let mut conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return vec![fail(
                "database",
                format!("cannot connect (database_url): {e}"),
                "start PostgreSQL, or fix database_url (host, port, role, database; passwords in the URL or ~/.pgpass)",
            )];
        }
        Err(_) => {
            return vec![fail(
                "database",
                "no answer from PostgreSQL (database_url) within 5 s",
                "check that PostgreSQL runs and that a firewall lets this machine reach its port",
            )];
        }
    };
    let mut out = vec![ok("database", "PostgreSQL answers")];
    let applied: Result<(Option<i64>, i64), _> = sqlx::query_as(
        "SELECT MAX(version), COALESCE(SUM(CASE WHEN success THEN 0 ELSE 1 END), 0)::bigint FROM _sqlx_migrations",
    )
    .fetch_one(&mut conn)
    .await;
    match applied {
        Ok((v, failed)) => out.push(schema(v, failed, playhead_store_postgres::latest_migration())),
        Err(_) => out.push(schema(None, 0, playhead_store_postgres::latest_migration())),
    }
    out.push(signing_keys(
        sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys").fetch_one(&mut conn).await,
    ));
    // Clock skew: the database's clock against the midpoint of the round trip.
    let sent = Instant::now();
    let local_before = wall_ms();
    let db_ms: Result<i64, _> =
        sqlx::query_scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
            .fetch_one(&mut conn)
            .await;
    let rtt = i64::try_from(sent.elapsed().as_millis()).unwrap_or(i64::MAX);
    if let Ok(db_ms) = db_ms {
        let skew = db_ms - (local_before + rtt / 2);
        let detail = format!(
            "this machine's clock is {} ms {} the database's",
            skew.abs(),
            if skew > 0 { "behind" } else { "ahead of" }
        );
        let fix = "run NTP (chrony or systemd-timesyncd) on this machine and the database's: event ages, \
                   the pipeline lag and token lifetimes are computed across both clocks";
        out.push(match skew.abs() {
            s if s >= SKEW_FAIL_MS => fail("clock", detail, fix),
            s if s >= SKEW_WARN_MS => warn("clock", detail, fix),
            _ => ok("clock", detail),
        });
    }
    let _ = conn.close().await;
    out
}

fn signing_keys(count: Result<i64, sqlx::Error>) -> Finding {
    match count {
        Ok(n) if n > 0 => ok("keys", format!("{n} signing key(s) in the database")),
        Ok(_) | Err(_) => warn(
            "keys",
            "no signing keys in the database yet",
            "nothing to do on a first start: the first server to start creates them",
        ),
    }
}

async fn redis(url: &str, prefix: &str) -> Finding {
    let config = playhead_redis::RedisLimiterConfig { key_prefix: prefix.to_owned(), ..Default::default() };
    match playhead_redis::RedisRateLimiter::connect(url, config) {
        Err(e) => fail("redis", format!("{e}"), "fix redis_url"),
        Ok(r) if r.wait_connected(Duration::from_secs(3)).await => ok("redis", "Redis answers"),
        Ok(_) => fail(
            "redis",
            "Redis (redis_url) did not answer within 3 s",
            "start Redis or fix redis_url; meanwhile rate limits are per replica and rows are read from PostgreSQL",
        ),
    }
}

async fn nats(url: &str, settings: &playhead_nats::NatsSettings) -> Finding {
    match playhead_nats::probe_stream(url, settings).await {
        Ok(playhead_nats::StreamStorage::Exists { max_bytes }) => ok(
            "nats",
            format!("stream {} exists (max_bytes {max_bytes}, reserved on the server)", settings.stream),
        ),
        Ok(playhead_nats::StreamStorage::Creatable) => ok(
            "nats",
            format!(
                "stream {} does not exist yet; one of nats.max_bytes = {} can be created",
                settings.stream, settings.max_bytes
            ),
        ),
        Err(playhead_nats::NatsError::Config(e)) => fail("nats", e, "correct the [nats] key named above"),
        Err(e) => {
            let detail = e.to_string();
            let fix = if detail.contains("nats.max_bytes") {
                format!(
                    "lower nats.max_bytes (now {}; e.g. PLAYHEAD_NATS__MAX_BYTES=268435456) and size max_age_secs to \
                     your event rate, or give nats-server more JetStream storage (jetstream {{ max_file_store }}, \
                     or free disk under its store dir)",
                    settings.max_bytes
                )
            } else {
                "start nats-server with JetStream (-js), or fix nats_url".to_owned()
            };
            fail("nats", detail, fix)
        }
    }
}

async fn issuer_keys(issuer: &str, jwks_uri: &str) -> Finding {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            return fail("issuer", format!("building an HTTP client: {e}"), "check the system's TLS roots");
        }
    };
    match client.get(jwks_uri).send().await {
        Ok(r) if r.status().is_success() => ok("issuer", format!("{issuer}: keys at {jwks_uri} answer")),
        Ok(r) => fail(
            "issuer",
            format!("{issuer}: {jwks_uri} answered {}", r.status()),
            "fix identity.external_issuers[].jwks_uri (the issuer's discovery document names it)",
        ),
        Err(e) => fail(
            "issuer",
            format!("{issuer}: {jwks_uri} unreachable: {e}"),
            "let this machine reach the issuer (DNS, firewall, proxy), or fix jwks_uri; its tokens get 503 until then",
        ),
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
