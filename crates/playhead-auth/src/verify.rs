//! Verifying access tokens: every request with a JWT comes through [`Verifier::verify`].
//!
//! Order of checks: size and shape, then the protected header (algorithm, type, key id), then the
//! signature with the key our `kid` lookup found, and only then the claims. Nothing in an
//! unauthenticated header can choose the algorithm or a key from outside our key set.
//!
//! The rules a contributor must keep here:
//! - Only EdDSA is accepted, whatever the token says; `none`, HMAC and RSA are refused before any
//!   key is touched. External issuers (RS256 and friends) get their own verifier with their own
//!   allowed algorithms; they never widen this one.
//! - Every claim this service acts on is checked here: `iss` exactly, `aud` contains ours, `exp`
//!   required, `nbf`/`iat` not in the future (with the leeway), `sub`/`jti`/`client_id` present,
//!   scopes all known. A token from our own issuer naming a scope we do not know is refused, not
//!   trimmed: it means the issuer and this verifier disagree, and guessing would grant wrongly.
//! - [`TokenError`]'s messages go to clients in `WWW-Authenticate: error_description`: short,
//!   fixed ASCII, never a piece of the token.
//!
//! Ed25519 verification costs about 50 µs. The REST layer may cache verified tokens keyed by
//! [`token_digest`]; it must drop an entry once [`Verifier::still_valid`] says no (expiry, or the
//! key was retired) and still check the session's revocation on every request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use playhead_core::auth::{Principal, Scopes, Subject};
use playhead_core::ids::{AccountId, ProfileId};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::keys::KeySet;
use crate::token::AccessClaims;

/// Longest token accepted. Ours are well under 1 KiB; the cap bounds the work a stranger can cause.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why an access token was refused. Every variant maps to OAuth `invalid_token` (RFC 6750); the
/// message is safe to send as `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed JWT of ours (bad encoding, missing or mistyped claim, oversized...).
    #[error("malformed access token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than EdDSA (including `none`).
    #[error("access token algorithm not accepted")]
    UnsupportedAlgorithm,
    /// The header `typ` is not `at+jwt`: an ID token or another kind of JWT.
    #[error("not an access token (typ must be at+jwt)")]
    BadType,
    /// The header has no `kid`.
    #[error("access token has no key id")]
    MissingKeyId,
    /// The `kid` is not one of our keys (never issued, or retired).
    #[error("access token signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify (forged or altered).
    #[error("access token signature is invalid")]
    BadSignature,
    /// `iss` is not our issuer.
    #[error("access token issued by another issuer")]
    WrongIssuer,
    /// `aud` does not name this service.
    #[error("access token is not meant for this service")]
    WrongAudience,
    /// `exp` has passed.
    #[error("access token expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("access token is not valid yet")]
    NotYetValid,
    /// `scope` names a scope this service does not know.
    #[error("access token grants an unknown scope")]
    UnknownScope,
}

impl TokenError {
    /// The RFC 6750 error code for `WWW-Authenticate`: always `invalid_token`.
    pub const fn error_code(&self) -> playhead_core::oauth::OAuthErrorCode {
        playhead_core::oauth::OAuthErrorCode::InvalidToken
    }
}

/// A token whose signature and claims were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    claims: AccessClaims,
    kid: String,
    principal: Principal,
}

impl VerifiedToken {
    /// The checked claims (`aud` is the audience this verifier accepted).
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    /// The caller as the application sees it.
    pub fn principal(&self) -> Principal {
        self.principal.clone()
    }

    /// Expiry (seconds since the epoch): a cache of verified tokens must not outlive it.
    pub fn expires_at(&self) -> i64 {
        self.claims.exp
    }

    /// The key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// SHA-256 of a presented token: the key for a cache of verified tokens (never cache by the token
/// itself, which would keep credentials in memory dumps and metrics labels).
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Checks access tokens from our own authorization server.
pub struct Verifier {
    keys: Vec<(String, DecodingKey)>,
    issuer: String,
    audience: String,
    leeway_secs: i64,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.iter().map(|(kid, _)| kid.as_str()).collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// The protected header as we read it before any key is chosen.
#[derive(Deserialize)]
pub(crate) struct RawHeader {
    pub(crate) alg: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) kid: Option<String>,
    pub(crate) crit: Option<serde_json::Value>,
}

impl RawHeader {
    /// The header of a compact JWS of at most [`MAX_TOKEN_LEN`] bytes, before any verification.
    pub(crate) fn of(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("not a compact JWS"));
        };
        URL_SAFE_NO_PAD
            .decode(header_b64)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed("header is not base64url JSON"))
    }
}

