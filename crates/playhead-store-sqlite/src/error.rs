//! From `sqlx` errors to [`StoreError`]: SQLite's codes, for the shared mapping in
//! `playhead-store-rows`.
//!
//! The rule: infrastructure trouble (pool timeouts, I/O, a busy or locked database, a full disk)
//! is `Unavailable`, so callers answer 503 and retry; a uniqueness violation is `Conflict` named in
//! domain words by the [`Unique`] rules the call site expects (never the SQL constraint name);
//! anything else is `Internal`. "Not found" is decided by the queries themselves, not here.

use playhead_core::StoreError;
use playhead_store_rows::{ErrorCodes, map_error, migrate_error};
pub(crate) use playhead_store_rows::{Unique, corrupt, is_foreign_key_violation};
use sqlx::error::DatabaseError;

use crate::codec::Sqlite;

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

impl ErrorCodes for Sqlite {
    /// SQLite names the broken index by its columns: `UNIQUE constraint failed: accounts.email`.
    fn violates(db: &dyn DatabaseError, rule: Unique) -> bool {
        let column = match rule {
            Unique::AccountEmail => "accounts.email",
            Unique::AccountId => "accounts.id",
            Unique::ProfileId => "profiles.id",
            Unique::PlayId => "viewings.id",
            Unique::ApiKeyPrefix => "api_keys.prefix",
            Unique::ClientId => "oauth_clients.client_id",
            Unique::SessionId => "sessions.id",
            Unique::UserCode => "device_codes.user_code",
            Unique::SigningKeyId => "signing_keys.kid",
        };
        db.message().contains(column)
    }

    fn is_transient(db: &dyn DatabaseError) -> bool {
        // Extended result codes carry the primary code in their low byte.
        let primary = db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff);
        primary.is_some_and(|c| TRANSIENT_CODES.contains(&c))
    }

    fn describe(db: &dyn DatabaseError) -> String {
        format!("sqlite: {}", db.message())
    }
}

/// Map an error where no uniqueness conflict is expected.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    map_error::<Sqlite>(e, &[])
}

/// Map an error, naming a unique violation by the first of `conflicts` it breaks.
pub(crate) fn map(e: sqlx::Error, conflicts: &[Unique]) -> StoreError {
    map_error::<Sqlite>(e, conflicts)
}

/// Map a migration failure (a broken file is `Unavailable`, a mismatched schema `Internal`).
pub(crate) fn migrate(e: sqlx::migrate::MigrateError) -> StoreError {
    migrate_error::<Sqlite>(e)
}
