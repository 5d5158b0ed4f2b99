//! The device authorization grant (RFC 8628): a TV asks for a user code, a person approves it
//! on the hosted device page, the TV polls the token endpoint.

use std::fmt;

use playhead_core::StoreError;
use playhead_core::auth::Scopes;
use playhead_core::identity::{
    DeviceCode, DevicePoll, DeviceStatus, GrantType, OAuthClient, USER_CODE_ALPHABET, display_user_code,
    normalize_user_code,
};
use playhead_core::ids::ProfileId;
use playhead_core::oauth::OAuthErrorCode;
use playhead_core::profile::Profile;
use playhead_core::time::Timestamp;
use rand::RngCore;
use serde_json::json;

use super::{AuthServer, ClientAuth, OAuthError, REDACTED, TokenResponse, WebUser, digest, secret};

/// What /oauth/device_authorization returns (RFC 8628 section 3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// The secret the device polls with.
    pub device_code: String,
    /// `XXXX-XXXX`.
    pub user_code: String,
    /// Seconds until both expire.
    pub expires_in: i64,
    /// Polling interval.
    pub interval: i64,
}

impl fmt::Debug for DeviceGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user code is shown on a TV screen; the device code is the device's secret.
        f.debug_struct("DeviceGrant")
            .field("device_code", &REDACTED)
            .field("user_code", &self.user_code)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish()
    }
}

/// What the device page shows a signed-in person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConsent {
    /// The client and scopes behind the user code typed, if one was.
    pub pending: Option<(OAuthClient, Scopes)>,
    /// The person's profiles (a token may be bound to one).
    pub profiles: Vec<Profile>,
}

/// Why a typed user code cannot be approved, in words a person can act on (the device page
/// shows them beside the code field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCodeProblem {
    /// Not 8 letters of the alphabet (dashes, spaces and case do not matter).
    Malformed,
    /// No device asked for this code.
    Unknown,
    /// The device's request ran out of time.
    Expired,
    /// Already approved or denied.
    Used,
}

impl UserCodeProblem {
    /// What the person should know and do.
    pub fn message(self) -> &'static str {
        match self {
            Self::Malformed => {
                "That is not a device code: it is 8 letters, like BCDF-GHJK (no vowels or digits)."
            }
            Self::Unknown => "That code is not right. Check the code on your device and type it again.",
            Self::Expired => "That code has expired. Start again on your device to get a new code.",
            Self::Used => {
                "That code was already used. If your device is not signed in, start again on it to get a new code."
            }
        }
    }

    /// For the audit log.
    fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Used => "used",
        }
    }
}

/// A device page request that did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRefusal {
    /// The typed code: the page asks for it again.
    Code(UserCodeProblem),
    /// The chosen profile has a PIN, and it was missing or wrong (or the profile is locked).
    Pin(super::PinRefusal),
    /// Anything else (rate limit, a profile not in the account, our failures).
    Other(OAuthError),
}

impl From<super::PinRefusal> for DeviceRefusal {
    fn from(e: super::PinRefusal) -> Self {
        match e {
            super::PinRefusal::Other(e) => Self::Other(e),
            pin => Self::Pin(pin),
        }
    }
}

impl From<OAuthError> for DeviceRefusal {
    fn from(e: OAuthError) -> Self {
        Self::Other(e)
    }
}

impl From<StoreError> for DeviceRefusal {
    fn from(e: StoreError) -> Self {
        Self::Other(e.into())
    }
}

