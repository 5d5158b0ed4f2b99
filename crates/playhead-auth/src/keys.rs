//! The signing keys: Ed25519 key pairs kept as PKCS#8 PEM files under `<data dir>/keys/`.
//!
//! Every key in the directory verifies; the newest (by the creation time in its file name,
//! `signing-<unix_ms>-<kid>.pem`) signs. Rotation adds a key, so tokens signed by the previous
//! key stay valid until that key is retired. `kid` is the first 16 characters of
//! base64url(SHA-256(raw public key)), so it is derived from the key and checked against the file
//! name on load.
//!
//! The rules a contributor must keep here:
//! - A key file appears whole or not at all: written to a temporary file (mode 0600), synced,
//!   then renamed into place. Changes to the set (first key, rotation, retirement) happen under an
//!   exclusive lock on `keys/.lock`, so two processes starting at once agree on one first key.
//! - A file named like a key that does not load is an error, never skipped: skipping could
//!   silently change which key signs.
//! - Key material never reaches `Debug`, `Display` or an error message; errors name files only.
//!
//! In scale-out the replicas need one key set: a later `SigningKeyStore` port can hold the same
//! PEM text in the database ([`KeySet::from_pems`] builds a set from it).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::token::AccessClaims;

/// The JOSE `typ` of our access tokens (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

const KEYS_DIR: &str = "keys";
const LOCK_FILE: &str = ".lock";
const FILE_PREFIX: &str = "signing-";
const FILE_SUFFIX: &str = ".pem";
const KID_LEN: usize = 16;

/// Why key material could not be loaded, stored or used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading or writing the key directory failed.
    #[error("signing keys: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file named like a key is not a valid Ed25519 PKCS#8 key (or its name does not match it).
    #[error("signing keys: {path} is not a usable key file: {reason}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, without any key material.
        reason: &'static str,
    },
    /// A key given as PEM text (not from a file) is not a valid Ed25519 PKCS#8 key.
    #[error("signing keys: key {index} is not a valid Ed25519 PKCS#8 PEM key")]
    BadKey {
        /// Its position in the input.
        index: usize,
    },
    /// The key directory holds no key (and the call was not allowed to create one).
    #[error("signing keys: no key in {0}")]
    NoKeys(PathBuf),
    /// No key with this id is in the set.
    #[error("signing keys: no key with kid {0}")]
    UnknownKid(String),
    /// The newest key signs; rotate before retiring it.
    #[error("signing keys: {0} is the signing key; rotate first, then retire it")]
    SigningKeyRetired(String),
    /// Encoding a key or signing a token failed.
    #[error("signing keys: {0}")]
    Crypto(String),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AuthError + 'a {
    move |source| AuthError::Io { op, path: path.to_owned(), source }
}

/// One key pair with everything derived from it, computed once at load.
struct KeyPair {
    kid: String,
    /// Creation time (ms since the epoch) from the file name: orders the set.
    created_ms: i64,
    /// Raw public key, for the JWKS and the verifier.
    public: [u8; 32],
    /// PKCS#8 DER inside jsonwebtoken's key type (zeroized on drop by jsonwebtoken).
    encoding: EncodingKey,
}

impl KeyPair {
    fn new(signing: &SigningKey, created_ms: i64) -> Result<Self, AuthError> {
        let public = signing.verifying_key().to_bytes();
        let der = signing.to_pkcs8_der().map_err(|_| AuthError::Crypto("PKCS#8 encoding failed".into()))?;
        Ok(Self {
            kid: kid_of(&public),
            created_ms,
            public,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
        })
    }
}

/// `kid` = first 16 characters of base64url(SHA-256(raw public key)).
fn kid_of(public: &[u8; 32]) -> String {
    let mut kid = URL_SAFE_NO_PAD.encode(Sha256::digest(public));
    kid.truncate(KID_LEN);
    kid
}

/// The signing keys: every key verifies, the newest signs. Never empty.
pub struct KeySet {
    /// Oldest first; the last one signs.
    keys: Vec<KeyPair>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>())
            .field("signing_kid", &self.signing_kid())
            .finish()
    }
}

/// A public key as a JWK (RFC 7517, OKP form of RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: always `OKP`.
    pub kty: String,
    /// Curve: always `Ed25519`.
    pub crv: String,
    /// The raw public key, base64url without padding.
    pub x: String,
    /// Key id, as in the tokens' `kid` header.
    pub kid: String,
    /// Algorithm: always `EdDSA`.
    pub alg: String,
    /// Intended use: always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JWK Set (RFC 7517 section 5): what `/.well-known/jwks.json` serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, signing key first.
    pub keys: Vec<Jwk>,
}

