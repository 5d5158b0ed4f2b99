//! The one settings struct: defaults that run with nothing set, then the TOML file given with
//! `--config`, then `PLAYHEAD_*` environment variables (env wins; nested keys use `__`, e.g.
//! `PLAYHEAD_RULES__WATCHED_PCT=85`). A bad value fails at start naming its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use playhead_core::rules::Rules;
use serde::{Deserialize, Serialize};

/// Settings of a Playhead process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite database lives (embedded mode; it holds the keys too).
    pub data_dir: PathBuf,
    /// The API listener.
    pub listen: SocketAddr,
    /// The Prometheus metrics listener (kept off the API port so it is never exposed by accident).
    pub metrics_listen: Option<SocketAddr>,
    /// `iss` of the tokens this server issues and accepts.
    pub issuer: String,
    /// `aud` the tokens must carry.
    pub audience: String,
    /// Log format: `json` (default) or `pretty`.
    pub log_format: String,
    /// Domain rule thresholds.
    pub rules: Rules,
    /// Event pipeline limits.
    pub limits: Limits,
    /// HTTP hard limits.
    pub http: HttpLimits,
    /// Request quotas per principal and route class.
    pub rate_limits: RateLimits,
    /// Deprecated routes or versions (Deprecation, Sunset and Link headers).
    pub deprecations: Vec<playhead_api_rest::middleware::Deprecation>,
    /// Scale-out mode: `postgres://user@host:port/db`. When set, every store (accounts, catalog,
    /// progress, history, the event log as an outbox, API keys, idempotency keys) is this
    /// PostgreSQL database instead of the embedded SQLite file. Env `PLAYHEAD_DATABASE_URL`.
    pub database_url: Option<SecretUrl>,
    /// The PostgreSQL schema to use (created by the operator; default: the server's search path).
    /// Lets several deployments, or tests, share one database.
    pub database_schema: Option<String>,
    /// Connections this replica's pool keeps at most; the revocation poll has one more of its own
    /// (keep `replicas x (this + 1)` below the server's `max_connections`).
    pub database_max_connections: u32,
    /// Scale-out: `redis://host:port/db` for the shared rate limiter. Needs `database_url`.
    pub redis_url: Option<SecretUrl>,
    /// Prepended to every Redis key (several deployments may share one Redis).
    pub redis_key_prefix: String,
    /// Scale-out: `nats://host:port` for the JetStream event pipeline (outbox relay, sweeper,
    /// durable pull consumers, dead-letter stream). Needs `database_url`. Without it every
    /// replica applies events straight from the PostgreSQL outbox.
    pub nats_url: Option<SecretUrl>,
    /// The JetStream pipeline's stream, limits and timings (`[nats]`; used with `nats_url`).
    pub nats: playhead_nats::NatsSettings,
    /// The built-in authorization server.
    pub identity: IdentitySettings,
    /// Recommendation model lifecycle.
    pub recs: RecsSettings,
    /// The GraphQL endpoint at `/graphql` (`[graphql]`).
    pub graphql: GraphqlSettings,
    /// Trace export (`[telemetry]`; off by default).
    pub telemetry: TelemetrySettings,
    /// What is kept how long, and the pruning job (`[retention]`).
    pub retention: RetentionSettings,
    /// The followers' activity feed (`[feed]`).
    pub feed: FeedSettings,
    /// The concurrent-stream limit (`[streams]`).
    pub streams: StreamSettings,
}

/// Concurrent streams per account (`[streams]`; docs/configuration.md, decision 0092).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSettings {
    /// Simultaneous streams per account (1-1000); an operator may set another limit for one
    /// account (`PUT /v1/admin/accounts/{account_id}/stream-limit`).
    pub max_per_account: u32,
    /// A stream with no event for this many seconds is gone and frees its slot (1-3600). Players
    /// should send an event (a heartbeat) well within it while playing.
    pub timeout_secs: u64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        let rules = playhead_core::streams::StreamRules::default();
        Self {
            max_per_account: rules.max_per_account,
            timeout_secs: u64::try_from(rules.timeout_ms / 1000).unwrap_or(120),
        }
    }
}