impl AuthServer {
    /// Start a device authorization: authenticate the client, then draw the codes.
    pub async fn device_authorization(
        &self,
        presented: &ClientAuth,
        scope: Option<&str>,
        addr: &str,
    ) -> Result<DeviceGrant, OAuthError> {
        let client = self.authenticate_client(presented, Some(addr)).await?;
        Self::require_grant(&client, GrantType::DeviceCode)?;
        let scopes = Self::scopes_for(&client, scope)?;
        let now = self.clock.now();
        for _ in 0..5 {
            let device_code = secret("phd_");
            let code = DeviceCode {
                hash: digest(&device_code),
                user_code: user_code(),
                client_id: client.client_id.clone(),
                scopes,
                expires_at: Timestamp(now.0 + self.config.device_ttl_secs * 1000),
                interval_secs: self.config.device_interval_secs,
                last_poll_at: None,
                status: DeviceStatus::Pending,
                version: 1,
            };
            match self.store.create_device_code(&code).await {
                Ok(()) => {
                    return Ok(DeviceGrant {
                        device_code,
                        user_code: display_user_code(&code.user_code),
                        expires_in: self.config.device_ttl_secs,
                        interval: code.interval_secs,
                    });
                }
                // 20^8 codes: a clash with a pending one is rare; draw again.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(OAuthError::Internal("could not draw a free user code".into()))
    }

    /// The device page: what the typed user code asks for (checking it is rate limited per
    /// address), and the person's profiles.
    pub async fn device_consent(
        &self,
        user: &WebUser,
        typed: Option<&str>,
        addr: &str,
    ) -> Result<DeviceConsent, DeviceRefusal> {
        let pending = match typed.filter(|t| !t.is_empty()) {
            Some(t) => {
                let (device, client) = self.pending_device(t, addr).await?;
                Some((client, device.scopes))
            }
            None => None,
        };
        Ok(DeviceConsent { pending, profiles: self.consent_profiles(user).await? })
    }

    /// Look up a pending device authorization by what a person typed (rate limited per address;
    /// every refusal is audited with its reason).
    async fn pending_device(
        &self,
        typed: &str,
        addr: &str,
    ) -> Result<(DeviceCode, OAuthClient), DeviceRefusal> {
        self.charge_address(addr).await?;
        let found = match normalize_user_code(typed) {
            None => Err(UserCodeProblem::Malformed),
            Some(code) => {
                let now = self.clock.now();
                match self.store.device_code_by_user_code(&code).await? {
                    None => Err(UserCodeProblem::Unknown),
                    Some(d) if now >= d.expires_at => Err(UserCodeProblem::Expired),
                    Some(d) if d.status != DeviceStatus::Pending => Err(UserCodeProblem::Used),
                    Some(d) => match self.store.client(&d.client_id).await? {
                        Some(client) => Ok((d, client)),
                        // The client was deleted: its request can never complete.
                        None => Err(UserCodeProblem::Unknown),
                    },
                }
            }
        };
        if let Err(problem) = &found {
            self.audit("anonymous", "device.bad_code", json!({"reason": problem.reason()}), Some(addr)).await;
        }
        found.map_err(DeviceRefusal::Code)
    }

    /// A signed-in person approves or denies a device (this consumes the user code). Binding it
    /// to a profile with a parental PIN needs that PIN.
    pub async fn decide_device(
        &self,
        user: &WebUser,
        typed: &str,
        approve: bool,
        profile: Option<ProfileId>,
        pin: Option<&str>,
        addr: &str,
    ) -> Result<(), DeviceRefusal> {
        let (device, _client) = self.pending_device(typed, addr).await?;
        let profile = if approve { self.own_profile(user.account, profile).await? } else { None };
        if let Some(p) = profile {
            self.check_pin(&user.account.to_string(), p, pin, addr).await?;
        }
        let mut next = device.clone();
        next.version += 1;
        next.status = if approve {
            DeviceStatus::Approved { account: user.account, profile, auth_time: user.auth_time }
        } else {
            DeviceStatus::Denied
        };
        self.store.update_device_code(&next, device.version).await.map_err(|e| match e {
            // Approved or denied in another tab a moment ago.
            StoreError::PreconditionFailed => DeviceRefusal::Code(UserCodeProblem::Used),
            other => other.into(),
        })?;
        let action = if approve { "device.approved" } else { "device.denied" };
        self.audit(&user.account.to_string(), action, json!({"client_id": device.client_id}), Some(addr))
            .await;
        Ok(())
    }

    /// The token endpoint's device_code grant: one poll.
    pub(super) async fn token_device(
        &self,
        client: &OAuthClient,
        device_code: &str,
        addr: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GrantType::DeviceCode)?;
        let invalid = || OAuthError::new(OAuthErrorCode::InvalidGrant, "unknown device_code");
        let Some(device) = self.store.device_code(digest(device_code)).await? else {
            return Err(invalid());
        };
        if device.client_id != client.client_id {
            return Err(invalid());
        }
        let (answer, next) = device.poll(self.clock.now());
        if let Some(next) = next {
            self.store.update_device_code(&next, device.version).await.map_err(|e| match e {
                // Another poll changed it first: this one was too fast.
                StoreError::PreconditionFailed => {
                    OAuthError::new(OAuthErrorCode::SlowDown, "poll more slowly")
                }
                other => other.into(),
            })?;
        }
        let refuse = OAuthError::new;
        match answer {
            DevicePoll::Issue { account, profile, auth_time } => {
                self.start_session(account, client, device.scopes, profile, auth_time, addr).await
            }
            DevicePoll::Pending => {
                Err(refuse(OAuthErrorCode::AuthorizationPending, "waiting for the person to approve"))
            }
            DevicePoll::SlowDown => {
                Err(refuse(OAuthErrorCode::SlowDown, "poll more slowly: the interval grew by 5 seconds"))
            }
            DevicePoll::Denied => Err(refuse(OAuthErrorCode::AccessDenied, "the person denied the request")),
            DevicePoll::Expired => {
                Err(refuse(OAuthErrorCode::ExpiredToken, "the device code expired; start again"))
            }
        }
    }
}

/// Eight letters of [`USER_CODE_ALPHABET`], uniformly drawn.
fn user_code() -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // 256 is not a multiple of 20: reject the top 16 values so every letter is equally likely.
    let mut out = String::with_capacity(8);
    let mut more = [0u8; 1];
    for mut b in bytes {
        while b >= 240 {
            rand::rngs::OsRng.fill_bytes(&mut more);
            b = more[0];
        }
        out.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_alphabet() {
        for _ in 0..100 {
            let c = user_code();
            assert_eq!(normalize_user_code(&c).as_deref(), Some(c.as_str()));
        }
    }

    #[test]
    fn a_device_grant_does_not_print_its_device_code() {
        let g = DeviceGrant {
            device_code: "phd_devicesecret".into(),
            user_code: "BCDF-GHJK".into(),
            expires_in: 1,
            interval: 5,
        };
        let shown = format!("{g:?}");
        assert!(shown.contains("BCDF-GHJK") && !shown.contains("devicesecret"), "{shown}");
    }
}
