//! Who may manage and check a profile's parental PIN (decision 0097). The PIN itself (hashing,
//! storage, failure counting, lockout, audit) is the authorization server's
//! (`identity/pin.rs`): a transport authorizes here, then calls it.

use playhead_core::auth::Principal;
use playhead_core::ids::ProfileId;
use playhead_core::profile::Profile;

use crate::access::Operation;
use crate::{App, AppError, policy};

impl App {
    /// Authorize setting or removing `profile`'s PIN: the operation's scope, a reachable
    /// profile (404 otherwise), a token not bound to a profile (a kids TV cannot remove the
    /// PIN that keeps it out of the grown-ups' profile) and a recent sign-in.
    pub async fn authorize_pin_change(
        &self,
        p: &Principal,
        profile: ProfileId,
        op: Operation,
    ) -> Result<Profile, AppError> {
        let found = self.reachable_profile(p, profile, op).await?;
        policy::may_change_settings(p, profile)?;
        policy::may_change_pin(p, self.clock().now().0.div_euclid(1000))?;
        Ok(found)
    }

    /// Authorize checking `profile`'s PIN (an app switching to that profile): a reachable
    /// profile. A token bound to another profile cannot reach it, so it cannot switch.
    pub async fn authorize_pin_check(&self, p: &Principal, profile: ProfileId) -> Result<Profile, AppError> {
        self.reachable_profile(p, profile, Operation::VerifyProfilePin).await
    }
}
