//! The Playhead binary's library half: configuration, wiring, and `launch`, so integration tests
//! start the real server on port 0 with a fresh data dir exactly as `playhead serve` does.
//!
//! The rule here: wiring only. Choosing adapters, reading config, starting tasks and listeners,
//! shutting down in order. No business rules, no request handling.

pub mod config;
pub mod demo;
pub mod doctor;
pub mod jwks;
pub mod migrate_data;
pub mod ops;
#[cfg(feature = "recs")]
pub mod recs;
pub mod telemetry;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use playhead_api_rest::{ReadyCheck, RestState};
use playhead_app::access::{Authenticator, ExternalIssuers, Gate, Revocations, RevokedSet};
use playhead_app::clock::SystemClock;
use playhead_app::identity::AuthServer;
use playhead_app::{App, AppConfig, Ports};
use playhead_core::StoreError;
use playhead_core::ports::Clock;
use playhead_core::ports::{
    AccountStore, ApiKeyStore, Catalog, ErasureStore, EventLog, ExportStore, IdempotencyStore, IdentityStore,
    RateLimiter, RecsStore, ViewingStore,
};
use playhead_store_postgres::{PgConfig, PgStore};
use playhead_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Settings;

// Leeway for token time claims: the authorization server's, so revocation, introspection and
// every request agree.
use playhead_app::identity::TOKEN_LEEWAY_SECS;

/// Everything a running process holds.
pub struct Runtime {
    /// The use cases.
    pub app: App,
    /// The store (for health checks, admin commands and shutdown).
    pub store: Store,
    /// The built-in authorization server.
    pub identity: Arc<AuthServer>,
    /// Settings in effect.
    pub settings: Settings,
    /// The JetStream pipeline (`nats_url`); `None` applies events from the log in process.
    pub pipeline: Option<playhead_nats::Pipeline>,
    /// The shared rate limiter (`redis_url`), for `/healthz`.
    pub redis: Option<Arc<playhead_redis::RedisRateLimiter>>,
    /// The recommender the server keeps fresh (`recs::lifecycle`).
    #[cfg(feature = "recs")]
    pub recs: Arc<recs::ServedRecs>,
}

/// The storage backend: the embedded SQLite file (default) or PostgreSQL (scale-out, chosen by
/// `database_url`). Both implement every storage port and pass the same contract suite.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded: one SQLite file in the data dir.
    Sqlite(SqliteStore),
    /// Scale-out: a PostgreSQL database shared by every replica.
    Postgres(PgStore),
}

