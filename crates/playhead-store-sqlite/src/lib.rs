//! Playhead's embedded storage: one SQLite file (WAL, `synchronous=FULL`) behind every port of
//! `playhead_core::ports`: [`AccountStore`], [`Catalog`], [`EventLog`], [`ViewingStore`] (and its
//! [`ViewingTx`]) and [`ApiKeyStore`], all on one cheap-to-clone [`SqliteStore`].
//!
//! SQLite has exactly one writer, so this adapter makes that explicit instead of fighting it:
//! - a **writer pool of one connection** takes every write (appends, apply transactions, upserts,
//!   hides, deletes, backfills, account writes). Multi-statement writes start with
//!   `BEGIN IMMEDIATE`, so they hold the write lock from their first statement and can never fail
//!   half-way on a lock upgrade. The single connection also serialises appliers, which is what
//!   [`ViewingStore::begin`] asks for;
//! - a **reader pool of read-only connections** serves every read outside a transaction; WAL lets
//!   them run while the writer writes.
//!
//! Rules a contributor must keep here:
//! - Queries are runtime `sqlx::query*` calls with `?` parameters (no `query!` macros: no
//!   `DATABASE_URL` or `.sqlx` data); the shared contract suite (`playhead-store-contract`) is the
//!   check, so every behaviour change starts there.
//! - Never edit a shipped migration in `migrations/`; add a new one.
//! - A variable-length list goes into SQL as one JSON array parameter read with `json_each`,
//!   never as a generated `IN (?, ?, ...)`: one statement text (cached, prepared once per
//!   connection) and no limit on bound variables.
//! - Rows are decoded by `playhead-store-rows` (`codec::decode`, `codec::cols`), never field by
//!   field here: what this database stores differently goes in `codec.rs`'s `RowTypes` (decision 0023).
//! - Map errors with the `error` module's helpers: no `sqlx` type leaves this crate, and nothing here
//!   panics.
//! - While a [`ViewingTx`] is open it owns the writer connection: code holding one must not call
//!   another write method of this store before committing or dropping it (it would wait for the
//!   writer until the acquire timeout and fail with `Unavailable`).

mod accounts;
mod api_keys;
pub mod backup;
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
mod prune;
mod recs;
mod rollup;
mod sessions;
mod streams;
mod viewing;

use std::path::Path;
use std::time::Duration;

use playhead_core::StoreError;
#[cfg(doc)]
use playhead_core::ports::{AccountStore, ApiKeyStore, Catalog, EventLog, ViewingStore, ViewingTx};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

/// Tuning of a [`SqliteStore`]; the defaults suit the embedded deployment.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Read-only connections serving reads outside transactions.
    pub readers: u32,
    /// How long SQLite itself waits for a lock held by another process (e.g. the sqlite3 CLI).
    pub busy_timeout: Duration,
    /// How long a call waits for a pooled connection before answering `Unavailable` (callers
    /// answer 503 with Retry-After): bounds how long writes queue behind the single writer.
    pub acquire_timeout: Duration,
    /// Page cache of the writer connection, in MiB. The event log's indexes take random inserts;
    /// a cache that holds their hot pages saves re-reading them on every append.
    pub writer_cache_mib: u32,
    /// A ceiling on the database's size in pages (`PRAGMA max_page_count`); `None`: SQLite's own
    /// (effectively the disk). Past it writes fail with SQLITE_FULL exactly as on a full disk,
    /// which is how the full-disk behaviour is tested.
    pub max_page_count: Option<u32>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            writer_cache_mib: 32,
            max_page_count: None,
        }
    }
}

/// What the writer connection runs with: `wal`, `full` and `true` in every deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `PRAGMA journal_mode`, lower-case (`wal`).
    pub journal_mode: String,
    /// `PRAGMA synchronous` by name (`off`, `normal`, `full`, `extra`).
    pub synchronous: String,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
}

/// Every storage port on one SQLite database. Cloning is cheap (two pool handles).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Exactly one connection: every write goes through it.
    writer: SqlitePool,
    /// Read-only connections for reads outside transactions.
    reader: SqlitePool,
    /// The group-commit appender (see `log.rs`).
    appender: tokio::sync::mpsc::Sender<log::AppendRequest>,
}

