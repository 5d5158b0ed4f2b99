//! Concurrent streams (issue 17, decision 0092): at most N players play for one account at once.
//!
//! A stream is one player playing: the events of one playback session (`session_id`; without
//! one, the player's device, then its sign-in session) of one profile. It is live while its
//! events keep arriving: `timeout_ms` after the last one (server clock) it is gone and its slot
//! is free, so a device that vanishes never holds a slot for longer than that. `stop` and
//! `complete` end it at once. Another device may stop it (the account's "stop one"): it is then
//! kept, marked stopped, for one timeout, so its player learns at its next event.
//!
//! The rule is [`plan`]: given an account's stored streams and one batch's events, which events
//! may play and what the account's streams become. It is pure; the store runs it under the
//! account's lock (one transaction per batch, see `StreamStore`), which is what makes a start
//! flood from many replicas unable to pass the limit.

use crate::event::EventKind;
use crate::ids::{AccountId, ProfileId, StreamId, TitleId};
use crate::time::{SECOND_MS, Timestamp};

/// The limits of the rule (config `streams.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRules {
    /// Simultaneous streams per account unless an operator set another limit for the account.
    pub max_per_account: u32,
    /// A stream with no event for this long is gone (its slot is free).
    pub timeout_ms: i64,
}

impl Default for StreamRules {
    fn default() -> Self {
        Self { max_per_account: 4, timeout_ms: 120 * SECOND_MS }
    }
}

/// Most streams an operator may allow one account (a typo of 10000 is refused, not obeyed).
pub const MAX_STREAM_LIMIT: u32 = 1_000;

/// One stream as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Server-made id: what `DELETE /v1/me/streams/{id}` takes.
    pub id: StreamId,
    /// Whose slot it takes.
    pub account: AccountId,
    /// Which profile is watching.
    pub profile: ProfileId,
    /// What identifies it among the profile's events (see [`StreamTouch::key`]).
    pub key: String,
    /// What is playing (the title of its latest event).
    pub title: TitleId,
    /// The player's device id, when it sends one.
    pub device_id: Option<String>,
    /// The sign-in session (`sid`) of the token that started it, when it had one.
    pub signin_session: Option<String>,
    /// Its first event (server clock).
    pub started_at: Timestamp,
    /// Its latest event (server clock): the timeout counts from here.
    pub last_seen: Timestamp,
    /// When another device stopped it.
    pub stopped_at: Option<Timestamp>,
}

impl Stream {
    /// Whether it still takes a slot at `now`.
    pub fn is_live(&self, now: Timestamp, timeout_ms: i64) -> bool {
        self.stopped_at.is_none() && self.is_kept(now, timeout_ms)
    }

    /// Whether it is still stored at `now` (a stopped one is kept for one timeout after its last
    /// event so its player learns it was stopped).
    pub fn is_kept(&self, now: Timestamp, timeout_ms: i64) -> bool {
        now.0 - self.last_seen.0 <= timeout_ms
    }

    /// What identifies the player for "one device, one stream": its device id, else its sign-in.
    fn device_key(&self) -> Option<&str> {
        self.device_id.as_deref().or(self.signin_session.as_deref())
    }
}

/// One admitted event, as far as streams care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTouch {
    /// The profile the event is for.
    pub profile: ProfileId,
    /// The stream it belongs to: see [`stream_key`].
    pub key: String,
    /// Its title.
    pub title: TitleId,
    /// What happened.
    pub kind: EventKind,
    /// Client time, corrected for skew: the order within the batch, and too old means late.
    pub occurred_at: Timestamp,
    /// The event's device id.
    pub device_id: Option<String>,
    /// The token's sign-in session.
    pub signin_session: Option<String>,
}

/// The stream an event belongs to: its `session_id`, else its device, else the token's sign-in
/// session. `None`: nothing identifies a player (a service's token without either), so the event
/// is not counted.
pub fn stream_key(session_id: Option<&str>, device_id: Option<&str>, signin: Option<&str>) -> Option<String> {
    match (session_id, device_id, signin) {
        (Some(s), _, _) => Some(format!("session:{s}")),
        (None, Some(d), _) => Some(format!("device:{d}")),
        (None, None, Some(sid)) => Some(format!("signin:{sid}")),
        (None, None, None) => None,
    }
}