impl StreamSettings {
    /// The rules the application runs with.
    pub fn rules(&self) -> playhead_core::streams::StreamRules {
        playhead_core::streams::StreamRules {
            max_per_account: self.max_per_account,
            timeout_ms: i64::try_from(self.timeout_secs).unwrap_or(i64::MAX / 1000) * 1000,
        }
    }
}

/// OpenTelemetry trace export (decision 0075). Off until `otlp_endpoint` is set; the W3C trace
/// id travels through the queue and into the logs either way.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// An OTLP/gRPC collector, e.g. `http://127.0.0.1:4317` (OpenTelemetry Collector, Jaeger,
    /// Tempo). Unset: no spans are recorded or sent.
    pub otlp_endpoint: Option<String>,
    /// `service.name` on every span (tell deployments apart).
    pub service_name: String,
    /// Share of new traces recorded, 0-1. A caller's `traceparent` sampled flag wins.
    pub sample_ratio: f64,
    /// How long one export may take before its batch is dropped, seconds.
    pub export_timeout_secs: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "playhead".into(),
            sample_ratio: 1.0,
            export_timeout_secs: 10,
        }
    }
}

/// The followers' activity feed (`[feed]`; docs/configuration.md, decision 0061).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSettings {
    /// Authors with at least this many followers are merged into feeds at read time (pull);
    /// others are written into each follower's inbox (push). Changing it needs no rebuild.
    pub fanout_threshold: u64,
    /// Entries kept per reader inbox (the oldest are dropped).
    pub inbox_max: u32,
    /// Plays (and feedback) older than this many hours when applied publish nothing, so
    /// backfills and late uploads do not flood feeds.
    pub max_activity_age_hours: u32,
    /// Inbox rows one fan-out step writes at most (the unit of back pressure).
    pub fanout_step_rows: u32,
    /// Follows and follow requests one profile may make per hour (more: 429, audited).
    pub follows_per_hour: u32,
}

impl Default for FeedSettings {
    fn default() -> Self {
        let rules = playhead_core::feed::FeedRules::default();
        Self {
            fanout_threshold: rules.fanout_threshold,
            inbox_max: rules.inbox_max,
            max_activity_age_hours: u32::try_from(rules.max_activity_age_ms / 3_600_000).unwrap_or(72),
            fanout_step_rows: rules.fanout_step_rows,
            follows_per_hour: 60,
        }
    }
}

/// The pruning job (`[retention]`, decision 0081): expired codes, sessions, refresh tokens,
/// idempotency records, deny-list entries and old audit entries are deleted in small batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Seconds between two pruning rounds (0 turns the job off).
    pub prune_interval_secs: u64,
    /// Rows per delete statement (1-10000): small batches keep each lock short.
    pub prune_batch: u32,
    /// Audit entries older than this many days are deleted (0 keeps them for ever).
    pub audit_days: u32,
    /// Plays older than this many days (counted from the start of that month) are rolled up into
    /// per-title monthly aggregates and their raw events deleted (decision 0083). 0 (the
    /// default) keeps every play; otherwise at least 31, past the default event age limit.
    pub rollup_after_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { prune_interval_secs: 600, prune_batch: 500, audit_days: 365, rollup_after_days: 0 }
    }
}

impl RetentionSettings {
    /// The application's pruning configuration.
    pub fn prune_config(&self) -> playhead_app::prune::PruneConfig {
        playhead_app::prune::PruneConfig {
            batch: self.prune_batch,
            interval: std::time::Duration::from_secs(self.prune_interval_secs),
            audit_retention_ms: (self.audit_days > 0).then(|| i64::from(self.audit_days) * 86_400_000),
            rollup_after_days: (self.rollup_after_days > 0).then_some(self.rollup_after_days),
        }
    }
}

impl FeedSettings {
    /// The rules the application runs with.
    pub fn rules(&self) -> playhead_core::feed::FeedRules {
        playhead_core::feed::FeedRules {
            fanout_threshold: self.fanout_threshold,
            inbox_max: self.inbox_max,
            max_activity_age_ms: i64::from(self.max_activity_age_hours) * 3_600_000,
            fanout_step_rows: self.fanout_step_rows,
        }
    }

    /// The per-profile follow quota.
    pub fn follow_quota(&self) -> playhead_core::rate::Quota {
        playhead_core::rate::Quota { limit: self.follows_per_hour, window_ms: 3_600_000 }
    }
}

