//! API keys for platform services: `phk_<prefix>_<secret>`.
//!
//! `prefix` is 12 random characters of the lowercase base32 alphabet (`a-z2-7`): visible, unique,
//! how a key is looked up and named in logs. `secret` is base64url (no padding) of 32 random bytes
//! from the OS, 256 bits. The store keeps SHA-256 of the whole key string, never the key: a fast
//! hash is right here because the input is already 256 bits of randomness (nothing to brute-force)
//! and keys are checked on every request.
//!
//! The rules a contributor must keep here:
//! - Digests are compared in constant time.
//! - The plaintext exists once, in the [`ApiKeySecret`] returned by [`ApiKey::generate`], to be
//!   shown to the operator; it is never stored, logged or put in an error.
//! - Revocation is reported only to a caller who presented the right secret: a stranger who
//!   knows a prefix learns nothing about the key's state.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use playhead_core::Timestamp;
use playhead_core::auth::{Principal, Scopes, Subject};
use playhead_core::ports::ApiKeyRecord;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What every API key starts with (and how a bearer value is recognised as one).
pub const API_KEY_MARKER: &str = "phk_";
/// Length of the visible prefix.
pub const PREFIX_LEN: usize = 12;
/// Prefix of the id of the service principal an API key authenticates (`apikey:<prefix>`).
pub const API_KEY_SUBJECT_PREFIX: &str = "apikey:";

const PREFIX_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const SECRET_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const SECRET_LEN: usize = 43;
const KEY_LEN: usize = API_KEY_MARKER.len() + PREFIX_LEN + 1 + SECRET_LEN;

/// Why a presented API key was refused. The messages are safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// Not of the `phk_<prefix>_<secret>` form.
    #[error("malformed API key")]
    Malformed,
    /// No such key, or the secret is wrong.
    #[error("invalid API key")]
    Invalid,
    /// The key was revoked.
    #[error("API key revoked")]
    Revoked,
}

/// A presented API key that has the right shape (not yet checked against its record).
#[derive(Clone, Copy)]
pub struct ApiKey<'a> {
    full: &'a str,
}

impl fmt::Debug for ApiKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("prefix", &self.prefix()).finish_non_exhaustive()
    }
}

/// A freshly generated API key's plaintext, shown once to whoever created it.
pub struct ApiKeySecret(Zeroizing<String>);

impl ApiKeySecret {
    /// The key to hand to the service. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The prefix is public (it is in the record and the logs); the secret part is not.
        let prefix = self.0.get(..API_KEY_MARKER.len() + PREFIX_LEN).unwrap_or("");
        write!(f, "ApiKeySecret({prefix}_[redacted])")
    }
}

impl<'a> ApiKey<'a> {
    /// Make a new key: the plaintext (give it to the service, once) and the record to store.
    pub fn generate(name: impl Into<String>, scopes: Scopes, now: Timestamp) -> (ApiKeySecret, ApiKeyRecord) {
        let mut random = Zeroizing::new([0u8; PREFIX_LEN + SECRET_BYTES]);
        OsRng.fill_bytes(random.as_mut());
        let (prefix_bytes, secret_bytes) = random.split_at(PREFIX_LEN);
        // 256 is a multiple of 32, so masking keeps the characters uniform.
        let prefix: String =
            prefix_bytes.iter().map(|b| char::from(PREFIX_ALPHABET[usize::from(b & 31)])).collect();
        let mut plaintext = Zeroizing::new(String::with_capacity(KEY_LEN));
        plaintext.push_str(API_KEY_MARKER);
        plaintext.push_str(&prefix);
        plaintext.push('_');
        plaintext.push_str(&Zeroizing::new(URL_SAFE_NO_PAD.encode(secret_bytes)));
        let record = ApiKeyRecord {
            prefix,
            name: name.into(),
            hash: digest(&plaintext),
            scopes,
            created_at: now,
            revoked_at: None,
        };
        (ApiKeySecret(plaintext), record)
    }

    /// Check the shape of a presented key; `None` when it is not one.
    pub fn parse(presented: &'a str) -> Option<Self> {
        let rest = presented.strip_prefix(API_KEY_MARKER)?;
        if presented.len() != KEY_LEN {
            return None;
        }
        let (prefix, rest) = rest.split_at_checked(PREFIX_LEN)?;
        let secret = rest.strip_prefix('_')?;
        let prefix_ok = prefix.bytes().all(|b| PREFIX_ALPHABET.contains(&b));
        // Canonical base64url of exactly 32 bytes (the decoder refuses stray trailing bits).
        let secret_ok = URL_SAFE_NO_PAD.decode(secret).is_ok_and(|bytes| bytes.len() == SECRET_BYTES);
        (prefix_ok && secret_ok).then_some(Self { full: presented })
    }

