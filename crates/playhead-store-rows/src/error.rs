//! From `sqlx` errors to [`StoreError`], in one place for every SQL adapter.
//!
//! The rule: infrastructure trouble (pool timeouts, I/O, refused or dropped connections, and each
//! database's own "try again" codes, which its [`ErrorCodes`] lists) is `Unavailable`, so callers
//! answer 503 with Retry-After; a uniqueness violation is `Conflict` named in domain words by
//! [`Unique`] (never the SQL constraint name); anything else is `Internal`. "Not found" is decided
//! by the queries themselves, not here.

use playhead_core::StoreError;
use sqlx::error::{DatabaseError, ErrorKind};

/// A uniqueness rule a write may break, named in the words a client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// `accounts.email`.
    AccountEmail,
    /// `accounts.id`.
    AccountId,
    /// `profiles.id`.
    ProfileId,
    /// `viewings.id`.
    PlayId,
    /// `api_keys.prefix`.
    ApiKeyPrefix,
    /// `oauth_clients.client_id`.
    ClientId,
    /// `sessions.id`.
    SessionId,
    /// A pending device code's `user_code`.
    UserCode,
    /// `signing_keys.kid`.
    SigningKeyId,
}

impl Unique {
    /// What the conflict is called in a `409` (`StoreError::Conflict`).
    pub fn words(self) -> &'static str {
        match self {
            Self::AccountEmail => "email",
            Self::AccountId => "account id",
            Self::ProfileId => "profile id",
            Self::PlayId => "play id",
            Self::ApiKeyPrefix => "api key prefix",
            Self::ClientId => "client_id",
            Self::SessionId => "session id",
            Self::UserCode => "user code",
            Self::SigningKeyId => "signing key id",
        }
    }
}

/// What an adapter says about its database's errors. Implemented on a marker type of the adapter.
pub trait ErrorCodes {
    /// Whether a unique violation reported by `db` is the one `rule` names (SQLite says
    /// `table.column` in its message, PostgreSQL names the constraint).
    fn violates(db: &dyn DatabaseError, rule: Unique) -> bool;
    /// Whether a retry may succeed (busy, locked, out of resources, a connection lost...).
    fn is_transient(db: &dyn DatabaseError) -> bool;
    /// The error as logged (database name, code, message); never shown to a client.
    fn describe(db: &dyn DatabaseError) -> String;
}

/// Map an error, naming a unique violation by the first of `conflicts` it breaks (`duplicate` when
/// none is recognised).
pub fn map_error<C: ErrorCodes>(e: sqlx::Error, conflicts: &[Unique]) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if db.kind() == ErrorKind::UniqueViolation {
                let words = conflicts
                    .iter()
                    .find(|u| C::violates(db.as_ref(), **u))
                    .map_or("duplicate", |u| u.words());
                return StoreError::Conflict(words.to_owned());
            }
            if C::is_transient(db.as_ref()) {
                StoreError::Unavailable(C::describe(db.as_ref()))
            } else {
                StoreError::Internal(C::describe(db.as_ref()))
            }
        }
        // (SQLite never reports `Tls`; PostgreSQL does when the server drops a TLS session.)
        e @ (sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed) => StoreError::Unavailable(e.to_string()),
        e => StoreError::Internal(e.to_string()),
    }
}

/// Whether the error is a foreign-key violation (a row referring to a missing parent).
pub fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

/// Map a migration failure: a broken database (file or server) is `Unavailable`; a schema that
/// does not match this binary's migrations (edited, missing or newer) is `Internal` with the reason.
pub fn migrate_error<C: ErrorCodes>(e: sqlx::migrate::MigrateError) -> StoreError {
    match e {
        sqlx::migrate::MigrateError::Execute(e) => map_error::<C>(e, &[]),
        sqlx::migrate::MigrateError::ExecuteMigration(e, version) => match map_error::<C>(e, &[]) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("migration {version}: {m}")),
            other => StoreError::Internal(format!("migration {version}: {other}")),
        },
        other => StoreError::Internal(format!("migrations: {other}")),
    }
}

/// Data read back that this code could not have written: corrupt or hand-edited rows.
pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt {what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;
    impl ErrorCodes for Never {
        fn violates(_: &dyn DatabaseError, _: Unique) -> bool {
            false
        }
        fn is_transient(_: &dyn DatabaseError) -> bool {
            false
        }
        fn describe(db: &dyn DatabaseError) -> String {
            db.message().to_owned()
        }
    }

    #[test]
    fn infrastructure_failures_are_unavailable() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(map_error::<Never>(refused, &[]), StoreError::Unavailable(_)));
        assert!(matches!(map_error::<Never>(sqlx::Error::PoolTimedOut, &[]), StoreError::Unavailable(_)));
        assert!(matches!(map_error::<Never>(sqlx::Error::PoolClosed, &[]), StoreError::Unavailable(_)));
        assert!(matches!(map_error::<Never>(sqlx::Error::RowNotFound, &[]), StoreError::Internal(_)));
    }
}
