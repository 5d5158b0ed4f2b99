//! Deployments for the out-of-process benchmarks (`all`, `soak`): a config file, a seeded store,
//! `playhead serve` as a child process (optionally pinned to one CPU with `taskset`), and the
//! cleanup of everything a run created (data dir, PostgreSQL schema, NATS streams, Redis keys).
//!
//! Rule: benchmarks raise quotas in the config file they write, never through a code path the
//! product could reach; the server is the release (or dev) `playhead` binary built beside this one.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use playhead::Settings;
use playhead_app::accounts::NewProfile;
use playhead_core::auth::{Scope, Scopes};
use playhead_core::{ProfileId, Timestamp};
use serde_json::Value;
use sqlx::Connection;

/// Where the scale-out services are (loopback on the project machine).
#[derive(Clone, Debug, clap::Args)]
pub struct Services {
    /// PostgreSQL for scale-out runs (a throwaway schema per deployment).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub database_url: String,
    /// Redis for scale-out runs (keys under a throwaway prefix, deleted afterwards).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// NATS with JetStream for scale-out runs (throwaway streams, deleted afterwards).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
}

/// Which backends a deployment runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// SQLite, in-process queue and cache (the default).
    Embedded,
    /// PostgreSQL + Redis + NATS JetStream.
    ScaleOut,
}

/// Quotas high enough that the limiter runs on every request but never refuses one: benchmarks
/// measure the service, not the quota (written to the config file, never a code path).
const RAISED_QUOTAS: &str = "[rate_limits]\n\
    read = { limit = 1000000000, window_secs = 60 }\n\
    write = { limit = 1000000000, window_secs = 60 }\n\
    ingest = { limit = 1000000000, window_secs = 60 }\n";

/// A config file and what it points at; [`Deployment::cleanup`] removes all of it.
pub struct Deployment {
    /// Owns the data dir and the config file.
    dir: tempfile::TempDir,
    /// The config file the seeding and the server both read.
    pub config: PathBuf,
    /// Which backends.
    pub mode: Mode,
    services: Services,
    tag: String,
}

impl Deployment {
    /// Write the config (and create the schema in scale-out).
    pub async fn create(mode: Mode, services: &Services) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let mut toml =
            format!("data_dir = {:?}\nlog_format = \"json\"\n{RAISED_QUOTAS}", dir.path().join("data"));
        if mode == Mode::ScaleOut {
            let mut c = sqlx::PgConnection::connect(&services.database_url).await?;
            sqlx::query(&format!("CREATE SCHEMA bench_{tag}")).execute(&mut c).await?;
            // Top-level keys must precede the tables.
            toml = format!(
                "database_url = {:?}\ndatabase_schema = \"bench_{tag}\"\nredis_url = {:?}\n\
                 redis_key_prefix = \"bench:{tag}:\"\nnats_url = {:?}\n{toml}\
                 [nats]\nstream = \"BENCH{tag}\"\nmax_bytes = 1073741824\n",
                services.database_url, services.redis_url, services.nats_url
            );
        }
        let config = dir.path().join("playhead.toml");
        std::fs::write(&config, toml)?;
        Ok(Self { dir, config, mode, services: services.clone(), tag })
    }

    /// The settings the server will read (the file only: this process's `PLAYHEAD_*` variables
    /// are not the deployment's, and the server's environment is cleared of them too).
    pub fn settings(&self) -> anyhow::Result<Settings> {
        use figment::providers::{Format, Serialized, Toml};
        let s: Settings = figment::Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(&self.config))
            .extract()?;
        Ok(Settings { metrics_listen: None, ..s })
    }

    /// A scratch directory inside the deployment (logs, bodies, reports).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Remove the schema, the streams and the Redis keys (the data dir goes with `self`).
    pub async fn cleanup(self) -> anyhow::Result<()> {
        if self.mode != Mode::ScaleOut {
            return Ok(());
        }
        let s = &self.services;
        let mut c = sqlx::PgConnection::connect(&s.database_url).await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS bench_{} CASCADE", self.tag)).execute(&mut c).await?;
        let js = async_nats::jetstream::new(async_nats::connect(&s.nats_url).await?);
        let stream = format!("BENCH{}", self.tag);
        js.delete_stream(&stream).await.with_context(|| format!("deleting stream {stream}"))?;
        // The dead-letter stream exists only once something was dead-lettered or the pipeline
        // created it at start: absent is fine.
        let _ = js.delete_stream(format!("{stream}_DLQ")).await;
        let client = redis::Client::open(s.redis_url.as_str())?;
        let mut r = client.get_multiplexed_async_connection().await?;
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("bench:{}:*", self.tag)).query_async(&mut r).await?;
        for chunk in keys.chunks(500) {
            let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut r).await?;
        }
        Ok(())
    }
}

