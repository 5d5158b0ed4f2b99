//! From `sqlx` errors to [`StoreError`]: PostgreSQL's SQLSTATEs and constraint names, for the
//! shared mapping in `playhead-store-rows`.
//!
//! The rule: infrastructure trouble (pool timeouts, refused or dropped connections, a server
//! shutting down or out of resources, lock timeouts, deadlocks and serialization failures, which
//! a retry resolves) is `Unavailable`, so callers answer 503 with Retry-After; a uniqueness
//! violation is `Conflict` named in domain words by the [`Unique`] rules the call site expects,
//! recognised by the constraint name PostgreSQL reports (never shown); anything else is
//! `Internal`. "Not found" is decided by the queries themselves, not here.

use playhead_core::StoreError;
use playhead_store_rows::{ErrorCodes, map_error, migrate_error};
pub(crate) use playhead_store_rows::{Unique, is_foreign_key_violation};
use sqlx::error::DatabaseError;

use crate::codec::Pg;

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

impl ErrorCodes for Pg {
    /// The constraint names the migrations create (`accounts_email_key` -> "email").
    fn violates(db: &dyn DatabaseError, rule: Unique) -> bool {
        let Some(reported) = db.constraint() else { return false };
        let constraint = match rule {
            Unique::AccountEmail => "accounts_email_key",
            Unique::AccountId => "accounts_pkey",
            Unique::ProfileId => "profiles_pkey",
            // Hash-partitioned: a violation names the partition's index (`viewings_p03_pkey`).
            Unique::PlayId => return reported.starts_with("viewings_") && reported.ends_with("_pkey"),
            Unique::ApiKeyPrefix => "api_keys_pkey",
            Unique::ClientId => "oauth_clients_pkey",
            Unique::SessionId => "sessions_pkey",
            Unique::UserCode => "device_codes_pending_user_code",
            Unique::SigningKeyId => "signing_keys_pkey",
        };
        reported == constraint
    }

    fn is_transient(db: &dyn DatabaseError) -> bool {
        let code = db.code().unwrap_or_default();
        TRANSIENT_CODES.contains(&code.as_ref())
            || TRANSIENT_CLASSES.iter().any(|class| code.starts_with(class))
    }

    fn describe(db: &dyn DatabaseError) -> String {
        format!("postgres {}: {}", db.code().unwrap_or_default(), db.message())
    }
}

/// Map an error where no uniqueness conflict is expected.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    map_error::<Pg>(e, &[])
}

/// Map an error, naming a unique violation by the first of `conflicts` it breaks.
pub(crate) fn map(e: sqlx::Error, conflicts: &[Unique]) -> StoreError {
    map_error::<Pg>(e, conflicts)
}

/// Map a migration failure (an unreachable server is `Unavailable`, a mismatched schema
/// `Internal`).
pub(crate) fn migrate(e: sqlx::migrate::MigrateError) -> StoreError {
    migrate_error::<Pg>(e)
}