impl Store {
    /// Open the backend the settings choose, running its migrations.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.database_url {
            None => Ok(Self::Sqlite(
                SqliteStore::open_with(&settings.db_path(), &sqlite_config(settings))
                    .await
                    .map_err(|e| anyhow::anyhow!("opening {}: {e}", settings.db_path().display()))?,
            )),
            Some(url) => {
                let config = PgConfig {
                    max_connections: settings.database_max_connections,
                    schema: settings.database_schema.clone(),
                    // Names the deployment in pg_stat_activity when several share one server.
                    application_name: match &settings.database_schema {
                        Some(schema) => format!("playhead/{schema}"),
                        None => "playhead".to_owned(),
                    },
                    ..PgConfig::default()
                };
                // The error names the backend, never the URL (it may hold a password).
                Ok(Self::Postgres(
                    PgStore::connect_with(url.expose(), &config).await.map_err(|e| {
                        anyhow::anyhow!("opening the PostgreSQL database (database_url): {e}")
                    })?,
                ))
            }
        }
    }

    /// `sqlite` or `postgres`, for logs and command output.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// A round trip to the database (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.ping().await,
            Self::Postgres(s) => s.ping().await,
        }
    }

    /// Connections per pool: `(pool, open, idle)`.
    pub fn pool_usage(&self) -> Vec<(&'static str, u32, usize)> {
        match self {
            Self::Sqlite(s) => s.pool_usage().to_vec(),
            Self::Postgres(s) => s.pool_usage().to_vec(),
        }
    }

    /// Close the pool (graceful shutdown).
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }

    /// The authorization server's store on this backend.
    pub fn identity(&self) -> Arc<dyn IdentityStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The identity store as the revocation poller reads it (decision 0115): on PostgreSQL a pool
    /// of one connection of its own, so request traffic holding every pooled connection cannot
    /// starve the poll (which fails closed: 503 for every person token once the list is 30 s
    /// old). The embedded store reads through its reader pool, whose connections are held only
    /// while a local read runs, never across a transaction or a network round trip.
    pub fn poller_identity(&self) -> Arc<dyn IdentityStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.dedicated("revocation-poll", 1)),
        }
    }

    /// The pruning job's deletes on this backend.
    pub fn pruner(&self) -> Arc<dyn playhead_core::ports::Pruner> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// The outbox as a broker relay sees it (PostgreSQL only: the embedded log has no broker).
    pub fn outbox(&self) -> Option<Arc<dyn playhead_core::ports::Outbox>> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(s) => Some(Arc::new(s.clone())),
        }
    }

    /// Every storage port on this backend, with `limiter` for rate limits.
    pub fn ports(&self, limiter: Arc<dyn RateLimiter>) -> Ports {
        match self {
            Self::Sqlite(s) => ports_of(s, limiter),
            Self::Postgres(s) => ports_of(s, limiter),
        }
    }
}

fn ports_of<S>(s: &S, limiter: Arc<dyn RateLimiter>) -> Ports
where
    S: AccountStore
        + Catalog
        + EventLog
        + ViewingStore
        + ApiKeyStore
        + IdempotencyStore
        + RecsStore
        + ErasureStore
        + ExportStore
        + playhead_core::ports::FeedStore
        + playhead_core::ports::StreamStore
        + Clone
        + 'static,
{
    Ports {
        accounts: Arc::new(s.clone()),
        catalog: Arc::new(s.clone()),
        log: Arc::new(s.clone()),
        viewing: Arc::new(s.clone()),
        api_keys: Arc::new(s.clone()),
        idempotency: Arc::new(s.clone()),
        limiter,
        recs: Arc::new(s.clone()),
        erasure: Arc::new(s.clone()),
        exports: Arc::new(s.clone()),
        feed: Arc::new(s.clone()),
        streams: Arc::new(s.clone()),
    }
}

/// The embedded store's tuning from the settings: defaults, and the size ceiling if any
/// (SQLite's default page size, 4 KiB: 256 pages per MiB).
fn sqlite_config(settings: &Settings) -> playhead_store_sqlite::SqliteConfig {
    let mib = settings.limits.max_database_mib;
    playhead_store_sqlite::SqliteConfig {
        max_page_count: (mib > 0).then(|| mib.saturating_mul(256)),
        ..Default::default()
    }
}

/// A 32-byte secret file in the data dir, if one exists (earlier versions kept the cursor key
/// there).
fn legacy_secret_file(dir: &Path, name: &str) -> anyhow::Result<Option<[u8; 32]>> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    }
}

