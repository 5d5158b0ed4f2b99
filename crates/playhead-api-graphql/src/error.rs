//! How an [`AppError`] becomes a GraphQL error: the only place. Every error carries
//! `extensions.code`, one of:
//!
//! | code | from | extensions |
//! |---|---|---|
//! | `UNAUTHENTICATED` | no, bad, expired or revoked credential | `oauthError` (RFC 6750 code) when there is one |
//! | `FORBIDDEN` | a missing scope, a bound token changing settings, a stale sign-in, a field without a requirement | `scope` when a scope is missing |
//! | `NOT_FOUND` | the object does not exist or is not the caller's (the two are indistinguishable) | `resource` |
//! | `BAD_USER_INPUT` | invalid arguments | `field` (the first, in camelCase), `fields` (every one with `code` and `detail`) |
//! | `CONFLICT` | a uniqueness or limit conflict | |
//! | `PRECONDITION_FAILED` | `version` is not the current one | |
//! | `RATE_LIMITED` | a quota used up, too many requests in flight | `retryAfter` (seconds), `class` |
//! | `UNAVAILABLE` | a dependency down, the event log full | `retryAfter` (seconds) |
//! | `INTERNAL` | a bug (logged here, once; the client sees no detail) | |
//!
//! Query-level refusals (too deep, too complex, unknown fields) get their codes in
//! `crate::policy::Limits`.

use async_graphql::{Error, ErrorExtensions as _};
use playhead_app::AppError;
use playhead_core::FieldError;

/// `position_ms` -> `positionMs`: the app names fields as REST does; GraphQL arguments are
/// camelCase.
pub fn camel(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds to wait, rounded up (a client told 0 would retry at once).
fn secs_up(ms: i64) -> i64 {
    (ms.max(0) + 999) / 1000
}

/// One invalid argument.
pub fn bad_input(field: &'static str, code: &'static str, detail: impl Into<String>) -> Error {
    map(AppError::invalid(FieldError::new(field, code, detail.into())))
}

/// The GraphQL error for an application error.
pub fn map(e: AppError) -> Error {
    let message = match &e {
        // Never internals: the cause is logged here, once.
        AppError::Internal(cause) => {
            tracing::error!(error = %cause, "graphql: internal error");
            "internal error".to_owned()
        }
        AppError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "graphql: a dependency is unavailable");
            "service unavailable; retry later".to_owned()
        }
        AppError::Invalid(fields) => match fields.first() {
            Some(f) => format!("{} {}", camel(&f.field), f.message),
            None => "invalid input".to_owned(),
        },
        other => other.to_string(),
    };
    Error::new(message).extend_with(|_, ext| match &e {
        AppError::Invalid(fields) => {
            ext.set("code", "BAD_USER_INPUT");
            if let Some(f) = fields.first() {
                ext.set("field", camel(&f.field));
            }
            let list: Vec<async_graphql::Value> = fields
                .iter()
                .map(|f| {
                    let mut m = async_graphql::indexmap::IndexMap::new();
                    m.insert(async_graphql::Name::new("field"), camel(&f.field).into());
                    m.insert(async_graphql::Name::new("code"), f.code.into());
                    m.insert(async_graphql::Name::new("detail"), f.message.clone().into());
                    async_graphql::Value::Object(m)
                })
                .collect();
            ext.set("fields", list);
        }
        AppError::Unauthenticated { code, .. } => {
            ext.set("code", "UNAUTHENTICATED");
            if let Some(c) = code {
                ext.set("oauthError", c.as_str());
            }
        }
        AppError::MissingScope(scope) => {
            ext.set("code", "FORBIDDEN");
            ext.set("scope", scope.as_str());
        }
        AppError::Forbidden(_) => ext.set("code", "FORBIDDEN"),
        AppError::NotFound(what) => {
            ext.set("code", "NOT_FOUND");
            ext.set("resource", *what);
        }
        AppError::Conflict(_) => ext.set("code", "CONFLICT"),
        AppError::Gone(_) => ext.set("code", "GONE"),
        AppError::PreconditionFailed | AppError::PreconditionRequired => {
            ext.set("code", "PRECONDITION_FAILED")
        }
        AppError::RateLimited { class, retry_after_ms, .. } => {
            ext.set("code", "RATE_LIMITED");
            ext.set("class", class.as_str());
            ext.set("retryAfter", secs_up(*retry_after_ms).max(1));
        }
        AppError::TooManyInFlight { .. } => {
            ext.set("code", "RATE_LIMITED");
            ext.set("retryAfter", 1);
        }
        AppError::Overloaded { retry_after_secs } => {
            ext.set("code", "UNAVAILABLE");
            ext.set("retryAfter", *retry_after_secs);
        }
        AppError::Unavailable(_) => {
            ext.set("code", "UNAVAILABLE");
            ext.set("retryAfter", 1);
        }
        AppError::Internal(_) => ext.set("code", "INTERNAL"),
    })
}

/// The HTTP status an outcome corresponds to (audit entries record outcomes as statuses, as
/// REST's do).
pub fn status_of<T>(r: &Result<T, AppError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(AppError::Invalid(_)) => 400,
        Err(AppError::Unauthenticated { .. }) => 401,
        Err(AppError::MissingScope(_) | AppError::Forbidden(_)) => 403,
        Err(AppError::NotFound(_)) => 404,
        Err(AppError::Conflict(_)) => 409,
        Err(AppError::Gone(_)) => 410,
        Err(AppError::PreconditionFailed) => 412,
        Err(AppError::PreconditionRequired) => 428,
        Err(AppError::RateLimited { .. } | AppError::TooManyInFlight { .. }) => 429,
        Err(AppError::Overloaded { .. } | AppError::Unavailable(_)) => 503,
        Err(AppError::Internal(_)) => 500,
    }
}

/// A result of a use case, mapped.
pub trait OrGraphql<T> {
    /// Map the error with [`map`].
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> OrGraphql<T> for Result<T, AppError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_becomes_camel() {
        assert_eq!(camel("position_ms"), "positionMs");
        assert_eq!(camel("events[2].occurred_at"), "events[2].occurredAt");
        assert_eq!(camel("limit"), "limit");
    }
}
