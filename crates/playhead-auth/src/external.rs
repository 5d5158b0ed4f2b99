//! Access tokens from a platform's own identity provider (Keycloak, Auth0, Cognito...).
//!
//! Each trusted issuer is configured explicitly ([`ExternalIssuerConfig`]): its `iss`, where its
//! keys are published, which algorithms it may use, what marks its access tokens (so its ID
//! tokens are refused), the audience that names us, how its claims map to a subject, scopes and
//! a role, and the highest role it may grant. [`ExternalVerifier::verify`] checks one token
//! against one issuer's key set; fetching and caching that key set is the caller's job (I/O).
//!
//! The rules a contributor must keep here:
//! - Keys come only from the configured `jwks_uri` (handed in as [`ExternalKeys`]). Nothing in a
//!   token (`jku`, `x5u`, `jwk`, `x5c`) ever selects or supplies a key: `kid` only picks among the
//!   keys we fetched ourselves.
//! - The algorithm must be one the issuer is configured for, and the key must be of that
//!   algorithm's family (and of that exact algorithm when the JWK names one). HMAC is never
//!   configurable: a shared secret with an IdP would let it, or anyone holding the public key
//!   confusion, mint tokens.
//! - An issuer's scope names we do not know are ignored, not refused (IdPs put `openid email`
//!   beside ours); what is kept never exceeds the mapped role's ceiling, capped by `max_role`.
//! - Identities are (issuer, subject): the caller links that pair to an account of ours, never an
//!   e-mail address (an IdP's e-mail claim does not prove who owns a local account).

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use playhead_core::auth::{Role, Scope, Scopes};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::verify::{MAX_TOKEN_LEN, RawHeader, TokenError};

/// Longest subject kept (it becomes part of a database key and of audit lines).
pub const MAX_SUBJECT_LEN: usize = 255;

/// One trusted issuer, as written in the config file (`[[identity.external_issuers]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuerConfig {
    /// The issuer's `iss`, compared exactly.
    pub issuer: String,
    /// Where its JSON Web Key Set is published (https in production).
    pub jwks_uri: String,
    /// Signature algorithms accepted from it, e.g. `["RS256", "ES256"]`.
    pub algorithms: Vec<String>,
    /// The value of the audience claim that names Playhead.
    pub audience: String,
    /// The claim holding the audience (`aud`; some IdPs put it in `client_id` or `azp`).
    #[serde(default = "default_audience_claim")]
    pub audience_claim: String,
    /// What marks an access token.
    #[serde(default)]
    pub access_token: AccessTokenMarker,
    /// How claims map to a subject, scopes and a role.
    #[serde(default)]
    pub claims: ClaimMapping,
    /// The highest role its tokens may reach: `viewer`, `service` or `admin`.
    #[serde(default = "default_max_role")]
    pub max_role: String,
    /// Refetch the key set when it is older than this, seconds (a removed key stops working
    /// within this much time; an unknown `kid` refetches sooner, at most once a minute).
    #[serde(default = "default_jwks_max_age")]
    pub jwks_max_age_secs: u64,
}

fn default_audience_claim() -> String {
    "aud".into()
}
fn default_max_role() -> String {
    "viewer".into()
}
const fn default_jwks_max_age() -> u64 {
    3_600
}

/// What tells an access token from an ID token: a header `typ` (RFC 9068 `at+jwt`), or a claim
/// with a fixed value (Cognito `token_use = "access"`, Keycloak `typ = "Bearer"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessTokenMarker {
    /// Required header `typ` (case-insensitive; `application/` prefix allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// A claim that must be present...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// ...with exactly this string value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Default for AccessTokenMarker {
    fn default() -> Self {
        Self { typ: Some("at+jwt".into()), claim: None, value: None }
    }
}

