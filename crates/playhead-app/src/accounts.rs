//! Accounts and profiles: create, read, change settings.

use playhead_core::auth::Principal;
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::ports::IdentityStore;
use playhead_core::profile::{Account, Email, PROFILES_PER_ACCOUNT_MAX, Profile, ProfileName};
use playhead_core::{FieldError, StoreError, Timestamp};
use uuid::Uuid;

use crate::access::Operation;
use crate::policy;
use crate::{App, AppError};

/// Fields of a new profile.
#[derive(Debug, Clone, Default)]
pub struct NewProfile {
    /// Display name.
    pub name: String,
    /// Kids profile.
    pub kids: bool,
    /// Maturity limit (a minimum age).
    pub maturity_limit: Option<u8>,
    /// Hidden from followers.
    pub private: bool,
}

/// A partial update of a profile (absent = unchanged; `Some(None)` clears the limit).
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// New name.
    pub name: Option<String>,
    /// New kids flag.
    pub kids: Option<bool>,
    /// New limit, or `Some(None)` to remove it.
    pub maturity_limit: Option<Option<u8>>,
    /// New private flag.
    pub private: Option<bool>,
    /// Pause (or resume) recording the profile's history.
    pub history_paused: Option<bool>,
    /// While paused, still move resume points.
    pub keep_resume_points_while_paused: Option<bool>,
}

/// The caller's account and profiles.
#[derive(Debug, Clone)]
pub struct Me {
    /// The account.
    pub account: Account,
    /// Its profiles (only the bound one for a profile-bound token).
    pub profiles: Vec<Profile>,
}

/// The account of an external identity (issuer, subject), created with its link on first sight.
///
/// Never linked by e-mail: an IdP asserting someone's address must not take over their account.
/// The address is a placeholder under the reserved `.invalid` TLD (RFC 2606): unique, never
/// deliverable, never equal to a real person's sign-in e-mail. Two replicas racing on a first
/// sight end with one account (the store links once per pair).
pub(crate) async fn provision_external_identity(
    store: &dyn IdentityStore,
    issuer: &str,
    subject: &str,
    now: Timestamp,
) -> Result<AccountId, AppError> {
    let id = AccountId(Uuid::now_v7());
    let email = Email::parse(&format!("{}@external.invalid", id.0.simple()))
        .map_err(|e| AppError::Internal(format!("placeholder address for an external identity: {e}")))?;
    let account = Account { id, email, created_at: now };
    let linked = store.link_external_identity(issuer, subject, &account).await?;
    if linked == id {
        tracing::info!(issuer, account = %linked, "external identity linked to a new account");
    }
    Ok(linked)
}

impl App {
    /// Create an account (operators and, later, sign-up).
    pub async fn create_account(&self, email: &str) -> Result<Account, AppError> {
        let email = Email::parse(email).map_err(AppError::invalid)?;
        let account = Account { id: AccountId(Uuid::now_v7()), email, created_at: self.clock.now() };
        self.ports.accounts.create_account(&account).await.map_err(|e| match e {
            StoreError::Conflict(_) => AppError::Conflict("an account with this email exists".into()),
            other => other.into(),
        })?;
        Ok(account)
    }

    /// The caller's account and profiles.
    pub async fn me(&self, p: &Principal) -> Result<Me, AppError> {
        let account_id = p.account().ok_or(AppError::NotFound("account"))?;
        let account = self.ports.accounts.account(account_id).await?.ok_or(AppError::NotFound("account"))?;
        let mut profiles = self.ports.accounts.profiles_of(account_id).await?;
        if let Some(bound) = p.bound_profile {
            profiles.retain(|pr| pr.id == bound);
        }
        Ok(Me { account, profiles })
    }

    /// Create a profile in an account.
    pub async fn create_profile(
        &self,
        p: &Principal,
        account_id: AccountId,
        new: NewProfile,
    ) -> Result<Profile, AppError> {
        policy::require(p, Operation::CreateProfile)?;
        if !policy::may_manage_account(p, account_id) {
            return Err(AppError::NotFound("account"));
        }
        self.ports.accounts.account(account_id).await?.ok_or(AppError::NotFound("account"))?;
        self.insert_profile(account_id, new).await
    }

