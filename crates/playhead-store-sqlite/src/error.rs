//! From `sqlx` errors to [`StoreError`], in one place.
//!
//! The rule: infrastructure trouble (pool timeouts, I/O, a busy or locked database, a full disk)
//! is `Unavailable`, so callers answer 503 and retry; a uniqueness violation is `Conflict` named in
//! domain words chosen by the call site (never the SQL constraint name); anything else is
//! `Internal`. "Not found" is decided by the queries themselves, not here.

use playhead_core::StoreError;
use sqlx::error::ErrorKind;

/// SQLite primary result codes that mean "try again later" rather than "bug".
const TRANSIENT_CODES: [i64; 7] = [
    5,  // SQLITE_BUSY
    6,  // SQLITE_LOCKED
    7,  // SQLITE_NOMEM
    10, // SQLITE_IOERR
    13, // SQLITE_FULL (disk full)
    14, // SQLITE_CANTOPEN
    15, // SQLITE_PROTOCOL
];

/// Map an error where no uniqueness conflict is expected.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    map(e, &[])
}

/// Map an error, naming a unique violation by the first `(column, words)` pair whose
/// `table.column` appears in SQLite's message (`UNIQUE constraint failed: accounts.email`).
pub(crate) fn map(e: sqlx::Error, conflicts: &[(&str, &str)]) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if db.kind() == ErrorKind::UniqueViolation {
                let msg = db.message();
                let words = conflicts.iter().find(|(col, _)| msg.contains(col)).map_or("duplicate", |c| c.1);
                return StoreError::Conflict(words.to_owned());
            }
            let primary = db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
            if primary.is_some_and(|c| TRANSIENT_CODES.contains(&c)) {
                StoreError::Unavailable(format!("sqlite: {}", db.message()))
            } else {
                StoreError::Internal(format!("sqlite: {}", db.message()))
            }
        }
        e @ (sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed) => StoreError::Unavailable(e.to_string()),
        e => StoreError::Internal(e.to_string()),
    }
}

/// Whether the error is a foreign-key violation (a row referring to a missing parent).
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

/// Map a migration failure: a broken database file is `Unavailable`; a schema that does not match
/// this binary's migrations (edited, missing or newer) is `Internal` with the reason.
pub(crate) fn migrate(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(e) => db(e),
        sqlx::migrate::MigrateError::ExecuteMigration(e, version) => match db(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("migration {version}: {m}")),
            other => StoreError::Internal(format!("migration {version}: {other}")),
        },
        other => StoreError::Internal(format!("migrations: {other}")),
    }
}

/// Data read back that this code could not have written: corrupt or hand-edited rows.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt {what}: {detail}"))
}