/// One string or an array of strings (`aud`, RFC 7519 section 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The claims as they arrive: every field optional so a missing claim gets a precise error.
#[derive(Deserialize)]
struct WireClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<OneOrMany>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
    sid: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    profile_id: Option<String>,
    auth_time: Option<i64>,
}

fn non_empty(value: Option<String>, missing: &'static str) -> Result<String, TokenError> {
    value.filter(|v| !v.is_empty()).ok_or(TokenError::Malformed(missing))
}

impl Verifier {
    /// A verifier for tokens signed by any key of `keys`, issued by `issuer` for `audience`,
    /// tolerating `leeway_secs` of clock difference (keep it small: 30-60 s).
    pub fn new(
        keys: &KeySet,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        leeway_secs: u64,
    ) -> Self {
        crate::install_crypto_provider();
        // jsonwebtoken only checks the signature here: its time checks read the system clock,
        // and ours take `now` as an argument, so every claim is checked in `check_claims`.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            keys: keys.decoding_keys(),
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: i64::try_from(leeway_secs).unwrap_or(i64::MAX),
            validation,
        }
    }

    /// The issuer whose tokens this verifier accepts (ours).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key ids this verifier accepts.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    /// Verify a presented token at `now_unix_secs`.
    pub fn verify(&self, token: &str, now_unix_secs: i64) -> Result<VerifiedToken, TokenError> {
        let header = RawHeader::of(token)?;
        // Exact, case-sensitive match (RFC 7515 section 4.1.1): "none", "HS256", "eddsa" all fail.
        if header.alg.as_deref() != Some("EdDSA") {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        if !header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(TokenError::BadType);
        }
        // We understand no critical extension (RFC 7515 section 4.1.11), so any `crit` is refused.
        if header.crit.is_some() {
            return Err(TokenError::Malformed("critical header extensions are not supported"));
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let key =
            self.keys.iter().find(|(k, _)| *k == kid).map(|(_, key)| key).ok_or(TokenError::UnknownKey)?;

        let wire = jsonwebtoken::decode::<WireClaims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::UnsupportedAlgorithm,
                ErrorKind::Json(_) => TokenError::Malformed("claims are not JSON of the expected types"),
                _ => TokenError::Malformed("token encoding is invalid"),
            })?
            .claims;
        let claims = self.check_claims(wire, now_unix_secs)?;
        let principal = principal_of(&claims);
        Ok(VerifiedToken { claims, kid, principal })
    }

    /// Whether a token verified earlier may still be used at `now_unix_secs`: not expired and its
    /// key still in this verifier's set. For caches of verified tokens.
    pub fn still_valid(&self, token: &VerifiedToken, now_unix_secs: i64) -> bool {
        !self.is_expired(token.claims.exp, now_unix_secs)
            && self.keys.iter().any(|(kid, _)| *kid == token.kid)
    }

    fn is_expired(&self, exp: i64, now: i64) -> bool {
        // RFC 7519 section 4.1.4: valid only while now < exp (plus the leeway).
        now >= exp.saturating_add(self.leeway_secs)
    }

    fn check_claims(&self, wire: WireClaims, now: i64) -> Result<AccessClaims, TokenError> {
        let iss = non_empty(wire.iss, "missing iss claim")?;
        if iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let aud_ok = match wire.aud.ok_or(TokenError::Malformed("missing aud claim"))? {
            OneOrMany::One(aud) => aud == self.audience,
            OneOrMany::Many(auds) => auds.contains(&self.audience),
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience);
        }
        let exp = wire.exp.ok_or(TokenError::Malformed("missing exp claim"))?;
        if self.is_expired(exp, now) {
            return Err(TokenError::Expired);
        }
        let iat = wire.iat.ok_or(TokenError::Malformed("missing iat claim"))?;
        let latest_start = now.saturating_add(self.leeway_secs);
        if iat > latest_start || wire.nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(TokenError::NotYetValid);
        }
        let sub = non_empty(wire.sub, "missing sub claim")?;
        let jti = non_empty(wire.jti, "missing jti claim")?;
        let client_id = non_empty(wire.client_id, "missing client_id claim")?;
        let scope =
            Scopes::parse(wire.scope.as_deref().unwrap_or_default()).map_err(|_| TokenError::UnknownScope)?;
        let profile_id = wire
            .profile_id
            .map(|p| ProfileId::parse(&p).map_err(|_| TokenError::Malformed("profile_id is not a UUID")))
            .transpose()?;
        let sid = wire.sid.filter(|s| !s.is_empty());
        if account_of(&sub).is_some() && sid.is_none() {
            // A person's token without a session could not be revoked.
            return Err(TokenError::Malformed("missing sid claim"));
        }
        Ok(AccessClaims {
            iss,
            sub,
            aud: self.audience.clone(),
            exp,
            iat,
            nbf: wire.nbf,
            jti,
            sid,
            scope,
            client_id,
            profile_id,
            auth_time: wire.auth_time,
        })
    }
}