/// One device: a profile of its own account, with a viewer token (its own principal, so
/// per-principal quotas and in-flight caps behave as in production).
#[derive(Clone, Debug)]
pub struct Device {
    /// The profile it plays on.
    pub profile: ProfileId,
    /// A viewer access token for the profile's account.
    pub token: String,
}

/// What a seeded deployment holds.
pub struct Seeded {
    /// One device per account.
    pub devices: Vec<Device>,
    /// A `profiles:any` service key (the platform backend relaying bulk events).
    pub api_key: String,
}

/// Titles `bench-0` .. `bench-{n-1}`, two-hour movies.
pub fn titles(n: usize) -> Vec<playhead_core::title::Title> {
    use playhead_core::title::{Title, TitleKind};
    (0..n)
        .map(|i| Title {
            id: playhead_core::TitleId::parse(&format!("bench-{i}")).expect("id"),
            kind: TitleKind::Movie,
            name: format!("Bench {i}"),
            duration_ms: 7_200_000,
            credits_start_ms: None,
            series_id: None,
            season: None,
            episode: None,
            genres: vec!["Drama".into()],
            maturity: 0,
            release_year: Some(2020),
            available_from: None,
            external_ids: Default::default(),
        })
        .collect()
}

/// Titles every deployment's catalog holds.
pub const TITLES: usize = 400;

/// Seed `devices` accounts (one profile and one token each), the catalog and a service key;
/// with `row_items`, the first profile gets that many titles in progress (a full Continue
/// watching row). The store is closed before returning, so the server opens it alone.
pub async fn seed(d: &Deployment, devices: usize, row_items: usize) -> anyhow::Result<Seeded> {
    let settings = d.settings()?;
    let rt = playhead::open(settings.clone()).await?;
    let app = rt.app.clone();
    app.upsert_titles_unchecked(&titles(TITLES)).await.map_err(e)?;
    let issuer = playhead_auth::TokenIssuer::new(
        rt.identity.keys(),
        settings.issuer.clone(),
        settings.audience.clone(),
        // Long enough for a 30-minute soak with margin.
        4 * 3600,
    );
    let now = app.clock().now().0;
    let scopes: Scopes = Scope::VIEWER.into_iter().collect();
    let mut out = Vec::with_capacity(devices);
    for i in 0..devices {
        let account = app.create_account(&format!("device{i}@example.com")).await.map_err(e)?;
        let profile = app
            .insert_profile(account.id, NewProfile { name: format!("D{i}"), ..Default::default() })
            .await
            .map_err(e)?;
        let token = issuer.issue(&issuer.account_claims(account.id, "bench", scopes, "sid", now / 1000))?;
        out.push(Device { profile: profile.id, token });
    }
    let (secret, record) = playhead_auth::ApiKey::generate(
        "bench",
        Scopes::empty().with(Scope::HistoryWrite).with(Scope::ProfilesAny),
        app.clock().now(),
    );
    app.ports().api_keys.create_api_key(&record).await.map_err(e)?;
    if let (Some(first), true) = (out.first(), row_items > 0) {
        in_progress(&app, first.profile, row_items, now).await?;
    }
    rt.store.close().await;
    Ok(Seeded { devices: out, api_key: secret.expose().to_owned() })
}

