//! The authorization server's records and the pure rules that move them from state to state:
//! OAuth clients, sign-in sessions (each one refresh-token family, named by the access tokens'
//! `sid`), authorization codes, device codes, refresh tokens, signing keys and audit entries.
//!
//! The rules a contributor must keep here:
//! - No secret is ever a field: codes, refresh tokens, client secrets and cookies are stored as
//!   SHA-256 digests (they are 256-bit random, so a slow hash buys nothing) and passwords as
//!   argon2id PHC strings. Debug output never shows a digest's preimage because none is held.
//! - State changes that consume something (a code, a refresh token, a device code) are decided
//!   here as pure functions of (record, now) and written by the store as one conditional update,
//!   so two racing requests cannot both win.

use std::fmt;

use crate::auth::Scopes;
use crate::ids::{AccountId, ProfileId};
use crate::time::Timestamp;

/// An OAuth grant type this server implements (there is no password grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 8628 device authorization.
    DeviceCode,
    /// RFC 6749 authorization code, with RFC 7636 PKCE (S256 only).
    AuthorizationCode,
    /// Refresh with rotation and reuse detection.
    RefreshToken,
    /// A confidential client acting for itself.
    ClientCredentials,
}

impl GrantType {
    /// Every grant, in a stable order.
    pub const ALL: [GrantType; 4] = [
        GrantType::DeviceCode,
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    /// The wire name (`grant_type` parameter).
    pub const fn as_str(self) -> &'static str {
        match self {
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    /// Parse a wire name; the short `device_code` is accepted on the command line.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "device_code" {
            return Some(GrantType::DeviceCode);
        }
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Whether a client can keep a secret (RFC 6749 section 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    /// A TV, phone or browser app: no secret, PKCE instead.
    Public,
    /// A backend: authenticates with its secret.
    Confidential,
}

impl ClientType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientType::Public => "public",
            ClientType::Confidential => "confidential",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(ClientType::Public),
            "confidential" => Some(ClientType::Confidential),
            _ => None,
        }
    }
}

/// A registered OAuth client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// Public identifier.
    pub client_id: String,
    /// Shown on the consent and device pages.
    pub name: String,
    /// Public or confidential.
    pub client_type: ClientType,
    /// SHA-256 of the secret (confidential clients only).
    pub secret_hash: Option<[u8; 32]>,
    /// Exact redirect URIs (authorization code grant).
    pub redirect_uris: Vec<String>,
    /// Grants it may use.
    pub grants: Vec<GrantType>,
    /// The most it may ask for.
    pub scopes: Scopes,
    /// When registered.
    pub created_at: Timestamp,
}

/// A sign-in session on one device: one refresh-token family, the `sid` of its access tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The `sid`.
    pub id: String,
    /// Whose.
    pub account: AccountId,
    /// Through which client.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Scopes,
    /// The profile the tokens are bound to, if any.
    pub profile: Option<ProfileId>,
    /// When the person last authenticated interactively.
    pub auth_time: Timestamp,
    /// When created.
    pub created_at: Timestamp,
    /// When revoked (family reuse, sign-out, RFC 7009), if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A live session as the account's devices list shows it: the session, and when and from where
/// it was last used (a sign-in or a token refresh; an access token is used without a store
/// write, so "last seen" is at most one access-token lifetime behind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionActivity {
    /// The session.
    pub session: Session,
    /// The client address it was started from, when known.
    pub first_addr: Option<String>,
    /// When it was last used (its start when never refreshed).
    pub last_seen_at: Timestamp,
    /// The client address it was last used from, when known.
    pub last_addr: Option<String>,
}

/// A browser session on the hosted pages (the `__Host-` cookie holds its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie value.
    pub hash: [u8; 32],
    /// Who signed in.
    pub account: AccountId,
    /// When they typed their password.
    pub auth_time: Timestamp,
    /// When the cookie stops working.
    pub expires_at: Timestamp,
    /// When signed out, if they did.
    pub revoked_at: Option<Timestamp>,
}

