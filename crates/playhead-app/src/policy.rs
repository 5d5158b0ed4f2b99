//! Authorization: one place that decides who may do what to which object.
//!
//! Which scope each operation needs is declared once, in the policy table
//! ([`crate::access::operation`]); this module holds the object rules. In words (DESIGN.md, "Auth"):
//!
//! | action                         | scope needed      | object rule                                   |
//! |--------------------------------|-------------------|-----------------------------------------------|
//! | read a profile, its history, rows, progress | history:read | profile is reachable (below)        |
//! | send events, set progress, edit history, hide | history:write | profile is reachable              |
//! | create a profile in an account | profiles:write    | the account is the caller's (or admin)        |
//! | change a profile's settings    | profiles:write    | reachable, and the token is not profile-bound |
//! | write the catalog              | catalog:write     | -                                             |
//! | read the catalog               | (any valid token) | -                                             |
//! | operator routes                | admin             | -                                             |
//!
//! A profile is reachable when: the token is bound to it, or (the token is not bound to another
//! profile and) the profile belongs to the caller's account, or the caller has `profiles:any` or
//! `admin` (a service acting on any profile; every such access is logged for audit). An
//! unreachable profile is reported as not found, never forbidden, so ids cannot be probed.
//! A missing scope is checked first and answers 403: it reveals nothing about the object.

use playhead_core::auth::{Principal, Scope};
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::profile::Profile;

use crate::access::Operation;
use crate::error::AppError;

/// Require the scope `op` needs (from the policy table, [`Operation::requirement`]). Use cases
/// call this first, so a rule holds whichever transport called them; the transports' gate
/// ([`crate::access::Gate::admit`]) has checked the same entry before parsing the request.
pub fn require(p: &Principal, op: Operation) -> Result<(), AppError> {
    match op.scope() {
        Some(scope) if !p.scopes.contains(scope) => Err(AppError::MissingScope(scope)),
        _ => Ok(()),
    }
}

/// Whether the principal may act on any profile (services with `profiles:any`, operators).
fn acts_on_any_profile(p: &Principal) -> bool {
    p.scopes.contains(Scope::ProfilesAny) || p.scopes.contains(Scope::Admin)
}

/// Decide whether `p` may reach `profile` (scope already checked).
pub fn may_reach_profile(p: &Principal, profile: &Profile) -> bool {
    if let Some(bound) = p.bound_profile {
        return bound == profile.id;
    }
    if p.account() == Some(profile.account_id) {
        return true;
    }
    if acts_on_any_profile(p) {
        tracing::info!(
            audit.action = "profile_access_any",
            audit.subject = ?p.subject,
            profile.id = %profile.id,
            "service principal acted on a profile outside its account"
        );
        return true;
    }
    false
}

/// Whether `p` may create profiles in `account`.
pub fn may_manage_account(p: &Principal, account: AccountId) -> bool {
    p.bound_profile.is_none() && (p.account() == Some(account) || p.scopes.contains(Scope::Admin))
}

/// How recent a sign-in must be to change a profile's kids flag or maturity limit.
pub const RECENT_AUTH_SECS: i64 = 300;

/// Changing kids or maturity_limit loosens (or tightens) what a child may watch: it needs a
/// sign-in within [`RECENT_AUTH_SECS`] (a token carrying `auth_time`). Services and operators
/// (API keys, client credentials, admin) have no interactive sign-in and are exempt when they
/// hold `admin`.
pub fn may_change_maturity(p: &Principal, now_secs: i64) -> Result<(), AppError> {
    if p.account().is_none() && p.scopes.contains(Scope::Admin) {
        return Ok(());
    }
    match p.auth_time {
        Some(t) if now_secs - t <= RECENT_AUTH_SECS => Ok(()),
        _ => Err(AppError::Forbidden(
            "changing kids or maturity_limit needs a recent sign-in (within 5 minutes); sign in again",
        )),
    }
}

/// Erasing an account or a profile cannot be undone: it needs a sign-in within
/// [`RECENT_AUTH_SECS`], like a maturity change (operators holding `admin` without an
/// interactive sign-in are exempt).
pub fn may_erase(p: &Principal, now_secs: i64) -> Result<(), AppError> {
    recently_signed_in(p, now_secs, "erasing needs a recent sign-in (within 5 minutes); sign in again")
}

