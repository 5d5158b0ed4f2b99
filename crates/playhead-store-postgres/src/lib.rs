//! Playhead's scale-out storage: PostgreSQL behind every port of `playhead_core::ports`:
//! [`AccountStore`], [`Catalog`], [`EventLog`] (the outbox, with [`Outbox`] for a broker relay),
//! [`ViewingStore`] (and its [`ViewingTx`]) and [`ApiKeyStore`], all on one cheap-to-clone
//! [`PgStore`] that any number of replicas may share.
//!
//! Unlike SQLite, PostgreSQL takes concurrent writers, so this adapter serialises only what must
//! be serialised, and says where:
//! - **apply transactions** run at READ COMMITTED and take a transaction-scoped advisory lock per
//!   profile (`pg_advisory_xact_lock`, key [`profile_lock_key`]) the first time they touch that
//!   profile's state. Appliers of different profiles run in parallel; two appliers of one profile
//!   take turns, which is what [`ViewingStore::begin`] asks for. The lock is always its own
//!   statement: at READ COMMITTED each statement's snapshot is taken when the statement starts,
//!   so only a read issued *after* the lock was granted sees what the previous holder committed;
//! - **lock order**: a transaction that locks several profiles must lock them in ascending
//!   profile-id order. The application does (`playhead-app`'s apply iterates a `BTreeMap` keyed by
//!   `(profile, title)`), so two appliers never wait on each other in a cycle. A caller that breaks
//!   the order can deadlock; PostgreSQL then aborts one transaction (SQLSTATE 40P01), which this
//!   adapter reports as `Unavailable` so the consumer retries;
//! - **the other profile writes** that read before they write (`delete_play`, `backfill`) take
//!   the same lock in their own transaction, so a concurrent apply can never resurrect a play
//!   deleted under it;
//! - **appends** take no lock: the `events` primary key deduplicates (a concurrent insert of the
//!   same id waits for the first transaction and then does nothing), and `claim` deletes queue
//!   rows by seq, so of two transactions claiming one seq exactly one gets the event id.
//!
//! Rules a contributor must keep here:
//! - Queries are runtime `sqlx::query*` calls with `$n` parameters (no `query!` macros: no
//!   `DATABASE_URL` or `.sqlx` data); the shared contract suite (`playhead-store-contract`) is the
//!   check, so every behaviour change starts there.
//! - A variable-length list goes into SQL as array parameters (`= ANY($1)`,
//!   `unnest($1::uuid[], ...)`): one statement text and one round trip per batch, never a
//!   statement per row on the ingest, claim or upsert paths.
//! - Never edit a shipped migration in `migrations/`; add a new one.
//! - Rows are decoded by `playhead-store-rows` (`codec::decode`, `codec::cols`), never field by
//!   field here: what this database stores differently goes in `codec.rs`'s `RowTypes` (decision 0023).
//! - Map errors with the `error` module's helpers: no `sqlx` type leaves this crate's port
//!   methods, and nothing here panics.

mod accounts;
mod api_keys;
mod catalog;
mod codec;
mod erasure;
mod error;
mod export;
mod feed;
mod idempotency;
mod identity;
mod library;
mod log;
mod outbox;
mod prune;
mod recs;
mod rollup;
mod sessions;
mod streams;
mod viewing;

use std::str::FromStr;
use std::time::Duration;

use playhead_core::StoreError;
use playhead_core::ids::ProfileId;
#[cfg(doc)]
use playhead_core::ports::{AccountStore, ApiKeyStore, Catalog, EventLog, Outbox, ViewingStore, ViewingTx};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres, Transaction};

pub use viewing::PgViewingTx;

/// Tuning of a [`PgStore`]; the defaults suit one replica of a small deployment.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Connections this replica keeps at most (PostgreSQL's `max_connections` is shared by every
    /// replica: keep `replicas x max_connections` below it).
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a call waits for a pooled connection before answering `Unavailable` (callers
    /// answer 503 with Retry-After).
    pub acquire_timeout: Duration,
    /// PostgreSQL's `lock_timeout` for every connection: how long a statement waits for a lock
    /// (a profile's apply lock, a row) before failing with `Unavailable`, so a stuck transaction
    /// cannot hold every applier of a profile for ever.
    pub lock_timeout: Duration,
    /// The schema to create the tables in and read them from (`search_path`); `None` keeps the
    /// server's default (`"$user", public`). Lower-case letters, digits and `_` only.
    pub schema: Option<String>,
    /// `application_name`, shown in `pg_stat_activity` (which replica holds which lock).
    pub application_name: String,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(10),
            schema: None,
            application_name: "playhead".to_owned(),
        }
    }
}