/// An authorization code (RFC 6749 section 4.1, with PKCE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    /// SHA-256 of the code.
    pub hash: [u8; 32],
    /// The client it was issued to.
    pub client_id: String,
    /// The person who approved it.
    pub account: AccountId,
    /// The redirect URI it was sent to (must match exactly at the token endpoint).
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Approved scopes.
    pub scopes: Scopes,
    /// Bound profile, if any.
    pub profile: Option<ProfileId>,
    /// When the person authenticated.
    pub auth_time: Timestamp,
    /// The session its tokens will belong to (so a reused code can revoke them).
    pub session_id: String,
    /// Short-lived.
    pub expires_at: Timestamp,
    /// Set once, by the single successful exchange.
    pub used_at: Option<Timestamp>,
}

/// Where a device authorization stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Waiting for a person to enter the user code.
    Pending,
    /// Approved by `account` (optionally bound to a profile) at `auth_time`.
    Approved {
        /// Who approved.
        account: AccountId,
        /// Bound profile.
        profile: Option<ProfileId>,
        /// When they authenticated.
        auth_time: Timestamp,
    },
    /// Denied by the person.
    Denied,
    /// Tokens were issued, or the denial or expiry was reported: nothing more to say.
    Consumed,
}

/// A device authorization (RFC 8628).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// SHA-256 of the device code.
    pub hash: [u8; 32],
    /// The code the person types (8 letters, stored without the dash).
    pub user_code: String,
    /// The TV's client.
    pub client_id: String,
    /// Requested scopes.
    pub scopes: Scopes,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Minimum seconds between polls (grows by 5 on each slow_down).
    pub interval_secs: i64,
    /// The last poll, for slow_down.
    pub last_poll_at: Option<Timestamp>,
    /// Where it stands.
    pub status: DeviceStatus,
    /// Bumped by every update: the store's conditional write checks it.
    pub version: i64,
}

/// What a poll of the token endpoint with a device code answers (RFC 8628 section 3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// Issue tokens for this approval; the record is now consumed.
    Issue {
        /// Who approved.
        account: AccountId,
        /// Bound profile.
        profile: Option<ProfileId>,
        /// When they authenticated.
        auth_time: Timestamp,
    },
    /// `authorization_pending`.
    Pending,
    /// `slow_down`: the interval grew by 5 s.
    SlowDown,
    /// `access_denied`.
    Denied,
    /// `expired_token` (also for a code already consumed: it can never succeed again).
    Expired,
}

impl DeviceCode {
    /// Decide a poll at `now`: the answer and the record to write back (with its version bumped),
    /// or `None` when nothing changes. Approval, denial and expiry consume the record.
    pub fn poll(&self, now: Timestamp) -> (DevicePoll, Option<DeviceCode>) {
        let mut next = self.clone();
        next.version += 1;
        if self.status == DeviceStatus::Consumed {
            return (DevicePoll::Expired, None);
        }
        if now >= self.expires_at {
            next.status = DeviceStatus::Consumed;
            return (DevicePoll::Expired, Some(next));
        }
        match &self.status {
            DeviceStatus::Approved { account, profile, auth_time } => {
                next.status = DeviceStatus::Consumed;
                let answer =
                    DevicePoll::Issue { account: *account, profile: *profile, auth_time: *auth_time };
                (answer, Some(next))
            }
            DeviceStatus::Denied => {
                next.status = DeviceStatus::Consumed;
                (DevicePoll::Denied, Some(next))
            }
            DeviceStatus::Pending | DeviceStatus::Consumed => {
                let too_soon =
                    self.last_poll_at.is_some_and(|last| now.0 - last.0 < self.interval_secs * 1000);
                next.last_poll_at = Some(now);
                if too_soon {
                    // RFC 8628 section 3.5: the interval grows by 5 s for this and all later polls.
                    next.interval_secs += 5;
                    (DevicePoll::SlowDown, Some(next))
                } else {
                    (DevicePoll::Pending, Some(next))
                }
            }
        }
    }
}

