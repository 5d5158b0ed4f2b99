//! Ports: the traits the core defines and the adapters (SQLite now, PostgreSQL later) implement.
//!
//! Rules for every port:
//! - Each method is one round trip of intent; adapters must not leak their types (no `sqlx` here).
//! - "Not found" and uniqueness conflicts are mapped by the adapter to [`StoreError`] variants;
//!   everything else is `Unavailable` (transient) or `Internal`.
//! - Writes that can be redelivered are idempotent; each method's doc says how.
//! - One contract suite (`playhead-store-contract`) checks every adapter against these docs.

use async_trait::async_trait;

use crate::auth::Scopes;
use crate::error::StoreError;
use crate::event::PlaybackEvent;
use crate::ids::{AccountId, EventId, PlayId, ProfileId, TitleId};
use crate::profile::{Account, Email, Profile};
use crate::rate::{Quota, RateDecision};
use crate::rules::progress::ProgressRecord;
use crate::rules::recs::PlayCount;
use crate::rules::viewing::SessionKey;
use crate::time::Timestamp;
use crate::title::Title;
use crate::trace::TraceContext;

/// Reads the current time. The only clock the application uses, so tests can control it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// Accounts and profiles.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Create an account. `Conflict` when the e-mail is taken.
    async fn create_account(&self, account: &Account) -> Result<(), StoreError>;
    /// Look an account up.
    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;
    /// Look an account up by e-mail.
    async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError>;
    /// Create a profile. `Conflict` when the account already has the maximum number; `NotFound`
    /// when the account does not exist.
    async fn create_profile(&self, profile: &Profile, max_per_account: usize) -> Result<(), StoreError>;
    /// Look a profile up.
    async fn profile(&self, id: ProfileId) -> Result<Option<Profile>, StoreError>;
    /// An account's profiles, oldest first.
    async fn profiles_of(&self, account: AccountId) -> Result<Vec<Profile>, StoreError>;
    /// Replace a profile's mutable fields if its stored version is `expected_version`; the stored
    /// version becomes `profile.version`. `PreconditionFailed` on a version mismatch.
    async fn update_profile(&self, profile: &Profile, expected_version: i64) -> Result<(), StoreError>;
}

/// What an upsert changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertSummary {
    /// New titles.
    pub created: u64,
    /// Existing titles whose fields changed.
    pub updated: u64,
    /// Existing titles sent again unchanged (a re-import changes nothing).
    pub unchanged: u64,
}

/// The catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTitle {
    /// The title.
    pub title: Title,
    /// Bumped on every change; the ETag derives from it.
    pub version: i64,
}

/// The platform's catalog.
#[async_trait]
pub trait Catalog: Send + Sync {
    /// Insert or replace titles by id. Idempotent: sending the same titles again reports them
    /// `unchanged` and bumps no version. The same id twice in one call is applied in order (the last
    /// copy is stored). Large calls may commit in chunks, so a failure part-way leaves earlier
    /// chunks stored (a retry is idempotent).
    async fn upsert_titles(&self, titles: &[Title], now: Timestamp) -> Result<UpsertSummary, StoreError>;
    /// Replace one existing title if its stored version is `expected_version`; the version then
    /// increases by one (even when nothing changed: the client asked for a write). `NotFound` when
    /// there is no such title, `PreconditionFailed` on a version mismatch.
    async fn replace_title_if(
        &self,
        title: &Title,
        expected_version: i64,
        now: Timestamp,
    ) -> Result<StoredTitle, StoreError>;
    /// One title.
    async fn title(&self, id: &TitleId) -> Result<Option<StoredTitle>, StoreError>;
    /// Several titles (missing ids are simply absent from the result).
    async fn titles(&self, ids: &[TitleId]) -> Result<Vec<Title>, StoreError>;
    /// Titles ordered by id, after `after`, at most `limit`.
    async fn list_titles(&self, after: Option<&TitleId>, limit: u32) -> Result<Vec<Title>, StoreError>;
    /// All episodes of these series.
    async fn episodes_of(&self, series: &[TitleId]) -> Result<Vec<Title>, StoreError>;
}

/// Per-event outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Durably logged and queued for the consumer.
    Accepted,
    /// Durably logged, waiting for its title to be imported.
    Held,
    /// This event id was logged before (by any batch): nothing written.
    Duplicate,
}

/// An event to append, and whether its title is known.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// The admitted event.
    pub event: PlaybackEvent,
    /// The title is not in the catalog yet: hold instead of queueing.
    pub hold: bool,
    /// The W3C trace context of the request that wrote it, kept with the queue row (or outbox
    /// row) so the apply step continues that trace. Released held events start none.
    pub trace: Option<TraceContext>,
}

/// A queued event as the consumer receives it.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    /// Position in the queue (acknowledgement handle).
    pub seq: i64,
    /// The event.
    pub event: PlaybackEvent,
    /// The trace context its request handed on (see [`LogEntry::trace`]).
    pub trace: Option<TraceContext>,
}

/// The durable event log (embedded: SQLite; scale-out: PostgreSQL outbox + JetStream).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Commit events durably (fsync) before returning. All-or-nothing for the batch: `Full`
    /// when the backlog would exceed `max_backlog`, and then nothing is written. Dedupes on
    /// `event_id`, including within the batch (the second copy is `Duplicate`). Held events do not
    /// count toward the backlog; a batch that queues no new event is never `Full`.
    async fn append(&self, entries: &[LogEntry], max_backlog: u64) -> Result<Vec<AppendOutcome>, StoreError>;
    /// Events waiting for the consumer, oldest first.
    async fn next_batch(&self, max: usize) -> Result<Vec<QueuedEvent>, StoreError>;
    /// Queue depth.
    async fn backlog(&self) -> Result<u64, StoreError>;
    /// When the oldest queued (accepted, not yet applied) event was received; `None` when the
    /// queue is empty. Its age is the pipeline lag operators alert on (dead-lettered rows, which
    /// have an alert of their own, are left out).
    async fn oldest_unapplied(&self) -> Result<Option<Timestamp>, StoreError>;
    /// Queue held events whose title now exists in the catalog. Returns how many.
    async fn release_held(&self) -> Result<u64, StoreError>;
    /// Drop held events received before `cutoff`. Returns how many.
    async fn expire_held(&self, cutoff: Timestamp) -> Result<u64, StoreError>;
    /// Held events, for metrics.
    async fn held_count(&self) -> Result<u64, StoreError>;
    /// Held events of one profile (a per-profile cap keeps one client from filling the log with
    /// events for titles that will never exist).
    async fn held_for_profile(&self, profile: ProfileId) -> Result<u64, StoreError>;
    /// Re-queue every logged event not already waiting in the queue (operators' replay, and the
    /// proof that replay changes nothing). Returns how many were queued.
    async fn requeue_all(&self) -> Result<u64, StoreError>;
}