/// Claim names (a dotted path reaches into objects: `realm_access.roles`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimMapping {
    /// The subject claim (`sub`).
    pub subject: String,
    /// The scope claim: a space-separated string or an array (`scope`; Azure uses `scp`). Empty:
    /// the token's scopes are not read and the mapped role's ceiling is granted.
    pub scope: String,
    /// The claim listing the caller's roles or groups (empty: every token maps to `viewer`).
    pub roles: String,
    /// Values of `roles` that mean admin.
    pub admin_values: Vec<String>,
    /// Values of `roles` that mean a platform service.
    pub service_values: Vec<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        Self {
            subject: "sub".into(),
            scope: "scope".into(),
            roles: String::new(),
            admin_values: Vec::new(),
            service_values: Vec::new(),
        }
    }
}

/// A configuration that cannot be used; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity.external_issuers[{index}].{field}: {reason}")]
pub struct ExternalConfigError {
    /// Position in the list.
    pub index: usize,
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// The algorithms an external issuer may be configured for (asymmetric only).
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A verified external access token, before it is linked to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalToken {
    /// The issuer (as configured).
    pub issuer: String,
    /// The mapped subject claim.
    pub subject: String,
    /// The mapped role, already capped by the issuer's `max_role`.
    pub role: Role,
    /// Known scopes the token carries, within the role's ceiling.
    pub scopes: Scopes,
    /// `auth_time` when the token carries it.
    pub auth_time: Option<i64>,
    /// `exp`: a cache of verified tokens must not outlive it.
    pub expires_at: i64,
}

/// One issuer's key set, parsed from its JWKS document.
pub struct ExternalKeys {
    keys: Vec<(String, Option<Algorithm>, DecodingKey)>,
}

impl std::fmt::Debug for ExternalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalKeys").field("kids", &self.kids().collect::<Vec<_>>()).finish()
    }
}

impl ExternalKeys {
    /// Parse a JWKS document. Keys we cannot use for verifying signatures (encryption keys,
    /// symmetric keys, unknown key types, keys without a `kid`) are skipped, not fatal: IdPs
    /// publish encryption keys beside signing keys.
    pub fn from_jwks(json: &str) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<Value>,
        }
        let doc: Doc = serde_json::from_str(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for raw in doc.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else { continue };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))) {
                continue;
            }
            let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else { continue };
            if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
                continue; // a shared secret is never a verification key here
            }
            // A key pinned to a non-signature algorithm (RSA-OAEP...) is an encryption key.
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(a) => match Algorithm::from_str(&a.to_string()) {
                    Ok(a) => Some(a),
                    Err(_) => continue,
                },
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else { continue };
            keys.push((kid, alg, key));
        }
        Ok(Self { keys })
    }

    /// An empty set (nothing fetched yet).
    pub fn empty() -> Self {
        Self { keys: Vec::new() }
    }

    /// The key ids held.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _, _)| kid.as_str())
    }
}

/// Checks tokens from one configured external issuer.
#[derive(Debug, Clone)]
pub struct ExternalVerifier {
    config: ExternalIssuerConfig,
    algorithms: Vec<Algorithm>,
    max_role: Role,
    leeway_secs: i64,
}