/// A refresh token: one member of its session's family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// Its family (the session).
    pub session_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// When issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was exchanged (once; a later exchange is a reuse).
    pub used_at: Option<Timestamp>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// First use: it is now marked used and its successor stored, in one transaction.
    Rotated(RefreshToken),
    /// Already used before (at `used_at`): a replay, or a client that lost the response.
    Reused(RefreshToken),
    /// No such token.
    Unknown,
}

/// How long after a rotation the same client may present the old token again and get a fresh
/// pair instead of having its family revoked (a TV on flaky Wi-Fi that lost the response).
pub const REFRESH_REUSE_GRACE_MS: i64 = 10_000;

/// What to do about a reused refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReuseVerdict {
    /// Within the grace and by the same client: issue a new pair in the same family.
    Grace,
    /// Anything else: revoke the whole family.
    RevokeFamily,
}

/// Decide a reuse (RFC 9700 section 4.14.2): replayed tokens revoke the family, except the same
/// client retrying within `grace_ms` (default [`REFRESH_REUSE_GRACE_MS`]) of the rotation.
pub fn judge_reuse(
    token: &RefreshToken,
    presenting_client: &str,
    now: Timestamp,
    grace_ms: i64,
) -> ReuseVerdict {
    match token.used_at {
        Some(used) if token.client_id == presenting_client && now.0 - used.0 <= grace_ms => {
            ReuseVerdict::Grace
        }
        _ => ReuseVerdict::RevokeFamily,
    }
}

/// What consuming an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// First use: now marked used.
    Fresh(AuthCode),
    /// Already used: the caller revokes the session it issued (RFC 6749 section 4.1.2).
    Reused(AuthCode),
    /// No such code.
    Unknown,
}

/// A signing key as stored (PKCS#8 PEM of an Ed25519 key).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id.
    pub kid: String,
    /// The private key, PEM. Never printed.
    pub pem: String,
    /// When created: the newest signs.
    pub created_at: Timestamp,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// One audit log line: who did what, when, from where. Never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who (an account id, `client:<id>`, an e-mail as typed for failed sign-ins, or `anonymous`).
    pub actor: String,
    /// What (`signin.failed`, `refresh.reuse`, `profiles_any.access`...).
    pub action: String,
    /// Details (ids, reasons), as JSON text.
    pub detail: String,
    /// The client address, if known.
    pub client_addr: Option<String>,
}

/// What a deny-list entry matches: access tokens are JWTs checked without a store read, so a
/// token with no session (client credentials) is revoked by naming it, and a deleted client by
/// naming every token it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialKind {
    /// One access token, by its `jti`.
    Token,
    /// Every access token whose `client_id` is this (the client was deleted).
    Client,
}

impl DenialKind {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Token => "jti",
            Self::Client => "client",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jti" => Some(Self::Token),
            "client" => Some(Self::Client),
            _ => None,
        }
    }
}

/// A deny-list entry: tokens it matches are refused everywhere until `until`, after which every
/// token it could match has expired anyway (so the entry can be pruned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDenial {
    /// What `id` names.
    pub kind: DenialKind,
    /// A `jti` or a `client_id`.
    pub id: String,
    /// The client that revoked it (the token's own client, or the deleted client).
    pub client_id: String,
    /// When revoked.
    pub revoked_at: Timestamp,
    /// The latest expiry of a token it matches, with the verifier's leeway.
    pub until: Timestamp,
}

/// The alphabet of user codes (RFC 8628 section 6.1: no vowels, no look-alikes).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Normalise what a person typed as a user code: upper case, dashes and spaces removed; `None`
/// unless it is 8 letters of [`USER_CODE_ALPHABET`].
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String =
        typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == 8 && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// `XXXX-XXXX`, as shown to people.
