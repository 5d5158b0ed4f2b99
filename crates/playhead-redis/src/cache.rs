//! [`RedisSharedCache`]: the row cache every replica shares (scale-out mode).
//!
//! What is stored and how it is invalidated is the application's business (`playhead_app::cache`:
//! rows stamped with per-profile generation counters that are bumped after each commit); this
//! adapter only moves bytes, in one round trip per call: `MGET` for reads, `SET ... PX` for a
//! fill, and one pipeline of `INCR` + `PEXPIRE` per invalidation.
//!
//! Best effort by the port's contract: when Redis does not answer within the timeout, or errs,
//! the call returns `Unavailable` and Redis is skipped for a second (a breaker, so a stopped server
//! does not add its timeout to every read); the application then reads through to the store.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ports::SharedCache;
use redis::aio::ConnectionManager;

use crate::{Breaker, connect_in_background};

/// The shared cache over one Redis.
pub struct RedisSharedCache {
    conn: Arc<OnceLock<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
    breaker: Breaker,
}

impl std::fmt::Debug for RedisSharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSharedCache")
            .field("connected", &self.conn.get().is_some())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisSharedCache {
    /// A cache on the Redis at `url`, every key under `prefix`. Only a malformed URL fails here;
    /// the connection is made (and remade) in the background.
    pub fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            conn: connect_in_background(url, timeout, "redis row cache")?,
            prefix: prefix.to_owned(),
            timeout,
            breaker: Breaker::new(Duration::from_secs(1)),
        })
    }

    /// Whether the background connection has been made.
    pub fn connected(&self) -> bool {
        self.conn.get().is_some()
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    /// Run `f` against Redis unless the breaker is open; open it on failure.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.closed() {
            return Err(StoreError::Unavailable("redis skipped after a recent failure".into()));
        }
        let why = match self.conn.get().cloned() {
            None => "not connected yet".to_owned(),
            Some(conn) => match tokio::time::timeout(self.timeout, f(conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
            },
        };
        self.breaker.trip(&why, "redis row cache unavailable: reading through to the store");
        Err(StoreError::Unavailable(format!("redis: {why}")))
    }
}

#[async_trait]
impl SharedCache for RedisSharedCache {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.run(|mut conn| async move {
            let mut cmd = redis::cmd("MGET");
            for k in &keys {
                cmd.arg(k);
            }
            cmd.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await
        })
        .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let key = self.key(key);
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(|mut conn| async move {
            redis::cmd("SET").arg(&key).arg(value).arg("PX").arg(ttl_ms).query_async::<()>(&mut conn).await
        })
        .await
    }

    async fn bump(&self, keys: &[String], ttl: Duration) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(|mut conn| async move {
            let mut pipe = redis::pipe();
            // MULTI/EXEC: a counter is never left without its expiry.
            pipe.atomic();
            for k in &keys {
                pipe.cmd("INCR").arg(k).ignore();
                pipe.cmd("PEXPIRE").arg(k).arg(ttl_ms).ignore();
            }
            pipe.query_async::<()>(&mut conn).await
        })
        .await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        self.run(|mut conn| async move {
            let mut cmd = redis::cmd("DEL");
            for k in &keys {
                cmd.arg(k);
            }
            cmd.query_async::<()>(&mut conn).await
        })
        .await
    }
}