/// How far the outbox is behind (scale-out with a broker), for metrics and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Rows not handed to the broker yet (the relay's backlog).
    pub unpublished: u64,
    /// Rows whose event is not applied yet, handed over or not (dead-lettered ones included).
    pub unapplied: u64,
    /// Rows parked because their message went to the dead-letter stream.
    pub dead: u64,
}

/// The relay's view of the [`EventLog`]'s outbox, when a broker (JetStream) sits between the log
/// and the appliers. Rows are still deleted only by the apply transaction
/// ([`ViewingTx::claim`]); these methods only record what was handed to the broker, so that
/// nothing the broker loses is lost (DESIGN.md, "Delivery, durability, deletion").
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Take up to `max` rows not handed over yet (oldest first), marking them handed over at
    /// `now`. Concurrent callers (one relay per replica) get disjoint rows.
    async fn take_unpublished(&self, max: usize, now: Timestamp) -> Result<Vec<QueuedEvent>, StoreError>;
    /// The broker did not take these rows: offer them again. Rows applied meanwhile are ignored.
    async fn unpublish(&self, seqs: &[i64]) -> Result<(), StoreError>;
    /// Offer again every row handed over before `cutoff` and still unapplied, except dead ones
    /// (the sweeper). Returns how many.
    async fn sweep(&self, cutoff: Timestamp) -> Result<u64, StoreError>;
    /// Park the row `seq` if it holds `event` (its message went to the dead-letter stream): the
    /// sweeper skips it. `false` when no such row exists (applied, or another event's seq).
    async fn mark_dead(&self, seq: i64, event: EventId, now: Timestamp) -> Result<bool, StoreError>;
    /// Queue a parked row's event again under a new seq (so the broker's duplicate window does
    /// not swallow the new message) and return that seq; `None` when the row no longer exists.
    async fn revive(&self, seq: i64) -> Result<Option<i64>, StoreError>;
    /// The event each of these seqs holds now; seqs without a row (applied) are left out. A
    /// consumer checks each message's `(seq, event id)` against it before applying, so a message
    /// from another deployment or an older database (seqs restart per database) never claims a
    /// row that holds a different event.
    async fn events_at(&self, seqs: &[i64]) -> Result<Vec<(i64, EventId)>, StoreError>;
    /// Counts for metrics.
    async fn depth(&self) -> Result<OutboxDepth, StoreError>;
}

/// One viewing as stored: a play when `is_play`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewing {
    /// Play id (stable across recomputation).
    pub id: PlayId,
    /// Whose.
    pub profile_id: ProfileId,
    /// What.
    pub title_id: TitleId,
    /// How its events are grouped; `None` for a backfilled play (no events).
    pub key: Option<SessionKey>,
    /// Earliest event.
    pub started_at: Timestamp,
    /// Latest event.
    pub ended_at: Timestamp,
    /// Seek-capped watching.
    pub watched_ms: i64,
    /// Reached the watched point.
    pub completed: bool,
    /// Passed the play threshold.
    pub is_play: bool,
    /// A manual play: the profile marked the title watched (no events; history shows it as
    /// such). Written only by [`ViewingStore::mark_watched`]; every other writer leaves it false.
    pub manual: bool,
}

/// A stored event as an apply sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEvent {
    /// The event.
    pub event: PlaybackEvent,
    /// Covered by a deleted play's tombstone.
    pub deleted: bool,
}

/// A history query (newest first, keyset pagination).
#[derive(Debug, Clone, Default)]
pub struct PlayQuery {
    /// Continue after this `(started_at, play_id)` (exclusive).
    pub before: Option<(Timestamp, PlayId)>,
    /// Page size.
    pub limit: u32,
    /// Only this title.
    pub title_id: Option<TitleId>,
    /// Only completed (or only not completed) plays.
    pub completed: Option<bool>,
}

/// A page of a profile's rolled-up months (decision 0083), newest first by `(month, title_id)`.
#[derive(Debug, Clone, Default)]
pub struct RollupQuery {
    /// Continue strictly before this month and, when given, title in that month (exclusive);
    /// without a title, before the month itself.
    pub before: Option<(Timestamp, Option<TitleId>)>,
    /// Page size.
    pub limit: u32,
    /// Only this title.
    pub title_id: Option<TitleId>,
    /// `Some(true)`: months with a completed play; `Some(false)`: months with a play that did not
    /// complete.
    pub completed: Option<bool>,
}

/// What one roll-up batch did (rows deleted per table, plays added to roll-ups).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolledUp {
    /// Plays added to `play_rollups`.
    pub plays: u64,
    /// Viewings deleted (plays and viewings below the play threshold).
    pub viewings: u64,
    /// Raw events deleted.
    pub events: u64,
    /// Tombstones deleted (with the events they covered).
    pub tombstones: u64,
}

impl RolledUp {
    /// Whether the batch found nothing to do.
    pub fn is_empty(&self) -> bool {
        self.viewings == 0 && self.tombstones == 0
    }
}

/// A resume point with its hide marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRow {
    /// The register.
    pub progress: ProgressRecord,
    /// When the title was hidden from Continue watching.
    pub hidden_at: Option<Timestamp>,
}

/// Outcome of one backfilled play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillOutcome {
    /// Stored under this id.
    Created(PlayId),
    /// A play with the same (profile, title, started_at) exists: this id.
    Duplicate(PlayId),
    /// A play of this profile and title that started at this instant was deleted (backfilled or
    /// from events): deletes win, nothing stored.
    Deleted,
}

/// A profile's plays of one title: how many, and whether it counts as watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchCount {
    /// The title.
    pub title_id: TitleId,
    /// Plays (manual ones included; sub-threshold viewings and deleted plays are not plays).
    pub plays: u32,
    /// At least one play completed (a manual play always is): DESIGN.md's "watched".
    pub watched: bool,
}

/// A title on a profile's list (My list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The title.
    pub title_id: TitleId,
    /// When it was (last) added.
    pub added_at: Timestamp,
}

/// A page of a profile's list, newest first (keyset on `(added_at, title_id)`).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Continue after this `(added_at, title_id)` (exclusive).
    pub before: Option<(Timestamp, TitleId)>,
    /// Page size.
    pub limit: u32,
    /// Only titles whose maturity is at most this (a kids profile's limit).
    pub max_maturity: Option<u8>,
    /// Only titles playable at this instant (`available_from` absent or not after it).
    pub available_at: Option<Timestamp>,
    /// Leave out titles with a completed play that ended at or after they were added (the
    /// profile's "leave My list when finished" option).
    pub hide_finished: bool,
}