pub fn display_user_code(code: &str) -> String {
    if code.len() == 8 { format!("{}-{}", &code[..4], &code[4..]) } else { code.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(status: DeviceStatus) -> DeviceCode {
        DeviceCode {
            hash: [1; 32],
            user_code: "BCDFGHJK".into(),
            client_id: "tv".into(),
            scopes: Scopes::empty(),
            expires_at: Timestamp(1_800_000),
            interval_secs: 5,
            last_poll_at: None,
            status,
            version: 1,
        }
    }

    #[test]
    fn pending_polls_slow_down_when_too_fast_and_the_interval_keeps_growing() {
        let d = device(DeviceStatus::Pending);
        let (answer, next) = d.poll(Timestamp(0));
        assert_eq!(answer, DevicePoll::Pending);
        let next = next.unwrap();
        assert_eq!(next.version, 2);
        let (answer, next) = next.poll(Timestamp(2_000));
        assert_eq!(answer, DevicePoll::SlowDown);
        let next = next.unwrap();
        assert_eq!(next.interval_secs, 10);
        // 6 s later would have been fine at 5 s, but the interval is now 10 s.
        let (answer, next) = next.poll(Timestamp(8_000));
        assert_eq!(answer, DevicePoll::SlowDown);
        assert_eq!(next.unwrap().interval_secs, 15);
    }

    #[test]
    fn approval_denial_and_expiry_consume_the_code() {
        let account = AccountId(uuid::Uuid::from_u128(7));
        let approved = device(DeviceStatus::Approved { account, profile: None, auth_time: Timestamp(5) });
        let (answer, next) = approved.poll(Timestamp(10));
        assert!(matches!(answer, DevicePoll::Issue { account: a, .. } if a == account));
        let consumed = next.unwrap();
        assert_eq!(consumed.status, DeviceStatus::Consumed);
        assert_eq!(consumed.poll(Timestamp(20_000)), (DevicePoll::Expired, None));

        let (answer, next) = device(DeviceStatus::Denied).poll(Timestamp(10));
        assert_eq!(answer, DevicePoll::Denied);
        assert_eq!(next.unwrap().status, DeviceStatus::Consumed);

        let (answer, next) = approved.poll(Timestamp(1_800_000));
        assert_eq!(answer, DevicePoll::Expired, "an approval after expiry issues nothing");
        assert_eq!(next.unwrap().status, DeviceStatus::Consumed);
    }

    #[test]
    fn reuse_grace_is_same_client_and_ten_seconds() {
        let t = RefreshToken {
            hash: [0; 32],
            session_id: "s".into(),
            client_id: "tv".into(),
            created_at: Timestamp(0),
            expires_at: Timestamp(i64::MAX),
            used_at: Some(Timestamp(1_000)),
        };
        assert_eq!(judge_reuse(&t, "tv", Timestamp(11_000), REFRESH_REUSE_GRACE_MS), ReuseVerdict::Grace);
        assert_eq!(
            judge_reuse(&t, "tv", Timestamp(11_001), REFRESH_REUSE_GRACE_MS),
            ReuseVerdict::RevokeFamily
        );
        assert_eq!(
            judge_reuse(&t, "other", Timestamp(1_500), REFRESH_REUSE_GRACE_MS),
            ReuseVerdict::RevokeFamily
        );
    }

    #[test]
    fn user_codes_are_normalised_and_checked() {
        assert_eq!(normalize_user_code("bcdf-ghjk").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize_user_code("BCDF GHJK").as_deref(), Some("BCDFGHJK"));
        assert_eq!(normalize_user_code("ABCD-EFGH"), None, "vowels are not in the alphabet");
        assert_eq!(normalize_user_code("BCDFGHJ"), None);
        assert_eq!(display_user_code("BCDFGHJK"), "BCDF-GHJK");
    }

    #[test]
    fn grant_names_round_trip() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(g));
        }
        assert_eq!(GrantType::parse("password"), None);
        assert_eq!(GrantType::parse("device_code"), Some(GrantType::DeviceCode));
    }
}