/// Open the data dir (creating it), the store (running migrations) and the keys.
pub async fn open(settings: Settings) -> anyhow::Result<Runtime> {
    create_data_dir(&settings.data_dir)?;
    let store = Store::open(&settings).await?;
    let cursor_key = cursor_key(&store, &settings.data_dir).await?;
    let (limiter, redis) = rate_limiter(&settings).await?;
    let ports = store.ports(limiter);
    let mut app = App::new(ports, app_config(&settings, cursor_key), Arc::new(SystemClock))
        .with_audit_store(store.identity());
    if let Some(url) = &settings.redis_url {
        // Rows shared through Redis, invalidated by whichever replica applies a write; reads go
        // to PostgreSQL whenever Redis does not answer (decision 0022).
        let shared = playhead_redis::RedisSharedCache::connect(
            url.expose(),
            &settings.redis_key_prefix,
            Duration::from_millis(250),
        )
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        app = app.with_shared_row_cache(Arc::new(shared));
    }
    #[cfg(feature = "recs")]
    let served = Arc::new(recs::ServedRecs::new());
    #[cfg(feature = "recs")]
    let app = app.with_recs_engine(served.clone());
    // Signing keys live in the store so every replica signs and verifies with one set.
    let identity = AuthServer::open(
        store.identity(),
        app.ports().accounts.clone(),
        app.ports().limiter.clone(),
        Arc::new(SystemClock),
        settings.identity_config(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("opening the identity store: {e}"))?;
    let identity = Arc::new(identity);
    let pipeline = event_pipeline(&settings, &store, &app).await?;
    Ok(Runtime {
        app,
        store,
        identity,
        pipeline,
        redis,
        settings,
        #[cfg(feature = "recs")]
        recs: served,
    })
}

/// Create the data dir if needed; it holds signing keys and everyone's history: owner only.
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// The key that signs history cursors. It lives in the store so every replica verifies every
/// other's cursors. An existing `cursor.key` file (deployments from before) is offered first, so
/// cursors already handed out stay valid across the upgrade.
async fn cursor_key(store: &Store, data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let candidate = legacy_secret_file(data_dir, "cursor.key")?.unwrap_or_else(rand::random);
    store
        .identity()
        .shared_secret("cursor", candidate)
        .await
        .map_err(|e| anyhow::anyhow!("reading the cursor key from the store: {e}"))
}

/// The rate limiter: per process, or shared through Redis when `redis_url` is set (then also
/// returned as itself, for `/healthz`).
async fn rate_limiter(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn RateLimiter>, Option<Arc<playhead_redis::RedisRateLimiter>>)> {
    // Idle keys are forgotten once the longest window in use has passed (not before: a key
    // forgotten early would get a fresh quota).
    let r = &settings.rate_limits;
    let longest = [r.read, r.write, r.ingest, r.import, r.auth].iter().map(|q| q.window_secs).max();
    let max_window = Duration::from_secs(u64::from(longest.unwrap_or(60)).max(3_600));
    let Some(url) = &settings.redis_url else {
        return Ok((Arc::new(playhead_app::ratelimit::LocalRateLimiter::new(max_window)), None));
    };
    let limiter = playhead_redis::RedisRateLimiter::connect(
        url.expose(),
        playhead_redis::RedisLimiterConfig {
            key_prefix: settings.redis_key_prefix.clone(),
            max_window,
            ..playhead_redis::RedisLimiterConfig::default()
        },
    )
    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    // Start degraded rather than not at all: after 2 s without Redis, limits are per replica
    // until it answers (the limiter keeps connecting in the background).
    if !limiter.wait_connected(Duration::from_secs(2)).await {
        tracing::warn!("redis unreachable at start: rate limits are per replica until it answers");
    }
    let limiter = Arc::new(limiter);
    Ok((limiter.clone(), Some(limiter)))
}

/// The application's rules and limits from the settings.
fn app_config(settings: &Settings, cursor_key: [u8; 32]) -> AppConfig {
    AppConfig {
        rules: settings.rules.clone(),
        max_backlog: settings.limits.max_backlog,
        max_held_per_profile: settings.limits.max_held_per_profile,
        consumer_batch: settings.limits.consumer_batch,
        cursor_key,
        // Per-profile rows cached in one replica's memory would go stale when another replica
        // applies events: in scale-out mode rows are cached in Redis or not at all.
        row_cache: !settings.scale_out(),
        quotas: settings.rate_limits.quotas(),
        // Validated to 1-3600 s when loaded.
        erasure_lease_ms: i64::try_from(settings.limits.erasure_lease_secs).unwrap_or(30) * 1000,
        feed: settings.feed.rules(),
        follow_quota: settings.feed.follow_quota(),
        streams: settings.streams.rules(),
        recs_row_ttl: Duration::from_secs(settings.recs.row_cache_secs),
    }
}

/// The NATS pipeline (relay, sweeper, consumers) when `nats_url` is set; it needs the PostgreSQL
/// outbox.
async fn event_pipeline(
    settings: &Settings,
    store: &Store,
    app: &App,
) -> anyhow::Result<Option<playhead_nats::Pipeline>> {
    match (&settings.nats_url, store.outbox()) {
        (None, _) => Ok(None),
        // Does not wait for NATS: ingestion needs only PostgreSQL, and the relay catches up.
        (Some(url), Some(outbox)) => {
            playhead_nats::Pipeline::connect(url.expose(), settings.nats.clone(), outbox, app.clone(), false)
                .await
                .map(Some)
                .map_err(|e| anyhow::anyhow!("starting the event pipeline: {e}"))
        }
        (Some(_), None) => anyhow::bail!("invalid configuration: nats_url needs database_url"),
    }
}

struct Ready {
    store: Store,
    /// True from the shutdown signal on (while the drain delay still serves requests).
    draining: watch::Receiver<bool>,
}

impl ReadyCheck for Ready {
    fn ready(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            if *self.draining.borrow() {
                return Err("shutting down".into());
            }
            self.store.ping().await.map_err(|e| format!("store: {e}"))?;
            Ok(())
        })
    }
}

fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for metric in ops::CATALOGUE.iter().filter(|m| m.kind == ops::Kind::Histogram) {
                builder =
                    builder.set_buckets_for_metric(Matcher::Full(metric.name.into()), ops::BUCKETS).ok()?;
            }
            let handle = builder.install_recorder().ok()?;
            ops::describe();
            Some(handle)
        })
        .clone()
}

/// Serve on `listener` until `shutdown` turns true; then drain (decision 0074): not ready at
/// once, still serving for `limits.drain_delay_secs`, then stop accepting, let requests finish,
/// flush the audit writer, let the consumer finish its batch, close the store, and return.
/// Prints nothing; the caller reports the address.
///
/// The order matters: credentials are checked against a fresh revocation list before the first
/// request; the pipeline stops taking batches only after the listener stopped accepting.
pub async fn launch(
    rt: Runtime,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (auth, revocations) = authenticator(&rt).await?;
    let poll_store = rt.store.poller_identity();
    // Load once before serving, so the first requests are not refused as "stale".
    if let Err(e) = poll_identity(&rt.identity, poll_store.as_ref(), &auth, &revocations).await {
        tracing::warn!(error = %e, "first revocation poll failed; person tokens get 503 until one succeeds");
    }
    let poller = spawn_revocation_poller(&rt, poll_store, auth.clone(), revocations, shutdown.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(Ready { store: rt.store.clone(), draining: shutdown.clone() });
    // Scale-out with NATS: relay, sweeper and a durable consumer instead of the in-process one.
    let consumer = match &rt.pipeline {
        Some(p) => p.spawn(stop_rx.clone()),
        None => rt.app.spawn_consumer(stop_rx.clone()),
    };
    // Erasure sagas (issue 16): every replica runs one; leases keep them from running one saga
    // twice, and let any of them resume a saga whose replica died.
    let erasures = rt.app.spawn_erasure_runner(stop_rx.clone());
    // The feed's fan-out: its own task in bounded steps, in both modes (decision 0061).
    let fanout = rt.app.spawn_fanout(stop_rx);
    // Training runs beside serving (its CPU work on blocking threads); requests read whichever
    // model is installed.
    #[cfg(feature = "recs")]
    let recs_task = tokio::spawn(recs::lifecycle(
        rt.recs.clone(),
        rt.app.clone(),
        rt.settings.recs.clone(),
        shutdown.clone(),
    ));
    let health = ops::Health {
        store: rt.store.clone(),
        app: rt.app.clone(),
        pipeline: rt.pipeline.clone(),
        redis: rt.redis.clone(),
        stopping: shutdown.clone(),
    };
    let metrics_task = spawn_metrics_listener(&rt.settings, health, shutdown.clone()).await?;
    // Nothing grows without bound: every replica prunes; their batches skip each other's rows.
    let pruning = rt.settings.retention.prune_interval_secs.gt(&0).then(|| {
        playhead_app::prune::Pruning::new(
            rt.store.pruner(),
            Arc::new(SystemClock),
            rt.settings.retention.prune_config(),
        )
        .spawn(shutdown.clone())
    });
    let sampler = tokio::spawn(ops::sample(
        rt.store.clone(),
        rt.app.clone(),
        rt.settings.data_dir.clone(),
        shutdown.clone(),
    ));

    let http = &rt.settings.http;
    let gate = Arc::new(Gate::new(
        rt.app.clone(),
        auth,
        http.max_in_flight_per_principal,
        rt.identity.store().clone(),
    ));
    let (router, health_task) = transports(&rt, gate.clone(), ready, shutdown.clone());
    let grace = Duration::from_secs(rt.settings.limits.shutdown_grace_secs);
    let header_timeout = Duration::from_secs(http.header_read_timeout_secs);
    let (close_tx, close_rx) = watch::channel(false);
    let served = tokio::spawn(serve_http(listener, router, close_rx, header_timeout, grace));
    let mut shutdown = shutdown;
    let _ = shutdown.wait_for(|v| *v).await;
    // /readyz already answers 503 (it watches `shutdown`): keep serving while the load balancer
    // notices, then close the listener and let in-flight requests finish.
    let delay = Duration::from_secs(rt.settings.limits.drain_delay_secs);
    if !delay.is_zero() {
        tracing::info!(drain_delay_secs = delay.as_secs(), "shutdown requested: not ready, still serving");
        tokio::time::sleep(delay).await;
    }
    let _ = close_tx.send(true);
    // Stop taking new batches, but let in-flight requests and the batch in hand finish.
    let _ = stop_tx.send(true);
    served.await.context("server task")?;
    // Every request has finished (or the grace period ran out): write what they audited.
    if !gate.flush_audit(grace).await {
        tracing::error!("audit entries not written before shutdown");
    }
    if tokio::time::timeout(grace, fanout).await.is_err() {
        tracing::warn!("the feed fan-out step in hand did not finish; its activity stays queued");
    }
    if tokio::time::timeout(grace, consumer).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "the consumer's batch in hand did not finish; it stays queued"
        );
    }
    // The step in hand is one transaction: let it finish (or roll back) before the pool closes.
    if tokio::time::timeout(grace, erasures).await.is_err() {
        tracing::warn!(
            "the erasure runner's step in hand did not finish; the saga resumes at the next start"
        );
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    #[cfg(feature = "recs")]
    recs_task.abort();
    poller.abort();
    if let Some(p) = pruning {
        p.abort();
    }
    health_task.abort();
    sampler.abort();
    rt.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The app's authenticator: our own tokens and API keys, the revocation list, and the external
/// issuers configured (whose keys are fetched before serving).
async fn authenticator(rt: &Runtime) -> anyhow::Result<(Arc<Authenticator>, Arc<Revocations>)> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let revocations = Arc::new(Revocations::new());
    let mut authenticator =
        Authenticator::new(rt.identity.verifier(TOKEN_LEEWAY_SECS), rt.app.ports().api_keys.clone(), clock)
            .with_revocations(revocations.clone());
    let external = rt.settings.external_verifiers()?;
    if !external.is_empty() {
        let external = Arc::new(ExternalIssuers::new(
            external,
            Arc::new(jwks::HttpJwksFetcher::new().context("building the JWKS client")?),
            rt.identity.store().clone(),
        ));
        // Learn the keys before serving; an issuer whose keys cannot be fetched gets 503s for
        // its tokens (and a retry at most once a minute) rather than a failed start.
        external.prefetch().await;
        authenticator = authenticator.with_external_issuers(external);
    }
    Ok((Arc::new(authenticator), revocations))
}