/// The GraphQL endpoint's limits and switches. A query over a limit is refused whole (nothing
/// runs) with `extensions.code` `QUERY_TOO_DEEP` or `QUERY_TOO_COMPLEX`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlSettings {
    /// Serve `/graphql` at all.
    pub enabled: bool,
    /// Deepest selection nesting (a screen query needs 6).
    pub max_depth: usize,
    /// Largest query cost: each field 1, a list field's selection times its `first` (default 20).
    pub max_complexity: usize,
    /// Answer introspection (`__schema`, `__type`); turn off to hide the schema from strangers
    /// (the console's schema view then stops working; the SDL is in the repository).
    pub introspection: bool,
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        Self { enabled: true, max_depth: 10, max_complexity: 5_000, introspection: true }
    }
}

/// A URL that may carry credentials (`postgres://user:password@host/db`, `nats://token@host`):
/// read from config as a plain string, but `Debug` shows `postgres://user:***@host/db`, so
/// printing the settings (or this field) never prints a password. [`SecretUrl::expose`] is the
/// one way to the text, so every use is visible in review.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL, credentials included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretUrl {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for SecretUrl {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

/// The URL with its password (or a bare token as user information) and any query value whose
/// key names a secret replaced by `***`; the scheme, user name, host, port and path stay.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".to_owned() };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                // PostgreSQL's `user@host` names a role; NATS's `token@host` is the secret.
                None if scheme.starts_with("postgres") => userinfo.to_owned(),
                None => "***".to_owned(),
            };
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let secret_key = |k: &str| {
                let k = k.to_ascii_lowercase();
                ["pass", "secret", "token", "key", "auth"].iter().any(|w| k.contains(w))
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if secret_key(k) => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Model lifecycle settings (`[recs]` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecsSettings {
    /// Train from the store every this many seconds (0: never on a schedule; `playhead recs
    /// train` trains on demand). The first training runs at start when no model exists.
    pub train_interval_secs: u64,
    /// Check the store for a newer model (trained by another replica or `playhead recs train`)
    /// every this many seconds, and reload the catalog into the served model.
    pub reload_interval_secs: u64,
    /// Self-tuning: most blend configurations a training scores on its validation split (0 turns
    /// tuning off and serves the built-in blend).
    pub search_size: usize,
    /// Self-tuning: safety stop for one training's search, seconds.
    pub search_budget_secs: u64,
    /// Reuse a served row this many seconds at most while nothing of its profile changes (0-300;
    /// 0: compute per request). Bounds how late other profiles' plays reach a row (decision 0107).
    pub row_cache_secs: u64,
}

impl Default for RecsSettings {
    fn default() -> Self {
        Self {
            train_interval_secs: 3_600,
            reload_interval_secs: 30,
            search_size: 40,
            search_budget_secs: 300,
            row_cache_secs: 5,
        }
    }
}

/// The built-in authorization server (docs/configuration.md, "identity").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentitySettings {
    /// Access token lifetime, seconds (default 600).
    pub access_token_ttl_secs: i64,
    /// Refresh token lifetime, seconds (each rotation restarts it).
    pub refresh_token_ttl_secs: i64,
    /// Authorization code lifetime, seconds.
    pub auth_code_ttl_secs: i64,
    /// Device code lifetime, seconds.
    pub device_code_ttl_secs: i64,
    /// Initial device polling interval, seconds.
    pub device_interval_secs: i64,
    /// Hosted-page session lifetime, seconds.
    pub web_session_ttl_secs: i64,
    /// argon2id memory cost, KiB.
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    pub argon2_iterations: u32,
    /// argon2id parallelism.
    pub argon2_parallelism: u32,
    /// Sign-in and device-code attempts per client address per minute.
    pub attempts_per_address_per_minute: u32,
    /// Failed sign-ins per account per 15 minutes before it must wait.
    pub failures_per_account_per_15_minutes: u32,
    /// Peers whose X-Forwarded-For is believed (load balancers), e.g. ["10.0.0.5"].
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How often the revocation list and signing keys are re-read, milliseconds (at most 10 s).
    pub revocation_poll_ms: u64,
    /// How long after a refresh the same client may present the old refresh token again and get
    /// a new pair instead of having the family revoked, milliseconds (default 10000).
    pub refresh_reuse_grace_ms: i64,
    /// Other issuers whose access tokens are accepted: a platform's own identity provider
    /// (`[[identity.external_issuers]]`, docs/configuration.md).
    pub external_issuers: Vec<playhead_auth::ExternalIssuerConfig>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        let d = playhead_app::identity::IdentityConfig::default();
        Self {
            access_token_ttl_secs: d.access_ttl_secs,
            refresh_token_ttl_secs: d.refresh_ttl_secs,
            auth_code_ttl_secs: d.code_ttl_secs,
            device_code_ttl_secs: d.device_ttl_secs,
            device_interval_secs: d.device_interval_secs,
            web_session_ttl_secs: d.web_session_ttl_secs,
            argon2_memory_kib: d.argon2_m_kib,
            argon2_iterations: d.argon2_t,
            argon2_parallelism: d.argon2_p,
            attempts_per_address_per_minute: d.attempts_per_addr_per_min,
            failures_per_account_per_15_minutes: d.failures_per_account_per_15min,
            trusted_proxies: Vec::new(),
            revocation_poll_ms: 10_000,
            refresh_reuse_grace_ms: d.refresh_reuse_grace_ms,
            external_issuers: Vec::new(),
        }
    }
}