impl SqliteStore {
    /// Open (creating it if missing) the database at `path` with the default [`SqliteConfig`] and
    /// bring its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &SqliteConfig::default()).await
    }

    /// Open the database at `path` with explicit tuning, then run the embedded migrations.
    pub async fn open_with(path: &Path, config: &SqliteConfig) -> Result<Self, StoreError> {
        let writer_options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // An accepted event must be on disk before the API answers 202: fsync on every commit.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout)
            // Negative: a size in KiB rather than in pages.
            .pragma("cache_size", format!("-{}", u64::from(config.writer_cache_mib) * 1024))
            // Multi-row statements keep a statement journal (to undo themselves on error): in
            // memory, not in a temporary file written on every append.
            .pragma("temp_store", "memory");
        let writer_options = match config.max_page_count {
            Some(pages) => writer_options.pragma("max_page_count", pages.to_string()),
            None => writer_options,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(config.acquire_timeout)
            // Keep the connection (and its prepared statements) for the life of the process.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
            .await
            .map_err(error::db)?;
        sqlx::migrate!("./migrations").run(&writer).await.map_err(error::migrate)?;

        // Opened after the migrations so a read-only connection never sees a half-made schema,
        // and after the writer switched the file to WAL (a persistent setting readers inherit).
        let reader_options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout);
        let reader = SqlitePoolOptions::new()
            .max_connections(config.readers.max(1))
            .min_connections(1)
            .acquire_timeout(config.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(reader_options)
            .await
            .map_err(error::db)?;
        let (appender, requests) = tokio::sync::mpsc::channel(log::APPEND_QUEUE);
        let store = Self { writer, reader, appender };
        tokio::spawn(log::run_appender(store.writer.clone(), requests));
        let d = store.durability().await?;
        tracing::info!(
            db.path = %path.display(),
            db.readers = config.readers,
            db.journal_mode = %d.journal_mode,
            db.synchronous = %d.synchronous,
            db.foreign_keys = d.foreign_keys,
            "sqlite store open"
        );
        Ok(store)
    }

    /// The writer connection's durability settings as SQLite reports them (for the startup log,
    /// operators' tools and tests).
    pub async fn durability(&self) -> Result<Durability, StoreError> {
        let mut conn = self.writer.acquire().await.map_err(error::db)?;
        let journal_mode: String =
            sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.map_err(error::db)?;
        let synchronous: i64 =
            sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.map_err(error::db)?;
        let foreign_keys: bool =
            sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut *conn).await.map_err(error::db)?;
        let synchronous = match synchronous {
            0 => "off",
            1 => "normal",
            2 => "full",
            3 => "extra",
            _ => "unknown",
        };
        Ok(Durability {
            journal_mode: journal_mode.to_lowercase(),
            synchronous: synchronous.to_owned(),
            foreign_keys,
        })
    }

    /// Connections per pool, for the pool gauges: `(pool, open, idle)`.
    pub fn pool_usage(&self) -> [(&'static str, u32, usize); 2] {
        [
            ("sqlite_writer", self.writer.size(), self.writer.num_idle()),
            ("sqlite_reader", self.reader.size(), self.reader.num_idle()),
        ]
    }

    /// Readiness check for `/readyz`: a read round trip. It deliberately does not wait for the
    /// writer, which a long apply may hold; a failing write still answers `Unavailable` itself.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&self.reader).await.map_err(error::db)?;
        Ok(())
    }

    /// Close both pools (graceful shutdown): waits for connections in use to be returned, and
    /// lets SQLite checkpoint the WAL as the last connection closes.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// A write transaction on the writer connection that holds the write lock from the start.
    /// Dropping it without [`Transaction::commit`] rolls back.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(error::db)
    }
}

/// The newest schema version this build knows (`playhead doctor` compares the database's).
pub fn latest_migration() -> i64 {
    sqlx::migrate!("./migrations").migrations.iter().map(|m| m.version).max().unwrap_or(0)
}
