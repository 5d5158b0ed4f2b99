//! The in-process rate limiter (embedded mode, and the fallback when Redis is down in scale-out).
//!
//! One TAT per key behind a per-key mutex; keys idle longer than the longest window are evicted,
//! so memory stays bounded by the number of active principals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;
use playhead_core::ports::RateLimiter;
use playhead_core::rate::{Quota, RateDecision, gcra};
use playhead_core::{StoreError, Timestamp};

/// GCRA in this process.
pub struct LocalRateLimiter {
    tats: Cache<String, Arc<Mutex<Option<i64>>>>,
}

impl std::fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter").field("keys", &self.tats.entry_count()).finish()
    }
}

impl LocalRateLimiter {
    /// A limiter whose idle keys expire after `max_window` (the longest window in use).
    pub fn new(max_window: Duration) -> Self {
        Self { tats: Cache::builder().max_capacity(1_000_000).time_to_idle(max_window).build() }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        let cell = self.tats.get_with_by_ref(key, || Arc::new(Mutex::new(None)));
        let mut tat = cell.lock().map_err(|_| StoreError::Internal("rate limiter lock poisoned".into()))?;
        let (decision, next) = gcra(*tat, now, quota, cost);
        *tat = Some(next);
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_limited_independently() {
        let l = LocalRateLimiter::new(Duration::from_secs(60));
        let q = Quota { limit: 2, window_ms: 60_000 };
        let now = Timestamp(0);
        assert!(l.check("a", q, 1, now).await.unwrap().allowed);
        assert!(l.check("a", q, 1, now).await.unwrap().allowed);
        assert!(!l.check("a", q, 1, now).await.unwrap().allowed);
        assert!(l.check("b", q, 1, now).await.unwrap().allowed);
    }
}