/// Every storage port on one PostgreSQL database. Cloning is cheap (a pool handle).
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user@host:port/db`) with the default
    /// [`PgConfig`] and bring its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &PgConfig::default()).await
    }

    /// Connect with explicit tuning, then run the embedded migrations (`migrations/`; sqlx takes
    /// a database-wide advisory lock, so replicas starting at once migrate one after the other).
    pub async fn connect_with(url: &str, config: &PgConfig) -> Result<Self, StoreError> {
        // The parse error names what is wrong, never the URL (which may hold a password).
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("database url: {e}")))?
            .application_name(&config.application_name);
        let lock_timeout = format!("{}ms", config.lock_timeout.as_millis());
        // `synchronous_commit=on` whatever the server's default: an accepted event is on disk
        // before the API answers 202 (DESIGN.md, "Delivery, durability, deletion").
        options = options.options([("synchronous_commit", "on"), ("lock_timeout", lock_timeout.as_str())]);
        if let Some(schema) = &config.schema {
            if !valid_schema_name(schema) {
                return Err(StoreError::Internal(format!(
                    "schema {schema:?}: use 1-63 lower-case letters, digits and _, not starting with a digit"
                )));
            }
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(error::db)?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(error::migrate)?;
        // A server running with fsync=off acknowledges commits it may lose in a crash: say so once,
        // loudly (it is the operator's setting, not ours to refuse).
        let fsync: String = sqlx::query_scalar("SELECT current_setting('fsync')")
            .fetch_one(&pool)
            .await
            .map_err(error::db)?;
        if fsync != "on" {
            tracing::warn!(db.fsync = %fsync, "postgres runs with fsync off: accepted events may be lost in a crash");
        }
        tracing::info!(
            db.schema = config.schema.as_deref().unwrap_or("(default)"),
            db.max_connections = config.max_connections,
            "postgres store open"
        );
        Ok(Self { pool })
    }

    /// The same database through a pool of its own of at most `connections`, named
    /// `<application_name>/<purpose>` in `pg_stat_activity`, for background work that must not
    /// queue behind request traffic (decision 0115): the revocation poll fails closed, so a poll
    /// starved by a full pool for 30 s would turn every person token into a 503. No migrations
    /// (this store already ran them); connects on first use.
    pub fn dedicated(&self, purpose: &str, connections: u32) -> Self {
        let options = (*self.pool.connect_options()).clone();
        let name = format!("{}/{purpose}", options.get_application_name().unwrap_or("playhead"));
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .min_connections(0)
            .acquire_timeout(self.pool.options().get_acquire_timeout())
            .connect_lazy_with(options.application_name(&name));
        Self { pool }
    }

    /// Connections in the pool, for the pool gauges: `(pool, open, idle)`.
    pub fn pool_usage(&self) -> [(&'static str, u32, usize); 1] {
        [("postgres", self.pool.size(), self.pool.num_idle())]
    }

    /// Readiness check for `/readyz`: a round trip on a pooled connection.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&self.pool).await.map_err(error::db)?;
        Ok(())
    }

    /// Close the pool (graceful shutdown): waits for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The `synchronous_commit` setting pooled connections run with (`on` in every deployment),
    /// for the startup log, operators' tools and tests.
    pub async fn synchronous_commit(&self) -> Result<String, StoreError> {
        sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&self.pool)
            .await
            .map_err(error::db)
    }

    /// A READ COMMITTED transaction (explicit, whatever the server's default isolation: the
    /// locking above is designed for it). Dropping it without commit rolls back.
    async fn begin_tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED").await.map_err(error::db)
    }
}

/// The advisory-lock key that serialises appliers of `profile`: both halves of the UUID folded
/// into the `bigint` key space of `pg_advisory_xact_lock(bigint)`, salted so that small
/// hand-made ids do not land on the small keys other tools like to use. Two profiles sharing a key
/// only make their appliers take turns (and, with a lock-order inversion, let PostgreSQL's
/// deadlock detector abort one); with random 122-bit ids that is a 1 in 2^64 event per pair.
pub fn profile_lock_key(profile: ProfileId) -> i64 {
    const SALT: u64 = 0x706c_6179_6865_6164; // "playhead"
    let (hi, lo) = profile.0.as_u64_pair();
    i64::from_ne_bytes((hi ^ lo ^ SALT).to_ne_bytes())
}

/// Take the apply lock of `profile` for the rest of the transaction on `conn` (a statement of its
/// own: see the crate docs on snapshots).
async fn lock_profile(conn: &mut PgConnection, profile: ProfileId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(profile_lock_key(profile))
        .execute(conn)
        .await
        .map_err(error::db)?;
    Ok(())
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The newest schema version this build knows (`playhead doctor` compares the database's).
pub fn latest_migration() -> i64 {
    sqlx::migrate!("./migrations").migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn lock_keys_differ_between_profiles_and_are_stable() {
        let a = ProfileId(Uuid::from_u128(1));
        let b = ProfileId(Uuid::from_u128(2));
        assert_ne!(profile_lock_key(a), profile_lock_key(b));
        assert_eq!(profile_lock_key(a), profile_lock_key(ProfileId(Uuid::from_u128(1))));
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema_name("ph_0123abcd"));
        assert!(!valid_schema_name(""));
        assert!(!valid_schema_name("1abc"));
        assert!(!valid_schema_name("a b"));
        assert!(!valid_schema_name("A"));
        assert!(!valid_schema_name(&"a".repeat(64)));
    }
}