/// Progress, plays and row state; reads outside a transaction, writes through [`ViewingTx`].
#[async_trait]
pub trait ViewingStore: Send + Sync {
    /// Start an apply transaction. Adapters serialise appliers (globally, or per profile) so that
    /// concurrent applies never interleave their read-modify-write. While a transaction is open its
    /// holder must not call other write methods of the store (they may wait for it).
    async fn begin(&self) -> Result<Box<dyn ViewingTx>, StoreError>;
    /// One resume point.
    async fn progress(&self, profile: ProfileId, title: &TitleId) -> Result<Option<ResumeRow>, StoreError>;
    /// The resume points of these titles (titles never played are absent), in one read: a row
    /// of N cards must not cost N reads.
    async fn progress_of(&self, profile: ProfileId, titles: &[TitleId])
    -> Result<Vec<ResumeRow>, StoreError>;
    /// Resume points with activity at or after `since`, newest first, at most `limit`.
    async fn recent_progress(
        &self,
        profile: ProfileId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<ResumeRow>, StoreError>;
    /// Plays (not sub-threshold viewings), newest first.
    async fn plays(&self, profile: ProfileId, query: &PlayQuery) -> Result<Vec<Viewing>, StoreError>;
    /// Rolled-up months of `profile` (decision 0083), newest first by `(month, title_id)`.
    async fn rollups(
        &self,
        profile: ProfileId,
        query: &RollupQuery,
    ) -> Result<Vec<crate::rules::rollup::PlayRollup>, StoreError>;
    /// Plays of episodes, with each episode's series id, for Next up.
    async fn episode_plays(&self, profile: ProfileId) -> Result<Vec<(TitleId, Viewing)>, StoreError>;
    /// Hide a title from Continue watching as of `at` (a later hide wins; progress is kept).
    async fn hide(&self, profile: ProfileId, title: &TitleId, at: Timestamp) -> Result<(), StoreError>;
    /// Delete a play and tombstone its events so no redelivery or late event brings it back.
    /// `NotFound` when the play is not this profile's.
    async fn delete_play(&self, profile: ProfileId, play: PlayId, now: Timestamp) -> Result<(), StoreError>;
    /// [`ViewingStore::delete_play`] only if the play's current entity tag
    /// ([`crate::precondition::play_etag`]) is admitted by `if_match`, judged in the deleting
    /// transaction: `PreconditionFailed` otherwise (`NotFound` first when there is no such play).
    async fn delete_play_if(
        &self,
        profile: ProfileId,
        play: PlayId,
        now: Timestamp,
        if_match: &crate::precondition::IfMatch,
    ) -> Result<(), StoreError>;
    /// Store backfilled plays, deduplicated on (profile, title, started_at).
    async fn backfill(&self, plays: &[Viewing]) -> Result<Vec<BackfillOutcome>, StoreError>;

    /// Mark titles watched: one manual play per (profile, title), completed, from `at` to `at`.
    /// A title that has a manual play already keeps it (and its id), moved to `at` only when
    /// `move_existing`, so repeating a mark changes nothing. `plays` pairs each title with the
    /// id a new manual play gets; returns the id each title's manual play has now, in order.
    async fn mark_watched(
        &self,
        profile: ProfileId,
        plays: &[(TitleId, PlayId)],
        at: Timestamp,
        move_existing: bool,
    ) -> Result<Vec<PlayId>, StoreError>;
    /// Delete the manual plays of these titles (real plays stay). Returns how many.
    async fn unmark_watched(&self, profile: ProfileId, titles: &[TitleId]) -> Result<u64, StoreError>;
    /// Play counts of these titles, in one read (titles without plays are absent).
    async fn watch_counts(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<Vec<WatchCount>, StoreError>;
    /// Every title the profile watched (a completed or manual play), in no particular order.
    async fn watched_titles(&self, profile: ProfileId) -> Result<Vec<TitleId>, StoreError>;

    /// Put a title on the profile's list at `at`; a title already there keeps its place.
    /// Returns whether it was added now.
    async fn list_add(&self, profile: ProfileId, title: &TitleId, at: Timestamp) -> Result<bool, StoreError>;
    /// Take titles off the list. Returns how many were on it.
    async fn list_remove(&self, profile: ProfileId, titles: &[TitleId]) -> Result<u64, StoreError>;
    /// A page of the list, newest first; titles no longer in the catalog are left out.
    async fn list_page(&self, profile: ProfileId, query: &ListQuery) -> Result<Vec<ListEntry>, StoreError>;
    /// Every title on the list (for recommendations), newest first, at most `limit`.
    async fn list_titles(&self, profile: ProfileId, limit: u32) -> Result<Vec<TitleId>, StoreError>;
    /// The profile's "leave My list when finished" option (false until set).
    async fn list_leaves_when_finished(&self, profile: ProfileId) -> Result<bool, StoreError>;
    /// Set that option.
    async fn set_list_leaves_when_finished(&self, profile: ProfileId, on: bool) -> Result<(), StoreError>;
}

/// One apply transaction: everything written here commits atomically, together with the queue
/// acknowledgement, so a redelivered event changes nothing.
#[async_trait]
pub trait ViewingTx: Send {
    /// Acknowledge queued events as applied. Returns the ones not acknowledged before: only
    /// those may be applied (a redelivery returns nothing). In no particular order.
    async fn claim(&mut self, seqs: &[i64]) -> Result<Vec<EventId>, StoreError>;
    /// Log an event as applied directly (the synchronous PUT path). `false` if the id exists.
    async fn record_applied(&mut self, event: &PlaybackEvent) -> Result<bool, StoreError>;
    /// The resume point, read for update.
    async fn progress(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
    ) -> Result<Option<ProgressRecord>, StoreError>;
    /// Store a resume point.
    async fn save_progress(&mut self, record: &ProgressRecord) -> Result<(), StoreError>;
    /// Viewings of this group that overlap `[from, to]` (explicit sessions: the whole session).
    async fn viewings(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
        key: &SessionKey,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Viewing>, StoreError>;
    /// Logged and held events of this group in `[from, to]` (explicit sessions: the whole
    /// session), never dropped ones. Events covered by a deleted play's tombstone are returned
    /// with `deleted` set: they still link events into one viewing, and that viewing stays deleted.
    async fn events(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
        key: &SessionKey,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<GroupEvent>, StoreError>;
    /// The group's latest stored event (by `(occurred_at, event_id)`) other than `except`,
    /// logged or held, never dropped; `None` when there is none. Its `deleted` flag says more
    /// than [`ViewingTx::events`]' does: set when any deleted play's tombstone of the group ends
    /// at or after it (it may cover events after it too). Lets an apply extend the viewing that
    /// ends there instead of reading every event of a long session.
    async fn last_event(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
        key: &SessionKey,
        except: &[EventId],
    ) -> Result<Option<GroupEvent>, StoreError>;
    /// Mark logged events as dropped (found invalid when applied, e.g. a position far past the
    /// duration of a title imported after the event was held). Dropped events are never applied
    /// and never returned by [`ViewingTx::events`].
    async fn drop_events(&mut self, ids: &[EventId]) -> Result<(), StoreError>;
    /// Remove these viewings and insert or replace those.
    async fn replace_viewings(&mut self, remove: &[PlayId], upsert: &[Viewing]) -> Result<(), StoreError>;
    /// Items of the profile's most recent counted plays (see [`crate::rules::recs`]), most
    /// recent last, at most `limit`.
    async fn recs_window(&mut self, profile: ProfileId, limit: u32) -> Result<Vec<TitleId>, StoreError>;
    /// Count a positive play for co-watch and trending, once per play id: records the play id,
    /// and when it was not recorded before adds `count.partners` pairs (both directions), and
    /// when `count.counts` (the item entered the window) the item's own count and `count.weight`
    /// to trending shard `count.shard` (so a binge of one show is one trending vote).
    /// Returns `false` (and changes nothing) when the play id was counted before.
    async fn count_play(&mut self, count: &PlayCount) -> Result<bool, StoreError>;
    /// Commit.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A cache every replica shares (Redis in scale-out mode). Best effort by contract: an `Err`
/// means "not now" and the caller reads through to the store; nothing kept here may be needed
/// after a restart. What keys mean, and how staleness is ruled out, is the caller's design (the
/// application stamps entries with generation counters that writers [`SharedCache::bump`]).
#[async_trait]
pub trait SharedCache: Send + Sync {
    /// The values at `keys`, in order (`None`: absent or expired), read in one round trip.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// Store `value` at `key`, replacing any value, for `ttl`.
    async fn put(&self, key: &str, value: &[u8], ttl: std::time::Duration) -> Result<(), StoreError>;
    /// Increment each counter at `keys` (absent counts as 0) and keep it for `ttl` from now.
    async fn bump(&self, keys: &[String], ttl: std::time::Duration) -> Result<(), StoreError>;
    /// Delete `keys` (absent ones are fine). Unlike a read, a failed delete matters to the caller
    /// (an erasure retries until it succeeds).
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError>;
}

/// A resume point as it stands after a committed change: what live subscribers (GraphQL's
/// `progressChanged`) are told. Carries the derived values (percent, state) so a subscriber needs
/// no store read per change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressChange {
    /// Whose resume point.
    pub profile_id: ProfileId,
    /// Which title.
    pub title_id: TitleId,
    /// Where to resume.
    pub position_ms: i64,
    /// The duration the position refers to.
    pub duration_ms: i64,
    /// Position as a share of the duration.
    pub percent: f64,
    /// not_started, in_progress or finished.
    pub state: crate::rules::progress::ProgressState,
    /// Client time of the change that won the merge.
    pub updated_at: Timestamp,
}

/// Where committed resume-point changes are announced to every replica (scale-out: a NATS core
/// subject). At most once by contract: a subscriber that misses one reads the resume point
/// again; nothing durable depends on it. The feed hands each change back to every replica's
/// application (this one included), which delivers it to its local subscribers.
pub trait ChangeFeed: Send + Sync {
    /// Announce `change`; never blocks (a full buffer drops the change and counts it).
    fn publish(&self, change: &ProgressChange);
}

/// Rate limits: one GCRA state (a TAT) per key. Embedded: in process; scale-out: Redis.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Charge `cost` units to `key` under `quota` at `now` (refused requests are not charged).
    async fn check(
        &self,
        key: &str,
        quota: Quota,
        cost: u32,
        now: Timestamp,
    ) -> Result<RateDecision, StoreError>;
}

/// A response kept for replay under an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers to replay (content type, location, ETag...), in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is now held by the caller: run the request, then `complete` or `release`.
    Started,
    /// Another request with this key and payload is still running.
    InFlight,
    /// A completed request with this key and payload: replay its response.
    Completed(StoredResponse),
    /// The key was used with a different payload (running or completed).
    Mismatch,
}

/// Idempotency keys (IETF httpapi idempotency-key draft), scoped by the caller (the key string
/// passed here already includes the principal).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claim `key` for a request whose payload hashes to `fingerprint`. A running request older
    /// than `lease_ms` is presumed dead (its process crashed) and its key is taken over. An expired
    /// completed entry counts as absent.
    async fn begin(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        now: Timestamp,
        lease_ms: i64,
    ) -> Result<IdempotencyBegin, StoreError>;
    /// Store the response of the request holding `key`, kept until `expires_at`.
    async fn complete(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        response: &StoredResponse,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Free a held key without storing anything (the response must not be replayed: 401, 409,
    /// 429, 5xx...), so a real retry can run.
    async fn release(&self, key: &str, fingerprint: [u8; 32]) -> Result<(), StoreError>;
    /// Delete entries expired before `now`. Returns how many.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// A stored API key (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The visible prefix, unique: how a key is found and named in logs.
    pub prefix: String,
    /// A human name.
    pub name: String,
    /// SHA-256 of the whole key.
    pub hash: [u8; 32],
    /// What it may do.
    pub scopes: Scopes,
    /// When made.
    pub created_at: Timestamp,
    /// When revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// API keys for platform services.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Store a new key. `Conflict` on a duplicate prefix.
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// Find a key by prefix.
    async fn api_key(&self, prefix: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Revoke a key. `NotFound` if there is none; revoking again keeps the first `revoked_at`.
    async fn revoke_api_key(&self, prefix: &str, at: Timestamp) -> Result<(), StoreError>;
}

/// Feedback a profile gives on a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackKind {
    /// Liked: more like this.
    Up,
    /// Disliked: never recommend it again.
    Down,
    /// Not interested: never recommend it again.
    NotInterested,
}

impl FeedbackKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::NotInterested => "not_interested",
        }
    }

