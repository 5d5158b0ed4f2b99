//! Accounts and profiles.
//!
//! An account owns up to [`PROFILES_PER_ACCOUNT_MAX`] profiles. A kids profile always has a
//! maturity limit (default [`KIDS_DEFAULT_MATURITY_LIMIT`]) so a kids row can never show an
//! unrated-limit title by omission.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::ids::{AccountId, ProfileId};
use crate::time::Timestamp;

/// Most profiles in one account.
pub const PROFILES_PER_ACCOUNT_MAX: usize = 20;
/// Maturity limit a kids profile gets when none is given.
pub const KIDS_DEFAULT_MATURITY_LIMIT: u8 = 12;
/// Longest profile name.
pub const PROFILE_NAME_MAX_LEN: usize = 64;
/// Longest e-mail address (RFC 5321 path limit).
pub const EMAIL_MAX_LEN: usize = 254;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Server-made UUIDv7.
    pub id: AccountId,
    /// Normalised (lower-case) e-mail address.
    pub email: Email,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A syntactically plausible, lower-cased e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parse: one `@`, non-empty local and domain parts, a dot in the domain, no spaces.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let s = s.trim().to_ascii_lowercase();
        let ok = s.len() <= EMAIL_MAX_LEN
            && !s.contains(char::is_whitespace)
            && matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.')
                && !d.starts_with('.') && !d.ends_with('.') && !d.contains('@'));
        if ok {
            Ok(Self(s))
        } else {
            Err(FieldError::new("email", "invalid", "must be an e-mail address like name@example.com"))
        }
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A profile name: trimmed, 1-64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProfileName(String);

impl ProfileName {
    /// Parse a name.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if t.is_empty() || t.chars().count() > PROFILE_NAME_MAX_LEN || t.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "invalid",
                format!("must be 1-{PROFILE_NAME_MAX_LEN} characters without control characters"),
            ));
        }
        Ok(Self(t.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the server records of a profile's new playback events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// History, resume points, recommendation signals: the normal case.
    Everything,
    /// History paused, resume points kept: events move the resume point and nothing else.
    ResumePointsOnly,
    /// History paused: events are dropped.
    Nothing,
}

/// A viewer inside an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Server-made UUIDv7.
    pub id: ProfileId,
    /// Owning account.
    pub account_id: AccountId,
    /// Display name.
    pub name: ProfileName,
    /// A kids profile: rows are limited by `maturity_limit`.
    pub kids: bool,
    /// Highest title maturity (a minimum age) this profile may see; `None` = no limit.
    pub maturity_limit: Option<u8>,
    /// Hidden from followers (the feed honours it).
    pub private: bool,
    /// History is paused: new playback events are not recorded (each is answered `paused`).
    /// Absent in profiles cached by an older server: not paused.
    #[serde(default)]
    pub history_paused: bool,
    /// While history is paused, events still move the resume point (nothing else: no plays,
    /// no history, no recommendation signals).
    #[serde(default)]
    pub keep_resume_points_while_paused: bool,
    /// Bumped on every change; the ETag is derived from it.
    pub version: i64,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Profile {
    /// What a new playback event for this profile may change (issue 16, pause history).
    pub fn recording(&self) -> Recording {
        match (self.history_paused, self.keep_resume_points_while_paused) {
            (false, _) => Recording::Everything,
            (true, true) => Recording::ResumePointsOnly,
            (true, false) => Recording::Nothing,
        }
    }

    /// Whether a title with this maturity may appear for this profile.
    pub fn may_see(&self, maturity: u8) -> bool {
        self.effective_maturity_limit().is_none_or(|limit| maturity <= limit)
    }

    /// The limit rows apply: the explicit one, else the kids default for a kids profile.
    pub fn effective_maturity_limit(&self) -> Option<u8> {
        match (self.maturity_limit, self.kids) {
            (Some(l), _) => Some(l),
            (None, true) => Some(KIDS_DEFAULT_MATURITY_LIMIT),
            (None, false) => None,
        }
    }
}

/// Check a maturity limit value.
pub fn parse_maturity_limit(v: i64) -> Result<u8, FieldError> {
    u8::try_from(v)
        .ok()
        .filter(|v| *v <= crate::title::MATURITY_MAX)
        .ok_or_else(|| FieldError::new("maturity_limit", "out_of_range", "must be 0-21 (a minimum age)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn profile(kids: bool, limit: Option<u8>) -> Profile {
        Profile {
            id: ProfileId(Uuid::nil()),
            account_id: AccountId(Uuid::nil()),
            name: ProfileName::parse("Kim").unwrap(),
            kids,
            maturity_limit: limit,
            private: false,
            history_paused: false,
            keep_resume_points_while_paused: false,
            version: 1,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn kids_profiles_get_a_limit_even_when_none_is_set() {
        assert!(profile(true, None).may_see(12));
        assert!(!profile(true, None).may_see(13));
        assert!(profile(false, None).may_see(18));
        assert!(!profile(false, Some(16)).may_see(18));
        assert!(profile(true, Some(7)).may_see(7));
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["ann", "@example.com", "ann@", "ann@example", "a b@example.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ProfileName::parse("  Kim ").unwrap().as_str(), "Kim");
        assert!(ProfileName::parse("   ").is_err());
        assert!(ProfileName::parse(&"x".repeat(65)).is_err());
        assert!(ProfileName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn maturity_limits_are_ages() {
        assert_eq!(parse_maturity_limit(13).unwrap(), 13);
        assert!(parse_maturity_limit(-1).is_err());
        assert!(parse_maturity_limit(22).is_err());
    }
}
