//! The authorization server's rows (`IdentityStore`): clients, sessions, web sessions, codes,
//! device codes, refresh tokens, signing keys and the audit log, decoded once.
//!
//! The rule: the `*_COLS` lists are both what the adapters insert and what they select, so an
//! insert, a `RETURNING` and a decoder can never disagree on a column.

use playhead_core::StoreError;
use playhead_core::identity::{
    AuditEntry, AuthCode, ClientType, DenialKind, DeviceCode, DeviceStatus, GrantType, OAuthClient,
    RefreshToken, Session, SigningKeyRecord, TokenDenial, WebSession,
};
use playhead_core::ids::{AccountId, ProfileId};

use crate::columns::{Columns, FromColumns};
use crate::error::corrupt;

/// The columns of `oauth_clients`, in insert order.
pub const CLIENT_COLS: &str =
    "client_id, name, client_type, secret_hash, redirect_uris, grants, scopes, created_at";
/// The columns of `sessions`, in insert order.
pub const SESSION_COLS: &str =
    "id, account_id, client_id, scopes, profile_id, auth_time, created_at, revoked_at";
/// The columns of `web_sessions`, in insert order.
pub const WEB_SESSION_COLS: &str = "hash, account_id, auth_time, expires_at, revoked_at";
/// The columns of `auth_codes`, in insert order.
pub const CODE_COLS: &str = "hash, client_id, account_id, redirect_uri, code_challenge, scopes, profile_id, \
                             auth_time, session_id, expires_at, used_at";
/// The columns of `device_codes`, in insert order.
pub const DEVICE_COLS: &str = "hash, user_code, client_id, scopes, expires_at, interval_secs, last_poll_at, \
                               status, account_id, profile_id, auth_time, version";
/// The columns of `refresh_tokens`, in insert order.
pub const REFRESH_COLS: &str = "hash, session_id, client_id, created_at, expires_at, used_at";

/// The columns of `token_denials`, in insert order.
pub const DENIAL_COLS: &str = "kind, id, client_id, revoked_at, until";

/// From [`DENIAL_COLS`].
impl FromColumns for TokenDenial {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            kind: c.named("kind", DenialKind::parse)?,
            id: c.string("id")?,
            client_id: c.string("client_id")?,
            revoked_at: c.timestamp("revoked_at")?,
            until: c.timestamp("until")?,
        })
    }
}

/// From [`CLIENT_COLS`] (`redirect_uris` and `grants` as JSON text).
impl FromColumns for OAuthClient {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        let grants: Vec<String> = c.json("grants")?;
        Ok(Self {
            client_id: c.string("client_id")?,
            name: c.string("name")?,
            client_type: c.named("client_type", ClientType::parse)?,
            secret_hash: c.opt_hash("secret_hash")?,
            redirect_uris: c.json("redirect_uris")?,
            grants: grants
                .iter()
                .map(|g| GrantType::parse(g).ok_or_else(|| corrupt("grants", g)))
                .collect::<Result<_, _>>()?,
            scopes: c.scopes("scopes")?,
            created_at: c.timestamp("created_at")?,
        })
    }
}

/// From [`SESSION_COLS`].
impl FromColumns for Session {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            id: c.string("id")?,
            account: account(c)?,
            client_id: c.string("client_id")?,
            scopes: c.scopes("scopes")?,
            profile: profile(c)?,
            auth_time: c.timestamp("auth_time")?,
            created_at: c.timestamp("created_at")?,
            revoked_at: c.opt_timestamp("revoked_at")?,
        })
    }
}

/// The columns a devices list reads: [`SESSION_COLS`] and the activity columns.
pub const SESSION_ACTIVITY_COLS: &str = "id, account_id, client_id, scopes, profile_id, auth_time, created_at, \
                                         revoked_at, first_addr, last_seen_at, last_addr";

/// From [`SESSION_ACTIVITY_COLS`] (a session never refreshed was last seen when it started).
impl FromColumns for playhead_core::identity::SessionActivity {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        let session = Session::from_columns(c)?;
        let last_seen_at = c.opt_timestamp("last_seen_at")?.unwrap_or(session.created_at);
        Ok(Self {
            first_addr: c.opt_string("first_addr")?,
            last_seen_at,
            last_addr: c.opt_string("last_addr")?,
            session,
        })
    }
}

