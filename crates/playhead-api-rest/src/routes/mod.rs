//! Route handlers, one module per resource. Each handler: authenticate (the `Auth` extractor),
//! parse path/query/body, call one use case, shape the answer. No SQL, no business rules.

pub mod accounts;
pub mod admin;
pub mod devices;
pub mod erase;
pub mod events;
pub mod export;
pub mod feed;
pub mod health;
pub mod history;
pub mod library;
pub mod oauth;
pub mod pin;
pub mod progress;
pub mod recs;
pub mod rows;
pub mod streams;
pub mod titles;

use playhead_core::FieldError;
use playhead_core::ids::{AccountId, PlayId, ProfileId, TitleId};

use crate::error::ApiError;

/// Parse a profile id from the path.
pub fn profile_id(s: &str) -> Result<ProfileId, ApiError> {
    ProfileId::parse(s).map_err(|_| FieldError::new("profile_id", "invalid", "must be a UUID").into())
}

/// Parse an account id from the path.
pub fn account_id(s: &str) -> Result<AccountId, ApiError> {
    AccountId::parse(s).map_err(|_| FieldError::new("account_id", "invalid", "must be a UUID").into())
}

/// Parse a play id from the path.
pub fn play_id(s: &str) -> Result<PlayId, ApiError> {
    PlayId::parse(s).map_err(|_| FieldError::new("play_id", "invalid", "must be a UUID").into())
}

/// Parse a title id from the path or query.
pub fn title_id(field: &'static str, s: &str) -> Result<TitleId, ApiError> {
    TitleId::parse(s).map_err(|e| FieldError::new(field, "invalid", e.to_string()).into())
}

/// Parse `limit`.
pub fn limit(raw: Option<&str>) -> Result<u32, ApiError> {
    let n = raw
        .map(|s| {
            s.parse::<i64>().map_err(|_| FieldError::new("limit", "invalid", "must be an integer 1-100"))
        })
        .transpose()?;
    Ok(playhead_app::reads::page_limit(n)?)
}

/// If-None-Match matches the current ETag (weak comparison, `*` matches anything).
pub fn none_match(headers: &axum::http::HeaderMap, etag: &str) -> bool {
    headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag))
}

/// The If-Match header, if any.
pub fn if_match(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get(axum::http::header::IF_MATCH).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_owned())
}

/// A version ETag (`"v3"`) back to its number; anything else matches no version.
pub fn version_of(tag: &str) -> i64 {
    tag.trim_matches('"').strip_prefix('v').and_then(|n| n.parse().ok()).unwrap_or(-1)
}