/// `at+jwt` or its full media type, case-insensitively (RFC 9068 section 4, RFC 7515 section 4.1.9).
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// An account subject is exactly a hyphenated UUID (not the braced, URN or simple forms, so that
/// nothing else a service might be named can be read as an account).
fn account_of(sub: &str) -> Option<AccountId> {
    if sub.len() != 36 {
        return None;
    }
    AccountId::parse(sub).ok()
}

fn principal_of(claims: &AccessClaims) -> Principal {
    let subject = match account_of(&claims.sub) {
        Some(account) => Subject::Account(account),
        None => Subject::Service { id: claims.sub.clone() },
    };
    Principal {
        subject,
        scopes: claims.scope,
        bound_profile: claims.profile_id,
        session_id: claims.sid.clone(),
        auth_time: claims.auth_time,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jsonwebtoken::{EncodingKey, Header};
    use playhead_core::auth::Scope;
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;
    use crate::token::TokenIssuer;

    const ISS: &str = "https://auth.playhead.test";
    const AUD: &str = "playhead";
    const NOW: i64 = 1_800_000_000;
    const LEEWAY: u64 = 30;

    struct Fixture {
        _dir: tempfile::TempDir,
        keys: Arc<KeySet>,
        issuer: TokenIssuer,
        verifier: Verifier,
        account: AccountId,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(KeySet::load_or_create(dir.path()).unwrap());
        let issuer = TokenIssuer::new(keys.clone(), ISS, AUD, 300);
        let verifier = Verifier::new(&keys, ISS, AUD, LEEWAY);
        Fixture { _dir: dir, keys, issuer, verifier, account: AccountId::from_uuid(Uuid::now_v7()) }
    }

    impl Fixture {
        fn claims(&self) -> AccessClaims {
            let scopes = Scopes::empty().with(Scope::HistoryRead).with(Scope::HistoryWrite);
            self.issuer.account_claims(self.account, "web", scopes, "sess-1", NOW)
        }

        fn token(&self) -> String {
            self.issuer.issue(&self.claims()).unwrap()
        }

        /// Claims as JSON, to forge tokens with arbitrary content.
        fn claims_json(&self) -> Value {
            serde_json::to_value(self.claims()).unwrap()
        }

        fn header_json(&self) -> Value {
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.keys.signing_kid()})
        }
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    /// Sign arbitrary header and claims JSON with the signing key of `keys`: a forgery that
    /// differs from a genuine token only where a test wants it to.
    fn sign_raw(keys: &KeySet, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), keys.signing_encoding_key(), Algorithm::EdDSA)
                .unwrap();
        format!("{message}.{signature}")
    }

    #[test]
    fn a_genuine_token_round_trips() {
        let f = fixture();
        let claims = f.claims().with_auth_time(NOW - 10);
        let token = f.issuer.issue(&claims).unwrap();
        let verified = f.verifier.verify(&token, NOW + 1).unwrap();
        assert_eq!(verified.claims(), &claims);
        assert_eq!(verified.kid(), f.keys.signing_kid());
        assert_eq!(verified.expires_at(), NOW + 300);
        let p = verified.principal();
        assert_eq!(p.subject, Subject::Account(f.account));
        assert_eq!(p.scopes, Scopes::empty().with(Scope::HistoryRead).with(Scope::HistoryWrite));
        assert_eq!(p.session_id.as_deref(), Some("sess-1"));
        assert_eq!(p.bound_profile, None);
        assert!(f.verifier.still_valid(&verified, NOW + 299));
        assert!(!f.verifier.still_valid(&verified, NOW + 300 + 30));
    }

    #[test]
    fn header_shape_is_rfc_9068() {
        let f = fixture();
        let header = jsonwebtoken::decode_header(f.token()).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(f.keys.signing_kid()));
    }

    #[test]
    fn bound_profile_and_service_subjects_reach_the_principal() {
        let f = fixture();
        let profile = ProfileId::from_uuid(Uuid::now_v7());
        let token = f.issuer.issue(&f.claims().bound_to(profile)).unwrap();
        assert_eq!(f.verifier.verify(&token, NOW).unwrap().principal().bound_profile, Some(profile));

        let svc = f.issuer.client_claims("importer", Scopes::empty().with(Scope::CatalogWrite), NOW);
        let p = f.verifier.verify(&f.issuer.issue(&svc).unwrap(), NOW).unwrap().principal();
        assert_eq!(p.subject, Subject::Service { id: "client:importer".into() });
        assert_eq!(p.account(), None);
        assert_eq!(p.session_id, None);
    }

    #[test]
    fn audience_may_be_an_array_containing_ours() {
        let f = fixture();
        let mut claims = f.claims_json();
        claims["aud"] = json!(["other", AUD]);
        let token = sign_raw(&f.keys, &f.header_json(), &claims);
        assert_eq!(f.verifier.verify(&token, NOW).unwrap().claims().aud, AUD);
    }

    #[test]
    fn media_type_form_of_typ_is_accepted() {
        let f = fixture();
        for typ in ["application/at+jwt", "AT+JWT", "Application/At+Jwt"] {
            let mut header = f.header_json();
            header["typ"] = json!(typ);
            let token = sign_raw(&f.keys, &header, &f.claims_json());
            assert!(f.verifier.verify(&token, NOW).is_ok(), "{typ}");
        }
    }

    #[test]
    fn leeway_applies_to_both_ends() {
        let f = fixture();
        let token = f.token();
        // exp = NOW + 300; leeway 30.
        assert!(f.verifier.verify(&token, NOW + 329).is_ok());
        assert_eq!(f.verifier.verify(&token, NOW + 330), Err(TokenError::Expired));
        // iat = NOW: a verifier whose clock is 30 s behind still accepts, 31 s does not.
        assert!(f.verifier.verify(&token, NOW - 30).is_ok());
        assert_eq!(f.verifier.verify(&token, NOW - 31), Err(TokenError::NotYetValid));
    }

    /// Every hostile token, each refused with its own reason.
    #[test]
    fn hostile_tokens_are_refused_with_the_right_error() {
        let f = fixture();
        let header = f.header_json();
        let claims = f.claims_json();
        let with_claim = |k: &str, v: Value| {
            let mut c = claims.clone();
            c[k] = v;
            sign_raw(&f.keys, &header, &c)
        };
        let with_header = |k: &str, v: Value| {
            let mut h = header.clone();
            h[k] = v;
            sign_raw(&f.keys, &h, &claims)
        };
        let without_claim = |k: &str| {
            let mut c = claims.clone();
            c.as_object_mut().unwrap().remove(k);
            sign_raw(&f.keys, &header, &c)
        };

        // alg none, in the spellings attackers try, with and without a signature part.
        let mut none_header = header.clone();
        none_header["alg"] = json!("none");
        let alg_none = format!("{}.{}.", b64(&none_header), b64(&claims));
        none_header["alg"] = json!("None");
        let alg_none_caps = format!("{}.{}.", b64(&none_header), b64(&claims));

        // HS256 keyed with our public key (the classic algorithm confusion attack), both as raw
        // bytes and as the base64url `x` a JWKS publishes.
        let mut hs_header = Header::new(Algorithm::HS256);
        hs_header.typ = Some("at+jwt".into());
        hs_header.kid = Some(f.keys.signing_kid().into());
        let (_, public) = f.keys.public_keys().last().unwrap();
        let hs_raw = jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(public)).unwrap();
        let x = URL_SAFE_NO_PAD.encode(public);
        let hs_x =
            jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(x.as_bytes())).unwrap();
        let alg_rs = with_header("alg", json!("RS256"));
        let alg_lower = with_header("alg", json!("eddsa"));

        // A key that was rotated out, then retired: its tokens are unknown to the new set.
        let dir = tempfile::tempdir().unwrap();
        let old_set = KeySet::load_or_create(dir.path()).unwrap();
        let old_kid = old_set.signing_kid().to_owned();
        let old_token = {
            let mut h = header.clone();
            h["kid"] = json!(old_kid);
            sign_raw(&old_set, &h, &claims)
        };
        KeySet::rotate(dir.path()).unwrap();
        let current = KeySet::retire(dir.path(), &old_kid).unwrap();
        let verifier_after_retire = Verifier::new(&current, ISS, AUD, LEEWAY);

        // A stranger's key claiming our kid.
        let stranger = KeySet::ephemeral().unwrap();
        let forged_with_our_kid = sign_raw(&stranger, &header, &claims);

        // A genuine token with an altered payload (scope escalated to admin), signature kept.
        let genuine = f.token();
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let mut escalated = claims.clone();
        escalated["scope"] = json!("history:read history:write admin");
        let escalated_b64 = b64(&escalated);
        parts[1] = &escalated_b64;
        let tampered = parts.join(".");

        let cases: Vec<(&str, String, TokenError)> = vec![
            ("alg none", alg_none, TokenError::UnsupportedAlgorithm),
            ("alg None", alg_none_caps, TokenError::UnsupportedAlgorithm),
            ("HS256 keyed with raw public key", hs_raw, TokenError::UnsupportedAlgorithm),
            ("HS256 keyed with JWKS x", hs_x, TokenError::UnsupportedAlgorithm),
            ("alg RS256", alg_rs, TokenError::UnsupportedAlgorithm),
            ("alg lowercase", alg_lower, TokenError::UnsupportedAlgorithm),
            ("wrong iss", with_claim("iss", json!("https://evil.test")), TokenError::WrongIssuer),
            ("iss prefix", with_claim("iss", json!(format!("{ISS}/"))), TokenError::WrongIssuer),
            (
                "iss as array",
                with_claim("iss", json!([ISS])),
                TokenError::Malformed("claims are not JSON of the expected types"),
            ),
            ("wrong aud", with_claim("aud", json!("other-api")), TokenError::WrongAudience),
            ("aud array without ours", with_claim("aud", json!(["a", "b"])), TokenError::WrongAudience),
            ("expired", with_claim("exp", json!(NOW - 31)), TokenError::Expired),
            ("nbf in the future", with_claim("nbf", json!(NOW + 120)), TokenError::NotYetValid),
            ("iat in the future", with_claim("iat", json!(NOW + 120)), TokenError::NotYetValid),
            ("unknown kid", with_header("kid", json!("AAAAAAAAAAAAAAAA")), TokenError::UnknownKey),
            (
                "missing kid",
                {
                    let mut h = header.clone();
                    h.as_object_mut().unwrap().remove("kid");
                    sign_raw(&f.keys, &h, &claims)
                },
                TokenError::MissingKeyId,
            ),
            ("typ JWT", with_header("typ", json!("JWT")), TokenError::BadType),
            (
                "typ missing",
                {
                    let mut h = header.clone();
                    h.as_object_mut().unwrap().remove("typ");
                    sign_raw(&f.keys, &h, &claims)
                },
                TokenError::BadType,
            ),
            (
                "crit header",
                with_header("crit", json!(["b64"])),
                TokenError::Malformed("critical header extensions are not supported"),
            ),
            ("forged with our kid", forged_with_our_kid, TokenError::BadSignature),
            ("tampered payload", tampered, TokenError::BadSignature),
            ("unknown scope", with_claim("scope", json!("history:read root")), TokenError::UnknownScope),
            ("missing exp", without_claim("exp"), TokenError::Malformed("missing exp claim")),
            ("missing iat", without_claim("iat"), TokenError::Malformed("missing iat claim")),
            ("missing sub", without_claim("sub"), TokenError::Malformed("missing sub claim")),
            ("missing jti", without_claim("jti"), TokenError::Malformed("missing jti claim")),
            (
                "missing client_id",
                without_claim("client_id"),
                TokenError::Malformed("missing client_id claim"),
            ),
            ("account without sid", without_claim("sid"), TokenError::Malformed("missing sid claim")),
            ("missing aud", without_claim("aud"), TokenError::Malformed("missing aud claim")),
            (
                "exp as string",
                with_claim("exp", json!("never")),
                TokenError::Malformed("claims are not JSON of the expected types"),
            ),
            (
                "profile_id not a uuid",
                with_claim("profile_id", json!("kids")),
                TokenError::Malformed("profile_id is not a UUID"),
            ),
            ("two parts", "a.b".into(), TokenError::Malformed("not a compact JWS")),
            ("four parts", format!("{genuine}.x"), TokenError::Malformed("not a compact JWS")),
            ("garbage header", "!!!.b.c".into(), TokenError::Malformed("header is not base64url JSON")),
            (
                "oversized",
                format!("{}.{}.x", b64(&header), "A".repeat(MAX_TOKEN_LEN)),
                TokenError::Malformed("token too long"),
            ),
        ];
        for (name, token, expected) in cases {
            assert_eq!(f.verifier.verify(&token, NOW), Err(expected), "{name}");
        }
        assert_eq!(verifier_after_retire.verify(&old_token, NOW), Err(TokenError::UnknownKey), "retired key");
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let before = Arc::new(KeySet::load_or_create(dir.path()).unwrap());
        let old_kid = before.signing_kid().to_owned();
        let before_issuer = TokenIssuer::new(before, ISS, AUD, 300);
        let old_token =
            before_issuer.issue(&before_issuer.client_claims("svc", Scopes::empty(), NOW)).unwrap();

        let after = Arc::new(KeySet::rotate(dir.path()).unwrap());
        assert_ne!(after.signing_kid(), old_kid);
        let issuer = TokenIssuer::new(after.clone(), ISS, AUD, 300);
        let new_token = issuer.issue(&issuer.client_claims("svc", Scopes::empty(), NOW)).unwrap();
        let verifier = Verifier::new(&after, ISS, AUD, LEEWAY);
        assert_eq!(verifier.verify(&old_token, NOW).unwrap().kid(), old_kid);
        assert_eq!(verifier.verify(&new_token, NOW).unwrap().kid(), after.signing_kid());
        let jwks_kids: Vec<String> = after.jwks().keys.into_iter().map(|k| k.kid).collect();
        assert_eq!(jwks_kids, vec![after.signing_kid().to_owned(), old_kid]);
    }

    #[test]
    fn still_valid_turns_false_when_the_key_is_retired() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeySet::load_or_create(dir.path()).unwrap();
        let issuer = TokenIssuer::new(Arc::new(first), ISS, AUD, 300);
        let token = issuer.issue(&issuer.client_claims("svc", Scopes::empty(), NOW)).unwrap();
        let rotated = KeySet::rotate(dir.path()).unwrap();
        let verified = Verifier::new(&rotated, ISS, AUD, LEEWAY).verify(&token, NOW).unwrap();
        let retired = KeySet::retire(dir.path(), verified.kid()).unwrap();
        assert!(!Verifier::new(&retired, ISS, AUD, LEEWAY).still_valid(&verified, NOW));
    }

    #[test]
    fn error_descriptions_are_safe_for_www_authenticate() {
        let all = [
            TokenError::Malformed("missing exp claim"),
            TokenError::UnsupportedAlgorithm,
            TokenError::BadType,
            TokenError::MissingKeyId,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::WrongIssuer,
            TokenError::WrongAudience,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::UnknownScope,
        ];
        for e in all {
            let text = e.to_string();
            // RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E.
            assert!(text.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)), "{text}");
            assert_eq!(e.error_code(), playhead_core::oauth::OAuthErrorCode::InvalidToken);
        }
    }

    #[test]
    fn digest_is_sha256_of_the_token() {
        assert_eq!(token_digest("a.b.c"), <[u8; 32]>::from(Sha256::digest(b"a.b.c")));
        assert_ne!(token_digest("a.b.c"), token_digest("a.b.d"));
    }
}
