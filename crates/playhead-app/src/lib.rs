//! Playhead's use cases, shared by every transport (REST now; gRPC and GraphQL later).
//!
//! The rule of this crate: a use case takes a [`Principal`], authorizes through [`policy`] first,
//! then loads state through the core's ports, calls the core's rules, and stores the result. No
//! SQL, no HTTP types. Transports stay thin: parse, call one function here, map [`AppError`].

pub mod access;
pub mod accounts;
pub mod apply;
pub mod cache;
pub mod catalog;
pub mod changes;
pub mod clock;
pub mod consumer;
pub mod cursor;
pub mod erase;
pub mod error;
pub mod export;
pub mod feed;
pub mod identity;
pub mod ingest;
pub mod library;
pub mod limits;
pub mod operator;
pub mod pin;
pub mod policy;
pub mod prune;
pub mod ratelimit;
pub mod reads;
pub mod recs;
pub mod streams;
pub mod telemetry;

use std::sync::Arc;

use playhead_core::ports::{
    AccountStore, ApiKeyStore, Catalog, Clock, ErasureStore, EventLog, ExportStore, FeedStore,
    IdempotencyStore, IdentityStore, RateLimiter, RecsStore, StreamStore, ViewingStore,
};
use playhead_core::rules::Rules;
use tokio::sync::Notify;

pub use error::AppError;
pub use playhead_core::auth::Principal;

/// The storage ports an [`App`] runs on (one adapter may implement them all).
#[derive(Clone)]
pub struct Ports {
    /// Accounts and profiles.
    pub accounts: Arc<dyn AccountStore>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The durable event log.
    pub log: Arc<dyn EventLog>,
    /// Progress, plays and rows.
    pub viewing: Arc<dyn ViewingStore>,
    /// API keys.
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Idempotency keys.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Rate limits (in process, or shared in scale-out).
    pub limiter: Arc<dyn RateLimiter>,
    /// Recommendation state (feedback, impressions, live counters).
    pub recs: Arc<dyn RecsStore>,
    /// Erasure sagas and the erase watermark.
    pub erasure: Arc<dyn ErasureStore>,
    /// Data export requests.
    pub exports: Arc<dyn ExportStore>,
    /// The follow graph, activities and inboxes.
    pub feed: Arc<dyn FeedStore>,
    /// Concurrent streams per account.
    pub streams: Arc<dyn StreamStore>,
}

/// Tunables of the application layer (the binary fills them from config).
#[derive(Clone)]
pub struct AppConfig {
    /// The domain rules' thresholds.
    pub rules: Rules,
    /// Most events waiting in the log before appends answer 503.
    pub max_backlog: u64,
    /// Most held events (titles not yet in the catalog) per profile.
    pub max_held_per_profile: u64,
    /// Events the consumer applies per transaction.
    pub consumer_batch: usize,
    /// Key that signs pagination cursors (tamper evidence).
    pub cursor_key: [u8; 32],
    /// Cache rows and profiles in this process (turn off when several replicas serve one store
    /// without cross-replica invalidation).
    pub row_cache: bool,
    /// Request quotas per route class.
    pub quotas: limits::Quotas,
    /// How long an erasure runner's lease on a saga lasts without progress: after a crash, the
    /// saga resumes on any runner once it expires.
    pub erasure_lease_ms: i64,
    /// The feed's rules and sizes (fan-out threshold, inbox size, activity age).
    pub feed: playhead_core::feed::FeedRules,
    /// Follows (and follow requests) one profile may make per window.
    pub follow_quota: playhead_core::rate::Quota,
    /// The concurrent-stream limit and timeout.
    pub streams: playhead_core::streams::StreamRules,
    /// Longest a served recommendation row is reused while nothing of its profile changes
    /// (zero: computed per request; decision 0107).
    pub recs_row_ttl: std::time::Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            rules: Rules::default(),
            max_backlog: 200_000,
            max_held_per_profile: 1_000,
            consumer_batch: 2_000,
            cursor_key: [0; 32],
            row_cache: true,
            quotas: limits::Quotas::default(),
            erasure_lease_ms: erase::DEFAULT_LEASE_MS,
            feed: playhead_core::feed::FeedRules::default(),
            follow_quota: playhead_core::rate::Quota {
                limit: 60,
                window_ms: 60 * playhead_core::time::MINUTE_MS,
            },
            streams: playhead_core::streams::StreamRules::default(),
            recs_row_ttl: std::time::Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field but the cursor key: it signs cursors, so printing it would let anyone who
        // reads the log forge them.
        let Self {
            rules,
            max_backlog,
            max_held_per_profile,
            consumer_batch,
            cursor_key: _,
            row_cache,
            quotas,
            erasure_lease_ms,
            feed,
            follow_quota,
            streams,
            recs_row_ttl,
        } = self;
        f.debug_struct("AppConfig")
            .field("rules", rules)
            .field("max_backlog", max_backlog)
            .field("max_held_per_profile", max_held_per_profile)
            .field("consumer_batch", consumer_batch)
            .field("cursor_key", &"[redacted]")
            .field("row_cache", row_cache)
            .field("quotas", quotas)
            .field("erasure_lease_ms", erasure_lease_ms)
            .field("feed", feed)
            .field("follow_quota", follow_quota)
            .field("streams", streams)
            .field("recs_row_ttl", recs_row_ttl)
            .finish()
    }
}