impl KeySet {
    /// Load the keys under `<dir>/keys/`, creating the directory (0700) and a first key (0600)
    /// when there is none. Safe to run from several processes at once.
    pub fn load_or_create(dir: &Path) -> Result<Self, AuthError> {
        crate::install_crypto_provider();
        let keys_dir = dir.join(KEYS_DIR);
        let _lock = lock_dir(&keys_dir, Lock::Exclusive)?;
        let keys = read_keys(&keys_dir)?;
        if !keys.is_empty() {
            return Ok(Self { keys });
        }
        write_new_key(&keys_dir, None)?;
        Self::from_files(&keys_dir)
    }

    /// Load the keys under `<dir>/keys/` without creating any (`NoKeys` when there is none), e.g.
    /// to pick up a rotation done by another process.
    pub fn load(dir: &Path) -> Result<Self, AuthError> {
        crate::install_crypto_provider();
        let keys_dir = dir.join(KEYS_DIR);
        // Shared: several readers at once, but never in the middle of a retirement.
        let _lock = lock_dir(&keys_dir, Lock::Shared)?;
        Self::from_files(&keys_dir)
    }

    /// Add a new key under `<dir>/keys/` and return the set with it as the signing key. The older
    /// keys keep verifying until [`KeySet::retire`] removes them.
    pub fn rotate(dir: &Path) -> Result<Self, AuthError> {
        crate::install_crypto_provider();
        let keys_dir = dir.join(KEYS_DIR);
        let _lock = lock_dir(&keys_dir, Lock::Exclusive)?;
        let newest = read_keys(&keys_dir)?.last().map(|k| k.created_ms);
        write_new_key(&keys_dir, newest)?;
        Self::from_files(&keys_dir)
    }

    /// Delete the key `kid` from `<dir>/keys/`: tokens it signed stop verifying (once verifiers
    /// reload). The signing key cannot be retired.
    pub fn retire(dir: &Path, kid: &str) -> Result<Self, AuthError> {
        crate::install_crypto_provider();
        let keys_dir = dir.join(KEYS_DIR);
        let _lock = lock_dir(&keys_dir, Lock::Exclusive)?;
        let keys = read_keys(&keys_dir)?;
        let Some(key) = keys.iter().find(|k| k.kid == kid) else {
            return Err(AuthError::UnknownKid(kid.to_owned()));
        };
        if keys.last().is_some_and(|newest| newest.kid == kid) {
            return Err(AuthError::SigningKeyRetired(kid.to_owned()));
        }
        let path = keys_dir.join(file_name(key.created_ms, &key.kid));
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        sync_dir(&keys_dir)?;
        Self::from_files(&keys_dir)
    }

    /// A set of one fresh key held only in memory (tests, one-off tools).
    pub fn ephemeral() -> Result<Self, AuthError> {
        crate::install_crypto_provider();
        let key = KeyPair::new(&SigningKey::generate(&mut OsRng), unix_ms_now())?;
        Ok(Self { keys: vec![key] })
    }

    /// Build a set from PKCS#8 PEM texts, oldest first (the last one signs). For key storage other
    /// than files, e.g. a database shared by replicas.
    pub fn from_pems<S: AsRef<str>>(pems: &[S]) -> Result<Self, AuthError> {
        crate::install_crypto_provider();
        let keys = pems
            .iter()
            .enumerate()
            .map(|(index, pem)| {
                let signing =
                    SigningKey::from_pkcs8_pem(pem.as_ref()).map_err(|_| AuthError::BadKey { index })?;
                // Position stands in for creation time: the input order is the signing order.
                KeyPair::new(&signing, i64::try_from(index).unwrap_or(i64::MAX))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(AuthError::NoKeys(PathBuf::new()));
        }
        Ok(Self { keys })
    }

    /// A new Ed25519 key as PKCS#8 PEM with its `kid`, for key storage other than files (the
    /// identity store shares it between replicas). The PEM is wiped from memory when dropped.
    pub fn generate_pem() -> Result<(String, Zeroizing<String>), AuthError> {
        let signing = SigningKey::generate(&mut OsRng);
        let kid = kid_of(&signing.verifying_key().to_bytes());
        let pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| AuthError::Crypto("PKCS#8 PEM encoding failed".into()))?;
        Ok((kid, Zeroizing::new(pem.to_string())))
    }

    fn from_files(keys_dir: &Path) -> Result<Self, AuthError> {
        let keys = read_keys(keys_dir)?;
        if keys.is_empty() {
            return Err(AuthError::NoKeys(keys_dir.to_owned()));
        }
        Ok(Self { keys })
    }

