//! Authorization: one place that decides who may do what to which object.
//!
//! Decision table (DESIGN.md, "Auth"):
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

use crate::error::AppError;

/// What a route needs before its handler runs (the route table below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone (health, metadata, keys, the API description).
    Public,
    /// An OAuth client authenticates in the request body or Basic header (the endpoint checks).
    OAuthClient,
    /// A hosted HTML page: the browser session cookie and a CSRF token (the page checks).
    Browser,
    /// Any valid bearer credential.
    Authenticated,
    /// A bearer credential holding this scope (object rules are then checked by the use case).
    Scope(Scope),
}

/// Every route and its requirement: the one place a route's access rule is declared. The REST
/// layer refuses a matched route missing here (deny by default), and a test walks the router's
/// routes against this table.
pub const ROUTES: &[(&str, &str, Requirement)] = &[
    ("GET", "/livez", Requirement::Public),
    ("GET", "/readyz", Requirement::Public),
    ("GET", "/.well-known/oauth-authorization-server", Requirement::Public),
    ("GET", "/.well-known/openid-configuration", Requirement::Public),
    ("GET", "/.well-known/jwks.json", Requirement::Public),
    ("POST", "/oauth/token", Requirement::OAuthClient),
    ("POST", "/oauth/device_authorization", Requirement::OAuthClient),
    ("POST", "/oauth/revoke", Requirement::OAuthClient),
    ("POST", "/oauth/introspect", Requirement::OAuthClient),
    ("GET", "/oauth/authorize", Requirement::Browser),
    ("POST", "/oauth/authorize", Requirement::Browser),
    ("GET", "/signin", Requirement::Browser),
    ("POST", "/signin", Requirement::Browser),
    ("GET", "/device", Requirement::Browser),
    ("POST", "/device", Requirement::Browser),
    ("POST", "/signout", Requirement::Browser),
    ("GET", "/v1/me", Requirement::Authenticated),
    ("POST", "/v1/accounts/{account_id}/profiles", Requirement::Scope(Scope::ProfilesWrite)),
    ("GET", "/v1/profiles/{profile_id}", Requirement::Scope(Scope::HistoryRead)),
    ("PATCH", "/v1/profiles/{profile_id}", Requirement::Scope(Scope::ProfilesWrite)),
    ("GET", "/v1/titles", Requirement::Authenticated),
    ("GET", "/v1/titles/{title_id}", Requirement::Authenticated),
    ("PUT", "/v1/titles/{title_id}", Requirement::Scope(Scope::CatalogWrite)),
    ("PATCH", "/v1/titles/{title_id}", Requirement::Scope(Scope::CatalogWrite)),
    ("POST", "/v1/titles/import", Requirement::Scope(Scope::CatalogWrite)),
    ("POST", "/v1/profiles/{profile_id}/events", Requirement::Scope(Scope::HistoryWrite)),
    ("GET", "/v1/profiles/{profile_id}/progress/{title_id}", Requirement::Scope(Scope::HistoryRead)),
    ("PUT", "/v1/profiles/{profile_id}/progress/{title_id}", Requirement::Scope(Scope::HistoryWrite)),
    ("GET", "/v1/profiles/{profile_id}/history", Requirement::Scope(Scope::HistoryRead)),
    ("POST", "/v1/profiles/{profile_id}/history", Requirement::Scope(Scope::HistoryWrite)),
    ("DELETE", "/v1/profiles/{profile_id}/history/{play_id}", Requirement::Scope(Scope::HistoryWrite)),
    ("GET", "/v1/profiles/{profile_id}/continue-watching", Requirement::Scope(Scope::HistoryRead)),
    (
        "DELETE",
        "/v1/profiles/{profile_id}/continue-watching/{title_id}",
        Requirement::Scope(Scope::HistoryWrite),
    ),
    ("GET", "/v1/profiles/{profile_id}/next-up", Requirement::Scope(Scope::HistoryRead)),
    ("GET", "/v1/profiles/{profile_id}/recommendations", Requirement::Scope(Scope::RecsRead)),
    ("GET", "/v1/titles/{title_id}/similar", Requirement::Scope(Scope::RecsRead)),
    ("POST", "/v1/profiles/{profile_id}/feedback", Requirement::Scope(Scope::FeedbackWrite)),
    ("POST", "/v1/profiles/{profile_id}/impressions", Requirement::Scope(Scope::FeedbackWrite)),
    ("POST", "/v1/admin/clients", Requirement::Scope(Scope::Admin)),
];

/// The requirement of a route template, if declared. HEAD is a GET.
pub fn route_requirement(method: &str, path: &str) -> Option<Requirement> {
    let method = if method == "HEAD" { "GET" } else { method };
    ROUTES.iter().find(|(m, p, _)| *m == method && *p == path).map(|(_, _, r)| *r)
}

/// Require a scope.
pub fn require(p: &Principal, scope: Scope) -> Result<(), AppError> {
    if p.scopes.contains(scope) { Ok(()) } else { Err(AppError::MissingScope(scope)) }
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
        assert!(require(&me, Scope::HistoryRead).is_ok());
        assert!(matches!(
            require(&me, Scope::CatalogWrite),
            Err(AppError::MissingScope(Scope::CatalogWrite))
        ));
    }
}