/// What the rule says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamVerdict {
    /// It may play (and be recorded).
    Allowed,
    /// It would start a stream beyond the account's limit: refused.
    OverLimit,
    /// Its stream was stopped from another device: refused, the player must stop.
    Stopped,
}

/// The rule's answer for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// One verdict per touch, in the order given.
    pub verdicts: Vec<StreamVerdict>,
    /// The account's streams afterwards (expired ones dropped), oldest first.
    pub streams: Vec<Stream>,
    /// Whether `streams` differs from what was stored (else nothing needs writing).
    pub changed: bool,
}

impl StreamPlan {
    /// The streams that take a slot at `now`.
    pub fn live(&self, now: Timestamp, timeout_ms: i64) -> Vec<Stream> {
        self.streams.iter().filter(|s| s.is_live(now, timeout_ms)).cloned().collect()
    }
}

/// Decide a batch. `stored` is every stream stored for `account`; `limit` its limit; `now` the
/// server clock; `new_id` makes the id of each stream started.
///
/// Events are taken in `occurred_at` order (a batch flushed after a network gap may be in any
/// order). An event older than one timeout is late (an offline queue draining): it neither
/// starts nor refreshes a stream and is allowed, so history is never lost to the limit.
/// Otherwise:
/// - on a live stream: refreshes it (`stop`/`complete` end it, freeing the slot);
/// - on a stopped stream: [`StreamVerdict::Stopped`] (a `stop`/`complete` also forgets it; a
///   `start` is a new stream, as on an unknown one);
/// - on no stream: `stop`/`complete` are allowed and start nothing; any other kind starts one
///   (so a player resuming after the timeout, or that never sent `start`, is counted too). The
///   start first ends the same device's other live stream (one device plays one thing: a TV
///   switching titles without a `stop` must not lock itself out for a timeout), then needs a free
///   slot, else [`StreamVerdict::OverLimit`].
pub fn plan(
    account: AccountId,
    stored: Vec<Stream>,
    limit: u32,
    touches: &[StreamTouch],
    rules: &StreamRules,
    now: Timestamp,
    mut new_id: impl FnMut() -> StreamId,
) -> StreamPlan {
    let timeout = rules.timeout_ms;
    let before = stored.len();
    let mut streams: Vec<Stream> = stored.into_iter().filter(|s| s.is_kept(now, timeout)).collect();
    let mut changed = streams.len() != before;
    let mut verdicts = vec![StreamVerdict::Allowed; touches.len()];
    let mut order: Vec<usize> = (0..touches.len()).collect();
    order.sort_by_key(|&i| touches[i].occurred_at);
    for i in order {
        let t = &touches[i];
        if now.0 - t.occurred_at.0 > timeout {
            continue;
        }
        let ends = matches!(t.kind, EventKind::Stop | EventKind::Complete);
        let found = streams.iter().position(|s| s.profile == t.profile && s.key == t.key);
        if let Some(at) = found {
            let s = &mut streams[at];
            match (s.stopped_at.is_some(), ends) {
                (true, false) if t.kind != EventKind::Start => {
                    changed |= refresh(s, &t.title, now, timeout);
                    verdicts[i] = StreamVerdict::Stopped;
                    continue;
                }
                (true, true) => {
                    streams.remove(at);
                    changed = true;
                    verdicts[i] = StreamVerdict::Stopped;
                    continue;
                }
                (false, true) => {
                    streams.remove(at);
                    changed = true;
                    continue;
                }
                (false, false) => {
                    changed |= refresh(s, &t.title, now, timeout);
                    continue;
                }
                // A new start on a stopped stream's key: the viewer pressed play again.
                (true, false) => {
                    streams.remove(at);
                }
            }
        } else if ends {
            continue;
        }
        changed = true;
        verdicts[i] = start(account, &mut streams, limit, t, now, timeout, &mut new_id);
    }
    StreamPlan { verdicts, streams, changed }
}

/// Note an event on a stored stream. `last_seen` is written only once it is an eighth of a
/// timeout old (or the title changed), so a batch of heartbeats on live streams usually writes
/// nothing: a stream may therefore expire up to an eighth of a timeout early, never late.
fn refresh(s: &mut Stream, title: &TitleId, now: Timestamp, timeout: i64) -> bool {
    if now.0 - s.last_seen.0 < timeout / 8 && s.title == *title {
        return false;
    }
    s.last_seen = now;
    s.title = title.clone();
    true
}