    fn signing(&self) -> &KeyPair {
        // Every constructor refuses an empty set, so `keys` always has a last element.
        &self.keys[self.keys.len() - 1]
    }

    /// The id of the key that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        &self.signing().kid
    }

    /// The ids of all keys that verify, oldest first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// `(kid, raw Ed25519 public key)` of every key, oldest first: what a verifier needs.
    pub fn public_keys(&self) -> impl Iterator<Item = (&str, &[u8; 32])> {
        self.keys.iter().map(|k| (k.kid.as_str(), &k.public))
    }

    /// The public keys as a JWK Set (RFC 7517 / RFC 8037), signing key first.
    pub fn jwks(&self) -> Jwks {
        let keys = self
            .keys
            .iter()
            .rev()
            .map(|k| Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: URL_SAFE_NO_PAD.encode(k.public),
                kid: k.kid.clone(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
            })
            .collect();
        Jwks { keys }
    }

    /// Sign an access token (header `alg: EdDSA`, `typ: at+jwt`, `kid` of the signing key).
    pub fn issue(&self, claims: &AccessClaims) -> Result<String, AuthError> {
        let key = self.signing();
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| AuthError::Crypto(format!("signing failed: {e}")))
    }

    /// The encoding key that signs, so tests can forge tokens differing in one detail.
    #[cfg(test)]
    pub(crate) fn signing_encoding_key(&self) -> &EncodingKey {
        &self.signing().encoding
    }

    /// `(kid, decoding key)` of every key, for the verifier.
    pub(crate) fn decoding_keys(&self) -> Vec<(String, DecodingKey)> {
        self.keys.iter().map(|k| (k.kid.clone(), DecodingKey::from_ed_der(&k.public))).collect()
    }
}

fn file_name(created_ms: i64, kid: &str) -> String {
    // Zero-padded so a directory listing sorts in creation order too.
    format!("{FILE_PREFIX}{created_ms:015}-{kid}{FILE_SUFFIX}")
}

/// `signing-<ms>-<kid>.pem` -> `(ms, kid)`; `None` for names that are not key files at all.
fn parse_file_name(name: &str) -> Option<Result<(i64, &str), &'static str>> {
    let body = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    // The time has no '-', the kid (base64url) may: split at the first one.
    let parsed = body
        .split_once('-')
        .and_then(|(ms, kid)| Some((ms.parse::<i64>().ok()?, kid)))
        .filter(|(_, kid)| kid.len() == KID_LEN)
        .ok_or("file name is not signing-<unix_ms>-<kid>.pem");
    Some(parsed)
}

/// All keys in the directory, oldest first. An absent directory holds no keys.
fn read_keys(keys_dir: &Path) -> Result<Vec<KeyPair>, AuthError> {
    let entries = match fs::read_dir(keys_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", keys_dir)(e)),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", keys_dir))?;
        let name = entry.file_name();
        // Temporary files, the lock and anything else not named like a key are not keys.
        let Some(parsed) = name.to_str().and_then(parse_file_name) else { continue };
        let path = entry.path();
        let bad = |reason| AuthError::BadKeyFile { path: path.clone(), reason };
        let (created_ms, kid) = parsed.map_err(bad)?;
        let pem = Zeroizing::new(fs::read_to_string(&path).map_err(io_err("read", &path))?);
        let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|_| bad("not an Ed25519 PKCS#8 PEM key"))?;
        let key = KeyPair::new(&signing, created_ms)?;
        if key.kid != kid {
            return Err(bad("the kid in the file name does not match the key"));
        }
        keys.push(key);
    }
    keys.sort_by(|a, b| (a.created_ms, &a.kid).cmp(&(b.created_ms, &b.kid)));
    Ok(keys)
}

/// Create a key file atomically. Its time is now, but always after `after` so that a clock step
/// backwards cannot make the new key sort before the one it replaces.
fn write_new_key(keys_dir: &Path, after: Option<i64>) -> Result<(), AuthError> {
    let signing = SigningKey::generate(&mut OsRng);
    let created_ms = after.map_or(unix_ms_now(), |prev| unix_ms_now().max(prev.saturating_add(1)));
    let kid = kid_of(&signing.verifying_key().to_bytes());
    let pem = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| AuthError::Crypto("PKCS#8 PEM encoding failed".into()))?;

    let name = file_name(created_ms, &kid);
    let tmp = keys_dir.join(format!(".tmp-{name}"));
    let path = keys_dir.join(&name);
    let mut file = private_file_options().open(&tmp).map_err(io_err("create", &tmp))?;
    let written = file.write_all(pem.as_bytes()).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.map_err(io_err("write", &tmp)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
    sync_dir(keys_dir)
}