/// HTTP hard limits. Exceeding one is a problem+json naming the limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Largest JSON body.
    pub json_body_bytes: usize,
    /// Deepest JSON nesting.
    pub json_depth: usize,
    /// Most events (or backfilled plays) in one batch.
    pub batch_max: usize,
    /// Largest NDJSON import.
    pub import_body_bytes: usize,
    /// Seconds before a request is answered 503 (imports exempt).
    pub request_timeout_secs: u64,
    /// Seconds a client may take to send its request headers (slowloris defence).
    pub header_read_timeout_secs: u64,
    /// Requests one principal may have in flight at once.
    pub max_in_flight_per_principal: usize,
    /// Browser origins allowed to call the API (CORS), e.g. ["https://app.example.com"].
    pub cors_allowed_origins: Vec<String>,
    /// Largest gRPC message, either way (a larger one is refused with a status naming the limit).
    pub grpc_max_message_bytes: usize,
    /// Events a gRPC StreamEvents call reads ahead of its durable results (its window).
    pub grpc_stream_window: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            json_body_bytes: 1024 * 1024,
            json_depth: 32,
            batch_max: 500,
            import_body_bytes: 256 * 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_in_flight_per_principal: 32,
            cors_allowed_origins: Vec::new(),
            grpc_max_message_bytes: 4 * 1024 * 1024,
            grpc_stream_window: 1_000,
        }
    }
}

/// One quota: `limit` requests per `window_secs`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSetting {
    /// Requests per window.
    pub limit: u32,
    /// The window, seconds.
    pub window_secs: u32,
}

/// Quotas per route class (see docs/api.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// GETs.
    pub read: QuotaSetting,
    /// Other changes.
    pub write: QuotaSetting,
    /// Event batches.
    pub ingest: QuotaSetting,
    /// Catalog imports and history backfills.
    pub import: QuotaSetting,
    /// Unauthenticated requests, per client address.
    pub auth: QuotaSetting,
}

impl Default for RateLimits {
    fn default() -> Self {
        let q = playhead_app::limits::Quotas::default();
        let s = |q: playhead_core::rate::Quota| QuotaSetting {
            limit: q.limit,
            window_secs: u32::try_from(q.window_ms / 1000).unwrap_or(60),
        };
        Self { read: s(q.read), write: s(q.write), ingest: s(q.ingest), import: s(q.import), auth: s(q.auth) }
    }
}

impl RateLimits {
    /// As the application's quotas.
    pub fn quotas(&self) -> playhead_app::limits::Quotas {
        let q = |s: QuotaSetting| playhead_core::rate::Quota {
            limit: s.limit,
            window_ms: i64::from(s.window_secs) * 1000,
        };
        playhead_app::limits::Quotas {
            read: q(self.read),
            write: q(self.write),
            ingest: q(self.ingest),
            import: q(self.import),
            auth: q(self.auth),
        }
    }
}