impl ExternalVerifier {
    /// Validate the `index`-th configured issuer. `own_issuer` is ours: an external issuer may not
    /// claim it (our tokens are EdDSA from our own keys only).
    pub fn new(
        index: usize,
        config: ExternalIssuerConfig,
        own_issuer: &str,
        leeway_secs: u64,
    ) -> Result<Self, ExternalConfigError> {
        crate::install_crypto_provider();
        let err =
            |field: &'static str, reason: &str| ExternalConfigError { index, field, reason: reason.into() };
        if config.issuer.is_empty() {
            return Err(err("issuer", "must not be empty"));
        }
        if config.issuer == own_issuer {
            return Err(err("issuer", "is this server's own issuer; external issuers must be other servers"));
        }
        if !(config.jwks_uri.starts_with("https://") || config.jwks_uri.starts_with("http://")) {
            return Err(err("jwks_uri", "must be an https:// (or, for tests, http://) URL"));
        }
        if config.algorithms.is_empty() {
            return Err(err("algorithms", "name at least one, e.g. [\"RS256\"]"));
        }
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            match Algorithm::from_str(name) {
                Ok(a) if ASYMMETRIC.contains(&a) => algorithms.push(a),
                Ok(_) => {
                    return Err(err(
                        "algorithms",
                        "HMAC (HS256/HS384/HS512) is never accepted from an external issuer",
                    ));
                }
                Err(_) => {
                    return Err(err(
                        "algorithms",
                        "unknown algorithm; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA",
                    ));
                }
            }
        }
        if config.audience.is_empty() {
            return Err(err("audience", "must not be empty (the value that names Playhead)"));
        }
        if config.audience_claim.is_empty() {
            return Err(err("audience_claim", "must not be empty"));
        }
        let m = &config.access_token;
        match (&m.typ, &m.claim, &m.value) {
            (Some(t), None, None) if !t.is_empty() => {}
            (None, Some(c), Some(v)) if !c.is_empty() && !v.is_empty() => {}
            _ => {
                return Err(err(
                    "access_token",
                    "set either typ (e.g. \"at+jwt\") or claim and value (e.g. token_use = \"access\")",
                ));
            }
        }
        if config.claims.subject.is_empty() {
            return Err(err("claims.subject", "must not be empty"));
        }
        let max_role = Role::parse(&config.max_role)
            .ok_or_else(|| err("max_role", "must be viewer, service or admin"))?;
        Ok(Self { config, algorithms, max_role, leeway_secs: i64::try_from(leeway_secs).unwrap_or(i64::MAX) })
    }

    /// The configuration this verifier checks against.
    pub fn config(&self) -> &ExternalIssuerConfig {
        &self.config
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Verify `token` with `keys` (this issuer's JWKS) at `now_unix_secs`.
    /// [`TokenError::UnknownKey`] means the caller may refetch the key set and try once more.
    pub fn verify(
        &self,
        token: &str,
        keys: &ExternalKeys,
        now_unix_secs: i64,
    ) -> Result<ExternalToken, TokenError> {
        let header = RawHeader::of(token)?;
        // Exact names (RFC 7515 section 4.1.1), and only those configured for this issuer.
        let alg = header
            .alg
            .as_deref()
            .and_then(|a| Algorithm::from_str(a).ok())
            .filter(|a| self.algorithms.contains(a))
            .ok_or(TokenError::UnsupportedAlgorithm)?;
        if let Some(want) = &self.config.access_token.typ {
            let ok = header.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case(want)
                    || t.get(..12).is_some_and(|p| p.eq_ignore_ascii_case("application/"))
                        && t[12..].eq_ignore_ascii_case(want)
            });
            if !ok {
                return Err(TokenError::BadType);
            }
        }
        if header.crit.is_some() {
            return Err(TokenError::Malformed("critical header extensions are not supported"));
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let (_, key_alg, key) = keys.keys.iter().find(|(k, _, _)| *k == kid).ok_or(TokenError::UnknownKey)?;
        if key_alg.is_some_and(|a| a != alg) {
            // The JWK pins another algorithm: a token must not pick a weaker one for the same key.
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                // A key of another family than the algorithm (an RSA key with ES256...).
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => TokenError::UnsupportedAlgorithm,
                ErrorKind::Json(_) => TokenError::Malformed("claims are not a JSON object"),
                _ => TokenError::Malformed("token encoding is invalid"),
            })?
            .claims;
        self.check_claims(&claims, now_unix_secs)
    }

    fn check_claims(
        &self,
        claims: &serde_json::Map<String, Value>,
        now: i64,
    ) -> Result<ExternalToken, TokenError> {
        let c = &self.config;
        if let (Some(name), Some(want)) = (&c.access_token.claim, &c.access_token.value)
            && path(claims, name).and_then(Value::as_str) != Some(want.as_str())
        {
            return Err(TokenError::BadType);
        }
        if claims.get("iss").and_then(Value::as_str) != Some(c.issuer.as_str()) {
            return Err(TokenError::WrongIssuer);
        }
        let aud_ok = match path(claims, &c.audience_claim) {
            Some(Value::String(a)) => *a == c.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(c.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience);
        }
        let int = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = int("exp").ok_or(TokenError::Malformed("missing exp claim"))?;
        if now >= exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        let latest_start = now.saturating_add(self.leeway_secs);
        if int("iat").is_some_and(|t| t > latest_start) || int("nbf").is_some_and(|t| t > latest_start) {
            return Err(TokenError::NotYetValid);
        }
        let subject = path(claims, &c.claims.subject)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT_LEN)
            .ok_or(TokenError::Malformed("missing or oversized subject claim"))?
            .to_owned();
        let role = self.role_of(claims).min(self.max_role);
        let ceiling = role.ceiling();
        let scopes = if c.claims.scope.is_empty() {
            ceiling
        } else {
            let names: Vec<&str> = match path(claims, &c.claims.scope) {
                Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            names.into_iter().filter_map(Scope::parse).collect::<Scopes>().intersect(ceiling)
        };
        Ok(ExternalToken {
            issuer: c.issuer.clone(),
            subject,
            role,
            scopes,
            auth_time: int("auth_time"),
            expires_at: exp,
        })
    }

    /// The highest role the token's role claim names; viewer when none does.
    fn role_of(&self, claims: &serde_json::Map<String, Value>) -> Role {
        let m = &self.config.claims;
        if m.roles.is_empty() {
            return Role::Viewer;
        }
        let values: Vec<&str> = match path(claims, &m.roles) {
            Some(Value::String(s)) => s.split_ascii_whitespace().collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let has = |wanted: &[String]| values.iter().any(|v| wanted.iter().any(|w| w == v));
        if has(&m.admin_values) {
            Role::Admin
        } else if has(&m.service_values) {
            Role::Service
        } else {
            Role::Viewer
        }
    }
}

