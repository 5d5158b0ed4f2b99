//! Who is calling and what they may do: scopes and principals.
//!
//! The decisions (which scope a use case needs, who may reach a profile) live in the application's
//! policy module; this module only defines the vocabulary so every layer speaks the same words.

use std::fmt;

use crate::ids::{AccountId, ProfileId};

/// An OAuth scope Playhead understands (DESIGN.md, "Auth").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read resume points, history and rows.
    HistoryRead,
    /// Send playback events, set resume points, edit history.
    HistoryWrite,
    /// Create and edit profiles.
    ProfilesWrite,
    /// A service acting on any profile (audited).
    ProfilesAny,
    /// Import and edit the catalog.
    CatalogWrite,
    /// Read recommendations.
    RecsRead,
    /// Send ratings and "not interested".
    FeedbackWrite,
    /// Read the followers' activity feed.
    FeedRead,
    /// Follow and post to the feed.
    FeedWrite,
    /// Operator access.
    Admin,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 10] = [
        Scope::HistoryRead,
        Scope::HistoryWrite,
        Scope::ProfilesWrite,
        Scope::ProfilesAny,
        Scope::CatalogWrite,
        Scope::RecsRead,
        Scope::FeedbackWrite,
        Scope::FeedRead,
        Scope::FeedWrite,
        Scope::Admin,
    ];

    /// What a viewer's app gets by default: everything about their own profiles, nothing more.
    pub const VIEWER: [Scope; 7] = [
        Scope::HistoryRead,
        Scope::HistoryWrite,
        Scope::ProfilesWrite,
        Scope::RecsRead,
        Scope::FeedbackWrite,
        Scope::FeedRead,
        Scope::FeedWrite,
    ];

    /// The scope's wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::HistoryRead => "history:read",
            Scope::HistoryWrite => "history:write",
            Scope::ProfilesWrite => "profiles:write",
            Scope::ProfilesAny => "profiles:any",
            Scope::CatalogWrite => "catalog:write",
            Scope::RecsRead => "recs:read",
            Scope::FeedbackWrite => "feedback:write",
            Scope::FeedRead => "feed:read",
            Scope::FeedWrite => "feed:write",
            Scope::Admin => "admin",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sc| sc.as_str() == s)
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes (a bit set: checked on every request, so it is cheap to copy and test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes(u16);

/// A scope string contained a name Playhead does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope {0:?}; known scopes: history:read history:write profiles:write profiles:any catalog:write recs:read feedback:write feed:read feed:write admin"
)]
pub struct UnknownScope(pub String);

impl Scopes {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Parse a space-separated scope string (RFC 6749 section 3.3). Unknown names are an error.
    pub fn parse(s: &str) -> Result<Self, UnknownScope> {
        s.split_ascii_whitespace().try_fold(Self::empty(), |acc, name| {
            Scope::parse(name).map(|sc| acc.with(sc)).ok_or_else(|| UnknownScope(name.to_owned()))
        })
    }

    /// This set plus one scope.
    #[must_use]
    pub const fn with(self, s: Scope) -> Self {
        Self(self.0 | s.bit())
    }

    /// Whether the set holds `s`.
    pub const fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    /// Scopes in both sets.
    #[must_use]
    pub const fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The scopes in stable order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::with)
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s.as_str())?;
            first = false;
        }
        Ok(())
    }
}

/// The three roles of DESIGN.md's Auth section. A role is a ceiling on scopes: what a principal may
/// hold at most, never a grant by itself (the token's scopes still decide). External issuers map
/// their own claims to one of these, capped by the highest role configured for that issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A person using their own profiles.
    Viewer,
    /// A platform backend: catalog writes and, with `profiles:any`, any profile (audited).
    Service,
    /// An operator.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Service, Role::Admin];

    /// The role's wire name (config files, claim mapping).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Service => "service",
            Role::Admin => "admin",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The most a principal of this role may hold.
    pub fn ceiling(self) -> Scopes {
        match self {
            Role::Viewer => Scope::VIEWER.into_iter().collect(),
            Role::Service => {
                Scope::VIEWER.into_iter().chain([Scope::ProfilesAny, Scope::CatalogWrite]).collect()
            }
            Role::Admin => Scope::ALL.into_iter().collect(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A person's account (JWT `sub`).
    Account(AccountId),
    /// A platform service identified by an API key or client id; owns no profiles.
    Service {
        /// The credential's stable id (API key prefix or OAuth client id), for audit logs.
        id: String,
    },
}

/// An authenticated caller, as the application sees it after the transport verified the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account or service.
    pub subject: Subject,
    /// What the token allows.
    pub scopes: Scopes,
    /// A token bound to one profile (a TV signed in as the kids profile) reaches only that one.
    pub bound_profile: Option<ProfileId>,
    /// The sign-in session (JWT `sid`), for revocation and audit.
    pub session_id: Option<String>,
    /// When the person last authenticated interactively (JWT `auth_time`, Unix seconds): changing
    /// kids or maturity_limit needs it recent.
    pub auth_time: Option<i64>,
}

impl Principal {
    /// The account, when the subject is a person.
    pub fn account(&self) -> Option<AccountId> {
        match self.subject {
            Subject::Account(a) => Some(a),
            Subject::Service { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_strings_round_trip() {
        let s = Scopes::parse("history:read  admin history:write").unwrap();
        assert!(s.contains(Scope::Admin) && s.contains(Scope::HistoryRead));
        assert!(!s.contains(Scope::CatalogWrite));
        assert_eq!(s.to_string(), "history:read history:write admin");
        assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn role_ceilings_nest_and_only_admin_reaches_admin() {
        let (v, s, a) = (Role::Viewer.ceiling(), Role::Service.ceiling(), Role::Admin.ceiling());
        assert_eq!(v.intersect(s), v);
        assert_eq!(s.intersect(a), s);
        assert!(!v.contains(Scope::ProfilesAny) && !v.contains(Scope::CatalogWrite));
        assert!(s.contains(Scope::ProfilesAny) && !s.contains(Scope::Admin));
        assert!(a.contains(Scope::Admin));
        assert!(Role::Viewer < Role::Service && Role::Service < Role::Admin);
        assert_eq!(Role::parse("service"), Some(Role::Service));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn unknown_scopes_are_an_error_not_ignored() {
        assert_eq!(Scopes::parse("history:read root"), Err(UnknownScope("root".into())));
    }
}