/// Who may hold the directory lock alongside us.
#[derive(Clone, Copy)]
enum Lock {
    /// Readers only.
    Shared,
    /// Whoever changes the set.
    Exclusive,
}

/// Create `keys_dir` (0700) if needed and hold a lock on its lock file until the returned file is
/// dropped. The OS releases the lock if the process dies, so it never goes stale.
fn lock_dir(keys_dir: &Path, lock: Lock) -> Result<File, AuthError> {
    create_private_dir(keys_dir)?;
    let path = keys_dir.join(LOCK_FILE);
    let mut options = private_file_options();
    options.create_new(false).create(true);
    let file = options.open(&path).map_err(io_err("open", &path))?;
    match lock {
        Lock::Shared => file.lock_shared(),
        Lock::Exclusive => file.lock(),
    }
    .map_err(io_err("lock", &path))?;
    Ok(file)
}

fn create_private_dir(path: &Path) -> Result<(), AuthError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io_err("create", path))?;
    // `mode` only applies to directories created now; tighten one that already existed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err("chmod", path))?;
    }
    Ok(())
}

/// Write-only, must not exist yet, mode 0600 on Unix.
fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Make a rename or removal durable (the directory entry itself must reach the disk).
fn sync_dir(dir: &Path) -> Result<(), AuthError> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_twice_gives_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeySet::load_or_create(dir.path()).unwrap();
        let b = KeySet::load_or_create(dir.path()).unwrap();
        assert_eq!(a.signing_kid(), b.signing_kid());
        assert_eq!(b.kids().count(), 1);
        assert_eq!(a.signing_kid().len(), KID_LEN);
        assert_eq!(KeySet::load(dir.path()).unwrap().signing_kid(), a.signing_kid());
    }

    #[test]
    fn load_without_create_reports_no_keys() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(KeySet::load(dir.path()), Err(AuthError::NoKeys(_))));
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let set = KeySet::load_or_create(dir.path()).unwrap();
        let keys_dir = dir.path().join(KEYS_DIR);
        assert_eq!(fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777, 0o700);
        let mut key_files = 0;
        for entry in fs::read_dir(&keys_dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            assert!(!name.starts_with(".tmp-"), "temporary file left behind: {name}");
            assert_eq!(entry.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{name}");
            if name.ends_with(FILE_SUFFIX) {
                key_files += 1;
                assert!(name.contains(set.signing_kid()));
                let pem = fs::read_to_string(entry.path()).unwrap();
                assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM expected");
            }
        }
        assert_eq!(key_files, 1);
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_loose_directory_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join(KEYS_DIR);
        fs::create_dir(&keys_dir).unwrap();
        fs::set_permissions(&keys_dir, fs::Permissions::from_mode(0o755)).unwrap();
        KeySet::load_or_create(dir.path()).unwrap();
        assert_eq!(fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn rotation_adds_a_newer_signing_key_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeySet::load_or_create(dir.path()).unwrap();
        let rotated = KeySet::rotate(dir.path()).unwrap();
        assert_ne!(rotated.signing_kid(), first.signing_kid());
        assert_eq!(rotated.kids().collect::<Vec<_>>(), vec![first.signing_kid(), rotated.signing_kid()]);
        // A later load agrees on which key signs.
        assert_eq!(KeySet::load_or_create(dir.path()).unwrap().signing_kid(), rotated.signing_kid());

        let jwks = rotated.jwks();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(jwks.keys[0].kid, rotated.signing_kid(), "signing key first");
        assert_eq!(jwks.keys[1].kid, first.signing_kid());
    }

    #[test]
    fn the_signing_key_cannot_be_retired_but_older_ones_can() {
        let dir = tempfile::tempdir().unwrap();
        let old = KeySet::load_or_create(dir.path()).unwrap().signing_kid().to_owned();
        let new = KeySet::rotate(dir.path()).unwrap().signing_kid().to_owned();
        assert!(matches!(KeySet::retire(dir.path(), &new), Err(AuthError::SigningKeyRetired(_))));
        assert!(matches!(KeySet::retire(dir.path(), "nope"), Err(AuthError::UnknownKid(_))));
        let after = KeySet::retire(dir.path(), &old).unwrap();
        assert_eq!(after.kids().collect::<Vec<_>>(), vec![new.as_str()]);
    }

    #[test]
    fn concurrent_first_start_agrees_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || KeySet::load_or_create(&path).unwrap().signing_kid().to_owned())
            })
            .collect();
        let kids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(kids.iter().all(|k| k == &kids[0]), "{kids:?}");
        assert_eq!(KeySet::load(&path).unwrap().kids().count(), 1);
    }

    #[test]
    fn two_keys_written_without_the_lock_both_load_and_the_newest_signs() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join(KEYS_DIR);
        create_private_dir(&keys_dir).unwrap();
        write_new_key(&keys_dir, Some(2_000_000_000_000)).unwrap();
        write_new_key(&keys_dir, Some(1_000)).unwrap();
        let set = KeySet::load(dir.path()).unwrap();
        assert_eq!(set.kids().count(), 2);
        let newest = fs::read_dir(&keys_dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.starts_with(FILE_PREFIX))
            .max()
            .unwrap();
        assert!(newest.contains(set.signing_kid()), "{newest} should sign");
    }

    #[test]
    fn a_damaged_or_renamed_key_file_is_an_error_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let set = KeySet::load_or_create(dir.path()).unwrap();
        let keys_dir = dir.path().join(KEYS_DIR);
        let original = fs::read_dir(&keys_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "pem"))
            .unwrap();

        // Same key under another kid: the name is checked against the key.
        let renamed = keys_dir.join(file_name(1, "AAAAAAAAAAAAAAAA"));
        fs::copy(&original, &renamed).unwrap();
        let err = KeySet::load(dir.path()).unwrap_err();
        assert!(matches!(err, AuthError::BadKeyFile { .. }), "{err}");
        fs::remove_file(&renamed).unwrap();

        fs::write(keys_dir.join(file_name(2, set.signing_kid())), "not a key").unwrap();
        let err = KeySet::load(dir.path()).unwrap_err();
        assert!(matches!(err, AuthError::BadKeyFile { .. }), "{err}");
        assert!(!err.to_string().contains("BEGIN"), "{err}");
    }

    #[test]
    fn unrelated_files_in_the_directory_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let set = KeySet::load_or_create(dir.path()).unwrap();
        let keys_dir = dir.path().join(KEYS_DIR);
        fs::write(keys_dir.join(".tmp-signing-000000000000001-xxxxxxxxxxxxxxxx.pem"), "partial").unwrap();
        fs::write(keys_dir.join("README"), "hello").unwrap();
        assert_eq!(KeySet::load(dir.path()).unwrap().signing_kid(), set.signing_kid());
    }

    #[test]
    fn kid_is_derived_from_the_public_key() {
        let set = KeySet::ephemeral().unwrap();
        let (kid, public) = set.public_keys().next().unwrap();
        let digest = Sha256::digest(public);
        assert_eq!(kid, &URL_SAFE_NO_PAD.encode(digest)[..16]);
    }

    #[test]
    fn jwks_is_rfc_8037_and_usable_by_jsonwebtoken() {
        let set = KeySet::ephemeral().unwrap();
        let json = serde_json::to_value(set.jwks()).unwrap();
        let key = &json["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], set.signing_kid());
        assert_eq!(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);
        assert!(key.get("d").is_none(), "private part must never be published");
        // Another service reading our JWKS with jsonwebtoken gets a working key.
        let parsed: jsonwebtoken::jwk::JwkSet = serde_json::from_value(json).unwrap();
        assert!(DecodingKey::from_jwk(parsed.find(set.signing_kid()).unwrap()).is_ok());
    }

    #[test]
    fn pem_round_trip_keeps_the_kid_and_order() {
        let a = SigningKey::generate(&mut OsRng).to_pkcs8_pem(LineEnding::LF).unwrap();
        let b = SigningKey::generate(&mut OsRng).to_pkcs8_pem(LineEnding::LF).unwrap();
        let set = KeySet::from_pems(&[a.as_str(), b.as_str()]).unwrap();
        let again = KeySet::from_pems(&[b.as_str()]).unwrap();
        assert_eq!(set.signing_kid(), again.signing_kid());
        assert!(matches!(KeySet::from_pems(&["junk"]), Err(AuthError::BadKey { index: 0 })));
        assert!(matches!(KeySet::from_pems::<&str>(&[]), Err(AuthError::NoKeys(_))));
    }

    #[test]
    fn debug_shows_kids_not_keys() {
        let set = KeySet::ephemeral().unwrap();
        let shown = format!("{set:?}");
        assert!(shown.contains(set.signing_kid()));
        assert!(!shown.contains("encoding") && !shown.contains("content"), "{shown}");
    }
}