/// Event pipeline limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Events waiting to be applied before ingestion answers 503.
    pub max_backlog: u64,
    /// Held events (unknown titles) per profile.
    pub max_held_per_profile: u64,
    /// Events applied per transaction.
    pub consumer_batch: usize,
    /// Seconds a graceful shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// Seconds between SIGTERM and closing the listener, during which `/readyz` answers 503 and
    /// requests are still served: long enough for a load balancer's health checks to take the
    /// replica out (haproxy's `inter x fall`), so no request is sent to a closing connection.
    pub drain_delay_secs: u64,
    /// Embedded mode: a ceiling on the SQLite database's size, MiB (0: none, the disk is the
    /// limit). Reaching it behaves exactly like a full disk: writes answer 503 with Retry-After,
    /// nothing half-written, reads go on. Keeps one deployment from filling a shared disk.
    pub max_database_mib: u32,
    /// Seconds an erasure runner's lease on a saga lasts without progress: after a crash or the
    /// loss of a replica, another runner resumes the saga once it expires (decision 0085).
    pub erasure_lease_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_backlog: 200_000,
            max_held_per_profile: 1_000,
            consumer_batch: 2_000,
            shutdown_grace_secs: 20,
            drain_delay_secs: 0,
            max_database_mib: 0,
            erasure_lease_secs: 30,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./playhead-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            issuer: "http://127.0.0.1:8080".into(),
            audience: "playhead-api".into(),
            log_format: "json".into(),
            rules: Rules::default(),
            limits: Limits::default(),
            http: HttpLimits::default(),
            rate_limits: RateLimits::default(),
            deprecations: Vec::new(),
            database_url: None,
            database_schema: None,
            database_max_connections: 10,
            redis_url: None,
            redis_key_prefix: "playhead:".into(),
            nats_url: None,
            nats: playhead_nats::NatsSettings::default(),
            recs: RecsSettings::default(),
            identity: IdentitySettings::default(),
            graphql: GraphqlSettings::default(),
            telemetry: TelemetrySettings::default(),
            retention: RetentionSettings::default(),
            feed: FeedSettings::default(),
            streams: StreamSettings::default(),
        }
    }
}

