//! Playhead's credentials: the signing keys, the EdDSA access tokens (RFC 9068 `at+jwt`) signed
//! with them, and the API keys platform services present.
//!
//! What lives where:
//! - [`keys`]: the [`KeySet`] kept under `<data dir>/keys/` (load, create, rotate, retire, JWKS) and
//!   [`AuthError`], the error of everything that touches key material or files.
//! - [`token`]: the claims of an access token and the [`TokenIssuer`] that signs them.
//! - [`verify`]: the [`Verifier`] every request goes through and [`TokenError`], the reasons a
//!   presented token is refused (each safe to send back in `WWW-Authenticate`).
//! - [`external`]: access tokens from a platform's own identity provider ([`ExternalVerifier`]).
//! - [`api_key`]: generation, parsing and checking of `phk_...` keys and [`ApiKeyError`].
//!
//! The rules a contributor must keep here:
//! - The algorithm is ours, never the token's: only EdDSA verifies our own tokens, an external
//!   issuer's only the algorithms configured for it, and key material is only ever looked up by
//!   `kid` among keys we hold or fetched from configuration (no `jku`, `x5u` or embedded `jwk`).
//! - Nothing that holds a secret prints it: every such type has a hand-written `Debug`, and no error
//!   message contains a token, a key or an API key secret.
//! - This crate decides whether a credential is genuine and what it says; what the caller may then
//!   do (scope checks, profile access) belongs to the application's policy module.
//! - No clock reads for decisions: "now" comes in as an argument, so every rule is testable.

pub mod api_key;
pub mod external;
pub mod keys;
pub mod token;
pub mod verify;

use std::fmt;

pub use api_key::{API_KEY_MARKER, ApiKey, ApiKeyError, ApiKeySecret, verify_api_key};
pub use external::{ExternalIssuerConfig, ExternalKeys, ExternalToken, ExternalVerifier, claimed_issuer};
pub use keys::{AuthError, Jwk, Jwks, KeySet};
pub use token::{AccessClaims, TokenIssuer};
pub use verify::{TokenError, VerifiedToken, Verifier, token_digest};

/// Make jsonwebtoken use the RustCrypto backend for this process.
///
/// jsonwebtoken picks its backend from its cargo features, and panics on first use when it cannot
/// (none or both of `rust_crypto` and `aws_lc_rs` enabled somewhere in the graph). Installing the
/// provider explicitly removes that failure mode. Idempotent; the binary calls it at startup, and
/// [`KeySet`] and [`Verifier`] constructors call it too so tests and tools need not remember.
/// If another provider was installed first it stays (any provider signs and verifies EdDSA).
pub fn install_crypto_provider() {
    // `Err` only means a provider is installed already.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// What an `Authorization: Bearer` value looks like, decided without any cryptography.
///
/// An API key starts with [`API_KEY_MARKER`]; a JWT is three base64url parts joined by two dots
/// (base64url has no dot, so the two shapes cannot overlap).
pub enum Bearer<'a> {
    /// A compact JWS: verify it with [`Verifier::verify`].
    Jwt(&'a str),
    /// A well-formed API key: look its record up by [`ApiKey::prefix`], then [`verify_api_key`].
    ApiKey(ApiKey<'a>),
    /// Neither shape (or an API key with a bad body): refuse as `invalid_token`.
    Unrecognized,
}

impl<'a> Bearer<'a> {
    /// Classify a bearer value.
    pub fn classify(value: &'a str) -> Self {
        if value.starts_with(API_KEY_MARKER) {
            return ApiKey::parse(value).map_or(Bearer::Unrecognized, Bearer::ApiKey);
        }
        if value.bytes().filter(|b| *b == b'.').count() == 2 {
            return Bearer::Jwt(value);
        }
        Bearer::Unrecognized
    }
}

impl fmt::Debug for Bearer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A JWT is itself the credential: never print it.
            Bearer::Jwt(_) => f.write_str("Bearer::Jwt([redacted])"),
            Bearer::ApiKey(key) => f.debug_tuple("Bearer::ApiKey").field(key).finish(),
            Bearer::Unrecognized => f.write_str("Bearer::Unrecognized"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_are_told_apart_by_shape() {
        let (key, _) = ApiKey::generate("svc", playhead_core::auth::Scopes::empty(), Default::default());
        assert!(matches!(Bearer::classify(key.expose()), Bearer::ApiKey(k) if k.prefix().len() == 12));
        assert!(matches!(Bearer::classify("aaa.bbb.ccc"), Bearer::Jwt(_)));
        assert!(matches!(Bearer::classify("aaa.bbb"), Bearer::Unrecognized));
        assert!(matches!(Bearer::classify("a.b.c.d"), Bearer::Unrecognized));
        assert!(matches!(Bearer::classify("phk_short"), Bearer::Unrecognized));
        assert!(matches!(Bearer::classify(""), Bearer::Unrecognized));
    }

    #[test]
    fn bearer_debug_never_shows_the_credential() {
        let shown = format!("{:?}", Bearer::classify("header.payload.signature"));
        assert!(!shown.contains("payload"), "{shown}");
        let (key, _) = ApiKey::generate("svc", playhead_core::auth::Scopes::empty(), Default::default());
        let secret_part = &key.expose()[17..];
        let shown = format!("{:?}", Bearer::classify(key.expose()));
        assert!(!shown.contains(secret_part), "{shown}");
    }
}
