//! The REST transport's one error type and its mapping to RFC 9457 problem+json, and the
//! authorization server's RFC 6749 JSON errors.
//!
//! Every error a route can return goes through [`ApiError::into_response`] (`/v1`) or
//! [`OAuthErrorResponse::into_response`] (`/oauth`): the status, the problem `type` or OAuth
//! `error`, and the headers (WWW-Authenticate on 401, Retry-After on 429 and 503) are decided
//! here and nowhere else. Causes of 5xx are logged once, here, and never sent to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use playhead_app::AppError;
use playhead_app::identity::OAuthError;
use playhead_core::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

/// Media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field inside a problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The field as the client named it (`position_ms`, `events[3].kind`, `limit`).
    pub field: String,
    /// Stable code: required, invalid, out_of_range, too_long, in_future, too_old, unknown_field...
    pub code: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl From<&FieldError> for FieldProblem {
    fn from(e: &FieldError) -> Self {
        Self { field: e.field.to_string(), code: e.code.to_owned(), message: e.message.clone() }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type (see docs/api.md).
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this occurrence.
    pub detail: String,
    /// The invalid fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// The limit that was exceeded, for limit problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// For `too-many-streams`: the account's live streams, oldest first, so the app can offer
    /// to stop one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<crate::routes::streams::StreamDto>,
}

impl Problem {
    /// A problem of type `/problems/<slug>`.
    pub fn new(slug: &str, title: &str, status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            type_: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            limit: None,
            streams: Vec::new(),
        }
    }

    /// A per-item problem (inside a 202 batch answer) for an event not recorded because the
    /// profile's history is paused: its own type, so a player can tell it from a bad event and
    /// stop retrying.
    pub fn history_paused(e: &FieldError) -> Self {
        Self::new("history-paused", "History is paused", StatusCode::CONFLICT, e.message.clone())
    }

    /// A per-item problem (inside a 202 batch answer) for a start beyond the account's
    /// concurrent-stream limit: lists the live streams (device, title, since) so the app can
    /// offer to stop one.
    pub fn too_many_streams(e: &FieldError, live: Option<&playhead_app::streams::AccountStreams>) -> Self {
        let mut p =
            Self::new("too-many-streams", "Too many streams", StatusCode::CONFLICT, e.message.clone());
        if let Some(live) = live {
            p.limit = Some(format!("{} simultaneous streams per account", live.limit));
            p.streams = live.streams.iter().map(Into::into).collect();
        }
        p
    }

    /// A per-item problem (inside a 202 batch answer) for an event of a stream stopped from
    /// another device: the player must stop.
    pub fn stream_stopped(e: &FieldError) -> Self {
        Self::new("stream-stopped", "Stream stopped", StatusCode::CONFLICT, e.message.clone())
    }

    /// A per-item problem (inside a 202 batch answer) for one invalid field.
    pub fn for_field(e: &FieldError) -> Self {
        let mut p = Self::new(
            "validation-error",
            "Invalid input",
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{}: {}", e.field, e.message),
        );
        p.errors.push(e.into());
        p
    }
}

/// Everything a REST handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A use case failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The body is not JSON, or not the expected shape (a field named where possible).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Query or path parameters are invalid.
    #[error("invalid parameter")]
    BadParam(FieldError),
    /// The body exceeds a limit.
    #[error("payload too large: {limit}")]
    TooLarge {
        /// The limit, in words (`1 MiB body`, `500 events`).
        limit: String,
    },
    /// Content-Type is not JSON (or NDJSON for imports).
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// Not modified (conditional GET).
    #[error("not modified")]
    NotModified(String),
    /// The requested media-type version is not served by this route.
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A request with this Idempotency-Key is still running.
    #[error("idempotency key in use")]
    IdempotencyKeyInUse,
    /// This Idempotency-Key was used for another request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// A parental PIN was wrong; this many attempts are left before the profile locks.
    #[error("wrong PIN")]
    WrongPin {
        /// Attempts left.
        attempts_left: u32,
    },
    /// Too many PIN attempts (the profile is locked, or the address is over its limit).
    #[error("too many PIN attempts")]
    TooManyPinAttempts {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The request ran past the configured request timeout and was abandoned.
    #[error("request timed out after {0:?}")]
    RequestTimeout(std::time::Duration),
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::BadParam(e)
    }
}

