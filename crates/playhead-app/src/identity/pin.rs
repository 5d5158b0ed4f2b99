//! Parental PINs: set, remove and check a profile's PIN (decision 0097).
//!
//! The rules kept here:
//! - only an argon2 hash is stored (the same parameters as passwords); a PIN is never logged;
//! - every check is charged to the client address first (like sign-in), then failures are
//!   counted per profile: after [`PIN_FAILURES_PER_WINDOW`] failures in
//!   [`PIN_FAILURE_WINDOW_MS`] the profile is locked (even the right PIN is refused) until the
//!   limit recovers, one attempt per window / limit; failures and lockouts are audited;
//! - who may set or remove a PIN (the account, with a recent sign-in, never a profile-bound
//!   token) is decided by the caller: `App::authorize_pin_change` for the API.

use std::collections::HashSet;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use playhead_core::ids::ProfileId;
use playhead_core::pin::{PIN_FAILURE_WINDOW_MS, PIN_FAILURES_PER_WINDOW, ProfilePin};
use playhead_core::profile::Profile;
use playhead_core::rate::Quota;
use serde_json::json;

use super::{AuthServer, OAuthError};

/// Why a PIN check did not let a person through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinRefusal {
    /// The profile has a PIN and none was given.
    Required,
    /// Not 4-6 digits (not counted as a failure: it cannot be right).
    Malformed,
    /// Wrong; this many attempts are left before the profile is locked.
    Wrong {
        /// Attempts left.
        attempts_left: u32,
    },
    /// Too many failures: try again after this many seconds.
    Locked {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// Anything else (the per-address limit, our failures).
    Other(OAuthError),
}

impl PinRefusal {
    /// What a person should read.
    pub fn message(&self) -> String {
        match self {
            Self::Required => "This profile has a PIN. Enter it to continue.".into(),
            Self::Malformed => "A PIN is 4 to 6 digits.".into(),
            Self::Wrong { attempts_left: 1 } => "That PIN is not right. 1 attempt left.".into(),
            Self::Wrong { attempts_left } => format!("That PIN is not right. {attempts_left} attempts left."),
            Self::Locked { retry_after_secs } => match retry_after_secs.div_ceil(60).max(1) {
                1 => "Too many wrong PINs. This profile is locked; try again in a minute.".into(),
                m => format!("Too many wrong PINs. This profile is locked; try again in {m} minutes."),
            },
            Self::Other(e) => e.public_description().to_owned(),
        }
    }
}

impl From<OAuthError> for PinRefusal {
    fn from(e: OAuthError) -> Self {
        Self::Other(e)
    }
}

impl From<playhead_core::StoreError> for PinRefusal {
    fn from(e: playhead_core::StoreError) -> Self {
        Self::Other(e.into())
    }
}

fn failure_quota() -> Quota {
    Quota { limit: PIN_FAILURES_PER_WINDOW, window_ms: PIN_FAILURE_WINDOW_MS }
}

fn secs_up(ms: i64) -> u64 {
    u64::try_from(ms.max(0) / 1000 + 1).unwrap_or(1)
}

impl AuthServer {
    /// Which of `profiles` have a PIN (the profile chooser marks them).
    pub async fn pinned_profiles(&self, profiles: &[Profile]) -> Result<HashSet<ProfileId>, OAuthError> {
        let mut out = HashSet::new();
        for p in profiles {
            if self.store.profile_pin(p.id).await?.is_some() {
                out.insert(p.id);
            }
        }
        Ok(out)
    }

    /// Whether `profile` has a PIN.
    pub async fn has_pin(&self, profile: ProfileId) -> Result<bool, OAuthError> {
        Ok(self.store.profile_pin(profile).await?.is_some())
    }

    /// Set or replace a profile's PIN (the caller has authorized `actor`). `NotFound` comes back
    /// as a store error when the profile is gone.
    pub async fn set_pin(
        &self,
        actor: &str,
        profile: ProfileId,
        pin: &ProfilePin,
        addr: Option<&str>,
    ) -> Result<(), OAuthError> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let phc = self
            .argon
            .hash_password(pin.expose().as_bytes(), &salt)
            .map_err(|e| OAuthError::Internal(format!("hashing a PIN failed: {e}")))?
            .to_string();
        self.store.set_profile_pin(profile, &phc, self.clock.now()).await.map_err(|e| match e {
            // Erased since the caller authorized.
            playhead_core::StoreError::NotFound => OAuthError::invalid_request("no such profile"),
            other => other.into(),
        })?;
        self.audit(actor, "pin.set", json!({"profile_id": profile.to_string()}), addr).await;
        Ok(())
    }

    /// Remove a profile's PIN; `false` when it had none.
    pub async fn remove_pin(
        &self,
        actor: &str,
        profile: ProfileId,
        addr: Option<&str>,
    ) -> Result<bool, OAuthError> {
        let removed = self.store.remove_profile_pin(profile).await?;
        if removed {
            self.audit(actor, "pin.removed", json!({"profile_id": profile.to_string()}), addr).await;
        }
        Ok(removed)
    }

    /// Check `typed` against `profile`'s PIN on behalf of `actor` from `addr`. A profile without
    /// a PIN passes whatever is typed.
    pub async fn check_pin(
        &self,
        actor: &str,
        profile: ProfileId,
        typed: Option<&str>,
        addr: &str,
    ) -> Result<(), PinRefusal> {
        let Some(phc) = self.store.profile_pin(profile).await? else { return Ok(()) };
        let typed = typed.map(str::trim).filter(|t| !t.is_empty()).ok_or(PinRefusal::Required)?;
        self.charge_address(addr).await?;
        let key = format!("pin:fail:{profile}");
        let now = self.clock.now();
        let detail = json!({"profile_id": profile.to_string()});
        // Peek: a locked profile is refused before the (slow) hash check, right PIN or not.
        let peek = self.limiter.check(&key, failure_quota(), 0, now).await?;
        if !peek.allowed || peek.remaining == 0 {
            // Costs nothing when refused; tells how long until one attempt is back.
            let next = self.limiter.check(&key, failure_quota(), 1, now).await?;
            self.audit(actor, "pin.locked", detail, Some(addr)).await;
            return Err(PinRefusal::Locked { retry_after_secs: secs_up(next.retry_after_ms) });
        }
        let pin = ProfilePin::parse(typed).map_err(|_| PinRefusal::Malformed)?;
        let ok = PasswordHash::new(&phc)
            .map(|h| self.argon.verify_password(pin.expose().as_bytes(), &h).is_ok())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        let after = self.limiter.check(&key, failure_quota(), 1, now).await?;
        self.audit(
            actor,
            "pin.failed",
            json!({"profile_id": profile.to_string(), "attempts_left": after.remaining}),
            Some(addr),
        )
        .await;
        if after.remaining == 0 {
            let next = self.limiter.check(&key, failure_quota(), 1, now).await?;
            self.audit(actor, "pin.locked", detail, Some(addr)).await;
            return Err(PinRefusal::Locked { retry_after_secs: secs_up(next.retry_after_ms) });
        }
        Err(PinRefusal::Wrong { attempts_left: after.remaining })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        assert!(PinRefusal::Wrong { attempts_left: 1 }.message().contains("1 attempt left"));
        assert!(PinRefusal::Wrong { attempts_left: 3 }.message().contains("3 attempts left"));
        assert!(PinRefusal::Locked { retry_after_secs: 170 }.message().contains("3 minutes"));
        assert!(PinRefusal::Locked { retry_after_secs: 1 }.message().contains("in a minute"));
    }
}