/// Start the stream of `t` if the account has room (after ending the device's other stream).
fn start(
    account: AccountId,
    streams: &mut Vec<Stream>,
    limit: u32,
    t: &StreamTouch,
    now: Timestamp,
    timeout: i64,
    new_id: &mut impl FnMut() -> StreamId,
) -> StreamVerdict {
    let device = t.device_id.as_deref().or(t.signin_session.as_deref());
    if let Some(device) = device {
        streams.retain(|s| !(s.is_live(now, timeout) && s.device_key() == Some(device)));
    }
    let live = streams.iter().filter(|s| s.is_live(now, timeout)).count();
    if live >= limit as usize {
        return StreamVerdict::OverLimit;
    }
    streams.push(Stream {
        id: new_id(),
        account,
        profile: t.profile,
        key: t.key.clone(),
        title: t.title.clone(),
        device_id: t.device_id.clone(),
        signin_session: t.signin_session.clone(),
        started_at: now,
        last_seen: now,
        stopped_at: None,
    });
    StreamVerdict::Allowed
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    const T: i64 = 120_000;
    const NOW: Timestamp = Timestamp(1_000_000_000);

    fn rules() -> StreamRules {
        StreamRules { max_per_account: 2, timeout_ms: T }
    }

    fn acct() -> AccountId {
        AccountId(Uuid::from_u128(1))
    }

    fn prof() -> ProfileId {
        ProfileId(Uuid::from_u128(2))
    }

    fn touch(session: &str, device: &str, kind: EventKind) -> StreamTouch {
        StreamTouch {
            profile: prof(),
            key: stream_key(Some(session), None, None).unwrap(),
            title: TitleId::parse("m1").unwrap(),
            kind,
            occurred_at: NOW,
            device_id: Some(device.to_owned()),
            signin_session: None,
        }
    }

    fn ids() -> impl FnMut() -> StreamId {
        let mut n = 100;
        move || {
            n += 1;
            StreamId(Uuid::from_u128(n))
        }
    }

    /// Decide `touches` at `now`; their times are taken relative to `now` (a touch at `NOW`
    /// happens at `now`).
    fn run(stored: Vec<Stream>, limit: u32, touches: &[StreamTouch], now: Timestamp) -> StreamPlan {
        let touches: Vec<_> = touches
            .iter()
            .cloned()
            .map(|mut t| {
                t.occurred_at = now.plus_ms(t.occurred_at.0 - NOW.0);
                t
            })
            .collect();
        plan(acct(), stored, limit, &touches, &rules(), now, ids())
    }

    use EventKind::{Complete, Heartbeat, Pause, Start, Stop};
    use StreamVerdict::{Allowed, OverLimit, Stopped};

    #[test]
    fn starts_beyond_the_limit_are_refused_and_retries_of_a_live_one_are_not() {
        let p = run(
            vec![],
            2,
            &[
                touch("a", "tv", Start),
                touch("b", "phone", Start),
                touch("c", "pc", Start),
                touch("a", "tv", Start),
            ],
            NOW,
        );
        assert_eq!(p.verdicts, [Allowed, Allowed, OverLimit, Allowed]);
        assert_eq!(p.live(NOW, T).len(), 2);
        // The refused player keeps being refused on its heartbeats, never sneaking in.
        let p = run(p.streams, 2, &[touch("c", "pc", Heartbeat)], NOW.plus_ms(1000));
        assert_eq!(p.verdicts, [OverLimit]);
    }

    #[test]
    fn the_timeout_frees_the_slot_and_heartbeats_keep_it() {
        let p = run(vec![], 1, &[touch("a", "tv", Start)], NOW);
        let later = NOW.plus_ms(T - 1);
        let p = run(p.streams, 1, &[touch("a", "tv", Heartbeat)], later);
        assert_eq!(p.verdicts, [Allowed]);
        assert_eq!(
            run(p.streams.clone(), 1, &[touch("b", "pc", Start)], later.plus_ms(T)).verdicts,
            [OverLimit]
        );
        let gone = later.plus_ms(T + 1);
        let q = run(p.streams, 1, &[touch("b", "pc", Start)], gone);
        assert_eq!(q.verdicts, [Allowed]);
        assert_eq!(q.streams.len(), 1, "the expired stream is dropped");
    }

    #[test]
    fn stop_and_complete_free_the_slot_at_once() {
        for end in [Stop, Complete] {
            let p = run(vec![], 1, &[touch("a", "tv", Start), touch("a", "tv", end)], NOW);
            assert_eq!(p.verdicts, [Allowed, Allowed]);
            assert!(p.streams.is_empty(), "{end:?}");
        }
    }

    #[test]
    fn a_stopped_stream_learns_at_its_next_event_and_frees_its_slot() {
        let mut p = run(vec![], 1, &[touch("a", "tv", Start)], NOW);
        p.streams[0].stopped_at = Some(NOW.plus_ms(10));
        let at = NOW.plus_ms(5_000);
        let q = run(p.streams, 1, &[touch("b", "pc", Start), touch("a", "tv", Heartbeat)], at);
        assert_eq!(q.verdicts, [Allowed, Stopped]);
        // It keeps learning while it keeps trying; its `stop` is refused too and forgets it.
        let r = run(q.streams, 1, &[touch("a", "tv", Pause), touch("a", "tv", Stop)], at.plus_ms(1));
        assert_eq!(r.verdicts, [Stopped, Stopped]);
        assert_eq!(r.streams.len(), 1);
        assert_eq!(r.streams[0].key, "session:b");
    }

    #[test]
    fn pressing_play_again_after_a_stop_is_a_new_start() {
        let mut p = run(vec![], 1, &[touch("a", "tv", Start)], NOW);
        p.streams[0].stopped_at = Some(NOW);
        let q = run(p.streams.clone(), 1, &[touch("a", "tv", Start)], NOW.plus_ms(1));
        assert_eq!(q.verdicts, [Allowed]);
        assert!(q.streams[0].stopped_at.is_none());
        assert_eq!(q.streams[0].started_at, NOW.plus_ms(1), "started again");
    }

    #[test]
    fn one_device_plays_one_stream_so_switching_titles_never_locks_it_out() {
        let p = run(vec![], 1, &[touch("a", "tv", Start)], NOW);
        let q = run(p.streams, 1, &[touch("b", "tv", Start)], NOW.plus_ms(1));
        assert_eq!(q.verdicts, [Allowed]);
        assert_eq!(q.streams.len(), 1);
        assert_eq!(q.streams[0].key, "session:b");
    }

    #[test]
    fn heartbeats_soon_after_the_last_write_change_nothing() {
        let p = run(vec![], 1, &[touch("a", "tv", Start)], NOW);
        let q = run(p.streams.clone(), 1, &[touch("a", "tv", Heartbeat)], NOW.plus_ms(T / 8 - 1));
        assert_eq!((q.verdicts.as_slice(), q.changed), ([Allowed].as_slice(), false));
        assert_eq!(q.streams, p.streams);
        let r = run(p.streams, 1, &[touch("a", "tv", Heartbeat)], NOW.plus_ms(T / 8));
        assert!(r.changed);
        assert_eq!(r.streams[0].last_seen, NOW.plus_ms(T / 8));
    }

    #[test]
    fn late_events_are_allowed_and_touch_nothing() {
        let mut old = touch("z", "pc", Start);
        old.occurred_at = NOW.plus_ms(-T - 1);
        let p = run(vec![], 0, &[old], NOW);
        assert_eq!(p.verdicts, [Allowed]);
        assert!(p.streams.is_empty() && !p.changed);
    }

    #[test]
    fn a_batch_is_decided_in_time_order() {
        let mut stop = touch("a", "tv", Stop);
        stop.occurred_at = NOW.plus_ms(-10);
        let mut start = touch("a", "tv", Start);
        start.occurred_at = NOW.plus_ms(-20);
        let p = run(vec![], 1, &[stop, start], NOW);
        assert_eq!(p.verdicts, [Allowed, Allowed]);
        assert!(p.streams.is_empty(), "started, then stopped");
    }

    #[test]
    fn stream_keys_prefer_the_session_then_the_device_then_the_signin() {
        assert_eq!(stream_key(Some("s"), Some("d"), Some("x")).as_deref(), Some("session:s"));
        assert_eq!(stream_key(None, Some("d"), Some("x")).as_deref(), Some("device:d"));
        assert_eq!(stream_key(None, None, Some("x")).as_deref(), Some("signin:x"));
        assert_eq!(stream_key(None, None, None), None);
    }
}