/// A problem+json response with extra headers.
pub fn problem_response(problem: &Problem, extra: &[(header::HeaderName, HeaderValue)]) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match serde_json::to_vec(problem) {
        Ok(b) => b,
        Err(e) => {
            // A problem is plain strings and numbers; this cannot fail, but never answer empty.
            tracing::error!(error = %e, "serialising a problem document failed");
            br#"{"type":"/problems/internal","title":"Internal error","status":500}"#.to_vec()
        }
    };
    let mut res = (status, body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    for (k, v) in extra {
        res.headers_mut().insert(k.clone(), v.clone());
    }
    res
}

fn retry_after(secs: u64) -> (header::HeaderName, HeaderValue) {
    (header::RETRY_AFTER, HeaderValue::from(secs))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use StatusCode as S;
        let (problem, headers) = match self {
            ApiError::App(AppError::Invalid(errs)) => {
                let detail = errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                let mut p = Problem::new("validation-error", "Invalid input", S::BAD_REQUEST, detail);
                p.errors = errs.iter().map(FieldProblem::from).collect();
                (p, vec![])
            }
            ApiError::App(AppError::MissingScope(scope)) => (
                Problem::new(
                    "forbidden",
                    "Forbidden",
                    S::FORBIDDEN,
                    format!("the token lacks the {scope} scope"),
                ),
                vec![(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&format!(
                        "Bearer realm=\"playhead\", error=\"insufficient_scope\", scope=\"{scope}\""
                    ))
                    .unwrap_or(HeaderValue::from_static("Bearer realm=\"playhead\"")),
                )],
            ),
            ApiError::App(AppError::RateLimited { class, quota, retry_after_ms }) => {
                let retry = crate::middleware::secs_up(retry_after_ms).max(1);
                let window = quota.window_ms / 1000;
                let mut p = Problem::new(
                    "quota-exceeded",
                    "Quota exceeded",
                    S::TOO_MANY_REQUESTS,
                    format!(
                        "the {} quota of {} requests per {window} s is used up; retry after {retry} s (follow the RateLimit header to avoid this)",
                        class.as_str(),
                        quota.limit,
                    ),
                );
                p.limit = Some(format!("{} requests per {window} s ({})", quota.limit, class.as_str()));
                (p, vec![(header::RETRY_AFTER, HeaderValue::from(retry))])
            }
            ApiError::App(AppError::TooManyInFlight { max }) => {
                let mut p = Problem::new(
                    "too-many-concurrent-requests",
                    "Too many concurrent requests",
                    S::TOO_MANY_REQUESTS,
                    format!("at most {max} requests may run at once per principal; wait for one to finish"),
                );
                p.limit = Some(format!("{max} concurrent requests per principal"));
                (p, vec![retry_after(1)])
            }
            ApiError::App(AppError::Forbidden(why)) => {
                (Problem::new("forbidden", "Forbidden", S::FORBIDDEN, why), vec![])
            }
            ApiError::App(AppError::NotFound(what)) => {
                (Problem::new("not-found", "Not found", S::NOT_FOUND, format!("{what} not found")), vec![])
            }
            ApiError::App(AppError::Gone(why)) => (Problem::new("gone", "Gone", S::GONE, why), vec![]),
            ApiError::App(AppError::Conflict(what)) => {
                (Problem::new("conflict", "Conflict", S::CONFLICT, what), vec![])
            }
            ApiError::App(AppError::PreconditionRequired) => (
                Problem::new(
                    "precondition-required",
                    "Precondition required",
                    S::PRECONDITION_REQUIRED,
                    "send If-Match with the ETag from your last GET, so a concurrent change is not overwritten",
                ),
                vec![],
            ),
            ApiError::App(AppError::PreconditionFailed) => (
                Problem::new(
                    "precondition-failed",
                    "Precondition failed",
                    S::PRECONDITION_FAILED,
                    "the resource changed since the ETag in If-Match; GET it again and retry",
                ),
                vec![],
            ),
            ApiError::App(AppError::Overloaded { retry_after_secs }) => (
                Problem::new(
                    "backlog-full",
                    "Event backlog full",
                    S::SERVICE_UNAVAILABLE,
                    "the event log is at its bound; nothing from this request was stored; retry after Retry-After seconds",
                ),
                vec![retry_after(retry_after_secs)],
            ),
            ApiError::App(AppError::Unavailable(cause)) => {
                tracing::error!(error = %cause, "dependency unavailable");
                (
                    Problem::new(
                        "unavailable",
                        "Service unavailable",
                        S::SERVICE_UNAVAILABLE,
                        "a dependency is unavailable; retry later",
                    ),
                    vec![retry_after(5)],
                )
            }
            ApiError::App(AppError::Internal(cause)) => {
                tracing::error!(error = %cause, "internal error");
                (
                    Problem::new(
                        "internal",
                        "Internal error",
                        S::INTERNAL_SERVER_ERROR,
                        "an internal error occurred",
                    ),
                    vec![],
                )
            }
            ApiError::App(AppError::Unauthenticated { code, description }) => {
                let challenge = match code.map(playhead_core::oauth::OAuthErrorCode::as_str) {
                    Some(code) => format!(
                        "Bearer realm=\"playhead\", error=\"{code}\", error_description=\"{}\"",
                        description.replace(['"', '\\'], "'")
                    ),
                    None => "Bearer realm=\"playhead\"".to_owned(),
                };
                (
                    Problem::new("unauthorized", "Unauthorized", S::UNAUTHORIZED, description),
                    vec![(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_str(&challenge)
                            .unwrap_or(HeaderValue::from_static("Bearer realm=\"playhead\"")),
                    )],
                )
            }
            ApiError::Malformed(detail) => {
                (Problem::new("malformed-request", "Malformed request", S::BAD_REQUEST, detail), vec![])
            }
            ApiError::BadParam(e) => {
                let mut p = Problem::new("validation-error", "Invalid input", S::BAD_REQUEST, e.to_string());
                p.errors.push((&e).into());
                (p, vec![])
            }
            ApiError::TooLarge { limit } => {
                let mut p = Problem::new(
                    "payload-too-large",
                    "Payload too large",
                    S::PAYLOAD_TOO_LARGE,
                    format!("the request exceeds the {limit} limit"),
                );
                p.limit = Some(limit);
                (p, vec![])
            }
            ApiError::UnsupportedMediaType(expected) => (
                Problem::new(
                    "unsupported-media-type",
                    "Unsupported media type",
                    S::UNSUPPORTED_MEDIA_TYPE,
                    format!("send Content-Type: {expected}"),
                ),
                vec![],
            ),
            ApiError::NotAcceptable(detail) => {
                (Problem::new("not-acceptable", "Not acceptable", S::NOT_ACCEPTABLE, detail), vec![])
            }
            ApiError::MethodNotAllowed => (
                Problem::new(
                    "method-not-allowed",
                    "Method not allowed",
                    S::METHOD_NOT_ALLOWED,
                    "this route does not support that method; the Allow header lists those it does",
                ),
                vec![],
            ),
            ApiError::IdempotencyKeyInUse => (
                Problem::new(
                    "idempotency-key-in-use",
                    "Request in progress",
                    S::CONFLICT,
                    "a request with this Idempotency-Key is still being processed; retry later",
                ),
                vec![],
            ),
            ApiError::IdempotencyKeyReused => (
                Problem::new(
                    "idempotency-key-reused",
                    "Idempotency-Key reused",
                    S::UNPROCESSABLE_ENTITY,
                    "this Idempotency-Key was used for a different request; use a new key for a new request",
                ),
                vec![],
            ),
            ApiError::WrongPin { attempts_left } => (
                Problem::new(
                    "wrong-pin",
                    "Wrong PIN",
                    S::FORBIDDEN,
                    format!(
                        "the PIN is not right; {attempts_left} {} left before the profile is locked",
                        if attempts_left == 1 { "attempt" } else { "attempts" }
                    ),
                ),
                vec![],
            ),
            ApiError::TooManyPinAttempts { retry_after_secs } => (
                Problem::new(
                    "pin-locked",
                    "Too many PIN attempts",
                    S::TOO_MANY_REQUESTS,
                    format!(
                        "too many wrong PINs: the profile is locked (the attempt was audited); retry after {retry_after_secs} s"
                    ),
                ),
                vec![retry_after(retry_after_secs.max(1))],
            ),
            ApiError::RequestTimeout(limit) => {
                tracing::warn!(
                    timeout_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                    "request timed out"
                );
                (
                    Problem::new(
                        "request-timeout",
                        "Request timed out",
                        S::SERVICE_UNAVAILABLE,
                        format!(
                            "the request took longer than the server's {} s limit and was abandoned; retry after Retry-After seconds (a POST with the same Idempotency-Key is safe to retry)",
                            limit.as_secs_f64()
                        ),
                    ),
                    vec![retry_after(2)],
                )
            }
            ApiError::NotModified(etag) => {
                let mut res = StatusCode::NOT_MODIFIED.into_response();
                if let Ok(v) = HeaderValue::from_str(&etag) {
                    res.headers_mut().insert(header::ETAG, v);
                }
                return res;
            }
        };
        problem_response(&problem, &headers)
    }
}