    /// Create a profile without a principal (operator CLI and demo seeding).
    pub async fn insert_profile(&self, account_id: AccountId, new: NewProfile) -> Result<Profile, AppError> {
        let name = ProfileName::parse(&new.name).map_err(AppError::invalid)?;
        let profile = Profile {
            id: ProfileId(Uuid::now_v7()),
            account_id,
            name,
            kids: new.kids,
            maturity_limit: new.maturity_limit,
            private: new.private,
            history_paused: false,
            keep_resume_points_while_paused: false,
            version: 1,
            created_at: self.clock.now(),
        };
        self.ports.accounts.create_profile(&profile, PROFILES_PER_ACCOUNT_MAX).await.map_err(
            |e| match e {
                StoreError::Conflict(_) => AppError::Conflict(format!(
                    "an account can have at most {PROFILES_PER_ACCOUNT_MAX} profiles"
                )),
                StoreError::NotFound => AppError::NotFound("account"),
                other => other.into(),
            },
        )?;
        Ok(profile)
    }

    /// A profile the caller may reach for `op` (404 otherwise; 403 without the op's scope).
    pub async fn reachable_profile(
        &self,
        p: &Principal,
        id: ProfileId,
        op: Operation,
    ) -> Result<Profile, AppError> {
        policy::require(p, op)?;
        let load = async { Ok(self.ports.accounts.profile(id).await?) };
        let Some(profile) = self.cache.profile(id, load).await? else {
            return Err(self.missing_profile(p, id, op).await);
        };
        if policy::may_reach_profile(p, &profile) { Ok(profile) } else { Err(AppError::NotFound("profile")) }
    }

    /// [`App::reachable_profile`] for a read of one of its rows: in scale-out mode the row is
    /// fetched from the shared cache in the same round trip as the profile.
    pub(crate) async fn reachable_profile_for_row(
        &self,
        p: &Principal,
        id: ProfileId,
        row: crate::cache::Row,
    ) -> Result<(Profile, crate::cache::Prefetched), AppError> {
        policy::require(p, row.operation())?;
        let load = async { Ok(self.ports.accounts.profile(id).await?) };
        let (profile, prefetched) = self.cache.profile_for_row(id, row, load).await?;
        let Some(profile) = profile else {
            return Err(AppError::NotFound("profile"));
        };
        if policy::may_reach_profile(p, &profile) {
            Ok((profile, prefetched))
        } else {
            Err(AppError::NotFound("profile"))
        }
    }

    /// Read a profile.
    pub async fn get_profile(&self, p: &Principal, id: ProfileId) -> Result<Profile, AppError> {
        self.reachable_profile(p, id, Operation::GetProfile).await
    }

    /// Change a profile's settings. `if_version` is the client's If-Match (the profile version);
    /// it is required, so two devices editing one profile cannot silently overwrite each other.
    pub async fn patch_profile(
        &self,
        p: &Principal,
        id: ProfileId,
        patch: ProfilePatch,
        if_version: Option<i64>,
    ) -> Result<Profile, AppError> {
        let current = self.reachable_profile(p, id, Operation::UpdateProfile).await?;
        policy::may_change_settings(p, id)?;
        match if_version {
            None => return Err(AppError::PreconditionRequired),
            Some(v) if v != current.version => return Err(AppError::PreconditionFailed),
            Some(_) => {}
        }
        let touches_maturity = patch.kids.is_some_and(|k| k != current.kids)
            || patch.maturity_limit.is_some_and(|m| m != current.maturity_limit);
        if touches_maturity {
            policy::may_change_maturity(p, self.clock().now().0.div_euclid(1000))?;
        }
        let mut next = current.clone();
        let mut errs: Vec<FieldError> = Vec::new();
        if let Some(n) = patch.name {
            match ProfileName::parse(&n) {
                Ok(n) => next.name = n,
                Err(e) => errs.push(e),
            }
        }
        if let Some(k) = patch.kids {
            next.kids = k;
        }
        if let Some(m) = patch.maturity_limit {
            next.maturity_limit = m;
        }
        if let Some(pr) = patch.private {
            next.private = pr;
        }
        if let Some(paused) = patch.history_paused {
            next.history_paused = paused;
        }
        if let Some(keep) = patch.keep_resume_points_while_paused {
            next.keep_resume_points_while_paused = keep;
        }
        if !errs.is_empty() {
            return Err(AppError::Invalid(errs));
        }
        if next == current {
            return Ok(current);
        }
        next.version = current.version + 1;
        self.ports.accounts.update_profile(&next, current.version).await?;
        self.cache.invalidate(id).await;
        Ok(next)
    }
}
