//! What the authorization server's use cases fail with.

use playhead_core::StoreError;
use playhead_core::oauth::{OAuthErrorCode, RedirectUri};

/// An OAuth error (RFC 6749 section 5.2, RFC 8628 section 3.5), or a failure of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// A protocol error: the code and a safe description.
    #[error("{code}: {description}")]
    Protocol {
        /// The RFC's error code.
        code: OAuthErrorCode,
        /// Safe to show.
        description: String,
    },
    /// Too many attempts: wait this many seconds.
    #[error("too many attempts")]
    RateLimited {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Storage is down: 503.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug.
    #[error("internal: {0}")]
    Internal(String),
}

impl OAuthError {
    /// A protocol error.
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self::Protocol { code, description: description.into() }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    /// The `error` code: the protocol error's, or `slow_down`, `temporarily_unavailable` and
    /// `server_error` for ours.
    pub fn code(&self) -> OAuthErrorCode {
        match self {
            Self::Protocol { code, .. } => *code,
            Self::RateLimited { .. } => OAuthErrorCode::SlowDown,
            Self::Unavailable(_) => OAuthErrorCode::TemporarilyUnavailable,
            Self::Internal(_) => OAuthErrorCode::ServerError,
        }
    }

    /// The HTTP status: the code's, except too many attempts (429, with Retry-After).
    pub fn status(&self) -> u16 {
        match self {
            Self::RateLimited { .. } => 429,
            other => other.code().status(),
        }
    }

    /// Seconds the client should wait before retrying, when waiting helps.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            Self::Unavailable(_) => Some(2),
            Self::Protocol { .. } | Self::Internal(_) => None,
        }
    }

    /// The description a client or person may see (internals stay in the log).
    pub fn public_description(&self) -> &str {
        match self {
            Self::Protocol { description, .. } => description,
            Self::RateLimited { .. } => "too many attempts; wait and retry",
            Self::Unavailable(_) => "temporarily unavailable; retry shortly",
            Self::Internal(_) => "internal error",
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Full => Self::Unavailable("storage is full".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// A refused authorization request (RFC 6749 section 4.1.2.1): where the answer goes depends on
/// whether the redirect URI was shown to be the client's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or its redirect URI is unknown: shown to the person, never redirected (an
    /// unchecked URI would make this server an open redirector).
    #[error("{0}")]
    ShowToPerson(OAuthError),
    /// Anything after that: sent back to the client's redirect URI with `state`.
    #[error("{error}")]
    RedirectToClient {
        /// The client's registered (and requested) redirect URI.
        redirect_uri: RedirectUri,
        /// What went wrong.
        error: OAuthError,
        /// Echoed back.
        state: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_come_from_the_code_except_rate_limits() {
        let e = OAuthError::new(OAuthErrorCode::InvalidClient, "no");
        assert_eq!((e.status(), e.retry_after_secs()), (401, None));
        assert_eq!(OAuthError::new(OAuthErrorCode::SlowDown, "poll slower").status(), 400);
        let limited = OAuthError::RateLimited { retry_after_secs: 7 };
        assert_eq!(
            (limited.code(), limited.status(), limited.retry_after_secs()),
            (OAuthErrorCode::SlowDown, 429, Some(7))
        );
        let down = OAuthError::from(StoreError::Unavailable("db".into()));
        assert_eq!((down.status(), down.retry_after_secs()), (503, Some(2)));
        assert!(!down.public_description().contains("db"));
        let bug = OAuthError::from(StoreError::Internal("corrupt row".into()));
        assert_eq!((bug.code(), bug.status()), (OAuthErrorCode::ServerError, 500));
        assert!(!bug.public_description().contains("corrupt"));
    }
}