/// Re-read revocations and signing keys every `identity.revocation_poll_ms` until shutdown,
/// through `store` (on PostgreSQL a connection of its own, decision 0115).
fn spawn_revocation_poller(
    rt: &Runtime,
    store: Arc<dyn IdentityStore>,
    auth: Arc<Authenticator>,
    revocations: Arc<Revocations>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let poll_every = Duration::from_millis(rt.settings.identity.revocation_poll_ms);
    let identity = rt.identity.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(poll_every) => {}
                () = async { let _ = stop.wait_for(|v| *v).await; } => break,
            }
            if let Err(e) = poll_identity(&identity, store.as_ref(), &auth, &revocations).await {
                tracing::warn!(error = %e, "revocation poll failed");
            }
        }
    })
}

/// Every transport on the API listener, over the one gate. A new transport is merged here
/// (docs/ARCHITECTURE.md, "Adding a transport"). Also returns the task keeping gRPC health in
/// step with readiness (it stops at `shutdown`).
fn transports(
    rt: &Runtime,
    gate: Arc<Gate>,
    ready: Arc<Ready>,
    shutdown: watch::Receiver<bool>,
) -> (Transports, tokio::task::JoinHandle<()>) {
    let http = &rt.settings.http;
    // gRPC shares the gate (one quota and in-flight count per principal across transports) and
    // the listener; its health service follows the same readiness check as /readyz.
    let grpc_state = playhead_api_grpc::GrpcState::new(
        rt.app.clone(),
        gate.clone(),
        playhead_api_grpc::GrpcLimits {
            max_message_bytes: http.grpc_max_message_bytes,
            batch_max: http.batch_max,
            stream_window: http.grpc_stream_window,
        },
        rt.settings.identity.trusted_proxies.clone(),
    );
    let (grpc, health) = playhead_api_grpc::router(grpc_state);
    let health_task = {
        let ready = ready.clone();
        playhead_api_grpc::health::follow(
            health,
            move || {
                let ready = ready.clone();
                async move { ready.ready().await.is_ok() }
            },
            Duration::from_secs(1),
            shutdown,
        )
    };
    let limits = playhead_api_rest::RestLimits {
        json_body_bytes: http.json_body_bytes,
        json_depth: http.json_depth,
        batch_max: http.batch_max,
        import_body_bytes: http.import_body_bytes,
        request_timeout: Duration::from_secs(http.request_timeout_secs),
        max_in_flight_per_principal: http.max_in_flight_per_principal,
        cors_allowed_origins: http.cors_allowed_origins.clone(),
    };
    let graphql = rt.settings.graphql.enabled.then(|| {
        let g = &rt.settings.graphql;
        let config = playhead_api_graphql::GraphqlConfig {
            max_depth: g.max_depth,
            max_complexity: g.max_complexity,
            introspection: g.introspection,
            batch_max: http.batch_max,
            body_bytes: http.json_body_bytes,
        };
        let state = playhead_api_graphql::GraphqlState::new(
            rt.app.clone(),
            gate.clone(),
            &config,
            rt.settings.identity.trusted_proxies.clone(),
        );
        playhead_api_graphql::router(state, config.body_bytes)
    });
    let state = RestState::new(
        rt.app.clone(),
        gate,
        ready,
        limits,
        rt.settings.deprecations.clone(),
        rt.identity.clone(),
        rt.settings.identity.trusted_proxies.clone(),
    );
    // GraphQL beside REST on the one listener, through the same gate (decision 0055).
    let rest = match graphql {
        Some(g) => playhead_api_rest::router(state).merge(g),
        None => playhead_api_rest::router(state),
    };
    (Transports { rest, grpc }, health_task)
}