/// Setting, replacing or removing a parental PIN protects (or unprotects) a profile: like a
/// maturity change, it needs a sign-in within [`RECENT_AUTH_SECS`] (admins without an account
/// are exempt: an operator resetting a forgotten PIN).
pub fn may_change_pin(p: &Principal, now_secs: i64) -> Result<(), AppError> {
    recently_signed_in(
        p,
        now_secs,
        "setting or removing a profile PIN needs a recent sign-in (within 5 minutes); sign in again",
    )
}

/// The one recent-sign-in rule: an interactive sign-in within [`RECENT_AUTH_SECS`], or an
/// operator (`admin` without an account).
fn recently_signed_in(p: &Principal, now_secs: i64, refusal: &'static str) -> Result<(), AppError> {
    if p.account().is_none() && p.scopes.contains(Scope::Admin) {
        return Ok(());
    }
    match p.auth_time {
        Some(t) if now_secs - t <= RECENT_AUTH_SECS => Ok(()),
        _ => Err(AppError::Forbidden(refusal)),
    }
}

/// A profile-bound token may use its profile but never change its settings.
pub fn may_change_settings(p: &Principal, _profile: ProfileId) -> Result<(), AppError> {
    if p.bound_profile.is_some() {
        Err(AppError::Forbidden("a profile-bound token cannot change profile settings"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use playhead_core::Timestamp;
    use playhead_core::auth::{Scopes, Subject};
    use playhead_core::profile::ProfileName;
    use uuid::Uuid;

    fn profile(account: u128) -> Profile {
        Profile {
            id: ProfileId(Uuid::from_u128(100 + account)),
            account_id: AccountId(Uuid::from_u128(account)),
            name: ProfileName::parse("p").unwrap(),
            kids: false,
            maturity_limit: None,
            private: false,
            history_paused: false,
            keep_resume_points_while_paused: false,
            version: 1,
            created_at: Timestamp(0),
        }
    }

    fn principal(subject: Subject, scopes: &str, bound: Option<ProfileId>) -> Principal {
        Principal {
            subject,
            scopes: Scopes::parse(scopes).unwrap(),
            bound_profile: bound,
            session_id: None,
            auth_time: None,
        }
    }

    #[test]
    fn owners_reach_their_profiles_and_nobody_elses() {
        let me = principal(Subject::Account(AccountId(Uuid::from_u128(1))), "history:read", None);
        assert!(may_reach_profile(&me, &profile(1)));
        assert!(!may_reach_profile(&me, &profile(2)));
    }

    #[test]
    fn bound_tokens_reach_only_their_profile() {
        let bound = principal(
            Subject::Account(AccountId(Uuid::from_u128(1))),
            "history:read profiles:write",
            Some(profile(1).id),
        );
        assert!(may_reach_profile(&bound, &profile(1)));
        let mut sibling = profile(1);
        sibling.id = ProfileId(Uuid::from_u128(999));
        assert!(!may_reach_profile(&bound, &sibling));
        assert!(may_change_settings(&bound, profile(1).id).is_err());
        assert!(!may_manage_account(&bound, AccountId(Uuid::from_u128(1))));
    }

    #[test]
    fn services_need_profiles_any() {
        let svc = principal(Subject::Service { id: "apikey:x".into() }, "history:read", None);
        assert!(!may_reach_profile(&svc, &profile(1)));
        let svc = principal(Subject::Service { id: "apikey:x".into() }, "history:read profiles:any", None);
        assert!(may_reach_profile(&svc, &profile(1)));
    }

    #[test]
    fn missing_scopes_are_forbidden() {
        let me = principal(Subject::Account(AccountId(Uuid::from_u128(1))), "history:read", None);
        assert!(require(&me, Operation::GetContinueWatching).is_ok());
        assert!(require(&me, Operation::GetMe).is_ok(), "any valid token");
        assert!(matches!(
            require(&me, Operation::PutTitle),
            Err(AppError::MissingScope(Scope::CatalogWrite))
        ));
    }
}
