//! The application's error: what went wrong in the words of the use case.
//!
//! Which error belongs where: validation of client input is `Invalid` (with every field named);
//! authentication is `Unauthenticated`; authorization is `MissingScope`/`Forbidden` or `NotFound`
//! (the object is not the caller's: another account's profile is indistinguishable from a
//! missing one); quotas are `RateLimited`/`TooManyInFlight`; infrastructure is
//! `Unavailable`/`Overloaded` (5xx with Retry-After), never a 4xx. Transports map each variant
//! in exactly one place.

use playhead_core::auth::Scope;
use playhead_core::{FieldError, StoreError};

/// A use case failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// The input is invalid; each entry names a field.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// No credential, or one that is malformed, invalid, expired or revoked (RFC 6750).
    #[error("unauthenticated: {description}")]
    Unauthenticated {
        /// RFC 6750 error code: `invalid_request` or `invalid_token` (None when no credential).
        code: Option<playhead_core::oauth::OAuthErrorCode>,
        /// Safe, short description.
        description: String,
    },
    /// The caller's quota for this class of request is used up.
    #[error("quota exceeded ({})", class.as_str())]
    RateLimited {
        /// The class charged.
        class: crate::limits::RouteClass,
        /// Its quota.
        quota: playhead_core::rate::Quota,
        /// Milliseconds until a request would be allowed.
        retry_after_ms: i64,
    },
    /// The caller already has this many requests running.
    #[error("too many concurrent requests (at most {max})")]
    TooManyInFlight {
        /// The cap per principal.
        max: usize,
    },
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
    /// The resource was erased (or is being erased) at its owner's request: it will never come
    /// back, so clients stop retrying (HTTP 410).
    #[error("gone: {0}")]
    Gone(String),
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
