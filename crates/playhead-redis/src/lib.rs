//! Playhead's Redis adapter: the rate limiter and the row cache every replica shares (scale-out
//! mode; the row cache is [`RedisSharedCache`]).
//!
//! [`RedisRateLimiter`] runs GCRA as one Lua script per check (one round trip, atomic), with the
//! arithmetic of `playhead_core::rate::gcra`: the script stores the TAT and answers whether the
//! request passes; the decision's headers (remaining, reset, retry-after) are rebuilt here by the
//! core function from what the script read, so the in-process and the shared limiter can never
//! disagree on rounding.
//!
//! Redis is a dependency that may fail; the rule (DESIGN.md, failure behaviour) is that a Redis
//! outage causes no 5xx. When Redis does not answer within [`RedisLimiterConfig::timeout`], or
//! errs, the check falls back to the per-replica [`LocalRateLimiter`] and Redis is skipped for
//! [`RedisLimiterConfig::retry_after`] (a breaker, so a stopped server does not add its timeout
//! to every request). Each fallback is counted in `playhead_ratelimit_fallback_total`.
//!
//! Redis keeps nothing here that must survive it: a restart forgets the TATs, so every principal
//! gets one fresh window at worst.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use playhead_app::ratelimit::LocalRateLimiter;
use playhead_core::ports::RateLimiter;
use playhead_core::rate::{Quota, RateDecision, gcra};
use playhead_core::{StoreError, Timestamp};
use redis::aio::ConnectionManager;

mod cache;
pub use cache::RedisSharedCache;

/// Tuning of a [`RedisRateLimiter`].
#[derive(Debug, Clone)]
pub struct RedisLimiterConfig {
    /// Prepended to every key (several deployments, or tests, may share one Redis).
    pub key_prefix: String,
    /// Longest a check waits for Redis before deciding locally.
    pub timeout: Duration,
    /// How long Redis is skipped after it failed to answer.
    pub retry_after: Duration,
    /// The longest window in use (how long the local fallback keeps idle keys).
    pub max_window: Duration,
}

impl Default for RedisLimiterConfig {
    fn default() -> Self {
        Self {
            key_prefix: "playhead:".to_owned(),
            timeout: Duration::from_millis(250),
            retry_after: Duration::from_secs(1),
            max_window: Duration::from_secs(3_600),
        }
    }
}

/// GCRA shared by every replica through Redis, falling back to per-replica limits.
pub struct RedisRateLimiter {
    conn: Arc<OnceLock<ConnectionManager>>,
    script: redis::Script,
    local: LocalRateLimiter,
    config: RedisLimiterConfig,
    breaker: Breaker,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("connected", &self.conn.get().is_some())
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter on the Redis at `url`. Only a malformed URL fails here: the connection is made in
    /// the background (retrying), and until it is up checks are decided locally, so a replica
    /// starts and serves while Redis is down.
    pub fn connect(url: &str, config: RedisLimiterConfig) -> Result<Self, StoreError> {
        let conn = connect_in_background(url, config.timeout, "redis rate limiter")?;
        Ok(Self {
            conn,
            script: redis::Script::new(include_str!("gcra.lua")),
            local: LocalRateLimiter::new(config.max_window),
            breaker: Breaker::new(config.retry_after),
            config,
        })
    }

    /// Whether the background connection has been made (it then reconnects by itself).
    pub fn connected(&self) -> bool {
        self.conn.get().is_some()
    }

    /// Whether limits are decided per replica right now: Redis not connected yet, or skipped
    /// after a failure (`/healthz` reports it as degraded).
    pub fn falling_back(&self) -> bool {
        !self.connected() || !self.breaker.closed()
    }

