//! From `sqlx` errors to [`StoreError`], in one place.
//!
//! The rule: infrastructure trouble (pool timeouts, refused or dropped connections, a server
//! shutting down or out of resources, lock timeouts, deadlocks and serialization failures, which
//! a retry resolves) is `Unavailable`, so callers answer 503 with Retry-After; a uniqueness
//! violation is `Conflict` named in domain words chosen by the call site from the constraint
//! name (never the SQL name itself); anything else is `Internal`. "Not found" is decided by the
//! queries themselves, not here.

use playhead_core::StoreError;
use sqlx::error::ErrorKind;

/// SQLSTATE classes that mean "try again later" rather than "bug" (PostgreSQL Appendix A).
const TRANSIENT_CLASSES: [&str; 3] = [
    "08", // connection exception
    "53", // insufficient resources (disk full, out of memory, too many connections)
    "58", // system error (I/O error)
];

/// Single SQLSTATEs outside those classes that a retry resolves.
const TRANSIENT_CODES: [&str; 8] = [
    "40001", // serialization_failure
    "40P01", // deadlock_detected (another transaction was left to finish)
    "55P03", // lock_not_available (lock_timeout)
    "57014", // query_canceled (statement_timeout, or a cancel request)
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now (starting up, or in recovery)
    "57P05", // idle_session_timeout
];

/// Map an error where no uniqueness conflict is expected.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    map(e, &[])
}

/// Map an error, naming a unique violation by the `(constraint, words)` pair whose constraint
/// name PostgreSQL reports (`accounts_email_key` -> "email").
pub(crate) fn map(e: sqlx::Error, conflicts: &[(&str, &str)]) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if db.kind() == ErrorKind::UniqueViolation {
                let words = db
                    .constraint()
                    .and_then(|c| conflicts.iter().find(|(name, _)| *name == c))
                    .map_or("duplicate", |c| c.1);
                return StoreError::Conflict(words.to_owned());
            }
            let code = db.code().unwrap_or_default();
            let transient = TRANSIENT_CODES.contains(&code.as_ref())
                || TRANSIENT_CLASSES.iter().any(|class| code.starts_with(class));
            if transient {
                StoreError::Unavailable(format!("postgres {code}: {}", db.message()))
            } else {
                StoreError::Internal(format!("postgres {code}: {}", db.message()))
            }
        }
        e @ (sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed) => StoreError::Unavailable(e.to_string()),
        e => StoreError::Internal(e.to_string()),
    }
}

/// Whether the error is a foreign-key violation (a row referring to a missing parent).
pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

/// Map a migration failure: an unreachable or failing server is `Unavailable`; a schema that does
/// not match this binary's migrations (edited, missing or newer) is `Internal` with the reason.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infrastructure_failures_are_unavailable() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(db(refused), StoreError::Unavailable(_)));
        assert!(matches!(db(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(db(sqlx::Error::PoolClosed), StoreError::Unavailable(_)));
        assert!(matches!(db(sqlx::Error::RowNotFound), StoreError::Internal(_)));
    }
}