/// The operator's listener (`metrics_listen`), when configured: the Prometheus scrape endpoint
/// and the `/healthz` detail (its reasons name internals, so it is not on the API listener).
async fn spawn_metrics_listener(
    settings: &Settings,
    health: ops::Health,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let (Some(addr), Some(handle)) = (settings.metrics_listen, install_metrics()) else {
        return Ok(None);
    };
    let l = TcpListener::bind(addr).await.with_context(|| format!("binding metrics listener {addr}"))?;
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let h = handle.clone();
                async move { h.render() }
            }),
        )
        .route(
            "/healthz",
            axum::routing::get(move || {
                let h = health.clone();
                async move {
                    let (code, doc) = h.report().await;
                    (code, axum::Json(doc))
                }
            }),
        );
    let mut sd = shutdown;
    Ok(Some(tokio::spawn(async move {
        let _ = axum::serve(l, router)
            .with_graceful_shutdown(async move {
                let _ = sd.wait_for(|v| *v).await;
            })
            .await;
    })))
}

/// Re-read the revoked sessions (those whose access tokens may still be unexpired), the token
/// deny list (service tokens revoked one by one, deleted clients) and the signing keys (another replica or `admin rotate-keys` may have rotated).
async fn poll_identity(
    identity: &AuthServer,
    store: &dyn IdentityStore,
    auth: &Authenticator,
    revocations: &Revocations,
) -> anyhow::Result<()> {
    let cfg = identity.config();
    let horizon_ms = (cfg.access_ttl_secs + i64::try_from(TOKEN_LEEWAY_SECS).unwrap_or(0) + 60) * 1000;
    let since = playhead_core::Timestamp(SystemClock.now().0 - horizon_ms);
    let revoked = store.revoked_sessions_since(since).await?;
    let denials = store.token_denials(SystemClock.now()).await?;
    revocations.replace(RevokedSet::new(revoked, denials));
    identity.reload_keys_from(store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    #[expect(clippy::cast_precision_loss, reason = "a gauge")]
    metrics::gauge!("playhead_revocations_polled_timestamp_seconds").set(SystemClock.now().0 as f64 / 1000.0);
    // Compare with what the verifier accepts (a rotation in this process already reloaded).
    let keys = identity.keys();
    if keys.kids().ne(auth.kids().iter().map(String::as_str)) {
        tracing::info!(kid = keys.signing_kid(), "signing keys changed");
        auth.set_verifier(identity.verifier(TOKEN_LEEWAY_SECS));
    }
    Ok(())
}

/// Both transports on one listener: gRPC requests (`content-type: application/grpc`, with or
/// without a `+proto` suffix) go to tonic's routes, everything else to the REST router. Chosen
/// by content type rather than path so an unknown gRPC method still gets a gRPC status, and a
/// REST client never sees one.
#[derive(Clone)]
struct Transports {
    rest: axum::Router,
    grpc: axum::Router,
}

impl tower::Service<axum::extract::Request> for Transports {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = tower::util::Oneshot<axum::Router, axum::extract::Request>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // Both routers are always ready (axum's Router never applies back pressure here).
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::extract::Request) -> Self::Future {
        let grpc = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        let router = if grpc { self.grpc.clone() } else { self.rest.clone() };
        tower::ServiceExt::oneshot(router, req)
    }
}

/// Accept connections until `shutdown`, serving HTTP/1.1 and HTTP/2 with a header-read timeout
/// (a client that trickles its headers is cut off: slowloris), then stop accepting and give
/// in-flight requests up to `grace` to finish.
async fn serve_http(
    listener: TcpListener,
    router: Transports,
    mut shutdown: watch::Receiver<bool>,
    header_read_timeout: Duration,
    grace: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let stop = async move {
        // The guard `wait_for` returns is not Send: drop it inside this future.
        let _ = shutdown.wait_for(|v| *v).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let svc = tower::ServiceExt::map_request(router.clone(), move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    req.map(axum::body::Body::new)
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    tracing::info!("shutdown requested: draining requests");
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period");
    }
}
