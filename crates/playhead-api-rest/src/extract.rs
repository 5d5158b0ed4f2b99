//! Request extractors that fail with problem+json naming the field or limit.
//!
//! axum's stock `Json` answers plain-text 422s and reads unbounded bodies unless a layer limits
//! them; ours checks the media type, enforces the body limit while reading (413), refuses unknown
//! fields (400, no mass assignment), and reports the path of the bad field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Default largest JSON body (imports stream NDJSON under their own limit).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;
/// Default deepest JSON nesting accepted (serde_json's own recursion limit is 128).
pub const JSON_DEPTH_LIMIT: usize = 32;

/// A JSON body, strictly parsed.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Whether the request declares a JSON body.
pub fn is_json(req_ct: Option<&header::HeaderValue>) -> bool {
    req_ct.and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
    })
}

/// Read a bounded body.
pub async fn read_body(req: Request, limit: usize, what: &str) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| ApiError::TooLarge { limit: what.to_owned() })
}

/// Reject documents nested deeper than `limit` before deserializing them (cheap byte scan).
pub fn check_depth_limit(bytes: &[u8], limit: usize) -> Result<(), ApiError> {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if max > limit {
            return Err(ApiError::TooLarge { limit: format!("JSON nesting depth of {limit}") });
        }
    }
    Ok(())
}

/// Parse JSON nested at most `depth` deep, reporting the path of the failing field.
pub fn parse_json_with_depth<T: DeserializeOwned>(bytes: &[u8], depth: usize) -> Result<T, ApiError> {
    check_depth_limit(bytes, depth)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let first = serde_path_to_error::deserialize(de);
    // JSON has one number type: `4111.0` is the integer 4111 to JSON Schema (and to the
    // OpenAPI document), so a client that writes integers with a zero fraction is not wrong.
    // Only on failure, so the common case parses once.
    let result = match first {
        Ok(v) => Ok(v),
        Err(e) => match integral_floats_as_integers(bytes) {
            Some(v) => serde_path_to_error::deserialize(v).map_err(|_| e),
            None => Err(e),
        },
    };
    result.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::Malformed(format!("body is not valid JSON of the expected shape: {inner}"))
        } else {
            ApiError::Malformed(format!("{path}: {inner}"))
        }
    })
}

impl<T: DeserializeOwned> FromRequest<crate::RestState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &crate::RestState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let limit = state.limits.json_body_bytes;
        let bytes = read_body(req, limit, &format!("{} body", crate::human_bytes(limit))).await?;
        parse_json_with_depth(&bytes, state.limits.json_depth).map(ApiJson)
    }
}

/// The document with every number that has a zero fraction (and fits an `i64`) written as an
/// integer; `None` when nothing changed or the bytes are not JSON.
fn integral_floats_as_integers(bytes: &[u8]) -> Option<serde_json::Value> {
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // 2^63 is exactly representable; below it every integral f64 fits an i64.
                if f.fract() == 0.0
                    && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
                {
                    let i = f as i64; // integral and in range: exact
                    *v = serde_json::Value::from(i);
                    return true;
                }
                false
            }
            serde_json::Value::Array(a) => a.iter_mut().fold(false, |acc, x| walk(x) | acc),
            serde_json::Value::Object(o) => o.values_mut().fold(false, |acc, x| walk(x) | acc),
            _ => false,
        }
    }
    let mut v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&mut v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_written_with_a_zero_fraction_are_integers() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            position_ms: i64,
            items: Vec<u8>,
        }
        let b = parse_json_with_depth::<B>(br#"{"position_ms":4111.0,"items":[1.0,2]}"#, JSON_DEPTH_LIMIT)
            .unwrap();
        assert_eq!((b.position_ms, b.items), (4111, vec![1, 2]));
        // A real fraction stays an error that names the field.
        let e = parse_json_with_depth::<B>(br#"{"position_ms":4111.5,"items":[]}"#, JSON_DEPTH_LIMIT)
            .unwrap_err();
        assert!(e.to_string().contains("position_ms"), "{e}");
    }

    #[test]
    fn depth_is_limited_but_strings_do_not_count() {
        let deep = "[".repeat(33) + &"]".repeat(33);
        assert!(check_depth_limit(deep.as_bytes(), JSON_DEPTH_LIMIT).is_err());
        let fine = "[".repeat(32) + &"]".repeat(32);
        assert!(check_depth_limit(fine.as_bytes(), JSON_DEPTH_LIMIT).is_ok());
        let s = format!("{{\"a\":\"{}\"}}", "[".repeat(100));
        assert!(check_depth_limit(s.as_bytes(), JSON_DEPTH_LIMIT).is_ok());
    }

    #[test]
    fn parse_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[expect(dead_code, reason = "only parsed")]
        struct B {
            name: String,
            limit: Option<u8>,
        }
        let e = parse_json_with_depth::<B>(br#"{"name":"x","limit":"many"}"#, JSON_DEPTH_LIMIT).unwrap_err();
        assert!(e.to_string().contains("limit"), "{e}");
        let e = parse_json_with_depth::<B>(br#"{"name":"x","admin":true}"#, JSON_DEPTH_LIMIT).unwrap_err();
        assert!(e.to_string().contains("unknown field `admin`"), "{e}");
    }
}

/// Query parameters; a malformed query string is a problem+json 400.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::Malformed(e.body_text()))
    }
}