    /// The visible prefix: look the record up by it.
    pub fn prefix(&self) -> &'a str {
        &self.full[API_KEY_MARKER.len()..API_KEY_MARKER.len() + PREFIX_LEN]
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Check a presented key against the record found by its prefix, at `now`.
///
/// The secret is checked before revocation, so only the key's holder learns it was revoked.
pub fn verify_api_key(
    record: &ApiKeyRecord,
    presented: &str,
    now: Timestamp,
) -> Result<Principal, ApiKeyError> {
    let key = ApiKey::parse(presented).ok_or(ApiKeyError::Malformed)?;
    if key.prefix() != record.prefix {
        return Err(ApiKeyError::Invalid);
    }
    let matches: bool = digest(key.full).ct_eq(&record.hash).into();
    if !matches {
        return Err(ApiKeyError::Invalid);
    }
    if record.revoked_at.is_some_and(|at| at <= now) {
        return Err(ApiKeyError::Revoked);
    }
    Ok(Principal {
        subject: Subject::Service { id: format!("{API_KEY_SUBJECT_PREFIX}{}", record.prefix) },
        scopes: record.scopes,
        bound_profile: None,
        session_id: None,
        auth_time: None,
    })
}

#[cfg(test)]
mod tests {
    use playhead_core::auth::Scope;

    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    fn new_key() -> (ApiKeySecret, ApiKeyRecord) {
        ApiKey::generate("importer", Scopes::empty().with(Scope::CatalogWrite), NOW)
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let (key, record) = new_key();
        let text = key.expose();
        assert_eq!(text.len(), KEY_LEN);
        assert!(text.starts_with(&format!("phk_{}_", record.prefix)));
        assert_eq!(record.prefix.len(), PREFIX_LEN);
        assert!(record.prefix.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(URL_SAFE_NO_PAD.decode(&text[KEY_LEN - SECRET_LEN..]).unwrap().len(), 32);
        assert_eq!(record.hash, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
        assert_eq!((record.name.as_str(), record.created_at, record.revoked_at), ("importer", NOW, None));
        assert_eq!(ApiKey::parse(text).unwrap().prefix(), record.prefix);
        let (other, _) = new_key();
        assert_ne!(other.expose(), text);
    }

    #[test]
    fn a_genuine_key_verifies_as_a_scoped_service() {
        let (key, record) = new_key();
        let principal = verify_api_key(&record, key.expose(), NOW).unwrap();
        assert_eq!(principal.subject, Subject::Service { id: format!("apikey:{}", record.prefix) });
        assert_eq!(principal.scopes, record.scopes);
        assert_eq!((principal.bound_profile, principal.session_id), (None, None));
    }

    #[test]
    fn a_wrong_secret_is_invalid() {
        let (key, record) = new_key();
        let text = key.expose();
        // Same prefix, different (well-formed) secret.
        let other_secret = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let forged = format!("phk_{}_{other_secret}", record.prefix);
        assert_eq!(verify_api_key(&record, &forged, NOW), Err(ApiKeyError::Invalid));
        // Another key's record.
        let (_, other_record) = new_key();
        assert_eq!(verify_api_key(&other_record, text, NOW), Err(ApiKeyError::Invalid));
        // Right prefix but the hash was for something else.
        let mut tampered = record.clone();
        tampered.hash[0] ^= 1;
        assert_eq!(verify_api_key(&tampered, text, NOW), Err(ApiKeyError::Invalid));
    }

    #[test]
    fn revoked_keys_are_refused_from_the_revocation_time_on() {
        let (key, mut record) = new_key();
        record.revoked_at = Some(NOW);
        assert_eq!(verify_api_key(&record, key.expose(), NOW), Err(ApiKeyError::Revoked));
        assert_eq!(verify_api_key(&record, key.expose(), NOW.plus_ms(-1)).map(|_| ()), Ok(()));
        // A stranger with the prefix but not the secret does not learn about the revocation.
        let forged = format!("phk_{}_{}", record.prefix, URL_SAFE_NO_PAD.encode([1u8; 32]));
        assert_eq!(verify_api_key(&record, &forged, NOW), Err(ApiKeyError::Invalid));
    }

    #[test]
    fn malformed_strings_are_refused() {
        let (key, record) = new_key();
        let text = key.expose();
        let secret = &text[KEY_LEN - SECRET_LEN..];
        let cases = [
            String::new(),
            "phk_".into(),
            text[..KEY_LEN - 1].to_owned(),
            format!("{text}A"),
            text.replacen("phk_", "PHK_", 1),
            text.replacen("phk_", "pk_", 1),
            format!("phk_{}-{secret}", record.prefix),
            format!("phk_{}_{secret}", record.prefix.to_uppercase()),
            format!("phk_{}0_{}", &record.prefix[..11], secret),
            format!("phk_{}_{}", record.prefix, "=".repeat(SECRET_LEN)),
            // 43 characters whose last one carries stray bits: not the canonical encoding.
            format!("phk_{}_{}B", record.prefix, "A".repeat(SECRET_LEN - 1)),
            format!("phk_{}_{}é", record.prefix, &secret[..SECRET_LEN - 2]),
            " ".repeat(KEY_LEN),
        ];
        for bad in &cases {
            assert!(ApiKey::parse(bad).is_none(), "{bad:?} parsed");
            assert_eq!(verify_api_key(&record, bad, NOW), Err(ApiKeyError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn the_plaintext_never_reaches_the_record_or_debug_output() {
        let (key, record) = new_key();
        let text = key.expose().to_owned();
        let secret = &text[KEY_LEN - SECRET_LEN..];
        let record_dump = format!("{record:?}");
        assert!(!record_dump.contains(secret) && !record_dump.contains(&text), "{record_dump}");
        assert_ne!(record.name, text);
        let key_dump = format!("{key:?}");
        assert!(!key_dump.contains(secret), "{key_dump}");
        assert!(key_dump.contains(&record.prefix), "{key_dump}");
        let parsed_dump = format!("{:?}", ApiKey::parse(&text).unwrap());
        assert!(!parsed_dump.contains(secret), "{parsed_dump}");
    }
}