    /// Wait up to `within` for the first connection (a replica starting next to a healthy Redis
    /// should not decide its first requests locally); `false` when Redis did not come up.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    async fn shared(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
        now: Timestamp,
    ) -> Result<RateDecision, String> {
        let mut conn = self.conn.get().cloned().ok_or_else(|| "not connected yet".to_owned())?;
        let now_ns = now.0.saturating_mul(1_000_000);
        let mut call = self.script.key(format!("{}rl:{key}", self.config.key_prefix));
        call.arg(now_ns.div_euclid(1_000_000_000))
            .arg(now_ns.rem_euclid(1_000_000_000))
            .arg(quota.increment_ns(cost))
            .arg(quota.window_ns())
            .arg(if cost > quota.limit { "1" } else { "0" });
        let (allowed, ahead): (i64, i64) =
            match tokio::time::timeout(self.config.timeout, call.invoke_async(&mut conn)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("no answer within {} ms", self.config.timeout.as_millis())),
            };
        // The stored TAT as the core sees it; the core then computes the same decision the script
        // made, plus the numbers the headers need.
        let (mut decision, _) = gcra(Some(now_ns + ahead), now, quota, cost);
        if decision.allowed != (allowed == 1) {
            // Cannot happen while script and core share their arithmetic; the script's answer is
            // what was charged, so it wins, and the disagreement is reported.
            tracing::error!(key, allowed, ahead, "redis GCRA and playhead-core disagree");
            decision.allowed = allowed == 1;
        }
        Ok(decision)
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        if self.breaker.closed() {
            match self.shared(key, quota, cost, now).await {
                Ok(d) => return Ok(d),
                Err(why) => self.breaker.trip(&why, "redis rate limiter unavailable: limits are per replica"),
            }
        }
        metrics::counter!("playhead_ratelimit_fallback_total").increment(1);
        self.local.check(key, quota, cost, now).await
    }
}

/// Open a client for `url` and make its reconnecting connection in the background (retrying with
/// backoff), so a replica starts and serves while Redis is down. Only a malformed URL fails here,
/// and the error names the setting, never the URL (it may hold a password).
pub(crate) fn connect_in_background(
    url: &str,
    timeout: Duration,
    what: &'static str,
) -> Result<Arc<OnceLock<ConnectionManager>>, StoreError> {
    let client =
        redis::Client::open(url).map_err(|e| StoreError::Internal(format!("redis_url: {}", e.category())))?;
    let conn = Arc::new(OnceLock::new());
    let slot = Arc::clone(&conn);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            let cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(timeout));
            match ConnectionManager::new_with_config(client.clone(), cfg).await {
                Ok(m) => {
                    let _ = slot.set(m);
                    tracing::info!(what, "redis connected");
                    return;
                }
                Err(e) => {
                    tracing::warn!(what, error = %e, retry_in_ms = delay.as_millis(), "redis unreachable; falling back until it answers");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
    Ok(conn)
}

/// Skips Redis for `retry_after` after a failure, so a stopped server does not add its timeout to
/// every call, and logs one warning per such period rather than one per request.
pub(crate) struct Breaker {
    retry_after_ms: i64,
    /// Milliseconds since the epoch before which Redis is not tried.
    skip_until_ms: AtomicI64,
    /// Last time a failure was logged.
    last_warning_ms: AtomicI64,
}

impl Breaker {
    pub(crate) fn new(retry_after: Duration) -> Self {
        Self {
            retry_after_ms: i64::try_from(retry_after.as_millis()).unwrap_or(1_000),
            skip_until_ms: AtomicI64::new(0),
            last_warning_ms: AtomicI64::new(0),
        }
    }

    /// Whether Redis may be tried now.
    pub(crate) fn closed(&self) -> bool {
        wall_ms() >= self.skip_until_ms.load(Ordering::Relaxed)
    }

    /// Redis failed (`why`): skip it for a while, and say so (`what`) once per period.
    pub(crate) fn trip(&self, why: &str, what: &'static str) {
        let wall = wall_ms();
        self.skip_until_ms.store(wall + self.retry_after_ms, Ordering::Relaxed);
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if wall - last >= self.retry_after_ms
            && self.last_warning_ms.compare_exchange(last, wall, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(error = %why, "{what}");
        }
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
