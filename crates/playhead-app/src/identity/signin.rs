//! Signing in on the hosted pages: passwords (argon2id), browser sessions, attempt limits per
//! client address and per account, and the profiles a signed-in person may bind a token to.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use playhead_core::StoreError;
use playhead_core::identity::WebSession;
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::oauth::OAuthErrorCode;
use playhead_core::profile::{Email, Profile};
use playhead_core::rate::Quota;
use playhead_core::time::Timestamp;
use serde_json::json;

use super::{AuthServer, OAuthError, REDACTED, digest, secret};

/// A browser signed in on the hosted pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    /// Who.
    pub account: AccountId,
    /// When they typed their password.
    pub auth_time: Timestamp,
    /// SHA-256 of the cookie (CSRF tokens are derived from it).
    pub session_hash: [u8; 32],
}

/// A successful sign-in: the session cookie's value (set it, then forget it) and who it is.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The cookie's value.
    pub cookie: String,
    /// The person.
    pub user: WebUser,
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn").field("cookie", &REDACTED).field("user", &self.user).finish()
    }
}

impl AuthServer {
    /// Set an account's password (argon2id with the configured parameters).
    pub async fn set_password(&self, account: AccountId, password: &str) -> Result<(), OAuthError> {
        if password.chars().count() < 8 || password.len() > 1024 {
            return Err(OAuthError::invalid_request("password must be 8-1024 characters"));
        }
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let phc = self
            .argon
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| OAuthError::Internal(format!("argon2: {e}")))?
            .to_string();
        self.store.set_password(account, &phc).await.map_err(|e| match e {
            StoreError::NotFound => OAuthError::invalid_request("no such account"),
            other => other.into(),
        })
    }

    async fn charge(&self, key: String, quota: Quota) -> Result<(), OAuthError> {
        let d = self.limiter.check(&key, quota, 1, self.clock.now()).await?;
        if d.allowed {
            Ok(())
        } else {
            Err(OAuthError::RateLimited {
                retry_after_secs: u64::try_from(d.retry_after_ms.max(0) / 1000 + 1).unwrap_or(1),
            })
        }
    }

    /// Charge one attempt to the client address (sign-in and device-code entry share it).
    pub(super) async fn charge_address(&self, addr: &str) -> Result<(), OAuthError> {
        self.charge(
            format!("signin:addr:{addr}"),
            Quota { limit: self.config.attempts_per_addr_per_min.max(1), window_ms: 60_000 },
        )
        .await
    }

    /// Check an e-mail and password. Rate limited per client address and, for failures, per
    /// account (a locked-out account waits even with the right password: backoff).
    pub async fn sign_in(&self, email: &str, password: &str, addr: &str) -> Result<SignedIn, OAuthError> {
        self.charge_address(addr).await?;
        let refused = || OAuthError::new(OAuthErrorCode::AccessDenied, "wrong e-mail address or password");
        let account = match Email::parse(email) {
            Ok(e) => self.accounts.account_by_email(&e).await?,
            Err(_) => None,
        };
        let phc = match &account {
            Some(a) => self.store.password(a.id).await?,
            None => None,
        };
        let account_key = format!("signin:acct:{}", email.trim().to_ascii_lowercase());
        let fail_quota =
            Quota { limit: self.config.failures_per_account_per_15min.max(1), window_ms: 15 * 60_000 };
        // Peek: a locked-out account is refused before the (slow) password check.
        let peek = self.limiter.check(&account_key, fail_quota, 0, self.clock.now()).await?;
        if !peek.allowed || peek.remaining == 0 {
            self.audit(email, "signin.locked", json!({}), Some(addr)).await;
            return Err(OAuthError::RateLimited {
                retry_after_secs: u64::try_from(peek.reset_ms.max(0) / 1000 + 1).unwrap_or(1),
            });
        }
        let ok = match (&account, &phc) {
            (Some(_), Some(phc)) => PasswordHash::new(phc)
                .map(|h| self.argon.verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false),
            _ => {
                // Spend the same time as a real check so response times do not reveal accounts.
                let salt = SaltString::generate(&mut rand::rngs::OsRng);
                let _ = self.argon.hash_password(password.as_bytes(), &salt);
                false
            }
        };
        let Some(account) = account.filter(|_| ok) else {
            let _ = self.limiter.check(&account_key, fail_quota, 1, self.clock.now()).await?;
            self.audit(email, "signin.failed", json!({"reason": "bad credentials"}), Some(addr)).await;
            return Err(refused());
        };
        let now = self.clock.now();
        let cookie = secret("phw_");
        let web = WebSession {
            hash: digest(&cookie),
            account: account.id,
            auth_time: now,
            expires_at: Timestamp(now.0 + self.config.web_session_ttl_secs * 1000),
            revoked_at: None,
        };
        self.store.create_web_session(&web).await?;
        self.audit(&account.id.to_string(), "signin.ok", json!({}), Some(addr)).await;
        Ok(SignedIn { cookie, user: WebUser { account: account.id, auth_time: now, session_hash: web.hash } })
    }

    /// The browser behind a session cookie, if it is signed in.
    pub async fn web_user(&self, cookie: &str) -> Result<Option<WebUser>, OAuthError> {
        let hash = digest(cookie);
        let now = self.clock.now();
        Ok(self
            .store
            .web_session(hash)
            .await?
            .filter(|w| w.revoked_at.is_none() && now < w.expires_at)
            .map(|w| WebUser { account: w.account, auth_time: w.auth_time, session_hash: hash }))
    }

    /// Sign a browser out.
    pub async fn sign_out(&self, cookie: &str) -> Result<(), OAuthError> {
        Ok(self.store.revoke_web_session(digest(cookie), self.clock.now()).await?)
    }

    /// The profiles a signed-in person may bind a token to on a consent page. A store failure is
    /// an error (the page answers 503), never an empty list.
    pub async fn consent_profiles(&self, user: &WebUser) -> Result<Vec<Profile>, OAuthError> {
        Ok(self.accounts.profiles_of(user.account).await?)
    }

    /// The profile a person may bind a token to: theirs, or an error.
    pub(super) async fn own_profile(
        &self,
        account: AccountId,
        profile: Option<ProfileId>,
    ) -> Result<Option<ProfileId>, OAuthError> {
        let Some(p) = profile else { return Ok(None) };
        match self.accounts.profile(p).await? {
            Some(found) if found.account_id == account => Ok(Some(p)),
            _ => Err(OAuthError::invalid_request("no such profile in your account")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_does_not_print_its_cookie() {
        let s = SignedIn {
            cookie: "phw_cookievalue".into(),
            user: WebUser {
                account: AccountId(uuid::Uuid::nil()),
                auth_time: Timestamp(0),
                session_hash: [0; 32],
            },
        };
        assert!(!format!("{s:?}").contains("cookievalue"));
    }
}
