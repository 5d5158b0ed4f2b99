//! Errors that cross the core's boundary.
//!
//! `FieldError` is a validation failure that names the offending field: transports turn it into a
//! problem+json (REST), `INVALID_ARGUMENT` (gRPC) or a GraphQL error, always keeping the field name.
//! `StoreError` is what every storage port returns; adapters map their driver's "not found" and
//! "conflict" themselves so the application never parses SQL error codes. Anything else is
//! `Unavailable` (the caller answers 503 with Retry-After) or `Internal` (500): never a 4xx.

use std::borrow::Cow;

/// A rejected value: which field, and why, in words a client author can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name as the client sent it, with a path prefix where nested (`events[3].kind`).
    pub field: Cow<'static, str>,
    /// What is wrong and what is allowed.
    pub message: String,
    /// A stable machine-readable code (`required`, `too_long`, `out_of_range`, ...).
    pub code: &'static str,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<Cow<'static, str>>, code: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), code }
    }

    /// The field is missing.
    pub fn required(field: impl Into<Cow<'static, str>>) -> Self {
        Self::new(field, "required", "is required")
    }

    /// Prefix the field with a path (`events[3]` + `kind` -> `events[3].kind`).
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = Cow::Owned(format!("{prefix}.{}", self.field));
        self
    }
}

/// Failure of a storage port.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the string names the constraint in domain words.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conditional write found a different version than expected.
    #[error("precondition failed")]
    PreconditionFailed,
    /// The backend cannot take more work right now (bounded log full, pool exhausted).
    #[error("backlog full")]
    Full,
    /// The backend is unreachable or failing; retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt data: not the client's fault and not transient.
    #[error("storage error: {0}")]
    Internal(String),
}