/// The issuer a token claims, read without verifying anything: only to choose which configured
/// issuer's keys to verify it with (the verifier then checks `iss` again, signed).
pub fn claimed_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

/// A claim by dotted path (`realm_access.roles`); a top-level name containing dots (some IdPs use
/// URLs as claim names) is tried first.
fn path<'a>(claims: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ISS: &str = "https://idp.example/realms/media";
    const NOW: i64 = 1_800_000_000;
    const JWKS: &str = include_str!("../../../testdata/external-idp/jwks.json");
    const RSA_PEM: &[u8] = include_bytes!("../../../testdata/external-idp/rs256.pem");
    const EC_PEM: &[u8] = include_bytes!("../../../testdata/external-idp/es256.pem");

    fn config() -> ExternalIssuerConfig {
        ExternalIssuerConfig {
            issuer: ISS.into(),
            jwks_uri: "https://idp.example/jwks".into(),
            algorithms: vec!["RS256".into()],
            audience: "playhead".into(),
            audience_claim: default_audience_claim(),
            access_token: AccessTokenMarker::default(),
            claims: ClaimMapping::default(),
            max_role: "viewer".into(),
            jwks_max_age_secs: 3_600,
        }
    }

    fn verifier(c: ExternalIssuerConfig) -> ExternalVerifier {
        ExternalVerifier::new(0, c, "https://playhead.example", 30).expect("valid config")
    }

    fn claims() -> Value {
        json!({
            "iss": ISS, "sub": "u-123", "aud": ["account", "playhead"], "exp": NOW + 300, "iat": NOW - 5,
            "scope": "openid email history:read history:write admin",
        })
    }

    fn sign(alg: Algorithm, typ: Option<&str>, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(alg);
        h.typ = typ.map(str::to_owned);
        h.kid = Some(kid.into());
        let key = match alg {
            Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(RSA_PEM).expect("rsa pem"),
            Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PEM).expect("ec pem"),
            _ => unreachable!(),
        };
        jsonwebtoken::encode(&h, claims, &key).expect("sign")
    }

    fn keys() -> ExternalKeys {
        ExternalKeys::from_jwks(JWKS).expect("jwks")
    }

    #[test]
    fn an_access_token_from_the_issuer_is_accepted_with_known_scopes_within_the_role() {
        let t = verifier(config())
            .verify(&sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &claims()), &keys(), NOW)
            .expect("accepted");
        assert_eq!((t.issuer.as_str(), t.subject.as_str(), t.role), (ISS, "u-123", Role::Viewer));
        // `openid email` ignored; `admin` dropped: a viewer's ceiling does not hold it.
        assert_eq!(t.scopes.to_string(), "history:read history:write");
        assert_eq!(t.expires_at, NOW + 300);
    }

    #[test]
    fn the_jwks_keeps_signing_keys_and_skips_encryption_keys() {
        let k = keys();
        assert_eq!(k.kids().collect::<Vec<_>>(), ["idp-rsa-1", "idp-ec-1"]);
        assert!(ExternalKeys::from_jwks("{}").is_err());
        let odd = json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}, {"kty": "weird"}]});
        assert_eq!(ExternalKeys::from_jwks(&odd.to_string()).expect("parses").kids().count(), 0);
    }

    #[test]
    fn hostile_external_tokens_are_refused_for_the_right_reason() {
        let v = verifier(config());
        let k = keys();
        let id_token = sign(Algorithm::RS256, Some("JWT"), "idp-rsa-1", &claims());
        assert_eq!(v.verify(&id_token, &k, NOW), Err(TokenError::BadType), "an ID token");
        let untyped = sign(Algorithm::RS256, None, "idp-rsa-1", &claims());
        assert_eq!(v.verify(&untyped, &k, NOW), Err(TokenError::BadType));
        let es = sign(Algorithm::ES256, Some("at+jwt"), "idp-ec-1", &claims());
        assert_eq!(v.verify(&es, &k, NOW), Err(TokenError::UnsupportedAlgorithm), "ES256 not allowed");
        // HS256 keyed with public material (the JWKS text): the classic key-confusion forgery.
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        h.kid = Some("idp-rsa-1".into());
        let forged = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(JWKS.as_bytes())).unwrap();
        assert_eq!(v.verify(&forged, &k, NOW), Err(TokenError::UnsupportedAlgorithm));
        let unknown = sign(Algorithm::RS256, Some("at+jwt"), "rotated-in-later", &claims());
        assert_eq!(v.verify(&unknown, &k, NOW), Err(TokenError::UnknownKey));
        let mut wrong_aud = claims();
        wrong_aud["aud"] = json!("someone-else");
        let t = sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &wrong_aud);
        assert_eq!(v.verify(&t, &k, NOW), Err(TokenError::WrongAudience));
        let mut wrong_iss = claims();
        wrong_iss["iss"] = json!("https://evil.example");
        let t = sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &wrong_iss);
        assert_eq!(v.verify(&t, &k, NOW), Err(TokenError::WrongIssuer));
        let t = sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &claims());
        assert_eq!(v.verify(&t, &k, NOW + 400), Err(TokenError::Expired));
        let mut future = claims();
        future["nbf"] = json!(NOW + 600);
        let t = sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &future);
        assert_eq!(v.verify(&t, &k, NOW), Err(TokenError::NotYetValid));
        // Tampered payload: the signature no longer matches.
        let good = sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let mut evil = claims();
        evil["sub"] = json!("someone-else");
        let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(evil.to_string()), parts[2]);
        assert_eq!(v.verify(&tampered, &k, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_key_pinned_to_one_algorithm_is_not_used_with_another() {
        let mut c = config();
        c.algorithms = vec!["RS256".into(), "ES256".into(), "PS256".into()];
        let v = verifier(c);
        let k = keys();
        assert!(v.verify(&sign(Algorithm::ES256, Some("at+jwt"), "idp-ec-1", &claims()), &k, NOW).is_ok());
        let ps = sign(Algorithm::PS256, Some("at+jwt"), "idp-rsa-1", &claims());
        assert_eq!(v.verify(&ps, &k, NOW), Err(TokenError::UnsupportedAlgorithm), "the JWK says RS256");
    }

    #[test]
    fn a_claim_marker_tells_access_tokens_from_id_tokens() {
        let mut c = config();
        c.access_token =
            AccessTokenMarker { typ: None, claim: Some("token_use".into()), value: Some("access".into()) };
        c.audience_claim = "client_id".into();
        let v = verifier(c);
        let mut access = claims();
        access["token_use"] = json!("access");
        access["client_id"] = json!("playhead");
        assert!(v.verify(&sign(Algorithm::RS256, Some("JWT"), "idp-rsa-1", &access), &keys(), NOW).is_ok());
        let mut id = access.clone();
        id["token_use"] = json!("id");
        let t = sign(Algorithm::RS256, Some("JWT"), "idp-rsa-1", &id);
        assert_eq!(v.verify(&t, &keys(), NOW), Err(TokenError::BadType));
    }

    #[test]
    fn roles_map_from_nested_claims_and_are_capped_by_max_role() {
        let mut c = config();
        c.claims.roles = "realm_access.roles".into();
        c.claims.admin_values = vec!["playhead-admin".into()];
        c.claims.service_values = vec!["playhead-service".into()];
        c.claims.scope = String::new(); // grant the role's ceiling
        c.max_role = "service".into();
        let v = verifier(c);
        let mut admin = claims();
        admin["realm_access"] = json!({"roles": ["offline_access", "playhead-admin"]});
        let t = v.verify(&sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &admin), &keys(), NOW).unwrap();
        assert_eq!(t.role, Role::Service, "admin claimed, service is this issuer's ceiling");
        assert_eq!(t.scopes, Role::Service.ceiling());
        assert!(!t.scopes.contains(Scope::Admin));
        let t =
            v.verify(&sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &claims()), &keys(), NOW).unwrap();
        assert_eq!((t.role, t.scopes), (Role::Viewer, Role::Viewer.ceiling()));
    }

    #[test]
    fn unusable_configurations_name_the_field() {
        let bad = |f: fn(&mut ExternalIssuerConfig)| {
            let mut c = config();
            f(&mut c);
            ExternalVerifier::new(2, c, "https://playhead.example", 30).unwrap_err().to_string()
        };
        assert!(
            bad(|c| c.algorithms = vec!["HS256".into()]).contains("external_issuers[2].algorithms: HMAC")
        );
        assert!(bad(|c| c.algorithms = vec!["none".into()]).contains("algorithms: unknown"));
        assert!(bad(|c| c.algorithms.clear()).contains("algorithms"));
        assert!(
            bad(|c| c.issuer = "https://playhead.example".into()).contains("issuer: is this server's own")
        );
        assert!(bad(|c| c.jwks_uri = "file:///etc/keys".into()).contains("jwks_uri"));
        assert!(bad(|c| c.max_role = "root".into()).contains("max_role"));
        assert!(bad(|c| c.audience.clear()).contains("audience"));
        assert!(bad(|c| c.access_token.claim = Some("token_use".into())).contains("access_token"));
    }

    #[test]
    fn the_claimed_issuer_is_read_without_verifying() {
        let t = sign(Algorithm::RS256, Some("at+jwt"), "idp-rsa-1", &claims());
        assert_eq!(claimed_issuer(&t).as_deref(), Some(ISS));
        assert_eq!(claimed_issuer("a.b.c"), None);
    }
}
