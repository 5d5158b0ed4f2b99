//! The application's error: what went wrong in the words of the use case.
//!
//! Which error belongs where: validation of client input is `Invalid` (with every field named);
//! authorization is `Forbidden` (a scope is missing) or `NotFound` (the object is not the
//! caller's: another account's profile is indistinguishable from a missing one); infrastructure
//! is `Unavailable`/`Overloaded` (5xx with Retry-After), never a 4xx. Transports map each variant
//! in exactly one place.

use playhead_core::auth::Scope;
use playhead_core::{FieldError, StoreError};

/// A use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is invalid; each entry names a field.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The token lacks a scope.
    #[error("missing scope {0}")]
    MissingScope(Scope),
    /// The caller may not do this (other than a missing scope), e.g. a profile-bound token
    /// changing profile settings.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The resource does not exist or is not the caller's.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or limit conflict.
    #[error("conflict: {0}")]
    Conflict(String),
    /// If-Match did not match.
    #[error("precondition failed")]
    PreconditionFailed,
    /// This change needs If-Match (a lost update would otherwise go unnoticed).
    #[error("precondition required")]
    PreconditionRequired,
    /// The event log is full: retry later.
    #[error("event backlog full")]
    Overloaded {
        /// Seconds the client should wait.
        retry_after_secs: u64,
    },
    /// A dependency is down: retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// One invalid field.
    pub fn invalid(e: FieldError) -> Self {
        Self::Invalid(vec![e])
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::Conflict(c) => Self::Conflict(c),
            StoreError::PreconditionFailed => Self::PreconditionFailed,
            StoreError::Full => Self::Overloaded { retry_after_secs: 2 },
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Internal(m) => Self::Internal(m),
        }
    }
}
