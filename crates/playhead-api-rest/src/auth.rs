//! The authenticated caller of a request, as the gate ([`crate::middleware::gate`]) admitted it.
//!
//! Authentication itself (bearer tokens, API keys, external issuers, revocation) lives in the
//! application ([`playhead_app::access`]), so every transport checks credentials the same way.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use playhead_app::AppError;
use playhead_app::access::MISSING_CREDENTIAL;
use playhead_core::auth::Principal;

use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The gate put the principal here; a route whose operation needs no bearer has none,
        // and a handler of such a route that asks for one is answered like a missing credential.
        parts.extensions.get::<Principal>().cloned().map(Auth).ok_or_else(|| {
            ApiError::App(AppError::Unauthenticated { code: None, description: MISSING_CREDENTIAL.into() })
        })
    }
}