/// From [`WEB_SESSION_COLS`].
impl FromColumns for WebSession {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            hash: c.hash("hash")?,
            account: account(c)?,
            auth_time: c.timestamp("auth_time")?,
            expires_at: c.timestamp("expires_at")?,
            revoked_at: c.opt_timestamp("revoked_at")?,
        })
    }
}

/// From [`CODE_COLS`].
impl FromColumns for AuthCode {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            hash: c.hash("hash")?,
            client_id: c.string("client_id")?,
            account: account(c)?,
            redirect_uri: c.string("redirect_uri")?,
            code_challenge: c.string("code_challenge")?,
            scopes: c.scopes("scopes")?,
            profile: profile(c)?,
            auth_time: c.timestamp("auth_time")?,
            session_id: c.string("session_id")?,
            expires_at: c.timestamp("expires_at")?,
            used_at: c.opt_timestamp("used_at")?,
        })
    }
}

/// From [`DEVICE_COLS`]: the approval's columns are read only for an approved code.
impl FromColumns for DeviceCode {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        let status = match c.text("status")? {
            "pending" => DeviceStatus::Pending,
            "denied" => DeviceStatus::Denied,
            "consumed" => DeviceStatus::Consumed,
            "approved" => DeviceStatus::Approved {
                account: account(c)?,
                profile: profile(c)?,
                auth_time: c.timestamp("auth_time")?,
            },
            other => return Err(corrupt("status", other)),
        };
        Ok(Self {
            hash: c.hash("hash")?,
            user_code: c.string("user_code")?,
            client_id: c.string("client_id")?,
            scopes: c.scopes("scopes")?,
            expires_at: c.timestamp("expires_at")?,
            interval_secs: c.i64("interval_secs")?,
            last_poll_at: c.opt_timestamp("last_poll_at")?,
            status,
            version: c.i64("version")?,
        })
    }
}

/// The `status` column of a device code and the approval's columns (`account_id`, `profile_id`,
/// `auth_time`: NULL unless approved). Ids travel as text; PostgreSQL casts them (`$n::uuid`).
pub fn device_status(d: &DeviceCode) -> (&'static str, Option<String>, Option<String>, Option<i64>) {
    match &d.status {
        DeviceStatus::Pending => ("pending", None, None, None),
        DeviceStatus::Denied => ("denied", None, None, None),
        DeviceStatus::Consumed => ("consumed", None, None, None),
        DeviceStatus::Approved { account, profile, auth_time } => {
            ("approved", Some(account.to_string()), profile.map(|p| p.to_string()), Some(auth_time.0))
        }
    }
}

/// From [`REFRESH_COLS`].
impl FromColumns for RefreshToken {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            hash: c.hash("hash")?,
            session_id: c.string("session_id")?,
            client_id: c.string("client_id")?,
            created_at: c.timestamp("created_at")?,
            expires_at: c.timestamp("expires_at")?,
            used_at: c.opt_timestamp("used_at")?,
        })
    }
}

/// A signing key (`kid, pem, created_at`).
impl FromColumns for SigningKeyRecord {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self { kid: c.string("kid")?, pem: c.string("pem")?, created_at: c.timestamp("created_at")? })
    }
}

/// An audit entry (`at, actor, action, detail, client_addr`).
impl FromColumns for AuditEntry {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        Ok(Self {
            at: c.timestamp("at")?,
            actor: c.string("actor")?,
            action: c.string("action")?,
            detail: c.string("detail")?,
            client_addr: c.opt_string("client_addr")?,
        })
    }
}

/// The `account_id` column.
pub fn account(c: &impl Columns) -> Result<AccountId, StoreError> {
    c.uuid("account_id").map(AccountId)
}

fn profile(c: &impl Columns) -> Result<Option<ProfileId>, StoreError> {
    Ok(c.opt_uuid("profile_id")?.map(ProfileId))
}