impl Settings {
    /// Load: defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(f) = file {
            anyhow::ensure!(f.exists(), "config file {} does not exist", f.display());
            fig = fig.merge(Toml::file(f));
        }
        // PLAYHEAD_CONFIG and PLAYHEAD_DATA_DIR belong to the command line (clap reads them), and
        // PLAYHEAD_TEST_* to the test suites: none of them is a settings key.
        fig = fig.merge(
            Env::prefixed("PLAYHEAD_")
                .filter(|k| {
                    let k = k.as_str().to_ascii_lowercase();
                    !(k == "config" || k.starts_with("test_"))
                })
                .split("__"),
        );
        let s: Settings = fig.extract().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        s.rules.validate().context("invalid configuration")?;
        anyhow::ensure!(
            matches!(s.log_format.as_str(), "json" | "pretty"),
            "invalid configuration: log_format must be json or pretty"
        );
        anyhow::ensure!(
            s.limits.consumer_batch > 0,
            "invalid configuration: limits.consumer_batch must be positive"
        );
        anyhow::ensure!(
            (1..=3_600).contains(&s.limits.erasure_lease_secs),
            "invalid configuration: limits.erasure_lease_secs must be 1-3600"
        );
        anyhow::ensure!(
            s.limits.max_backlog > 0,
            "invalid configuration: limits.max_backlog must be positive"
        );
        let i = &s.identity;
        anyhow::ensure!(
            (60..=3_600).contains(&i.access_token_ttl_secs),
            "invalid configuration: identity.access_token_ttl_secs must be 60-3600"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&i.revocation_poll_ms),
            "invalid configuration: identity.revocation_poll_ms must be 1-10000 (revocation within 30 s)"
        );
        anyhow::ensure!(
            argon2::Params::new(i.argon2_memory_kib, i.argon2_iterations, i.argon2_parallelism, None).is_ok(),
            "invalid configuration: identity.argon2_* parameters are out of range"
        );
        anyhow::ensure!(
            s.issuer.starts_with("https://") || s.issuer.starts_with("http://"),
            "invalid configuration: issuer must be the server's base URL (RFC 8414)"
        );
        anyhow::ensure!(
            (1..=64).contains(&s.graphql.max_depth) && s.graphql.max_complexity > 0,
            "invalid configuration: graphql.max_depth must be 1-64 and graphql.max_complexity positive"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&s.retention.prune_batch),
            "invalid configuration: retention.prune_batch must be 1-10000"
        );
        anyhow::ensure!(
            s.retention.rollup_after_days == 0 || s.retention.rollup_after_days >= 31,
            "invalid configuration: retention.rollup_after_days must be 0 (off) or at least 31"
        );
        anyhow::ensure!(
            s.recs.row_cache_secs <= 300,
            "invalid configuration: recs.row_cache_secs must be 0-300"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&s.feed.inbox_max),
            "invalid configuration: feed.inbox_max must be 1-10000"
        );
        anyhow::ensure!(
            (1..=100_000).contains(&s.feed.fanout_step_rows),
            "invalid configuration: feed.fanout_step_rows must be 1-100000"
        );
        anyhow::ensure!(
            s.feed.follows_per_hour > 0,
            "invalid configuration: feed.follows_per_hour must be positive"
        );
        anyhow::ensure!(
            (1..=playhead_core::streams::MAX_STREAM_LIMIT).contains(&s.streams.max_per_account),
            "invalid configuration: streams.max_per_account must be 1-1000"
        );
        anyhow::ensure!(
            (1..=3_600).contains(&s.streams.timeout_secs),
            "invalid configuration: streams.timeout_secs must be 1-3600"
        );
        s.validate_backends()?;
        s.external_verifiers()?;
        Ok(s)
    }

    /// One verifier per configured external issuer; the error names the entry and field.
    pub fn external_verifiers(&self) -> anyhow::Result<Vec<playhead_auth::ExternalVerifier>> {
        let list = &self.identity.external_issuers;
        let mut verifiers = Vec::with_capacity(list.len());
        for (i, cfg) in list.iter().enumerate() {
            anyhow::ensure!(
                !list[..i].iter().any(|earlier| earlier.issuer == cfg.issuer),
                "invalid configuration: identity.external_issuers[{i}].issuer: listed twice"
            );
            let v =
                playhead_auth::ExternalVerifier::new(i, cfg.clone(), &self.issuer, crate::TOKEN_LEEWAY_SECS)
                    .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            verifiers.push(v);
        }
        Ok(verifiers)
    }

    /// The scale-out keys are consistent: Redis and NATS only beside PostgreSQL, URLs with the
    /// right scheme (the message names the key, never the URL: it may hold a password).
    fn validate_backends(&self) -> anyhow::Result<()> {
        let empty = |o: &Option<SecretUrl>| o.as_ref().is_some_and(|u| u.expose().is_empty());
        anyhow::ensure!(
            !empty(&self.database_url) && !empty(&self.redis_url) && !empty(&self.nats_url),
            "invalid configuration: database_url, redis_url and nats_url must not be empty strings"
        );
        if let Some(u) = self.database_url.as_ref().map(SecretUrl::expose) {
            anyhow::ensure!(
                u.starts_with("postgres://") || u.starts_with("postgresql://"),
                "invalid configuration: database_url must start with postgres:// (SQLite is the default and needs no URL)"
            );
        }
        if self.database_url.is_none() {
            anyhow::ensure!(
                self.redis_url.is_none() && self.nats_url.is_none(),
                "invalid configuration: redis_url and nats_url need database_url (scale-out mode runs on PostgreSQL)"
            );
            anyhow::ensure!(
                self.database_schema.is_none(),
                "invalid configuration: database_schema needs database_url"
            );
        }
        if let Some(u) = self.redis_url.as_ref().map(SecretUrl::expose) {
            anyhow::ensure!(
                u.starts_with("redis://") || u.starts_with("rediss://"),
                "invalid configuration: redis_url must start with redis://"
            );
        }
        if let Some(u) = self.nats_url.as_ref().map(SecretUrl::expose) {
            anyhow::ensure!(
                u.starts_with("nats://") || u.starts_with("tls://"),
                "invalid configuration: nats_url must start with nats:// or tls://"
            );
            self.nats.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        }
        anyhow::ensure!(
            self.database_max_connections > 0,
            "invalid configuration: database_max_connections must be positive"
        );
        Ok(())
    }

    /// Scale-out mode (PostgreSQL) rather than the embedded default (SQLite).
    pub fn scale_out(&self) -> bool {
        self.database_url.is_some()
    }

    /// The authorization server's configuration.
    pub fn identity_config(&self) -> playhead_app::identity::IdentityConfig {
        let i = &self.identity;
        playhead_app::identity::IdentityConfig {
            issuer: self.issuer.trim_end_matches('/').to_owned(),
            audience: self.audience.clone(),
            access_ttl_secs: i.access_token_ttl_secs,
            refresh_ttl_secs: i.refresh_token_ttl_secs,
            code_ttl_secs: i.auth_code_ttl_secs,
            device_ttl_secs: i.device_code_ttl_secs,
            device_interval_secs: i.device_interval_secs,
            web_session_ttl_secs: i.web_session_ttl_secs,
            argon2_m_kib: i.argon2_memory_kib,
            argon2_t: i.argon2_iterations,
            argon2_p: i.argon2_parallelism,
            attempts_per_addr_per_min: i.attempts_per_address_per_minute,
            failures_per_account_per_15min: i.failures_per_account_per_15_minutes,
            refresh_reuse_grace_ms: i.refresh_reuse_grace_ms,
        }
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("playhead.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_with_nothing_set() {
        let s = Settings::default();
        assert_eq!(s.listen.port(), 8080);
        assert!(s.rules.validate().is_ok());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[rules]\nwatched_pct = 0.0\n").unwrap();
        let e = Settings::load(Some(&f)).unwrap_err();
        assert!(format!("{e:#}").contains("rules.watched_pct"), "{e:#}");
        std::fs::write(&f, "listen = \"nowhere\"\n").unwrap();
        let e = Settings::load(Some(&f)).unwrap_err();
        assert!(format!("{e:#}").contains("listen"), "{e:#}");
        std::fs::write(&f, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let e = Settings::load(Some(&f)).unwrap_err();
        assert!(format!("{e:#}").contains("lisen"), "{e:#}");
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let s = Settings {
            database_url: Some(
                "postgres://ph:pg-pass@db.internal:5432/ph?sslmode=require&password=q-pass".into(),
            ),
            redis_url: Some("rediss://:redis-pass@cache.internal:6380/0".into()),
            nats_url: Some("nats://nats-token@nats.internal:4222".into()),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        for secret in ["pg-pass", "q-pass", "redis-pass", "nats-token"] {
            assert!(!shown.contains(secret), "{secret} printed in {shown}");
        }
        assert!(
            shown.contains("postgres://ph:***@db.internal:5432/ph?sslmode=require&password=***"),
            "the rest stays readable: {shown}"
        );
        assert!(shown.contains("rediss://:***@cache.internal:6380/0"), "{shown}");
        assert!(shown.contains("nats://***@nats.internal:4222"), "{shown}");
        assert_eq!(format!("{:?}", SecretUrl::from("postgres://ph@db/ph")), "\"postgres://ph@db/ph\"");
        assert_eq!(format!("{:?}", SecretUrl::from("not a url:secret")), "\"***\"");
        // The text itself is intact for connecting.
        assert_eq!(
            s.database_url.as_ref().map(SecretUrl::expose),
            Some("postgres://ph:pg-pass@db.internal:5432/ph?sslmode=require&password=q-pass")
        );
    }

    #[test]
    fn scale_out_keys_come_from_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "database_url = \"postgres://postgres@127.0.0.1:5432/test\"\ndatabase_schema = \"ph\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&f)).unwrap();
        assert!(s.scale_out());
        assert_eq!(s.database_schema.as_deref(), Some("ph"));
        std::fs::write(&f, "redis_url = \"redis://127.0.0.1:6379\"\n").unwrap();
        let e = Settings::load(Some(&f)).unwrap_err();
        assert!(format!("{e:#}").contains("redis_url"), "{e:#}");
        std::fs::write(&f, "database_url = \"mysql://secret@h/db\"\n").unwrap();
        let e = format!("{:#}", Settings::load(Some(&f)).unwrap_err());
        assert!(e.contains("database_url") && !e.contains("secret"), "{e}");
        assert!(!Settings::default().scale_out());
    }
}