/// The application: ports, config, clock, and the consumer's wake-up signal.
#[derive(Clone)]
pub struct App {
    pub(crate) ports: Ports,
    pub(crate) config: Arc<AppConfig>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) wake: Arc<Notify>,
    /// Wakes the erasure runner when a saga is asked for.
    pub(crate) erasures_wake: Arc<Notify>,
    /// Applies in progress (claimed, not yet committed and invalidated).
    pub(crate) applying: Arc<tokio::sync::watch::Sender<usize>>,
    pub(crate) cursors: cursor::CursorCodec,
    pub(crate) cache: cache::RowCache,
    pub(crate) recs: Arc<dyn playhead_core::recs::RecsEngine>,
    /// Served recommendation rows, profile signals and live counters ([`recs::RecsCache`]).
    pub(crate) recs_cache: recs::RecsCache,
    /// Live resume-point changes ([`changes`]).
    pub(crate) changes: changes::Changes,
    /// Wakes the feed's fan-out worker when activities are published.
    pub(crate) feed_wake: Arc<Notify>,
    /// Where use cases write audit entries (the feed's refused spam follows).
    pub(crate) audit: Option<Arc<dyn IdentityStore>>,
}

impl App {
    /// Keep rows in a cache every replica shares (scale-out mode), replacing the per-process one:
    /// a write applied on one replica is seen by reads on all of them.
    #[must_use]
    pub fn with_shared_row_cache(mut self, cache: Arc<dyn playhead_core::ports::SharedCache>) -> Self {
        self.cache = cache::RowCache::shared(cache, 100_000);
        self
    }

    /// Build the application.
    pub fn new(ports: Ports, config: AppConfig, clock: Arc<dyn Clock>) -> Self {
        let cursors = cursor::CursorCodec::new(config.cursor_key);
        let recs_cache = recs::RecsCache::new(config.recs_row_ttl);
        let cache =
            if config.row_cache { cache::RowCache::new(100_000) } else { cache::RowCache::disabled() };
        Self {
            ports,
            config: Arc::new(config),
            clock,
            wake: Arc::new(Notify::new()),
            erasures_wake: Arc::new(Notify::new()),
            applying: Arc::new(tokio::sync::watch::Sender::new(0)),
            cursors,
            cache,
            recs: Arc::new(recs::NoRecs),
            recs_cache,
            changes: changes::Changes::default(),
            feed_wake: Arc::new(Notify::new()),
            audit: None,
        }
    }

    /// Write the audit entries of use cases (refused spam follows) to `store`.
    #[must_use]
    pub fn with_audit_store(mut self, store: Arc<dyn IdentityStore>) -> Self {
        self.audit = Some(store);
        self
    }

    /// How many applies are in progress right now; it changes after each one has committed and
    /// invalidated its caches. With an empty queue, zero means every accepted event is visible
    /// to reads (tests and drains wait on it instead of sleeping).
    pub fn applying(&self) -> tokio::sync::watch::Receiver<usize> {
        self.applying.subscribe()
    }

    /// The ports (for the binary's admin commands and for transports' health checks).
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Notified after every append that queued events (and after held events are released): a
    /// broker relay waits on it instead of polling the outbox, as the in-process consumer does.
    pub fn appended(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_key_does_not_print() {
        let config = AppConfig { cursor_key: [0xAB; 32], ..AppConfig::default() };
        let shown = format!("{config:?}");
        assert!(shown.contains("max_backlog") && !shown.contains("171, 171"), "{shown}");
    }
}
