//! Between protobuf messages and the application's types: parsing (ids, enums, timestamps,
//! page sizes; each failure names its field) and shaping answers. No rules: what a value may be
//! is decided by the core's parsers, called from here.

use playhead_app::library::WatchState;
use playhead_app::reads::{ProgressView, RowItem, page_limit};
use playhead_core::FieldError;
use playhead_core::ids::{AccountId, PlayId, ProfileId, TitleId};
use playhead_core::ports::Viewing;
use playhead_core::profile::Profile;
use playhead_core::rules::progress::ProgressState;
use playhead_core::time::Timestamp;
use playhead_core::title::{Title, TitleInput, TitleKind};

use crate::pb;

/// A profile id field.
pub fn profile_id(s: &str) -> Result<ProfileId, FieldError> {
    ProfileId::parse(s).map_err(|_| FieldError::new("profile_id", "invalid", "must be a UUID"))
}

/// An account id field.
pub fn account_id(s: &str) -> Result<AccountId, FieldError> {
    AccountId::parse(s).map_err(|_| FieldError::new("account_id", "invalid", "must be a UUID"))
}

/// A play id field.
pub fn play_id(s: &str) -> Result<PlayId, FieldError> {
    PlayId::parse(s).map_err(|_| FieldError::new("play_id", "invalid", "must be a UUID"))
}

/// A title id field named `field`.
pub fn title_id(field: &'static str, s: &str) -> Result<TitleId, FieldError> {
    TitleId::parse(s).map_err(|e| FieldError::new(field, "invalid", e.to_string()))
}

/// `page_size`: 0 means the default (proto3 cannot tell unset from 0), else 1-100.
pub fn page_size(n: i32) -> Result<u32, FieldError> {
    page_limit((n != 0).then_some(i64::from(n))).map_err(|e| FieldError::new("page_size", e.code, e.message))
}

/// `page_token`: empty means the first page.
pub fn page_token(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A protobuf timestamp to the core's (ms), refusing values outside the representable range.
pub fn timestamp(field: &'static str, t: &prost_types::Timestamp) -> Result<Timestamp, FieldError> {
    let bad = || FieldError::new(field, "invalid", "is not a valid timestamp");
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(bad());
    }
    let ms = t
        .seconds
        .checked_mul(1000)
        .and_then(|s| s.checked_add(i64::from(t.nanos / 1_000_000)))
        .ok_or_else(bad)?;
    Ok(Timestamp(ms))
}

/// The core's timestamp as protobuf.
pub fn to_proto_time(t: Timestamp) -> prost_types::Timestamp {
    let (secs, ms) = (t.0.div_euclid(1000), t.0.rem_euclid(1000));
    prost_types::Timestamp { seconds: secs, nanos: i32::try_from(ms * 1_000_000).unwrap_or(0) }
}

/// An enum field's raw value that no version of the proto defines (a newer client, or garbage).
pub fn unknown_enum(field: &'static str, value: i32) -> FieldError {
    FieldError::new(field, "invalid", format!("{value} is not a known value"))
}

/// A title as the catalog stores it.
pub fn title(t: &Title) -> pb::Title {
    title_for(t, None)
}

/// A title as a profile sees it: with its watched state for that profile, when known.
pub fn title_for(t: &Title, w: Option<WatchState>) -> pb::Title {
    pb::Title {
        title_id: t.id.to_string(),
        kind: match t.kind {
            TitleKind::Movie => pb::TitleKind::Movie,
            TitleKind::Series => pb::TitleKind::Series,
            TitleKind::Episode => pb::TitleKind::Episode,
        } as i32,
        name: t.name.clone(),
        duration_ms: t.duration_ms,
        credits_start_ms: t.credits_start_ms,
        series_id: t.series_id.as_ref().map(ToString::to_string),
        season: t.season,
        episode: t.episode,
        genres: t.genres.clone(),
        maturity: u32::from(t.maturity),
        release_year: t.release_year,
        available_from: t.available_from.map(to_proto_time),
        external_ids: t.external_ids.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        watched: w.map(|w| w.watched),
        play_count: w.map(|w| w.play_count),
    }
}