    /// Parse a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            "not_interested" => Some(Self::NotInterested),
            _ => None,
        }
    }
}

/// A profile's feedback on one title (the latest one given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// The title.
    pub title_id: TitleId,
    /// What was said.
    pub kind: FeedbackKind,
    /// When.
    pub at: Timestamp,
}

/// How often a title was shown to a profile in recommendation rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impressions {
    /// The title.
    pub title_id: TitleId,
    /// Times shown.
    pub shown: u32,
    /// Last time shown.
    pub last_at: Timestamp,
}

/// Recommendation state: training reads, feedback, impressions, and the counters the consumer
/// writes through [`ViewingTx::count_play`].
#[async_trait]
pub trait RecsStore: Send + Sync {
    /// Every play (not sub-threshold viewings, not deleted plays) of every profile, ordered by
    /// `(profile_id, play_id)` and continuing after `after` (exclusive), at most `limit`: the
    /// training input, read in pages.
    async fn training_plays(
        &self,
        after: Option<(ProfileId, PlayId)>,
        limit: u32,
    ) -> Result<Vec<Viewing>, StoreError>;
    /// Record feedback; per (profile, title) the one with the latest `at` wins (a replay of an
    /// older one changes nothing).
    async fn set_feedback(&self, profile: ProfileId, feedback: &Feedback) -> Result<(), StoreError>;
    /// A profile's feedback, by title id.
    async fn feedback(&self, profile: ProfileId) -> Result<Vec<Feedback>, StoreError>;
    /// Count one showing of each title (duplicates in `titles` count once) at `at`.
    async fn record_impressions(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// A profile's impression counts, by title id.
    async fn impressions(&self, profile: ProfileId) -> Result<Vec<Impressions>, StoreError>;
    /// Co-watch counts: `(item's own count, [(neighbour, pair count, neighbour's own count)])`,
    /// neighbours by pair count, highest first, at most `limit`.
    async fn cowatch(&self, item: &TitleId, limit: u32) -> Result<CoWatchCounts, StoreError>;
    /// Trending: per item, the sum over its shards of forward-decayed weights, highest first, at
    /// most `limit` (divide by the weight of now to decay; see [`crate::rules::recs`]).
    async fn trending(&self, limit: u32) -> Result<Vec<(TitleId, f64)>, StoreError>;
    /// Store a trained model under its version (a second put of a version changes nothing), then
    /// delete all but the `keep` newest by training time. Every replica loads the newest from
    /// here, so a deployment serves one model version (decision 0106).
    async fn put_model(&self, model: &StoredModel, keep: u32) -> Result<(), StoreError>;
    /// The newest stored model (greatest `trained_at`, then version): its version and time.
    async fn latest_model(&self) -> Result<Option<ModelVersion>, StoreError>;
    /// A stored model's serialized form; `None` when it is not (or no longer) stored.
    async fn model_body(&self, version: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Take the training lease for `holder` until `until` when it is free, expired (`until` at or
    /// before `now`), or held by `holder` already (a renewal; `until` = `now` releases it).
    /// `true` when `holder` holds it now: one replica trains per schedule.
    async fn lease_training(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// A stored model's identity (see [`RecsStore::latest_model`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    /// Its version.
    pub version: String,
    /// When it was trained (the time its data ends).
    pub trained_at: Timestamp,
}

/// A trained model as stored (see [`RecsStore::put_model`]).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredModel {
    /// Its version.
    pub version: String,
    /// When it was trained.
    pub trained_at: Timestamp,
    /// Its serialized form (the engine's format; opaque here).
    pub body: Vec<u8>,
}

impl std::fmt::Debug for StoredModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tens of megabytes: never into a log line.
        f.debug_struct("StoredModel")
            .field("version", &self.version)
            .field("trained_at", &self.trained_at)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Co-watch counts of one item (see [`RecsStore::cowatch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoWatchCounts {
    /// Times the item entered a profile's window.
    pub count: u32,
    /// `(neighbour, times together, neighbour's own count)`, most together first.
    pub neighbours: Vec<(TitleId, u32, u32)>,
}

/// The authorization server's state: passwords, clients, sessions and refresh families, codes,
/// signing keys and the audit log. Shared by every replica (DESIGN.md: SQLite embedded,
/// PostgreSQL in scale-out), so a code issued by one replica is redeemed on another.
///
/// Every method that consumes something is one conditional update: of two racing callers exactly
/// one sees the fresh record.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Set (or replace) an account's password hash (a PHC string). `NotFound` without the account.
    async fn set_password(&self, account: AccountId, phc: &str) -> Result<(), StoreError>;
    /// An account's password hash.
    async fn password(&self, account: AccountId) -> Result<Option<String>, StoreError>;
    /// Set (or replace) a profile's parental PIN hash (PHC string). `NotFound` when there is no
    /// such profile.
    async fn set_profile_pin(&self, profile: ProfileId, phc: &str, at: Timestamp) -> Result<(), StoreError>;
    /// Remove a profile's PIN; `Ok(false)` when it had none.
    async fn remove_profile_pin(&self, profile: ProfileId) -> Result<bool, StoreError>;
    /// A profile's PIN hash, if it has a PIN.
    async fn profile_pin(&self, profile: ProfileId) -> Result<Option<String>, StoreError>;

    /// Register a client. `Conflict` on a duplicate client_id.
    async fn create_client(&self, client: &crate::identity::OAuthClient) -> Result<(), StoreError>;
    /// Find a client.
    async fn client(&self, client_id: &str) -> Result<Option<crate::identity::OAuthClient>, StoreError>;

    /// Start a session. `Conflict` on a duplicate id.
    async fn create_session(&self, session: &crate::identity::Session) -> Result<(), StoreError>;
    /// Find a session.
    async fn session(&self, id: &str) -> Result<Option<crate::identity::Session>, StoreError>;
    /// Revoke a session (its whole refresh family). Revoking again keeps the first time; `Ok(false)`
    /// when there is no such session.
    async fn revoke_session(&self, id: &str, at: Timestamp) -> Result<bool, StoreError>;
    /// Ids of sessions revoked at or after `since` (the revocation cache's poll).
    async fn revoked_sessions_since(&self, since: Timestamp) -> Result<Vec<String>, StoreError>;
    /// Record that a session was used at `at` from `addr` (a sign-in or a refresh): the first
    /// address is kept, the last one replaced, and `last_seen_at` never moves back. Unknown ids
    /// are ignored.
    async fn touch_session(&self, id: &str, at: Timestamp, addr: Option<&str>) -> Result<(), StoreError>;
    /// An account's sessions that are not revoked, most recently used first.
    async fn live_sessions(
        &self,
        account: AccountId,
    ) -> Result<Vec<crate::identity::SessionActivity>, StoreError>;
    /// Revoke every live session of an account at `at` (sign out everywhere) but `except`, in one
    /// statement; returns the ids revoked now.
    async fn revoke_account_sessions(
        &self,
        account: AccountId,
        at: Timestamp,
        except: Option<&str>,
    ) -> Result<Vec<String>, StoreError>;

    /// Deny access tokens (one `jti`, or every token of a client) until `denial.until`. Denying
    /// again keeps the first entry (idempotent).
    async fn deny_tokens(&self, denial: &crate::identity::TokenDenial) -> Result<(), StoreError>;
    /// Deny-list entries still in force at `now` (`until > now`): the revocation cache's poll.
    /// Bounded by the revocations of one access-token lifetime.
    async fn token_denials(&self, now: Timestamp) -> Result<Vec<crate::identity::TokenDenial>, StoreError>;
    /// Whether an access token with this `jti`, issued to `client_id`, is denied at `now`
    /// (introspection's question, answered from the store rather than a cache).
    async fn token_denied(&self, jti: &str, client_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Delete a client and stop everything it issued, in one transaction: the client row goes (so
    /// it can no longer authenticate, and its codes and refresh tokens cannot be redeemed), its
    /// sessions are revoked at `denial.revoked_at`, and `denial` (a [`DenialKind::Client`] entry
    /// naming it) is stored. `Ok(false)`, changing nothing, when there is no such client.
    ///
    /// [`DenialKind::Client`]: crate::identity::DenialKind::Client
    async fn delete_client(&self, denial: &crate::identity::TokenDenial) -> Result<bool, StoreError>;

    /// Store a browser session.
    async fn create_web_session(&self, session: &crate::identity::WebSession) -> Result<(), StoreError>;
    /// Find a browser session by the digest of its cookie.
    async fn web_session(&self, hash: [u8; 32]) -> Result<Option<crate::identity::WebSession>, StoreError>;
    /// Sign a browser session out (idempotent).
    async fn revoke_web_session(&self, hash: [u8; 32], at: Timestamp) -> Result<(), StoreError>;

    /// Store a new authorization code.
    async fn create_auth_code(&self, code: &crate::identity::AuthCode) -> Result<(), StoreError>;
    /// Mark a code used at `now` if it was not; report what was found.
    async fn consume_auth_code(
        &self,
        hash: [u8; 32],
        now: Timestamp,
    ) -> Result<crate::identity::CodeUse, StoreError>;

    /// Store a new device authorization. `Conflict` when the user code is in use.
    async fn create_device_code(&self, code: &crate::identity::DeviceCode) -> Result<(), StoreError>;
    /// Find a device authorization by the digest of its device code.
    async fn device_code(&self, hash: [u8; 32]) -> Result<Option<crate::identity::DeviceCode>, StoreError>;
    /// Find a still-pending device authorization by its user code.
    async fn pending_device_code(
        &self,
        user_code: &str,
    ) -> Result<Option<crate::identity::DeviceCode>, StoreError>;
    /// The newest device authorization with this user code, whatever its status (a pending one
    /// first): the device page tells a person whether a code is unknown, expired or used.
    async fn device_code_by_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<crate::identity::DeviceCode>, StoreError>;
    /// Replace a device authorization if its stored version is `expected_version` (the record
    /// carries the new version). `PreconditionFailed` when someone else changed it first.
    async fn update_device_code(
        &self,
        code: &crate::identity::DeviceCode,
        expected_version: i64,
    ) -> Result<(), StoreError>;

    /// Store a refresh token (a new family's first, or a grace reissue).
    async fn create_refresh_token(&self, token: &crate::identity::RefreshToken) -> Result<(), StoreError>;
    /// Present a refresh token: if unused, mark it used at `now` and store `successor` in the same
    /// transaction (`Rotated`); if used, report `Reused` and store nothing.
    async fn rotate_refresh_token(
        &self,
        hash: [u8; 32],
        now: Timestamp,
        successor: &crate::identity::RefreshToken,
    ) -> Result<crate::identity::RefreshUse, StoreError>;
    /// Find a refresh token (for revocation and introspection).
    async fn refresh_token(
        &self,
        hash: [u8; 32],
    ) -> Result<Option<crate::identity::RefreshToken>, StoreError>;

    /// The signing keys, oldest first (the newest signs).
    async fn signing_keys(&self) -> Result<Vec<crate::identity::SigningKeyRecord>, StoreError>;
    /// Add a signing key and delete all but the newest `keep` keys, in one transaction.
    async fn add_signing_key(
        &self,
        key: &crate::identity::SigningKeyRecord,
        keep: usize,
    ) -> Result<(), StoreError>;

    /// The account linked to `subject` at the external `issuer` (identities are keyed by the pair:
    /// the same `sub` at two issuers is two people). When there is no link yet, create
    /// `new_account` and the link in one transaction and return its id; two first sign-ins racing
    /// end with one account, and the loser's `new_account` is not created.
    async fn link_external_identity(
        &self,
        issuer: &str,
        subject: &str,
        new_account: &Account,
    ) -> Result<AccountId, StoreError>;

    /// A named 32-byte secret every replica shares (the pagination cursor key): the stored one,
    /// or `candidate`, stored now, when there is none. The first process to store one decides;
    /// every later call returns it.
    async fn shared_secret(&self, name: &str, candidate: [u8; 32]) -> Result<[u8; 32], StoreError>;

    /// Append audit entries.
    async fn audit(&self, entries: &[crate::identity::AuditEntry]) -> Result<(), StoreError>;
    /// Audit entries at or after `since`, oldest first, at most `limit`.
    async fn audit_since(
        &self,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::identity::AuditEntry>, StoreError>;
}

/// What the pruning job deletes, one kind (one table) per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PruneKind {
    /// Authorization codes that expired before the horizon.
    AuthCodes,
    /// Device authorizations that expired before the horizon.
    DeviceCodes,
    /// Refresh tokens that expired before the horizon (used or not).
    RefreshTokens,
    /// Sessions created (and, if revoked, revoked) before the horizon none of whose refresh
    /// tokens expires at or after it (so every access token of theirs has expired too).
    Sessions,
    /// Browser sessions that expired before the horizon.
    WebSessions,
    /// Idempotency records: completed ones that expired before the horizon, running ones started
    /// before it (their request died long ago).
    IdempotencyKeys,
    /// Audit entries recorded before the horizon.
    Audit,
    /// Token deny-list entries whose `until` is before the horizon.
    TokenDenials,
    /// Concurrent-stream rows whose last event is before the horizon (expired long ago: the
    /// stream rule ignores them after one timeout, but an account that never plays again would
    /// keep them for ever).
    Streams,
}

impl PruneKind {
    /// Every kind, in the order the job prunes them.
    pub const ALL: [Self; 9] = [
        Self::AuthCodes,
        Self::DeviceCodes,
        Self::RefreshTokens,
        Self::Sessions,
        Self::WebSessions,
        Self::IdempotencyKeys,
        Self::Audit,
        Self::TokenDenials,
        Self::Streams,
    ];

    /// The table it prunes (the `table` label of `playhead_pruned_rows_total`).
    pub const fn table(self) -> &'static str {
        match self {
            Self::AuthCodes => "auth_codes",
            Self::DeviceCodes => "device_codes",
            Self::RefreshTokens => "refresh_tokens",
            Self::Sessions => "sessions",
            Self::WebSessions => "web_sessions",
            Self::IdempotencyKeys => "idempotency_keys",
            Self::Audit => "audit_log",
            Self::TokenDenials => "token_denials",
            Self::Streams => "streams",
        }
    }
}

/// Deleting what is past its horizon, in small batches so no statement holds locks for long.
/// Safe with several replicas pruning at once: a row is deleted by one of them, never twice, and
/// a batch never waits for another replica's batch (PostgreSQL skips rows another transaction
/// has locked). Which horizon each kind gets is the application's rule (`playhead_app::prune`).
#[async_trait]
pub trait Pruner: Send + Sync {
    /// Delete at most `batch` rows of `kind` past `horizon` (see each [`PruneKind`]); returns how
    /// many were deleted (fewer than `batch`: nothing more is due now).
    async fn prune(&self, kind: PruneKind, horizon: Timestamp, batch: u32) -> Result<u64, StoreError>;
    /// One batch of the retention roll-up (decision 0083), in one transaction: take at most
    /// `batch` viewings that ended before `cutoff` (never manual plays), add their plays to the
    /// profile's roll-ups ([`crate::rules::rollup::aggregate`]), delete them and their raw events
    /// (held events and events still waiting to be applied stay); then delete at most `batch`
    /// tombstones whose range ended before `cutoff`, with the events they cover. A crash leaves
    /// the batch wholly done or not at all, so no play is ever counted twice; nothing left
    /// returns [`RolledUp::is_empty`]. Concurrent callers never roll up a viewing twice.
    async fn roll_up(&self, cutoff: Timestamp, batch: u32) -> Result<RolledUp, StoreError>;
}

/// Erasure sagas, the erase watermark, and each step's store work (issue 16, decisions
/// 0085-0087). Every step method is idempotent: run again after a crash half-way, or after it
/// succeeded, it changes nothing more and succeeds.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Store a new saga; when an unfinished saga with the same scope exists, store nothing and
    /// return that one (asking twice while it runs gives the same saga).
    async fn start_erasure(
        &self,
        erasure: &crate::erasure::Erasure,
    ) -> Result<crate::erasure::Erasure, StoreError>;
    /// One saga.
    async fn erasure(&self, id: crate::ids::ErasureId)
    -> Result<Option<crate::erasure::Erasure>, StoreError>;
    /// Lease one unfinished saga due at `now` (its `next_attempt_at` passed) whose lease is free
    /// or expired to `owner` until `lease_until`, oldest first. Concurrent callers (one runner per
    /// replica) never get the same saga while its lease holds, so a replica that dies mid-saga
    /// only delays it until the lease expires.
    async fn claim_erasure(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<crate::erasure::Erasure>, StoreError>;
    /// Save the saga's steps and `next_attempt_at` if `owner` still holds its lease; the lease
    /// then lasts until `lease_until` (`None`: released). `false` (nothing saved) when the lease
    /// was lost to another runner.
    async fn save_erasure(
        &self,
        erasure: &crate::erasure::Erasure,
        owner: &str,
        lease_until: Option<Timestamp>,
    ) -> Result<bool, StoreError>;
    /// Unfinished sagas, and how many of them have a step failing, for metrics.
    async fn erasure_backlog(&self) -> Result<(u64, u64), StoreError>;
    /// The erase watermark of a profile: the account that owned it and the saga that erased it.
    async fn erased_profile(
        &self,
        profile: ProfileId,
    ) -> Result<Option<(AccountId, crate::ids::ErasureId)>, StoreError>;
    /// Accounts holding an unrevoked sign-in session with the `admin` scope (the operators).
    async fn admin_accounts(&self) -> Result<Vec<AccountId>, StoreError>;
    /// Step `stop_accepting`: write the watermark of every profile, delete the profile rows
    /// (account scope: every profile of the account), and revoke the sessions that reach them
    /// (account scope: every session of the account; profile scope: sessions bound to it).
    async fn erase_stop(&self, erasure: &crate::erasure::Erasure, now: Timestamp) -> Result<(), StoreError>;
    /// Step `drop_queued`: delete the profiles' held events and their queue (outbox) rows, so
    /// nothing is left to apply and no broker redelivery matches a row.
    async fn erase_queued(&self, erasure: &crate::erasure::Erasure) -> Result<(), StoreError>;
    /// Step `recs_signals`: subtract what the profiles' counted plays added to co-watch and
    /// trending ([`crate::rules::recs::uncount`], never below zero) and delete their counted
    /// plays, feedback and impressions, in one transaction.
    async fn erase_recs_signals(&self, erasure: &crate::erasure::Erasure) -> Result<(), StoreError>;
    /// Step `delete_rows`: delete the profiles' events, resume points, hides, plays and
    /// tombstones; account scope also its password, browser sessions, codes, refresh tokens,
    /// external identities, idempotency records and the account row. Revoked session rows stay
    /// (the revocation list needs them; they hold ids only).
    async fn erase_rows(&self, erasure: &crate::erasure::Erasure) -> Result<(), StoreError>;
    /// Step `audit`: append `entry` to the audit log once per saga (a second call with the same
    /// saga id appends nothing).
    async fn erase_audit(
        &self,
        erasure: crate::ids::ErasureId,
        entry: &crate::identity::AuditEntry,
    ) -> Result<(), StoreError>;
}

/// An OAuth client an account has authorised (a sign-in session through it), for exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorisedClient {
    /// The client.
    pub client_id: String,
    /// The scopes granted.
    pub scopes: String,
    /// When the session started.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// Data export requests (issue 16, decision 0088). The archive itself is read from the other
/// ports when it is fetched, so this port keeps only who asked for which account, and when.
#[async_trait]
pub trait ExportStore: Send + Sync {
    /// Record an export request. `NotFound` when the account does not exist.
    async fn create_export(
        &self,
        id: crate::ids::ExportId,
        account: AccountId,
        requested_by: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// The account and request time of an export (`None`: unknown, or its account was erased).
    async fn export(&self, id: crate::ids::ExportId) -> Result<Option<(AccountId, Timestamp)>, StoreError>;
    /// The account's sign-in sessions by client, oldest first.
    async fn authorised_clients(&self, account: AccountId) -> Result<Vec<AuthorisedClient>, StoreError>;
    /// Every hidden title of a profile with its `hidden_at`, by title id.
    async fn hidden_titles(&self, profile: ProfileId) -> Result<Vec<(TitleId, Timestamp)>, StoreError>;
}

/// One follow edge as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowEdge {
    /// Who follows (or asked to).
    pub follower: ProfileId,
    /// Whom.
    pub followee: ProfileId,
    /// Requested or following.
    pub state: crate::feed::FollowState,
    /// When the edge was made (or the request approved).
    pub since: Timestamp,
}

/// Which side of the graph a listing walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowSide {
    /// Edges where the profile is the follower (whom it follows).
    Following,
    /// Edges where the profile is the followee (who follows it).
    Followers,
}

/// Which activities of one actor to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityRef {
    /// Everything published from this play (it was deleted).
    Play(PlayId),
    /// Everything about this title, shown or played (it was hidden).
    Title(TitleId),
    /// The one activity of this kind and subject key (a thumbs-up taken back).
    Subject(crate::feed::ActivityKind, String),
}

/// What one fan-out step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanoutStep {
    /// The activity worked on.
    pub activity: crate::ids::ActivityId,
    /// How its author's activities reach followers now.
    pub mode: crate::feed::FanoutMode,
    /// Inbox rows written by this step.
    pub rows: u64,
    /// The activity's fan-out is finished (its queue entry is gone).
    pub done: bool,
}

/// The follow graph, published activities, readers' inboxes and the fan-out queue (issue 14,
/// decision 0061).
///
/// The feed a reader sees is the union of its inbox (activities pushed to it) and the activities
/// of the profiles it follows that were never fully pushed (authors at or above the threshold,
/// and activities whose fan-out has not finished), filtered at read time by the graph as it is
/// now: only accepted follows, only actors sharing their activity, only titles within the
/// reader's maturity limit. So following, unfollowing, blocking, turning sharing off and changing
/// the threshold give correct feeds without any rebuild.
#[async_trait]
pub trait FeedStore: Send + Sync {
    /// Make or upgrade the edge `follower -> followee` as `state` at `at` and return the edge's
    /// state now: an accepted edge stays accepted; a new or requested edge takes `state`. When
    /// the edge becomes accepted, the followee's follower count grows by one and its newest
    /// `inbox_max` activities are copied into the follower's inbox (so a new follow shows
    /// earlier activities without waiting for new ones). Idempotent.
    async fn follow(
        &self,
        follower: ProfileId,
        followee: ProfileId,
        state: crate::feed::FollowState,
        at: Timestamp,
        inbox_max: u32,
    ) -> Result<crate::feed::FollowState, StoreError>;
    /// Remove the edge (requested or accepted) and the follower's inbox entries of the followee.
    /// `false` when there was none.
    async fn unfollow(&self, follower: ProfileId, followee: ProfileId) -> Result<bool, StoreError>;
    /// The edge's state, if there is one.
    async fn follow_state(
        &self,
        follower: ProfileId,
        followee: ProfileId,
    ) -> Result<Option<crate::feed::FollowState>, StoreError>;
    /// Edges on one `side` of `profile` in `state`, ordered by the other profile's id, after
    /// `after` (exclusive), at most `limit`.
    async fn follows(
        &self,
        profile: ProfileId,
        side: FollowSide,
        state: crate::feed::FollowState,
        after: Option<ProfileId>,
        limit: u32,
    ) -> Result<Vec<FollowEdge>, StoreError>;
    /// Accepted followers of `profile`.
    async fn follower_count(&self, profile: ProfileId) -> Result<u64, StoreError>;
    /// Record that `blocker` blocks `blocked` and remove the follow edges both ways (with their
    /// inbox entries) in one transaction. Idempotent.
    async fn block(&self, blocker: ProfileId, blocked: ProfileId, at: Timestamp) -> Result<(), StoreError>;
    /// Lift a block. `false` when there was none.
    async fn unblock(&self, blocker: ProfileId, blocked: ProfileId) -> Result<bool, StoreError>;
    /// Whether either profile blocks the other.
    async fn blocked_either_way(&self, a: ProfileId, b: ProfileId) -> Result<bool, StoreError>;
    /// The profiles `blocker` blocks, with when, by the blocked profile's id (exports).
    async fn blocked_by(&self, blocker: ProfileId) -> Result<Vec<(ProfileId, Timestamp)>, StoreError>;
    /// Turn publishing on or off for `profile` (default on). Off hides its earlier activities
    /// from every feed at once (they are filtered at read time, not deleted).
    async fn set_share_activity(&self, profile: ProfileId, share: bool) -> Result<(), StoreError>;
    /// Whether `profile` publishes (true unless turned off).
    async fn share_activity(&self, profile: ProfileId) -> Result<bool, StoreError>;
    /// Store activities and queue each new one for fan-out. Idempotent on (actor, kind,
    /// subject key): an activity published before is not stored again. An activity with a
    /// `play_id` is stored only while that play exists (a play deleted in the meantime publishes
    /// nothing). Returns how many were new.
    async fn add_activities(&self, activities: &[crate::feed::Activity]) -> Result<u64, StoreError>;
    /// Remove an actor's activities (with their inbox entries and queued fan-out). Returns how many.
    async fn remove_activities(&self, actor: ProfileId, which: &ActivityRef) -> Result<u64, StoreError>;
    /// One bounded step of the fan-out queue, oldest activity first: decide the author's mode
    /// with `threshold` (on its follower count now); `Pull` finishes the entry at once; `Push`
    /// writes at most `max_rows` inbox rows (followers in id order, continuing where the last
    /// step stopped), trims those inboxes to `inbox_max` (oldest dropped) and finishes the entry
    /// (marking the activity pushed) once every follower got it. `None` when the queue is empty.
    /// Concurrent callers (one per replica) never lose an entry; a row written twice is one row.
    async fn fanout_step(
        &self,
        threshold: u64,
        inbox_max: u32,
        max_rows: u32,
    ) -> Result<Option<FanoutStep>, StoreError>;
    /// Activities waiting for fan-out.
    async fn fanout_backlog(&self) -> Result<u64, StoreError>;
    /// The reader's feed, newest first by `(at, id)`, strictly before `before`, at most `limit`:
    /// its inbox merged with the not-fully-pushed activities of the profiles it follows, each
    /// activity once, keeping only actors it follows now (accepted), who share their activity,
    /// and titles with maturity at most `maturity_limit` (`None`: no limit).
    async fn feed(
        &self,
        reader: ProfileId,
        maturity_limit: Option<u8>,
        before: Option<(Timestamp, crate::ids::ActivityId)>,
        limit: u32,
    ) -> Result<Vec<crate::feed::Activity>, StoreError>;
}

/// What [`StreamStore::touch_streams`] decided for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOutcome {
    /// One verdict per touch, in the order given.
    pub verdicts: Vec<crate::streams::StreamVerdict>,
    /// The account's live streams afterwards, oldest first (what a refused player is shown).
    pub live: Vec<crate::streams::Stream>,
    /// The account's limit (its own, else the default).
    pub limit: u32,
}

/// Concurrent streams per account (issue 17, decision 0092). The rule is
/// [`crate::streams::plan`]; the store makes it atomic per account across every replica.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Decide one batch's events for `account` and store the result, in one transaction that
    /// holds the account's lock from before its first read: two calls for one account (from any
    /// replicas) take turns, so concurrent starts never pass the limit. A batch whose decision
    /// changes nothing (no start, stop, title change or stale `last_seen`) may be answered from a
    /// read without the lock: the same verdicts, nothing to write. The limit is the
    /// account's own (see [`StreamStore::set_stream_limit`]), else `rules.max_per_account`.
    async fn touch_streams(
        &self,
        account: AccountId,
        touches: &[crate::streams::StreamTouch],
        rules: &crate::streams::StreamRules,
        now: Timestamp,
    ) -> Result<StreamOutcome, StoreError>;
    /// The account's live streams at `now` (not stopped, seen within `timeout_ms`), oldest first.
    async fn live_streams(
        &self,
        account: AccountId,
        now: Timestamp,
        timeout_ms: i64,
    ) -> Result<Vec<crate::streams::Stream>, StoreError>;
    /// Stop a live stream of `account` (its slot is free at once; its player is refused from its
    /// next event). `NotFound` when the account has no live stream with that id (another
    /// account's, already stopped, ended or expired).
    async fn stop_stream(
        &self,
        account: AccountId,
        id: crate::ids::StreamId,
        now: Timestamp,
        timeout_ms: i64,
    ) -> Result<(), StoreError>;
    /// Set (`Some`) or clear (`None`: the default applies again) the account's own limit.
    /// Idempotent. The caller checks that the account exists.
    async fn set_stream_limit(&self, account: AccountId, limit: Option<u32>) -> Result<(), StoreError>;
    /// The account's own limit, if an operator set one.
    async fn stream_limit(&self, account: AccountId) -> Result<Option<u32>, StoreError>;
}
