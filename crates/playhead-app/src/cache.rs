//! Cache-aside for the rows and profiles, invalidated on every write that can change them.
//!
//! The race every cache-aside has (a read loads old state, a write commits and invalidates, then the
//! read stores the old value) is closed with per-profile generations: entries are keyed by
//! `(profile, generation)`, every write bumps the generation *after* its commit, and a reader uses
//! the generation it saw before loading. A stale load can only ever land under a generation nobody
//! asks for again. Concurrent misses on one key run one loader (moka's `try_get_with`). TTLs bound
//! what time alone changes (staleness cutoffs, episodes becoming available).
//!
//! Two modes:
//! - **Local** (embedded default): generations and rows live in this process.
//! - **Shared** (scale-out, [`RowCache::shared`]): one process's memory cannot see another
//!   replica's writes, so the generations live in the [`SharedCache`] (Redis) and every read
//!   fetches the profile's generation, the catalog epoch and the stored row in one round trip. A
//!   stored row carries the stamp (generations) it was loaded under and is served only while the
//!   stamp is current; writers bump the generation after their commit, on whichever replica they
//!   run. Rows expire after [`SHARED_ROW_TTL`] with ±20 % jitter (entries filled together do not
//!   expire together). Decoded rows are also kept in process under the same stamp (a stamp read
//!   from Redis just now proves nothing changed), and concurrent misses of one row under one
//!   stamp load it once per replica. Profiles are cached the same way under their generation
//!   (`profiles:<id>`), so a read needs no PostgreSQL query on a hit.
//!   When the shared cache fails, reads go to the store: slower, never wrong, never a 5xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use playhead_core::ids::ProfileId;
use playhead_core::ports::SharedCache;
use playhead_core::profile::Profile;
use rand::Rng as _;

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

impl Row {
    /// The operation that reads this row (its scope comes from the policy table).
    pub const fn operation(self) -> crate::access::Operation {
        match self {
            Row::Continue => crate::access::Operation::GetContinueWatching,
            Row::NextUp => crate::access::Operation::GetNextUp,
        }
    }
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
    shared: Option<Shared>,
}

/// The shared mode's state.
#[derive(Clone)]
struct Shared {
    cache: Arc<dyn SharedCache>,
    /// Decoded rows by (profile, row, stamp): valid whenever the stamp is current.
    rows: Cache<(ProfileId, Row, String), Arc<Vec<RowItem>>>,
    /// Decoded profiles by (profile, generation): valid whenever the generation is current, so a
    /// hit skips decoding the JSON Redis returned.
    profiles: moka::sync::Cache<(ProfileId, String), Profile>,
}

/// What [`RowCache::profile_for_row`] fetched for a row beside the profile (shared mode): its
/// stamp (the profile's generation and the catalog epoch), read in the same round trip as the
/// profile, so the stamp was read before any load, as the protocol requires.
#[derive(Debug)]
pub struct Prefetched(Option<(Row, Stamp)>);

/// A row's stamp as one `MGET` returned it: the profile's generation and the catalog epoch.
#[derive(Debug)]
struct Stamp {
    generation: Option<Vec<u8>>,
    epoch: Option<Vec<u8>>,
}

/// How long a row stays in the shared cache without a write (before jitter).
pub const SHARED_ROW_TTL: Duration = Duration::from_secs(30);
/// How long a generation counter outlives its last bump: far longer than any row stamped with it,
/// so a counter never expires (and restarts at 0) while a row stamped with it could still match.
const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);
const EPOCH_KEY: &str = "rows:epoch";

fn generation_key(p: ProfileId) -> String {
    format!("rows:gen:{p}")
}

fn row_key(p: ProfileId, row: Row) -> String {
    let which = match row {
        Row::Continue => "cw",
        Row::NextUp => "nu",
    };
    format!("rows:{p}:{which}")
}

/// What is stored in the shared cache for a row.
#[derive(serde::Deserialize)]
struct Stored {
    /// The generations the row was loaded under: `<profile generation>:<catalog epoch>`.
    stamp: String,
    items: Vec<RowItem>,
}

/// A profile as stored in the shared cache, stamped with its generation.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredProfile {
    stamp: String,
    profile: Profile,
}

