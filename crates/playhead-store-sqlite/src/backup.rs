//! Online backup and restore of the embedded database (`playhead admin backup` / `restore`).
//!
//! A backup is `VACUUM INTO` on a read-only connection: SQLite writes a compacted copy of one
//! read snapshot (WAL lets the server keep writing meanwhile, and the copy holds exactly what was
//! committed when its read began), so every event acknowledged before the backup started is in
//! it. Copying the file (or the file and its `-wal`) with `cp` while the server writes is not a
//! backup: it can tear between pages.
//!
//! The rules here: a backup or restore is written beside its target under a temporary name,
//! checked (`PRAGMA quick_check`), fsynced and then renamed into place, so a crash leaves
//! either nothing or a whole file; restore never overwrites an existing database.
//!
//! `quick_check` rather than `integrity_check`: it verifies every page and record but not that
//! indexes match their tables, which `VACUUM INTO` rebuilds from the table data anyway; on a
//! 276 MB database it took 2 s where `integrity_check` took 16-24 s (docs/benchmarks.md).

use std::path::{Path, PathBuf};

use playhead_core::StoreError;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::error;

/// What a backup or restore wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Events in its log.
    pub events: u64,
    /// Its schema version (the newest migration applied).
    pub schema_version: i64,
}

fn io(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    // A full disk is an infrastructure failure like any other: the operator frees space and
    // retries; nothing half-written is left under the final name.
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

fn temp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    path.with_file_name(name)
}

/// Write a consistent copy of the database at `db` (which may be serving) to `out`, which must
/// not exist.
pub async fn backup(db: &Path, out: &Path) -> Result<BackupReport, StoreError> {
    if out.exists() {
        return Err(StoreError::Conflict(format!("{} exists: choose a new file name", out.display())));
    }
    if !db.exists() {
        return Err(StoreError::Internal(format!("no database at {}", db.display())));
    }
    let temp = temp_beside(out);
    let _ = std::fs::remove_file(&temp);
    let opts = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&opts).await.map_err(error::db)?;
    let target = temp.to_str().ok_or_else(|| StoreError::Internal("backup path is not UTF-8".into()))?;
    let done = sqlx::query("VACUUM INTO ?").bind(target).execute(&mut conn).await.map_err(error::db);
    let _ = conn.close().await;
    if let Err(e) = done {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    finish(&temp, out).await
}

/// Put the backup `from` in place as the database `db`, which must not exist (an empty data
/// dir). The server migrates it to the current schema at its next start.
pub async fn restore(from: &Path, db: &Path) -> Result<BackupReport, StoreError> {
    for existing in [db.to_path_buf(), with_suffix(db, "-wal")] {
        if existing.exists() {
            return Err(StoreError::Conflict(format!(
                "{} exists: restore only into an empty data dir (move the old one aside first)",
                existing.display()
            )));
        }
    }
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, &e))?;
    }
    // Checked before copying: a damaged backup never becomes the live database.
    check(from).await?;
    let temp = temp_beside(db);
    std::fs::copy(from, &temp).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io("copying to", &temp, &e)
    })?;
    finish(&temp, db).await
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Check `temp`, fsync it, rename it to `path` and fsync the directory.
async fn finish(temp: &Path, path: &Path) -> Result<BackupReport, StoreError> {
    let checked = check(temp).await;
    let synced = checked.and_then(|r| {
        let f = std::fs::File::open(temp).map_err(|e| io("opening", temp, &e))?;
        f.sync_all().map_err(|e| io("syncing", temp, &e))?;
        std::fs::rename(temp, path).map_err(|e| io("renaming to", path, &e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory entry is.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(r)
    });
    if synced.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    let mut report = synced?;
    report.path = path.to_path_buf();
    Ok(report)
}

/// Open `path` read-only, run `PRAGMA quick_check` and read what the report says.
async fn check(path: &Path) -> Result<BackupReport, StoreError> {
    let opts = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| StoreError::Internal(format!("{} is not a SQLite database: {e}", path.display())))?;
    let integrity: String =
        sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut conn).await.map_err(error::db)?;
    if integrity != "ok" {
        let _ = conn.close().await;
        return Err(StoreError::Internal(format!("{} is damaged: {integrity}", path.display())));
    }
    let schema_version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| StoreError::Internal(format!("{} is not a Playhead database: {e}", path.display())))?;
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&mut conn).await.map_err(error::db)?;
    let _ = conn.close().await;
    let bytes = std::fs::metadata(path).map_err(|e| io("reading", path, &e))?.len();
    Ok(BackupReport {
        path: path.to_path_buf(),
        bytes,
        events: u64::try_from(events).unwrap_or(0),
        schema_version: schema_version.unwrap_or(0),
    })
}