/// `items` titles in progress for one profile, ten minutes each, an hour apart, applied.
pub async fn in_progress(
    app: &playhead_app::App,
    profile: ProfileId,
    items: usize,
    now: i64,
) -> anyhow::Result<()> {
    let service = playhead_core::auth::Principal {
        subject: playhead_core::auth::Subject::Service { id: "bench".into() },
        scopes: Scopes::empty().with(Scope::HistoryWrite).with(Scope::ProfilesAny),
        bound_profile: None,
        session_id: None,
        auth_time: None,
    };
    let raw: Vec<_> = (0..items as i64)
        .flat_map(|t| {
            (0..=20).map(move |i| playhead_core::event::RawEvent {
                event_id: Some(uuid::Uuid::new_v4().to_string()),
                title_id: Some(format!("bench-{t}")),
                kind: Some("heartbeat".into()),
                position_ms: Some(i * 30_000),
                duration_ms: None,
                occurred_at: Some(Timestamp(now - (t + 1) * 3_600_000 + i * 30_000).to_rfc3339()),
                device_id: Some("tv".into()),
                session_id: None,
            })
        })
        .collect();
    for chunk in raw.chunks(500) {
        let batch = playhead_app::ingest::IngestBatch {
            sent_at: None,
            backfill: false,
            events: chunk.iter().cloned().map(Ok).collect(),
            trace: None,
        };
        app.record_events(&service, profile, batch).await.map_err(e)?;
    }
    app.drain().await.map_err(e)?;
    Ok(())
}

/// The application's errors carry no `std::error::Error` source chain worth keeping here.
fn e(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// A free loopback port (bound then released; the child binds it a moment later).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A command run on one CPU (`taskset -c cpu`), or unpinned with `None`, with the `PLAYHEAD_*`
/// environment removed (a deployment is its config file).
pub fn pinned(cpu: Option<usize>, program: &Path) -> Command {
    let mut c = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    };
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PLAYHEAD_") {
            c.env_remove(k);
        }
    }
    c
}

/// A binary built beside this one (`playhead`, or this benchmark itself).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let p = me.with_file_name(name);
    anyhow::ensure!(
        p.exists(),
        "{} not found: build it in the same profile (cargo build --release -p playhead -p playhead-bench)",
        p.display()
    );
    Ok(p)
}

/// Events accepted and not applied yet, from the operator listener's `/healthz`.
pub async fn backlog(http: &reqwest::Client, ops: &str) -> anyhow::Result<u64> {
    let v: Value = http.get(format!("{ops}/healthz")).send().await?.json().await?;
    v["checks"]["pipeline"]["backlog"].as_u64().with_context(|| format!("no backlog in /healthz: {v}"))
}

/// Wait until everything accepted is applied (10 minutes at most).
pub async fn drained(http: &reqwest::Client, ops: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while backlog(http, ops).await? > 0 {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "not applied within 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A child process killed when dropped (so a failed run leaves no server behind).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `playhead serve` running a deployment.
pub struct Server {
    child: ChildGuard,
    /// `http://127.0.0.1:port` of the API.
    pub base: String,
    /// `http://127.0.0.1:port` of the operator listener (`/healthz`, `/metrics`).
    pub ops: String,
}

impl Server {
    /// Start it (on `cpu` when given) and wait until `/readyz` answers 200.
    pub async fn start(d: &Deployment, cpu: Option<usize>) -> anyhow::Result<Self> {
        let (port, ops_port) = (free_port()?, free_port()?);
        let log = std::fs::File::create(d.scratch().join("server.log"))?;
        let child = pinned(cpu, &sibling("playhead")?)
            .arg("--config")
            .arg(&d.config)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{ops_port}"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting playhead serve")?;
        let s = Self {
            child: ChildGuard(child),
            base: format!("http://127.0.0.1:{port}"),
            ops: format!("http://127.0.0.1:{ops_port}"),
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", s.base)).send().await
                && r.status().is_success()
            {
                return Ok(s);
            }
            if started.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(d.scratch().join("server.log")).unwrap_or_default();
                anyhow::bail!("playhead serve not ready within 60 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id (taskset execs the program, so it is the server itself).
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    /// Wait until everything accepted is applied (10 minutes at most).
    pub async fn drained(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        drained(http, &self.ops).await
    }

    /// Stop it gracefully (SIGTERM, then SIGKILL after 30 s).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let started = Instant::now();
        while self.child.0.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}
