//! Cache-aside for the rows and profiles, invalidated on every write that can change them.
//!
//! The race every cache-aside has (a read loads old state, a write commits and invalidates, then the
//! read stores the old value) is closed with per-profile generations: entries are keyed by
//! `(profile, generation)`, every write bumps the generation *after* its commit, and a reader uses
//! the generation it saw before loading. A stale load can only ever land under a generation nobody
//! asks for again. Concurrent misses on one key run one loader (moka's `try_get_with`). TTLs bound
//! what time alone changes (staleness cutoffs, episodes becoming available).
//!
//! In scale-out mode (several replicas) per-profile rows must not be cached per process unless
//! invalidated across replicas; `RowCache::disabled()` turns it off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use playhead_core::ids::ProfileId;
use playhead_core::profile::Profile;

use crate::AppError;
use crate::reads::RowItem;

/// Which row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Row {
    /// Continue watching.
    Continue,
    /// Next up.
    NextUp,
}

/// Row and profile caches.
#[derive(Clone)]
pub struct RowCache {
    enabled: bool,
    rows: Cache<(ProfileId, Row, u64), Arc<Vec<RowItem>>>,
    profiles: Cache<(ProfileId, u64), Profile>,
    generations: Cache<ProfileId, Arc<AtomicU64>>,
    /// Bumped by catalog writes: every row embeds titles.
    catalog_epoch: Arc<AtomicU64>,
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowCache").field("enabled", &self.enabled).finish_non_exhaustive()
    }
}

/// Longest a row may be served from cache without any write.
const ROW_TTL: Duration = Duration::from_secs(60);

impl RowCache {
    /// A cache of up to `capacity` rows.
    pub fn new(capacity: u64) -> Self {
        Self {
            enabled: true,
            rows: Cache::builder().max_capacity(capacity).time_to_live(ROW_TTL).build(),
            profiles: Cache::builder().max_capacity(capacity).time_to_live(ROW_TTL).build(),
            // Generations must outlive every entry keyed by them, hence the longer idle time.
            generations: Cache::builder().time_to_idle(ROW_TTL * 10).build(),
            catalog_epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// No caching (every read goes to the store).
    pub fn disabled() -> Self {
        Self { enabled: false, ..Self::new(0) }
    }

    async fn generation(&self, p: ProfileId) -> u64 {
        let g = self.generations.get_with(p, async { Arc::new(AtomicU64::new(0)) }).await;
        g.load(Ordering::Acquire) + (self.catalog_epoch.load(Ordering::Acquire) << 32)
    }

    /// A row from cache or from `load`.
    pub async fn row<F>(&self, p: ProfileId, row: Row, load: F) -> Result<Arc<Vec<RowItem>>, AppError>
    where
        F: Future<Output = Result<Vec<RowItem>, AppError>>,
    {
        if !self.enabled {
            return load.await.map(Arc::new);
        }
        let g = self.generation(p).await;
        let hit = self.rows.contains_key(&(p, row, g));
        metrics::counter!("playhead_cache_requests_total", "cache" => "rows", "result" => if hit { "hit" } else { "miss" })
            .increment(1);
        self.rows
            .try_get_with((p, row, g), async { load.await.map(Arc::new) })
            .await
            .map_err(|e| clone_err(&e))
    }

    /// A profile from cache or from `load` (`None`: not found, not cached).
    pub async fn profile<F>(&self, p: ProfileId, load: F) -> Result<Option<Profile>, AppError>
    where
        F: Future<Output = Result<Option<Profile>, AppError>>,
    {
        if !self.enabled {
            return load.await;
        }
        let g = self.generation(p).await;
        if let Some(hit) = self.profiles.get(&(p, g)).await {
            return Ok(Some(hit));
        }
        let loaded = load.await?;
        if let Some(profile) = &loaded {
            self.profiles.insert((p, g), profile.clone()).await;
        }
        Ok(loaded)
    }

    /// Forget everything cached for a profile (call after the write commits).
    pub async fn invalidate(&self, p: ProfileId) {
        // No generation yet means nobody has read (or is reading) this profile through the cache.
        if !self.enabled {
            return;
        }
        if let Some(g) = self.generations.get(&p).await {
            g.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Forget every row (a catalog write changed titles that rows embed).
    pub fn invalidate_all_rows(&self) {
        self.catalog_epoch.fetch_add(1, Ordering::AcqRel);
    }
}

fn clone_err(e: &AppError) -> AppError {
    match e {
        AppError::Invalid(v) => AppError::Invalid(v.clone()),
        AppError::MissingScope(s) => AppError::MissingScope(*s),
        AppError::Forbidden(s) => AppError::Forbidden(s),
        AppError::NotFound(s) => AppError::NotFound(s),
        AppError::Conflict(s) => AppError::Conflict(s.clone()),
        AppError::PreconditionFailed => AppError::PreconditionFailed,
        AppError::PreconditionRequired => AppError::PreconditionRequired,
        AppError::Overloaded { retry_after_secs } => {
            AppError::Overloaded { retry_after_secs: *retry_after_secs }
        }
        AppError::Unavailable(s) => AppError::Unavailable(s.clone()),
        AppError::Internal(s) => AppError::Internal(s.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn item() -> Vec<RowItem> {
        Vec::new()
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_never_served_afterwards() {
        let c = RowCache::new(100);
        let p = ProfileId(Uuid::from_u128(1));
        let loads = Arc::new(AtomicU64::new(0));
        let l = loads.clone();
        // A slow load that started before the write...
        let c2 = c.clone();
        let slow = tokio::spawn(async move {
            c2.row(p, Row::Continue, async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                l.fetch_add(1, Ordering::SeqCst);
                Ok(item())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // ...the write commits and invalidates while it runs...
        c.invalidate(p).await;
        slow.await.unwrap().unwrap();
        // ...so the next read loads again instead of serving the stale result.
        let l = loads.clone();
        c.row(p, Row::Continue, async move {
            l.fetch_add(1, Ordering::SeqCst);
            Ok(item())
        })
        .await
        .unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn hits_do_not_load_and_catalog_writes_invalidate_every_row() {
        let c = RowCache::new(100);
        let p = ProfileId(Uuid::from_u128(1));
        let loads = Arc::new(AtomicU64::new(0));
        for _ in 0..3 {
            let l = loads.clone();
            c.row(p, Row::NextUp, async move {
                l.fetch_add(1, Ordering::SeqCst);
                Ok(item())
            })
            .await
            .unwrap();
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        c.invalidate_all_rows();
        let l = loads.clone();
        c.row(p, Row::NextUp, async move {
            l.fetch_add(1, Ordering::SeqCst);
            Ok(item())
        })
        .await
        .unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }
}