fn profile_key(p: ProfileId) -> String {
    format!("profiles:{p}")
}

/// [`Stored`], as written (borrowing the freshly loaded row).
#[derive(serde::Serialize)]
struct StoredRef<'a> {
    stamp: &'a str,
    items: &'a [RowItem],
}

/// A generation counter as read from the shared cache: absent (never bumped, or expired) is 0.
fn counter(v: Option<Vec<u8>>) -> String {
    v.and_then(|b| String::from_utf8(b).ok()).unwrap_or_else(|| "0".into())
}

fn jittered(ttl: Duration) -> Duration {
    ttl.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
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
            shared: None,
        }
    }

    /// Rows in a cache every replica shares, holding up to `capacity` decoded rows in process.
    pub fn shared(cache: Arc<dyn SharedCache>, capacity: u64) -> Self {
        let rows = Cache::builder().max_capacity(capacity).time_to_live(SHARED_ROW_TTL).build();
        let profiles =
            moka::sync::Cache::builder().max_capacity(capacity).time_to_live(SHARED_ROW_TTL).build();
        Self { shared: Some(Shared { cache, rows, profiles }), ..Self::new(0) }
    }

    /// No caching (every read goes to the store).
    pub fn disabled() -> Self {
        Self { enabled: false, ..Self::new(0) }
    }

    async fn generation(&self, p: ProfileId) -> u64 {
        // A plain lookup first: `get_with` builds its initialising future on every call, and
        // the counter exists for every profile read before (issue 12, the read path).
        let g = match self.generations.get(&p).await {
            Some(g) => g,
            None => self.generations.get_with(p, async { Arc::new(AtomicU64::new(0)) }).await,
        };
        g.load(Ordering::Acquire) + (self.catalog_epoch.load(Ordering::Acquire) << 32)
    }

    /// What a profile's cached state is keyed by right now: its generation and the catalog
    /// epoch (shared mode: read from the shared cache in one round trip). Read it *before*
    /// loading and store what was loaded under it, as the rows here do: a write committed
    /// meanwhile bumps the generation, so the load lands under a stamp nobody asks for again.
    /// `None` when nothing may be cached: caching is off, or the shared cache did not answer.
    pub async fn stamp(&self, p: ProfileId) -> Option<String> {
        if let Some(shared) = &self.shared {
            let found = shared.cache.get_many(&[generation_key(p), EPOCH_KEY.to_owned()]).await.ok()?;
            let [generation, epoch] = <[Option<Vec<u8>>; 2]>::try_from(found).ok()?;
            return Some(format!("{}:{}", counter(generation), counter(epoch)));
        }
        if !self.enabled {
            return None;
        }
        Some(self.generation(p).await.to_string())
    }

    /// A row from cache or from `load`.
    pub async fn row<F>(&self, p: ProfileId, row: Row, load: F) -> Result<Arc<Vec<RowItem>>, AppError>
    where
        F: Future<Output = Result<Vec<RowItem>, AppError>>,
    {
        if let Some(shared) = &self.shared {
            return shared.row(p, row, load).await;
        }
        if !self.enabled {
            return load.await.map(Arc::new);
        }
        let g = self.generation(p).await;
        // One lookup on a hit (a `contains_key` before `try_get_with` cost two).
        if let Some(hit) = self.rows.get(&(p, row, g)).await {
            metrics::counter!("playhead_cache_requests_total", "cache" => "rows", "result" => "hit")
                .increment(1);
            return Ok(hit);
        }
        metrics::counter!("playhead_cache_requests_total", "cache" => "rows", "result" => "miss")
            .increment(1);
        self.rows
            .try_get_with((p, row, g), async { load.await.map(Arc::new) })
            .await
            .map_err(|e| AppError::clone(&e))
    }

    /// A profile from cache or from `load` (`None`: not found, not cached).
    pub async fn profile<F>(&self, p: ProfileId, load: F) -> Result<Option<Profile>, AppError>
    where
        F: Future<Output = Result<Option<Profile>, AppError>>,
    {
        if let Some(shared) = &self.shared {
            return shared.profile(p, load).await;
        }
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

    /// A profile, and (shared mode) the row `row` fetched in the same round trip, for a read that
    /// needs both: hand the [`Prefetched`] to [`RowCache::row_prefetched`] right after.
    pub async fn profile_for_row<F>(
        &self,
        p: ProfileId,
        row: Row,
        load: F,
    ) -> Result<(Option<Profile>, Prefetched), AppError>
    where
        F: Future<Output = Result<Option<Profile>, AppError>>,
    {
        let Some(shared) = &self.shared else {
            return Ok((self.profile(p, load).await?, Prefetched(None)));
        };
        // The row itself is not fetched here: a replica that holds it decoded under this stamp
        // (the common case) needs only the stamp, not 5 KB of JSON per read (issue 12).
        let keys = [generation_key(p), profile_key(p), EPOCH_KEY.to_owned()];
        let found = shared.cache.get_many(&keys).await;
        let Some([generation, profile, epoch]) =
            found.ok().and_then(|v| <[Option<Vec<u8>>; 3]>::try_from(v).ok())
        else {
            return Ok((shared.serve_profile(p, None, load).await?, Prefetched(None)));
        };
        let profile = shared.serve_profile(p, Some([generation.clone(), profile]), load).await?;
        Ok((profile, Prefetched(Some((row, Stamp { generation, epoch })))))
    }

    /// A row, served from what [`RowCache::profile_for_row`] fetched when it fetched this row.
    pub async fn row_prefetched<F>(
        &self,
        p: ProfileId,
        row: Row,
        prefetched: Prefetched,
        load: F,
    ) -> Result<Arc<Vec<RowItem>>, AppError>
    where
        F: Future<Output = Result<Vec<RowItem>, AppError>>,
    {
        match (&self.shared, prefetched.0) {
            (Some(shared), Some((r, stamp))) if r == row => shared.serve_row(p, row, Some(stamp), load).await,
            _ => self.row(p, row, load).await,
        }
    }

    /// Forget everything cached for a profile (call after the write commits).
    pub async fn invalidate(&self, p: ProfileId) {
        if let Some(shared) = &self.shared {
            shared.bump(generation_key(p)).await;
            return;
        }
        // No generation yet means nobody has read (or is reading) this profile through the cache.
        if !self.enabled {
            return;
        }
        if let Some(g) = self.generations.get(&p).await {
            g.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Remove everything kept for an erased profile (its store rows are already deleted, so no
    /// reader can load it back): the shared cache's keys, or this process's entries. An `Err`
    /// means the shared cache did not answer; the erasure retries.
    pub async fn evict(&self, p: ProfileId) -> Result<(), AppError> {
        if let Some(shared) = &self.shared {
            // Decoded copies in this process expire within SHARED_ROW_TTL and are only reached
            // after a profile lookup, which now finds nothing.
            let keys =
                [profile_key(p), row_key(p, Row::Continue), row_key(p, Row::NextUp), generation_key(p)];
            return shared.cache.delete(&keys).await.map_err(AppError::from);
        }
        // In process: a new generation makes every entry unreachable until its TTL drops it.
        self.invalidate(p).await;
        Ok(())
    }

    /// Delete other keys from the shared cache's Redis (an erased account's rate-limit state);
    /// nothing to do without one.
    pub async fn delete_shared(&self, keys: &[String]) -> Result<(), AppError> {
        match &self.shared {
            Some(shared) => shared.cache.delete(keys).await.map_err(AppError::from),
            None => Ok(()),
        }
    }

    /// Forget every row (a catalog write changed titles that rows embed).
    pub async fn invalidate_all_rows(&self) {
        if let Some(shared) = &self.shared {
            shared.bump(EPOCH_KEY.to_owned()).await;
            return;
        }
        self.catalog_epoch.fetch_add(1, Ordering::AcqRel);
    }
}

impl Shared {
    async fn row<F>(&self, p: ProfileId, row: Row, load: F) -> Result<Arc<Vec<RowItem>>, AppError>
    where
        F: Future<Output = Result<Vec<RowItem>, AppError>>,
    {
        let found = self.cache.get_many(&[generation_key(p), EPOCH_KEY.to_owned()]).await;
        let fetched = found
            .ok()
            .and_then(|v| <[Option<Vec<u8>>; 2]>::try_from(v).ok())
            .map(|[generation, epoch]| Stamp { generation, epoch });
        self.serve_row(p, row, fetched, load).await
    }

    /// Serve a row under the stamp one `MGET` of (generation, epoch) returned (`None`: Redis did
    /// not answer): from this process when it holds the row under that stamp, else from the
    /// stored row (fetched now) when its stamp is that one, else from `load`.
    async fn serve_row<F>(
        &self,
        p: ProfileId,
        row: Row,
        fetched: Option<Stamp>,
        load: F,
    ) -> Result<Arc<Vec<RowItem>>, AppError>
    where
        F: Future<Output = Result<Vec<RowItem>, AppError>>,
    {
        let key = row_key(p, row);
        let Some(Stamp { generation, epoch }) = fetched else {
            // The shared cache is down (or answered nonsense): the store answers, uncached.
            metrics::counter!("playhead_cache_requests_total", "cache" => "shared_rows", "result" => "unavailable")
                .increment(1);
            return load.await.map(Arc::new);
        };
        let stamp = format!("{}:{}", counter(generation), counter(epoch));
        let local_key = (p, row, stamp.clone());
        if let Some(hit) = self.rows.get(&local_key).await {
            metrics::counter!("playhead_cache_requests_total", "cache" => "shared_rows", "result" => "hit")
                .increment(1);
            return Ok(hit);
        }
        // Fetched after the stamp, so a row stored under the stamp read first is still one this
        // replica may serve; a failed fetch only costs a load.
        let stored =
            self.cache.get_many(std::slice::from_ref(&key)).await.ok().and_then(|mut v| v.pop()).flatten();
        if let Some(s) = stored.and_then(|b| serde_json::from_slice::<Stored>(&b).ok())
            && s.stamp == stamp
        {
            metrics::counter!("playhead_cache_requests_total", "cache" => "shared_rows", "result" => "hit")
                .increment(1);
            let items = Arc::new(s.items);
            self.rows.insert(local_key, items.clone()).await;
            return Ok(items);
        }
        metrics::counter!("playhead_cache_requests_total", "cache" => "shared_rows", "result" => "miss")
            .increment(1);
        // One load per replica for concurrent misses; stored under the stamp read *before*
        // loading, so a write committed meanwhile (it bumps the generation) makes it unservable.
        self.rows
            .try_get_with(local_key, async {
                let items = load.await?;
                match serde_json::to_vec(&StoredRef { stamp: &stamp, items: &items }) {
                    // A failed fill only costs the next reader a load.
                    Ok(value) => {
                        let _ = self.cache.put(&key, &value, jittered(SHARED_ROW_TTL)).await;
                    }
                    Err(e) => tracing::error!(error = %e, "a row could not be encoded for the shared cache"),
                }
                Ok(Arc::new(items))
            })
            .await
            .map_err(|e| AppError::clone(&e))
    }

    /// A profile, valid while its generation is the one it was loaded under (every profile
    /// write bumps it after its commit, like any write to the profile's rows).
    async fn profile<F>(&self, p: ProfileId, load: F) -> Result<Option<Profile>, AppError>
    where
        F: Future<Output = Result<Option<Profile>, AppError>>,
    {
        let found = self.cache.get_many(&[generation_key(p), profile_key(p)]).await;
        let fetched = found.ok().and_then(|v| <[Option<Vec<u8>>; 2]>::try_from(v).ok());
        self.serve_profile(p, fetched, load).await
    }

    /// Serve a profile from what one `MGET` of (generation, profile) returned.
    async fn serve_profile<F>(
        &self,
        p: ProfileId,
        fetched: Option<[Option<Vec<u8>>; 2]>,
        load: F,
    ) -> Result<Option<Profile>, AppError>
    where
        F: Future<Output = Result<Option<Profile>, AppError>>,
    {
        let key = profile_key(p);
        let Some([generation, stored]) = fetched else {
            metrics::counter!("playhead_cache_requests_total", "cache" => "shared_profiles", "result" => "unavailable")
                .increment(1);
            return load.await;
        };
        let stamp = counter(generation);
        let local_key = (p, stamp.clone());
        if stored.is_some()
            && let Some(hit) = self.profiles.get(&local_key)
        {
            // Decoded before under the generation Redis holds now: nothing changed since.
            metrics::counter!("playhead_cache_requests_total", "cache" => "shared_profiles", "result" => "hit")
                .increment(1);
            return Ok(Some(hit));
        }
        if let Some(s) = stored.and_then(|b| serde_json::from_slice::<StoredProfile>(&b).ok())
            && s.stamp == stamp
        {
            metrics::counter!("playhead_cache_requests_total", "cache" => "shared_profiles", "result" => "hit")
                .increment(1);
            self.profiles.insert(local_key, s.profile.clone());
            return Ok(Some(s.profile));
        }
        metrics::counter!("playhead_cache_requests_total", "cache" => "shared_profiles", "result" => "miss")
            .increment(1);
        let loaded = load.await?;
        if let Some(profile) = &loaded
            && let Ok(value) = serde_json::to_vec(&StoredProfile { stamp, profile: profile.clone() })
        {
            // Stamped with the generation read before loading: a write racing this load makes
            // the entry unservable. A failed fill only costs the next reader a load. (Not kept
            // in process: a local hit needs Redis to hold the stored copy, which this put may
            // not have achieved.)
            let _ = self.cache.put(&key, &value, jittered(SHARED_ROW_TTL)).await;
        }
        Ok(loaded)
    }

    async fn bump(&self, key: String) {
        if let Err(e) = self.cache.bump(&[key], GENERATION_TTL).await {
            // Other replicas may serve this profile's previous rows until they expire
            // (SHARED_ROW_TTL): the bound on staleness while Redis is unreachable from here.
            metrics::counter!("playhead_cache_invalidation_failures_total").increment(1);
            tracing::warn!(error = %e, "shared row cache invalidation failed; rows may be stale until they expire");
        }
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
    async fn stamps_change_with_the_profile_and_the_catalog_on_every_replica() {
        let p = ProfileId(Uuid::from_u128(2));
        let local = RowCache::new(100);
        let s0 = local.stamp(p).await.expect("cached");
        assert_eq!(local.stamp(p).await.as_deref(), Some(s0.as_str()), "stable without writes");
        local.invalidate(p).await;
        let s1 = local.stamp(p).await.expect("cached");
        assert_ne!(s0, s1);
        local.invalidate_all_rows().await;
        assert_ne!(local.stamp(p).await.expect("cached"), s1);
        assert_eq!(RowCache::disabled().stamp(p).await, None, "nothing cached when off");

        let shared = Arc::new(MemShared::default());
        let (a, b) = (RowCache::shared(shared.clone(), 100), RowCache::shared(shared.clone(), 100));
        let before = b.stamp(p).await.expect("shared");
        a.invalidate(p).await;
        assert_ne!(b.stamp(p).await.expect("shared"), before, "a write on A changes B's stamp");
        shared.down.store(true, Ordering::SeqCst);
        assert_eq!(b.stamp(p).await, None, "no stamp, no caching, while the shared cache is down");
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
        c.invalidate_all_rows().await;
        let l = loads.clone();
        c.row(p, Row::NextUp, async move {
            l.fetch_add(1, Ordering::SeqCst);
            Ok(item())
        })
        .await
        .unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    /// The shared cache as the port promises it, in memory, with a switch that makes it fail.
    #[derive(Default)]
    struct MemShared {
        map: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl MemShared {
        fn up(&self) -> Result<(), playhead_core::StoreError> {
            if self.down.load(Ordering::SeqCst) {
                return Err(playhead_core::StoreError::Unavailable("down".into()));
            }
            Ok(())
        }
    }

    #[async_trait::async_trait]
    impl SharedCache for MemShared {
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, playhead_core::StoreError> {
            self.up()?;
            let m = self.map.lock().unwrap();
            Ok(keys.iter().map(|k| m.get(k).cloned()).collect())
        }
        async fn put(&self, key: &str, value: &[u8], _: Duration) -> Result<(), playhead_core::StoreError> {
            self.up()?;
            self.map.lock().unwrap().insert(key.to_owned(), value.to_vec());
            Ok(())
        }
        async fn bump(&self, keys: &[String], _: Duration) -> Result<(), playhead_core::StoreError> {
            self.up()?;
            let mut m = self.map.lock().unwrap();
            for k in keys {
                let n: u64 = m.get(k).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
                m.insert(k.clone(), (n + 1).to_string().into_bytes());
            }
            Ok(())
        }
        async fn delete(&self, keys: &[String]) -> Result<(), playhead_core::StoreError> {
            self.up()?;
            let mut m = self.map.lock().unwrap();
            for k in keys {
                m.remove(k);
            }
            Ok(())
        }
    }

    fn counting(loads: &Arc<AtomicU64>) -> impl Future<Output = Result<Vec<RowItem>, AppError>> + use<> {
        let l = loads.clone();
        async move {
            l.fetch_add(1, Ordering::SeqCst);
            Ok(item())
        }
    }

    #[tokio::test]
    async fn a_write_applied_on_one_replica_is_seen_by_reads_on_another() {
        let shared = Arc::new(MemShared::default());
        let (a, b) = (RowCache::shared(shared.clone(), 100), RowCache::shared(shared.clone(), 100));
        let p = ProfileId(Uuid::from_u128(7));
        let loads = Arc::new(AtomicU64::new(0));
        a.row(p, Row::Continue, counting(&loads)).await.unwrap();
        b.row(p, Row::Continue, counting(&loads)).await.unwrap();
        a.row(p, Row::Continue, counting(&loads)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one replica's load serves the others");
        a.invalidate(p).await;
        b.row(p, Row::Continue, counting(&loads)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "B must not serve what A's write changed");
        b.invalidate_all_rows().await;
        a.row(p, Row::Continue, counting(&loads)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 3, "a catalog write on B reaches A's rows");
    }

    #[tokio::test]
    async fn a_load_racing_a_write_on_another_replica_is_never_served_afterwards() {
        let shared = Arc::new(MemShared::default());
        let (a, b) = (RowCache::shared(shared.clone(), 100), RowCache::shared(shared.clone(), 100));
        let p = ProfileId(Uuid::from_u128(8));
        let loads = Arc::new(AtomicU64::new(0));
        let (a2, l) = (a.clone(), loads.clone());
        let slow = tokio::spawn(async move {
            a2.row(p, Row::NextUp, async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                l.fetch_add(1, Ordering::SeqCst);
                Ok(item())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        b.invalidate(p).await;
        slow.await.unwrap().unwrap();
        a.row(p, Row::NextUp, counting(&loads)).await.unwrap();
        b.row(p, Row::NextUp, counting(&loads)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "the stale fill is ignored; the fresh one is shared");
    }

    #[tokio::test]
    async fn concurrent_misses_load_once_per_replica() {
        let c = RowCache::shared(Arc::new(MemShared::default()), 100);
        let p = ProfileId(Uuid::from_u128(9));
        let loads = Arc::new(AtomicU64::new(0));
        let reads: Vec<_> = (0..16)
            .map(|_| {
                let (c, l) = (c.clone(), loads.clone());
                tokio::spawn(async move {
                    c.row(p, Row::Continue, async move {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        l.fetch_add(1, Ordering::SeqCst);
                        Ok(item())
                    })
                    .await
                })
            })
            .collect();
        for r in reads {
            r.await.unwrap().unwrap();
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failing_shared_cache_reads_through_to_the_store() {
        let shared = Arc::new(MemShared::default());
        let c = RowCache::shared(shared.clone(), 100);
        let p = ProfileId(Uuid::from_u128(10));
        let loads = Arc::new(AtomicU64::new(0));
        shared.down.store(true, Ordering::SeqCst);
        for _ in 0..3 {
            c.row(p, Row::Continue, counting(&loads)).await.expect("no error while the cache is down");
        }
        c.invalidate(p).await; // logged and counted, never an error
        assert_eq!(loads.load(Ordering::SeqCst), 3, "every read went to the store");
    }

    #[tokio::test]
    async fn a_profile_change_on_one_replica_is_seen_by_the_next_read_on_another() {
        let shared = Arc::new(MemShared::default());
        let (a, b) = (RowCache::shared(shared.clone(), 100), RowCache::shared(shared.clone(), 100));
        let p = ProfileId(Uuid::from_u128(11));
        let profile = |name: &str| Profile {
            id: p,
            account_id: playhead_core::ids::AccountId(Uuid::from_u128(12)),
            name: playhead_core::profile::ProfileName::parse(name).unwrap(),
            kids: false,
            maturity_limit: None,
            private: false,
            history_paused: false,
            keep_resume_points_while_paused: false,
            version: 1,
            created_at: playhead_core::Timestamp(0),
        };
        let loads = Arc::new(AtomicU64::new(0));
        let load = |name: &'static str| {
            let l = loads.clone();
            async move {
                l.fetch_add(1, Ordering::SeqCst);
                Ok(Some(profile(name)))
            }
        };
        assert_eq!(a.profile(p, load("Main")).await.unwrap().unwrap().name.as_str(), "Main");
        assert_eq!(b.profile(p, load("Main")).await.unwrap().unwrap().name.as_str(), "Main");
        assert_eq!(loads.load(Ordering::SeqCst), 1, "B is served what A loaded");
        a.invalidate(p).await; // A renamed it and committed
        assert_eq!(b.profile(p, load("Kids")).await.unwrap().unwrap().name.as_str(), "Kids");
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    /// A plain profile named "Main" with id `p`.
    fn main_profile(p: ProfileId) -> Profile {
        Profile {
            id: p,
            account_id: playhead_core::ids::AccountId(Uuid::from_u128(1)),
            name: playhead_core::profile::ProfileName::parse("Main").unwrap(),
            kids: false,
            maturity_limit: None,
            private: false,
            history_paused: false,
            keep_resume_points_while_paused: false,
            version: 1,
            created_at: playhead_core::Timestamp(0),
        }
    }

    #[tokio::test]
    async fn an_evicted_profile_is_not_served_from_a_replicas_decoded_copy() {
        let shared = Arc::new(MemShared::default());
        let (a, b) = (RowCache::shared(shared.clone(), 100), RowCache::shared(shared.clone(), 100));
        let p = ProfileId(Uuid::from_u128(15));
        let profile = main_profile(p);
        let found = {
            let profile = profile.clone();
            move || {
                let profile = profile.clone();
                async move { Ok(Some(profile)) }
            }
        };
        // A loads and stores it; B decodes it from Redis and keeps the decoded copy.
        assert!(a.profile(p, found()).await.unwrap().is_some());
        assert!(b.profile(p, found()).await.unwrap().is_some());
        assert!(b.profile(p, async { panic!("a hit must not load") }).await.unwrap().is_some());
        // A erases it: the generation key goes too, so the counter reads 0 again.
        a.evict(p).await.unwrap();
        let gone = b.profile(p, async { Ok(None) }).await.unwrap();
        assert!(gone.is_none(), "B must not serve its decoded copy of an erased profile");
    }

    #[tokio::test]
    async fn a_row_fetched_with_its_profile_follows_the_same_stamp_rules() {
        let shared = Arc::new(MemShared::default());
        let (a, b) = (RowCache::shared(shared.clone(), 100), RowCache::shared(shared.clone(), 100));
        let p = ProfileId(Uuid::from_u128(13));
        let profile = main_profile(p);
        let (profile_loads, row_loads) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let read = |c: RowCache| {
            let (pl, rl, profile) = (profile_loads.clone(), row_loads.clone(), profile.clone());
            async move {
                let (got, pre) = c
                    .profile_for_row(p, Row::Continue, async move {
                        pl.fetch_add(1, Ordering::SeqCst);
                        Ok(Some(profile))
                    })
                    .await
                    .unwrap();
                assert!(got.is_some());
                c.row_prefetched(p, Row::Continue, pre, counting(&rl)).await.unwrap();
            }
        };
        read(a.clone()).await;
        read(b.clone()).await;
        assert_eq!((profile_loads.load(Ordering::SeqCst), row_loads.load(Ordering::SeqCst)), (1, 1));
        a.invalidate(p).await;
        read(b.clone()).await;
        assert_eq!((profile_loads.load(Ordering::SeqCst), row_loads.load(Ordering::SeqCst)), (2, 2));
        shared.down.store(true, Ordering::SeqCst);
        read(a.clone()).await;
        assert_eq!((profile_loads.load(Ordering::SeqCst), row_loads.load(Ordering::SeqCst)), (3, 3));
    }
}
