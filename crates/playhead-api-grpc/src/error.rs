//! How an application error becomes a gRPC status: the only place (like REST's `error.rs`).
//!
//! Client errors carry google.rpc details a client can act on: INVALID_ARGUMENT with a
//! `BadRequest` naming every field, RESOURCE_EXHAUSTED and UNAVAILABLE with a `RetryInfo`
//! (the retry delay REST sends as Retry-After). Infrastructure failures are UNAVAILABLE, never
//! a client error; internal causes are logged here once and never sent to the client.

use std::time::Duration;

use playhead_app::AppError;
use playhead_core::FieldError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// How long a client should wait after a dependency failure (REST's Retry-After for 503s).
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);

/// The status for an application error.
pub fn status(e: AppError) -> Status {
    match e {
        AppError::Invalid(fields) => invalid(&fields),
        AppError::Unauthenticated { description, .. } => Status::unauthenticated(description),
        AppError::RateLimited { class, quota, retry_after_ms } => retry(
            Code::ResourceExhausted,
            format!(
                "quota \"{}\" exceeded ({} calls per {} s)",
                class.as_str(),
                quota.limit,
                quota.window_ms / 1000
            ),
            Duration::from_millis(u64::try_from(retry_after_ms.max(1)).unwrap_or(1)),
        ),
        AppError::TooManyInFlight { max } => retry(
            Code::ResourceExhausted,
            format!("too many concurrent calls (at most {max} per caller)"),
            Duration::from_millis(100),
        ),
        AppError::MissingScope(scope) => {
            Status::permission_denied(format!("the credential lacks the scope {}", scope.as_str()))
        }
        AppError::Forbidden(why) => Status::permission_denied(why),
        AppError::NotFound(what) => Status::not_found(format!("{what} not found")),
        AppError::Conflict(why) => Status::already_exists(why),
        // Not NOT_FOUND: a player must stop retrying, and learn why.
        AppError::Gone(why) => Status::failed_precondition(why),
        AppError::PreconditionFailed => Status::failed_precondition(
            "expected_version does not match: the resource changed since it was read",
        ),
        AppError::PreconditionRequired => Status::failed_precondition(
            "expected_version is required: send the version you read, so concurrent changes are not lost",
        ),
        AppError::Overloaded { retry_after_secs } => retry(
            Code::Unavailable,
            "the event log is full; nothing was stored".into(),
            Duration::from_secs(retry_after_secs.max(1)),
        ),
        AppError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "dependency unavailable");
            retry(Code::Unavailable, "temporarily unavailable; retry".into(), UNAVAILABLE_RETRY)
        }
        AppError::Internal(cause) => {
            tracing::error!(error = %cause, "internal error");
            Status::internal("internal error")
        }
    }
}

/// INVALID_ARGUMENT naming every field (google.rpc.BadRequest).
pub fn invalid(fields: &[FieldError]) -> Status {
    let summary = fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ");
    let violations = fields
        .iter()
        .map(|f| FieldViolation::new(f.field.to_string(), format!("{} ({})", f.message, f.code)));
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid argument: {summary}"),
        ErrorDetails::with_bad_request(violations.collect::<Vec<_>>()),
    )
}

/// One invalid field.
pub fn field(field: &'static str, code: &'static str, message: impl Into<String>) -> Status {
    invalid(&[FieldError::new(field, code, message)])
}

fn retry(code: Code, message: String, after: Duration) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_names_every_field() {
        let s = status(AppError::Invalid(vec![
            FieldError::new("profile_id", "invalid", "must be a UUID"),
            FieldError::new("page_size", "out_of_range", "must be 1-100"),
        ]));
        assert_eq!(s.code(), Code::InvalidArgument);
        let bad = s.get_details_bad_request().expect("BadRequest");
        let names: Vec<_> = bad.field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(names, ["profile_id", "page_size"]);
    }

    #[test]
    fn quotas_and_overload_say_when_to_retry() {
        let s = status(AppError::Overloaded { retry_after_secs: 2 });
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(s.get_details_retry_info().and_then(|r| r.retry_delay), Some(Duration::from_secs(2)));
        let s = status(AppError::Unavailable("db down at 10.0.0.3".into()));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(!s.message().contains("10.0.0.3"), "internals never reach the client");
    }
}
