//! The account's devices: its live sign-in sessions, signing one out, and "sign out everywhere"
//! (issue 17, decision 0091). Served under `/v1/me`, so errors are [`AppError`]s
//! (problem+json), not OAuth errors.
//!
//! Rules: only a person's own, unbound token may list or revoke (a kids TV signed in to one
//! profile cannot sign the parents out; a service has no devices); another account's session
//! is 404, never 403. A revocation takes effect at once on refresh, and for access tokens within
//! the revocation list's bound (`Revocations::MAX_STALENESS`, 30 s) on every replica.

use std::collections::HashMap;

use playhead_core::auth::{Principal, Scopes};
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::time::Timestamp;
use serde_json::json;

use super::AuthServer;
use crate::AppError;
use crate::access::Operation;
use crate::policy;

/// One signed-in device as the account sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSession {
    /// The session id (the `sid` of its tokens).
    pub id: String,
    /// The app it signed in through.
    pub client_id: String,
    /// That app's registered name (the client id when the client is gone).
    pub client_name: String,
    /// The profile its tokens are bound to, if any.
    pub profile: Option<ProfileId>,
    /// What it may do.
    pub scopes: Scopes,
    /// First seen: when it signed in.
    pub created_at: Timestamp,
    /// Last seen: its last sign-in or token refresh.
    pub last_seen_at: Timestamp,
    /// Where it signed in from, when known.
    pub first_addr: Option<String>,
    /// Where it was last seen from, when known.
    pub last_addr: Option<String>,
    /// The session of the token asking.
    pub current: bool,
}

impl AuthServer {
    /// The account a devices request acts on: a person's own token, not bound to a profile.
    fn device_owner(p: &Principal, op: Operation) -> Result<AccountId, AppError> {
        policy::require(p, op)?;
        let account = p.account().ok_or(AppError::NotFound("account"))?;
        if p.bound_profile.is_some() {
            return Err(AppError::Forbidden("a profile-bound token cannot manage the account's devices"));
        }
        Ok(account)
    }

    /// Record a sign-in or refresh of `sid` (informational: a failure is logged, never fatal).
    pub(super) async fn touch(&self, sid: &str, addr: Option<&str>) {
        if let Err(e) = self.store.touch_session(sid, self.clock.now(), addr).await {
            tracing::warn!(error = %e, "session activity not recorded");
        }
    }

    /// The account's signed-in devices, most recently seen first.
    pub async fn list_sessions(&self, p: &Principal) -> Result<Vec<DeviceSession>, AppError> {
        let account = Self::device_owner(p, Operation::ListSessions)?;
        let live = self.store.live_sessions(account).await?;
        let mut names: HashMap<String, String> = HashMap::new();
        for s in &live {
            if !names.contains_key(&s.session.client_id) {
                let name = self
                    .store
                    .client(&s.session.client_id)
                    .await?
                    .map_or_else(|| s.session.client_id.clone(), |c| c.name);
                names.insert(s.session.client_id.clone(), name);
            }
        }
        Ok(live
            .into_iter()
            .map(|a| DeviceSession {
                current: p.session_id.as_deref() == Some(a.session.id.as_str()),
                client_name: names.get(&a.session.client_id).cloned().unwrap_or_default(),
                id: a.session.id,
                client_id: a.session.client_id,
                profile: a.session.profile,
                scopes: a.session.scopes,
                created_at: a.session.created_at,
                last_seen_at: a.last_seen_at,
                first_addr: a.first_addr,
                last_addr: a.last_addr,
            })
            .collect())
    }

    /// Sign one device out. Returns the revoked id (for the caller's revocation list).
    pub async fn revoke_own_session(
        &self,
        p: &Principal,
        sid: &str,
        addr: Option<&str>,
    ) -> Result<String, AppError> {
        let account = Self::device_owner(p, Operation::RevokeSession)?;
        let session =
            self.store.session(sid).await?.filter(|s| s.account == account && s.revoked_at.is_none());
        let Some(session) = session else { return Err(AppError::NotFound("session")) };
        self.store.revoke_session(&session.id, self.clock.now()).await?;
        self.audit(
            &account.to_string(),
            "session.revoked",
            json!({"sid": session.id, "via": "devices"}),
            addr,
        )
        .await;
        Ok(session.id)
    }

    /// Sign out everywhere (but the asking session when `keep_current`). Returns the revoked ids.
    pub async fn revoke_all_sessions(
        &self,
        p: &Principal,
        keep_current: bool,
        addr: Option<&str>,
    ) -> Result<Vec<String>, AppError> {
        let account = Self::device_owner(p, Operation::RevokeAllSessions)?;
        let except = if keep_current { p.session_id.as_deref() } else { None };
        let revoked = self.store.revoke_account_sessions(account, self.clock.now(), except).await?;
        self.audit(
            &account.to_string(),
            "session.revoked_all",
            json!({"count": revoked.len(), "kept": except}),
            addr,
        )
        .await;
        Ok(revoked)
    }
}