/// An `/oauth` endpoint's failure, answered in RFC 6749 section 5.2's JSON format (`error`,
/// `error_description`), never problem+json, with `Cache-Control: no-store`.
#[derive(Debug)]
pub struct OAuthErrorResponse(pub OAuthError);

impl IntoResponse for OAuthErrorResponse {
    fn into_response(self) -> Response {
        let e = self.0;
        log_oauth_failure(&e);
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            serde_json::json!({"error": e.code().as_str(), "error_description": e.public_description()});
        let mut res = (status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6749 section 5.2: a failed client authentication names the scheme to use.
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"playhead\""));
        }
        if let Some(secs) = e.retry_after_secs() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// Log the cause of an authorization server failure that is ours (5xx), once, where it is
/// answered (the `/oauth` JSON errors and the hosted pages); the client sees a generic text.
pub fn log_oauth_failure(e: &OAuthError) {
    match e {
        OAuthError::Unavailable(m) => tracing::warn!(error = %m, "identity store unavailable"),
        OAuthError::Internal(m) => tracing::error!(error = %m, "identity internal error"),
        OAuthError::Protocol { .. } | OAuthError::RateLimited { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use playhead_app::identity::OAuthErrorCode;

    use super::*;

    async fn json(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[tokio::test]
    async fn oauth_errors_take_the_status_of_their_code() {
        let res = OAuthErrorResponse(OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "client authentication failed",
        ))
        .into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"playhead\"");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(json(res).await["error"], "invalid_client");

        let res =
            OAuthErrorResponse(OAuthError::new(OAuthErrorCode::SlowDown, "poll more slowly")).into_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());

        let res = OAuthErrorResponse(OAuthError::Unavailable("db.internal refused".into())).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
        let body = json(res).await;
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(!body.to_string().contains("db.internal"), "{body}");
    }
}
