//! Identifiers. Parse, don't validate: each constructor is the only way in.
//!
//! Account, profile and play ids are UUIDv7 made by the server (time-ordered, so B-tree inserts
//! stay local). Event ids are the client's UUIDs: they are the dedupe key. Title ids belong to the
//! platform's catalog and are opaque strings of a restricted alphabet so they are safe in URLs,
//! logs and cache keys.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wrap an existing UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
            /// Parse the hyphenated text form.
            pub fn parse(s: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// An account: the paying customer; owns profiles.
    AccountId
);
uuid_id!(
    /// A profile: one viewer inside an account.
    ProfileId
);
uuid_id!(
    /// A concurrent stream: one player playing for an account (made by the server at its start).
    StreamId
);
uuid_id!(
    /// One play (a viewing that passed the play threshold).
    PlayId
);
uuid_id!(
    /// The client's id for a playback event; the dedupe key.
    EventId
);
uuid_id!(
    /// One erasure saga (an account's or a profile's data being erased).
    ErasureId
);
uuid_id!(
    /// One data export request.
    ExportId
);
uuid_id!(
    /// One activity in the followers' feed (UUIDv7 stamped with its time).
    ActivityId
);

/// Longest title id accepted.
pub const TITLE_ID_MAX_LEN: usize = 128;

/// A catalog title id: 1-128 characters of `A-Za-z0-9._:-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TitleId(String);

/// Why a string is not a valid title id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTitleId {
    /// Empty string.
    #[error("title id must not be empty")]
    Empty,
    /// Over the length limit.
    #[error("title id is longer than {TITLE_ID_MAX_LEN} characters")]
    TooLong,
    /// A character outside the alphabet.
    #[error("title id may only contain A-Z a-z 0-9 . _ : - (found {0:?})")]
    BadChar(char),
}

impl TitleId {
    /// Parse a title id.
    pub fn parse(s: &str) -> Result<Self, InvalidTitleId> {
        if s.is_empty() {
            return Err(InvalidTitleId::Empty);
        }
        if s.len() > TITLE_ID_MAX_LEN {
            return Err(InvalidTitleId::TooLong);
        }
        if let Some(c) =
            s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(InvalidTitleId::BadChar(c));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TitleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TitleId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Longest client session id accepted.
pub const SESSION_ID_MAX_LEN: usize = 128;

/// A client's playback session id: 1-128 printable ASCII characters (players use UUIDs or their
/// own counters, so the format is not fixed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

/// Why a string is not a valid session or device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1-128 printable ASCII characters")]
pub struct InvalidClientId;

impl SessionId {
    /// Parse a session id.
    pub fn parse(s: &str) -> Result<Self, InvalidClientId> {
        parse_client_id(s).map(Self)
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's device id, same alphabet as [`SessionId`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// Parse a device id.
    pub fn parse(s: &str) -> Result<Self, InvalidClientId> {
        parse_client_id(s).map(Self)
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! client_id_serde {
    ($name:ident) => {
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
client_id_serde!(SessionId);
client_id_serde!(DeviceId);

fn parse_client_id(s: &str) -> Result<String, InvalidClientId> {
    let ok = !s.is_empty()
        && s.len() <= SESSION_ID_MAX_LEN
        && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if ok { Ok(s.to_owned()) } else { Err(InvalidClientId) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_ids_accept_the_platform_alphabet() {
        for ok in ["tt0111161", "show:breaking-bad.s01e01", "A_b-C.d:9"] {
            assert_eq!(TitleId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn title_ids_reject_empty_long_and_foreign_characters() {
        assert_eq!(TitleId::parse(""), Err(InvalidTitleId::Empty));
        assert_eq!(TitleId::parse(&"a".repeat(129)), Err(InvalidTitleId::TooLong));
        assert!(TitleId::parse(&"a".repeat(128)).is_ok());
        assert_eq!(TitleId::parse("a/b"), Err(InvalidTitleId::BadChar('/')));
        assert_eq!(TitleId::parse("é"), Err(InvalidTitleId::BadChar('é')));
    }

    #[test]
    fn client_ids_are_printable_ascii() {
        assert!(SessionId::parse("3f0c-1").is_ok());
        assert!(SessionId::parse("").is_err());
        assert!(DeviceId::parse("tv\n").is_err());
        assert!(DeviceId::parse(&"x".repeat(129)).is_err());
    }
}
