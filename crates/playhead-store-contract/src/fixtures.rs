//! Small builders the checks share: deterministic ids and times, so a failure reproduces exactly.

use playhead_core::event::{EventKind, PlaybackEvent};
use playhead_core::ids::{AccountId, DeviceId, EventId, PlayId, ProfileId, SessionId, TitleId};
use playhead_core::ports::{LogEntry, Viewing};
use playhead_core::profile::{Account, Email, Profile, ProfileName};
use playhead_core::rules::progress::ProgressRecord;
use playhead_core::rules::viewing::SessionKey;
use playhead_core::time::{MINUTE_MS, Timestamp};
use playhead_core::title::{Title, TitleKind};
use uuid::Uuid;

use crate::Stores;

/// A fixed instant the checks count from (2027-01-15).
pub(crate) const T0: i64 = 1_800_000_000_000;

/// `T0 + ms`.
pub(crate) fn at(ms: i64) -> Timestamp {
    Timestamp(T0 + ms)
}

/// `T0 + m` minutes.
pub(crate) fn min(m: i64) -> Timestamp {
    at(m * MINUTE_MS)
}

pub(crate) fn tid(s: &str) -> TitleId {
    TitleId::parse(s).expect("a valid title id")
}

pub(crate) fn eid(n: u128) -> EventId {
    EventId(Uuid::from_u128(n))
}

pub(crate) fn play(n: u128) -> PlayId {
    PlayId(Uuid::from_u128(n))
}

pub(crate) fn device(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("a valid device id")
}

pub(crate) fn session(s: &str) -> SessionId {
    SessionId::parse(s).expect("a valid session id")
}

pub(crate) fn explicit(s: &str) -> SessionKey {
    SessionKey::Explicit(session(s))
}

pub(crate) fn implicit(d: Option<&str>) -> SessionKey {
    SessionKey::Implicit(d.map(device))
}

/// A heartbeat on device "tv" without a session, at `when`, position = minutes since T0.
pub(crate) fn event(profile: ProfileId, title: &str, id: u128, when: Timestamp) -> PlaybackEvent {
    PlaybackEvent {
        event_id: eid(id),
        profile_id: profile,
        title_id: tid(title),
        kind: EventKind::Heartbeat,
        position_ms: (when.0 - T0).max(0),
        duration_ms: Some(7_200_000),
        occurred_at: when,
        occurred_at_raw: when,
        received_at: when.plus_ms(1_000),
        device_id: Some(device("tv")),
        session_id: None,
    }
}

/// The same event in an explicit session.
pub(crate) fn in_session(mut ev: PlaybackEvent, s: &str) -> PlaybackEvent {
    ev.session_id = Some(session(s));
    ev
}

/// The same event from another device (`None`: the player sent none).
pub(crate) fn on_device(mut ev: PlaybackEvent, d: Option<&str>) -> PlaybackEvent {
    ev.device_id = d.map(device);
    ev
}

/// A log entry to queue.
pub(crate) fn queued(ev: &PlaybackEvent) -> LogEntry {
    LogEntry { event: ev.clone(), hold: false, trace: None }
}

/// A log entry to hold (title not imported yet).
pub(crate) fn held(ev: &PlaybackEvent) -> LogEntry {
    LogEntry { event: ev.clone(), hold: true, trace: None }
}

/// Create an account and one profile in it; returns the profile id. `n` keeps ids and e-mails
/// apart between calls.
pub(crate) async fn new_profile(s: &Stores, n: u128) -> ProfileId {
    let account = Account {
        id: AccountId(Uuid::from_u128(0xacc0_0000 + n)),
        email: Email::parse(&format!("viewer{n}@example.com")).expect("a valid e-mail"),
        created_at: at(0),
    };
    s.accounts.create_account(&account).await.expect("create_account");
    let profile = Profile {
        id: ProfileId(Uuid::from_u128(0xf00_0000 + n)),
        account_id: account.id,
        name: ProfileName::parse(&format!("Viewer {n}")).expect("a valid name"),
        kids: false,
        maturity_limit: None,
        private: false,
        history_paused: false,
        keep_resume_points_while_paused: false,
        version: 1,
        created_at: at(0),
    };
    s.accounts.create_profile(&profile, 5).await.expect("create_profile");
    profile.id
}

/// A movie with every optional field empty.
pub(crate) fn movie(id: &str) -> Title {
    Title {
        id: tid(id),
        kind: TitleKind::Movie,
        name: format!("Movie {id}"),
        duration_ms: 7_200_000,
        credits_start_ms: None,
        series_id: None,
        season: None,
        episode: None,
        genres: Vec::new(),
        maturity: 0,
        release_year: None,
        available_from: None,
        external_ids: Default::default(),
    }
}

/// A series container.
pub(crate) fn series(id: &str) -> Title {
    Title { kind: TitleKind::Series, duration_ms: 0, name: format!("Series {id}"), ..movie(id) }
}

/// An episode of `series`.
pub(crate) fn episode(id: &str, series: &str, season: Option<i32>, number: i32) -> Title {
    Title {
        kind: TitleKind::Episode,
        name: format!("Episode {id}"),
        duration_ms: 2_700_000,
        series_id: Some(tid(series)),
        season,
        episode: Some(number),
        ..movie(id)
    }
}

/// A viewing of `title` from `from` to `to`.
pub(crate) fn viewing(
    id: u128,
    profile: ProfileId,
    title: &str,
    key: Option<SessionKey>,
    from: Timestamp,
    to: Timestamp,
    is_play: bool,
) -> Viewing {
    Viewing {
        id: play(id),
        profile_id: profile,
        title_id: tid(title),
        key,
        started_at: from,
        ended_at: to,
        watched_ms: to.0 - from.0,
        completed: false,
        is_play,
        manual: false,
    }
}

/// A resume point at `position_ms`, versioned by (`when`, `event`).
pub(crate) fn resume(
    profile: ProfileId,
    title: &str,
    position_ms: i64,
    when: Timestamp,
    event: u128,
) -> ProgressRecord {
    ProgressRecord {
        profile_id: profile,
        title_id: tid(title),
        position_ms,
        duration_ms: 7_200_000,
        occurred_at: when,
        event_id: eid(event),
        finished: false,
        updated_at: when.plus_ms(500),
    }
}

/// Store viewings through one committed apply transaction.
pub(crate) async fn store_viewings(s: &Stores, remove: &[PlayId], upsert: &[Viewing]) {
    let mut tx = s.viewing.begin().await.expect("begin");
    tx.replace_viewings(remove, upsert).await.expect("replace_viewings");
    tx.commit().await.expect("commit");
}

/// Sort viewings by (started_at, id) so sets compare regardless of the adapter's order.
pub(crate) fn sorted(mut v: Vec<Viewing>) -> Vec<Viewing> {
    v.sort_by_key(|x| (x.started_at, x.id));
    v
}