/// A title as a client sent it, before the core validates it (every field problem is
/// reported together by the core; only what protobuf cannot say is checked here).
pub fn title_input(t: pb::Title) -> Result<TitleInput, Vec<FieldError>> {
    let mut problems = Vec::new();
    let kind = match pb::TitleKind::try_from(t.kind) {
        Ok(pb::TitleKind::Unspecified) => None,
        Ok(k) => Some(k.as_str_name().trim_start_matches("TITLE_KIND_").to_ascii_lowercase()),
        Err(_) => {
            problems.push(unknown_enum("kind", t.kind));
            None
        }
    };
    let maturity = match u8::try_from(t.maturity) {
        Ok(m) => Some(m),
        Err(_) => {
            problems.push(FieldError::new("maturity", "out_of_range", "must be 0-21"));
            None
        }
    };
    let available_from = match t.available_from.as_ref().map(|a| timestamp("available_from", a)).transpose() {
        Ok(a) => a,
        Err(e) => {
            problems.push(e);
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(TitleInput {
        id: (!t.title_id.is_empty()).then_some(t.title_id),
        kind,
        name: (!t.name.is_empty()).then_some(t.name),
        duration_ms: Some(t.duration_ms),
        credits_start_ms: t.credits_start_ms,
        series_id: t.series_id,
        season: t.season,
        episode: t.episode,
        genres: Some(t.genres),
        maturity,
        release_year: t.release_year,
        available_from,
        external_ids: Some(t.external_ids.into_iter().collect()),
    })
}

/// A row entry.
pub fn row_item(i: &RowItem) -> pb::RowItem {
    pb::RowItem {
        title_id: i.title.id.to_string(),
        title: Some(title_for(&i.title, Some(i.watch))),
        position_ms: i.position_ms,
        percent: i.percent,
        activity_at: Some(to_proto_time(i.activity_at)),
    }
}

/// A resume point.
pub fn progress(v: &ProgressView) -> pb::Progress {
    pb::Progress {
        title_id: v.title_id.to_string(),
        position_ms: v.position_ms,
        duration_ms: v.duration_ms,
        percent: v.percent,
        state: match v.state {
            ProgressState::NotStarted => pb::ProgressState::NotStarted,
            ProgressState::InProgress => pb::ProgressState::InProgress,
            ProgressState::Finished => pb::ProgressState::Finished,
        } as i32,
        updated_at: v.updated_at.map(to_proto_time),
        version: Some(match v.version {
            Some((t, id)) => {
                pb::ProgressVersion { event_id: id.0.to_string(), occurred_at: Some(to_proto_time(t)) }
            }
            None => pb::ProgressVersion { event_id: String::new(), occurred_at: None },
        }),
    }
}

/// A play and its title (absent when it has left the catalog) with the title's watched state.
pub fn play(v: &Viewing, t: Option<&Title>, w: WatchState) -> pb::Play {
    pb::Play {
        play_id: v.id.0.to_string(),
        title_id: v.title_id.to_string(),
        title: t.map(|t| title_for(t, Some(w))),
        started_at: Some(to_proto_time(v.started_at)),
        ended_at: Some(to_proto_time(v.ended_at)),
        watched_ms: v.watched_ms,
        completed: v.completed,
        manual: v.manual,
    }
}

/// A profile.
pub fn profile(p: &Profile) -> pb::Profile {
    pb::Profile {
        profile_id: p.id.to_string(),
        account_id: p.account_id.to_string(),
        name: p.name.as_str().to_owned(),
        kids: p.kids,
        maturity_limit: p.maturity_limit.map(u32::from),
        private: p.private,
        version: p.version,
        created_at: Some(to_proto_time(p.created_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1, -1_001] {
            let t = Timestamp(ms);
            assert_eq!(timestamp("t", &to_proto_time(t)).expect("valid"), t, "{ms}");
        }
        assert!(timestamp("t", &prost_types::Timestamp { seconds: 1, nanos: -1 }).is_err());
        assert!(timestamp("t", &prost_types::Timestamp { seconds: i64::MAX, nanos: 0 }).is_err());
    }

    #[test]
    fn page_size_zero_is_the_default_and_the_range_is_rests() {
        assert_eq!(page_size(0).expect("default"), 20);
        assert_eq!(page_size(100).expect("max"), 100);
        assert_eq!(page_size(101).expect_err("too big").field, "page_size");
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn unknown_title_kinds_are_named() {
        let t = pb::Title { kind: 42, ..Default::default() };
        let problems = title_input(t).expect_err("unknown kind");
        assert_eq!(problems[0].field, "kind");
    }
}
