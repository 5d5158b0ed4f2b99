//! Conditional writes (RFC 9110 section 13.1.1, `If-Match`): which current version a write may
//! act on, and the entity tags of resources that have no stored version number.
//!
//! The rule here: a store evaluates a precondition inside the transaction that writes, against
//! the version it read there, so a change that lands between a client's read and its write is
//! always caught (`StoreError::PreconditionFailed`, a 412).

use crate::time::Timestamp;

/// What an `If-Match` header asks of a write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IfMatch {
    /// No header: the write is unconditional.
    #[default]
    Absent,
    /// `*`: the resource must exist (it always does by the time this is checked).
    Any,
    /// One of these strong entity tags (quotes included) must be the current one.
    OneOf(Vec<String>),
}

impl IfMatch {
    /// The header's value, if any. Weak tags (`W/"..."`) never match: If-Match compares strongly.
    pub fn parse(header: Option<&str>) -> Self {
        let Some(v) = header.map(str::trim) else { return Self::Absent };
        if v == "*" {
            return Self::Any;
        }
        Self::OneOf(
            v.split(',')
                .map(str::trim)
                .filter(|t| t.starts_with('"') && t.ends_with('"') && t.len() >= 2)
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether a resource whose current entity tag is `current` may be written.
    pub fn admits(&self, current: &str) -> bool {
        match self {
            Self::Absent | Self::Any => true,
            Self::OneOf(tags) => tags.iter().any(|t| t == current),
        }
    }
}

/// The strong entity tag of a play: what a client saw of it (its end, watched time and whether it
/// completed). Events that reach a play later change at least one of these, so a delete sent with
/// an older tag is refused rather than removing viewing the client never saw.
pub fn play_etag(ended_at: Timestamp, watched_ms: i64, completed: bool) -> String {
    format!("\"pl{:x}.{:x}.{}\"", ended_at.0, watched_ms, u8::from(completed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_strong_tags_only() {
        let tag = play_etag(Timestamp(1_000), 60_000, false);
        assert!(IfMatch::parse(None).admits(&tag));
        assert!(IfMatch::parse(Some("*")).admits(&tag));
        assert!(IfMatch::parse(Some(&format!("\"x\", {tag}"))).admits(&tag));
        assert!(!IfMatch::parse(Some(&format!("W/{tag}"))).admits(&tag));
        assert!(!IfMatch::parse(Some("\"pl0.0.0\"")).admits(&tag));
        assert!(!IfMatch::parse(Some("garbage")).admits(&tag));
    }

    #[test]
    fn a_play_changes_its_tag_when_it_grows_or_completes() {
        let t = play_etag(Timestamp(1_000), 60_000, false);
        assert_ne!(t, play_etag(Timestamp(2_000), 60_000, false));
        assert_ne!(t, play_etag(Timestamp(1_000), 61_000, false));
        assert_ne!(t, play_etag(Timestamp(1_000), 60_000, true));
    }
}
