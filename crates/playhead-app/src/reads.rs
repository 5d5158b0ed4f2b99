//! Resume points, history and the rows: the read side, plus the viewer's own edits (set a resume
//! point, backfill or delete plays, hide a title).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use playhead_core::auth::Principal;
use playhead_core::event::{Admitted, BatchContext, EventKind, PlaybackEvent, Reported, check_admission};
use playhead_core::ids::{DeviceId, PlayId, ProfileId, TitleId};
use playhead_core::ports::{BackfillOutcome, PlayQuery, ResumeRow, RollupQuery, Viewing};
use playhead_core::precondition::IfMatch;
use playhead_core::profile::Profile;
use playhead_core::rules::TitleFacts;
use playhead_core::rules::progress::{ProgressRecord, ProgressState, percent, state};
use playhead_core::rules::rollup::PlayRollup;
use playhead_core::rules::rows::{EpisodePlay, ResumeCandidate, continue_watching, next_up};
use playhead_core::title::Title;
use playhead_core::{EventId, FieldError, StoreError, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::Operation;
use crate::apply::new_play_id;
use crate::cache::Row;
use crate::{App, AppError};

/// Most items in one page or row.
pub const PAGE_MAX: u32 = 100;
/// Items when the client names no limit.
pub const PAGE_DEFAULT: u32 = 20;
/// Most plays in one backfill request.
pub const BACKFILL_MAX: usize = 500;
/// Resume points considered for Continue watching (newest first).
pub(crate) const ROW_CANDIDATES: u32 = 500;

/// A resume point as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressView {
    /// The title.
    pub title_id: TitleId,
    /// Where to resume.
    pub position_ms: i64,
    /// Duration the position refers to.
    pub duration_ms: i64,
    /// Position as a share of the duration.
    pub percent: f64,
    /// not_started, in_progress or finished.
    pub state: ProgressState,
    /// Last change (None: never played).
    pub updated_at: Option<Timestamp>,
    /// Version for ETags (None: never played).
    pub version: Option<(Timestamp, EventId)>,
}

/// What a client believes a resume point's version is (If-Match in REST): the write proceeds only
/// while it is still the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// This version (`None`: never played).
    Exactly(Option<(Timestamp, EventId)>),
    /// A tag the transport could not read: it matches no version.
    Unrecognized,
}

/// A resume-point write from a client.
#[derive(Debug, Clone, Default)]
pub struct ProgressWrite {
    /// New position.
    pub position_ms: i64,
    /// The player's duration.
    pub duration_ms: Option<i64>,
    /// Client time (default: server time).
    pub occurred_at: Option<Timestamp>,
    /// The writing device.
    pub device_id: Option<String>,
}

/// A row item: a title with what the row says about it. Serializable because the shared row
/// cache (scale-out mode) keeps rows in Redis.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RowItem {
    /// The title to play.
    pub title: Title,
    /// Where to resume (Continue watching; Next up when the episode is started).
    pub position_ms: i64,
    /// Share watched.
    pub percent: f64,
    /// Activity time that ordered the row.
    pub activity_at: Timestamp,
    /// Watched and play count for the profile (absent in rows cached before they existed).
    #[serde(default)]
    pub watch: crate::library::WatchState,
}

/// The first `len` items of a cached row, shared rather than copied: a row is read far more often
/// than it changes, and copying twenty titles (names, genres, external ids) per read was a large
/// part of a cached read's cost.
#[derive(Debug, Clone)]
pub struct RowPage {
    row: Arc<Vec<RowItem>>,
    len: usize,
}

impl RowPage {
    fn new(row: Arc<Vec<RowItem>>, limit: u32) -> Self {
        let len = row.len().min(limit as usize);
        Self { row, len }
    }
}

impl RowPage {
    /// Whether this page is a view of the row `other` points to. A `Weak` keeps the row's
    /// allocation alive, so its address cannot be reused by another row while it is held: equal
    /// addresses mean the same row, never a later one (no ABA).
    pub fn is_view_of(&self, other: &std::sync::Weak<Vec<RowItem>>) -> bool {
        std::ptr::eq(Arc::as_ptr(&self.row), other.as_ptr())
    }

    /// A weak handle on the row, for [`Self::is_view_of`].
    pub fn row_handle(&self) -> std::sync::Weak<Vec<RowItem>> {
        Arc::downgrade(&self.row)
    }

    /// Whether the row is held by the row cache too (false when caching is off: every read
    /// loads a fresh row, so anything derived from it cannot be reused).
    pub fn is_cached(&self) -> bool {
        Arc::strong_count(&self.row) > 1
    }
}

impl std::ops::Deref for RowPage {
    type Target = [RowItem];
    fn deref(&self) -> &[RowItem] {
        &self.row[..self.len]
    }
}

/// One item of a history page: a play, or a month of plays rolled up by the retention job
/// (decision 0083), with its title (if still in the catalog) and the title's watched state.
#[derive(Debug, Clone)]
pub enum HistoryEntry {
    /// A play.
    Play(Viewing, Option<Title>, crate::library::WatchState),
    /// A rolled-up month of one title.
    Rollup(PlayRollup, Option<Title>, crate::library::WatchState),
}

impl HistoryEntry {
    fn title_id(&self) -> &TitleId {
        match self {
            Self::Play(v, ..) => &v.title_id,
            Self::Rollup(r, ..) => &r.title_id,
        }
    }

    /// Where a page that ends with this entry continues.
    fn position(&self) -> HistoryPos {
        match self {
            Self::Play(v, ..) => HistoryPos::Play(v.started_at.0, v.id.0),
            Self::Rollup(r, ..) => HistoryPos::Rollup(r.month.0, r.title_id.as_str().to_owned(), 0),
        }
    }
}

/// History items with their title (if still in the catalog) and its watched state.
pub type HistoryRows = Vec<HistoryEntry>;

/// A history cursor's position. Entries are ordered newest first by `(instant, rank, id)`: a
/// play by `(started_at, 1, play_id)`, a rolled-up month by `(month start, 0, title_id)`, so a
/// month's roll-up follows any play that started in that month. A play's position serialises
/// as it did before roll-ups existed (`[started_at, play_id]`), so those cursors stay valid; a
/// roll-up's carries a third element and can never be read as a play's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum HistoryPos {
    Play(i64, Uuid),
    Rollup(i64, String, u8),
}

/// Newest-first merge of a page of plays and a page of roll-ups (each already ordered), at most
/// `n` entries.
fn merge_newest_first(
    plays: Vec<Viewing>,
    rollups: Vec<PlayRollup>,
    n: usize,
) -> Vec<Result<Viewing, PlayRollup>> {
    let mut plays = plays.into_iter().peekable();
    let mut rollups = rollups.into_iter().peekable();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let take_play = match (plays.peek(), rollups.peek()) {
            (Some(v), Some(r)) => v.started_at >= r.month,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_play {
            out.extend(plays.next().map(Ok));
        } else {
            out.extend(rollups.next().map(Err));
        }
    }
    out
}

/// A backfilled play from a client.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillPlay {
    /// The title.
    pub title_id: Option<String>,
    /// Start (RFC 3339).
    pub started_at: Option<Timestamp>,
    /// End (default: start + watched time).
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// Time watched (default: the whole title when completed, else end - start).
    #[serde(default)]
    pub watched_ms: Option<i64>,
    /// Reached the end (default true: trackers export finished plays).
    #[serde(default)]
    pub completed: Option<bool>,
}

/// The answer for one backfilled play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillResult {
    /// Stored.
    Created(PlayId),
    /// Already there.
    Duplicate(PlayId),
    /// A deleted play: deletes win, so nothing stored.
    Deleted,
    /// Refused.
    Rejected(FieldError),
}

/// A history filter and page.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Only this title.
    pub title_id: Option<TitleId>,
    /// Only completed or only unfinished plays.
    pub completed: Option<bool>,
}

/// What a history cursor is bound to: the profile and the filters (a cursor replayed on another
/// query is refused).
fn history_scope(profile: ProfileId, q: &HistoryQuery) -> String {
    format!("history:{profile}:{}:{:?}", q.title_id.as_ref().map_or("", TitleId::as_str), q.completed)
}

/// Check a page size: default 20, at most 100 (above is an error, never silent truncation).
pub fn page_limit(limit: Option<i64>) -> Result<u32, FieldError> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(l) if (1..=i64::from(PAGE_MAX)).contains(&l) => Ok(u32::try_from(l).unwrap_or(PAGE_DEFAULT)),
        Some(_) => Err(FieldError::new("limit", "out_of_range", format!("must be 1-{PAGE_MAX}"))),
    }
}

fn view(row: Option<&ResumeRow>, title: &Title, app: &App) -> ProgressView {
    let facts = TitleFacts::from(title);
    match row {
        Some(r) => ProgressView {
            title_id: title.id.clone(),
            position_ms: r.progress.position_ms,
            duration_ms: r.progress.duration_ms,
            percent: percent(r.progress.position_ms, r.progress.duration_ms),
            state: state(&r.progress, &facts, &app.config.rules),
            updated_at: Some(r.progress.updated_at),
            version: Some(r.progress.version()),
        },
        None => ProgressView {
            title_id: title.id.clone(),
            position_ms: 0,
            duration_ms: title.duration_ms,
            percent: 0.0,
            state: ProgressState::NotStarted,
            updated_at: None,
            version: None,
        },
    }
}

impl App {
    async fn title_or_404(&self, id: &TitleId) -> Result<Title, AppError> {
        Ok(self.ports.catalog.title(id).await?.ok_or(AppError::NotFound("title"))?.title)
    }

    /// A profile's resume point for a title (a never-played title answers position 0).
    pub async fn get_progress(
        &self,
        p: &Principal,
        profile: ProfileId,
        title: &TitleId,
    ) -> Result<ProgressView, AppError> {
        self.reachable_profile(p, profile, Operation::GetProgress).await?;
        let t = self.title_or_404(title).await?;
        let row = self.ports.viewing.progress(profile, title).await?;
        Ok(view(row.as_ref(), &t, self))
    }

    /// Set a resume point synchronously: recorded as a pause event and merged by the same
    /// last-writer-wins rule, so the phone sees at once where the TV paused. `expect` is
    /// optional; a stale one answers 412.
    pub async fn put_progress(
        &self,
        p: &Principal,
        profile: ProfileId,
        title_id: &TitleId,
        write: ProgressWrite,
        expect: Option<ExpectedVersion>,
    ) -> Result<ProgressView, AppError> {
        let paused = self.reachable_profile(p, profile, Operation::SetProgress).await?.history_paused;
        let title = self.title_or_404(title_id).await?;
        let now = self.clock.now();
        // The same admission rules as an event in a batch (no batch clock shift: the server
        // stamps the time when the client sends none).
        let ctx = BatchContext { now, shift_ms: 0, backfill: false };
        let reported = Reported {
            occurred_at_raw: write.occurred_at.unwrap_or(now),
            position_ms: write.position_ms,
            duration_ms: write.duration_ms,
        };
        let Admitted { occurred_at, position_ms } =
            check_admission(reported, &ctx, Some(title.duration_ms), &self.config.rules)
                .map_err(AppError::invalid)?;
        let device_id = write
            .device_id
            .map(|d| {
                DeviceId::parse(&d)
                    .map_err(|e| AppError::invalid(FieldError::new("device_id", "invalid", e.to_string())))
            })
            .transpose()?;
        let event = PlaybackEvent {
            event_id: EventId(Uuid::now_v7()),
            profile_id: profile,
            title_id: title_id.clone(),
            kind: EventKind::Pause,
            position_ms,
            duration_ms: write.duration_ms,
            occurred_at,
            occurred_at_raw: occurred_at,
            received_at: now,
            device_id,
            session_id: None,
        };
        let mut tx = self.ports.viewing.begin().await?;
        if let Some(expect) = expect {
            let current = tx.progress(profile, title_id).await?.as_ref().map(ProgressRecord::version);
            if expect != ExpectedVersion::Exactly(current) {
                return Err(AppError::PreconditionFailed);
            }
        }
        let mut effects = crate::apply::Effects::default();
        if paused {
            // History paused: the resume point the person set is kept, but no event is stored,
            // so it can never become part of a play.
            let facts = TitleFacts::from(&title);
            self.merge_resume_point(tx.as_mut(), profile, title_id, &facts, &[&event], &mut effects.changed)
                .await?;
        } else {
            tx.record_applied(&event).await?;
            // The title was read above, before the transaction: no second pool connection is
            // taken while this one is held.
            let titles = HashMap::from([(title.id.clone(), title.clone())]);
            self.apply_in_tx(tx.as_mut(), std::slice::from_ref(&event), &titles, &mut effects).await?;
        }
        tx.commit().await?;
        self.cache.invalidate(profile).await;
        for c in effects.changed {
            self.announce_progress(c);
        }
        self.publish_plays(&effects.plays).await;
        let row = self.ports.viewing.progress(profile, title_id).await?;
        Ok(view(row.as_ref(), &title, self))
    }

    /// A page of plays, newest first.
    pub async fn history(
        &self,
        p: &Principal,
        profile: ProfileId,
        q: HistoryQuery,
    ) -> Result<(Vec<(Viewing, Option<Title>)>, Option<String>), AppError> {
        let viewer = self.reachable_profile(p, profile, Operation::ListHistory).await?;
        let scope = history_scope(profile, &q);
        let before = q
            .cursor
            .as_deref()
            .map(|c| self.cursors.decode::<(i64, Uuid)>(&scope, c))
            .transpose()
            .map_err(AppError::invalid)?
            .map(|(t, id)| (Timestamp(t), PlayId(id)));
        let query = PlayQuery { before, limit: q.limit + 1, title_id: q.title_id, completed: q.completed };
        let mut plays = self.ports.viewing.plays(profile, &query).await?;
        let next = if plays.len() > q.limit as usize {
            plays.truncate(q.limit as usize);
            plays.last().map(|v| self.cursors.encode(&scope, &(v.started_at.0, v.id.0)))
        } else {
            None
        };
        let titles = self.title_map(plays.iter().map(|v| v.title_id.clone())).await?;
        Ok((
            plays
                .into_iter()
                // Kids filtering everywhere (issue 17): a play of a title above the profile's
                // limit (played before the limit was lowered) is not shown. The cursor was taken
                // from the unfiltered page, so paging still sees every other play once; a page
                // may hold fewer than `limit` plays.
                .filter(|v| titles.get(&v.title_id).is_none_or(|t| viewer.may_see(t.maturity)))
                .map(|v| {
                    let t = titles.get(&v.title_id).cloned();
                    (v, t)
                })
                .collect(),
            next,
        ))
    }

    /// [`App::history`] with each play's title stamped with its watched state for the profile
    /// (gRPC and GraphQL: plays only, their cursors unchanged).
    pub async fn history_stamped(
        &self,
        p: &Principal,
        profile: ProfileId,
        q: HistoryQuery,
    ) -> Result<(Vec<(Viewing, Option<Title>, crate::library::WatchState)>, Option<String>), AppError> {
        let (plays, next) = self.history(p, profile, q).await?;
        let shown: Vec<&Title> = plays.iter().filter_map(|(_, t)| t.as_ref()).collect();
        let states = self.watch_states(profile, &shown).await?;
        let plays = plays
            .into_iter()
            .map(|(v, t)| {
                let w = states.get(&v.title_id).copied().unwrap_or_default();
                (v, t, w)
            })
            .collect();
        Ok((plays, next))
    }

    /// A page of history as REST shows it: plays and rolled-up months (decision 0083), newest
    /// first, each with its title's watched state. The filters apply to roll-ups too: `title_id`
    /// by title, `completed = true` months with a completed play, `false` months with a play that
    /// did not complete. Cursors of [`App::history`] (plays only) are accepted.
    pub async fn history_with_state(
        &self,
        p: &Principal,
        profile: ProfileId,
        q: HistoryQuery,
    ) -> Result<(HistoryRows, Option<String>), AppError> {
        let viewer = self.reachable_profile(p, profile, Operation::ListHistory).await?;
        let scope = history_scope(profile, &q);
        let pos = q
            .cursor
            .as_deref()
            .map(|c| self.cursors.decode::<HistoryPos>(&scope, c))
            .transpose()
            .map_err(AppError::invalid)?;
        let bad_cursor = || FieldError::new("cursor", "invalid", "is not a cursor returned by this query");
        let (play_before, rollup_before) = match pos {
            None => (None, None),
            // Roll-ups of the play's month and older come after it (a month ranks below its plays).
            Some(HistoryPos::Play(t, id)) => {
                (Some((Timestamp(t), PlayId(id))), Some((Timestamp(t).plus_ms(1), None)))
            }
            Some(HistoryPos::Rollup(m, title, _)) => {
                let title = TitleId::parse(&title).map_err(|_| AppError::invalid(bad_cursor()))?;
                // Plays that started in this month came before the roll-up.
                (Some((Timestamp(m), PlayId(Uuid::nil()))), Some((Timestamp(m), Some(title))))
            }
        };
        let fetch = q.limit + 1;
        let plays = PlayQuery {
            before: play_before,
            limit: fetch,
            title_id: q.title_id.clone(),
            completed: q.completed,
        };
        let rollups = RollupQuery {
            before: rollup_before,
            limit: fetch,
            title_id: q.title_id.clone(),
            completed: q.completed,
        };
        let plays = self.ports.viewing.plays(profile, &plays).await?;
        let rollups = self.ports.viewing.rollups(profile, &rollups).await?;
        let mut merged = merge_newest_first(plays, rollups, fetch as usize);
        let more = merged.len() > q.limit as usize;
        merged.truncate(q.limit as usize);
        let titles = self
            .title_map(merged.iter().map(|e| match e {
                Ok(v) => v.title_id.clone(),
                Err(r) => r.title_id.clone(),
            }))
            .await?;
        let shown: Vec<&Title> = titles.values().collect();
        let states = self.watch_states(profile, &shown).await?;
        let entries: Vec<HistoryEntry> = merged
            .into_iter()
            .map(|e| {
                let id = match &e {
                    Ok(v) => &v.title_id,
                    Err(r) => &r.title_id,
                };
                let (t, s) = (titles.get(id).cloned(), states.get(id).copied().unwrap_or_default());
                match e {
                    Ok(v) => HistoryEntry::Play(v, t, s),
                    Err(r) => HistoryEntry::Rollup(r, t, s),
                }
            })
            .collect();
        let next =
            if more { entries.last().map(|e| self.cursors.encode(&scope, &e.position())) } else { None };
        // Kids filtering as in `history`, after the cursor was taken from the unfiltered page.
        let entries = entries
            .into_iter()
            .filter(|e| titles.get(e.title_id()).is_none_or(|t| viewer.may_see(t.maturity)))
            .collect();
        Ok((entries, next))
    }

    /// The cursor that continues `q` after `play` (the page's own next cursor is this for its
    /// last play): transports that give every item a cursor (GraphQL edges) use it.
    pub fn history_cursor(&self, profile: ProfileId, q: &HistoryQuery, play: &Viewing) -> String {
        self.cursors.encode(&history_scope(profile, q), &(play.started_at.0, play.id.0))
    }

    pub(crate) async fn title_map(
        &self,
        ids: impl Iterator<Item = TitleId>,
    ) -> Result<HashMap<TitleId, Title>, AppError> {
        let ids: Vec<TitleId> = ids.collect::<HashSet<_>>().into_iter().collect();
        Ok(self.ports.catalog.titles(&ids).await?.into_iter().map(|t| (t.id.clone(), t)).collect())
    }

    /// Import plays from elsewhere, deduplicated on (profile, title, started_at).
    pub async fn backfill(
        &self,
        p: &Principal,
        profile: ProfileId,
        plays: Vec<BackfillPlay>,
    ) -> Result<Vec<BackfillResult>, AppError> {
        self.reachable_profile(p, profile, Operation::ImportHistory).await?;
        if plays.len() > BACKFILL_MAX {
            return Err(AppError::invalid(FieldError::new(
                "plays",
                "too_many",
                format!("at most {BACKFILL_MAX} plays per request"),
            )));
        }
        let now = self.clock.now();
        let ids = plays.iter().filter_map(|b| b.title_id.as_deref().and_then(|t| TitleId::parse(t).ok()));
        let titles = self.title_map(ids).await?;
        let mut results: Vec<Option<BackfillResult>> = Vec::with_capacity(plays.len());
        let mut valid: Vec<Viewing> = Vec::new();
        let mut slots: Vec<usize> = Vec::new();
        for (i, b) in plays.into_iter().enumerate() {
            match self.backfill_viewing(profile, b, &titles, now) {
                Ok(v) => {
                    results.push(None);
                    slots.push(i);
                    valid.push(v);
                }
                Err(e) => results.push(Some(BackfillResult::Rejected(e))),
            }
        }
        let outcomes = self.ports.viewing.backfill(&valid).await?;
        self.count_backfilled(profile, &valid, &outcomes, &titles).await?;
        self.cache.invalidate(profile).await;
        if outcomes.len() != slots.len() {
            // The port answers one outcome per viewing: anything else is an adapter defect, and
            // guessing an outcome for the rest would tell the client something untrue.
            return Err(AppError::Internal(format!(
                "backfill stored {} viewings but reported {} outcomes",
                slots.len(),
                outcomes.len()
            )));
        }
        for (slot, o) in slots.into_iter().zip(outcomes) {
            results[slot] = Some(match o {
                BackfillOutcome::Created(id) => BackfillResult::Created(id),
                BackfillOutcome::Duplicate(id) => BackfillResult::Duplicate(id),
                BackfillOutcome::Deleted => BackfillResult::Deleted,
            });
        }
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| AppError::Internal("a backfilled play has no outcome".into())))
            .collect()
    }

    fn backfill_viewing(
        &self,
        profile: ProfileId,
        b: BackfillPlay,
        titles: &HashMap<TitleId, Title>,
        now: Timestamp,
    ) -> Result<Viewing, FieldError> {
        let title_id = TitleId::parse(b.title_id.as_deref().ok_or_else(|| FieldError::required("title_id"))?)
            .map_err(|e| FieldError::new("title_id", "invalid", e.to_string()))?;
        let title = titles.get(&title_id).ok_or_else(|| {
            FieldError::new("title_id", "unknown_title", "is not in the catalog; import the title first")
        })?;
        let started_at = b.started_at.ok_or_else(|| FieldError::required("started_at"))?;
        let completed = b.completed.unwrap_or(true);
        let watched_ms = b.watched_ms.unwrap_or(if completed {
            title.duration_ms
        } else {
            b.ended_at.map_or(0, |e| (e.0 - started_at.0).clamp(0, title.duration_ms))
        });
        if watched_ms < 0 || (title.duration_ms > 0 && watched_ms > title.duration_ms * 10) {
            return Err(FieldError::new(
                "watched_ms",
                "out_of_range",
                "must be 0 or more and at most ten times the duration",
            ));
        }
        let ended_at = b.ended_at.unwrap_or(started_at.plus_ms(watched_ms));
        if ended_at < started_at {
            return Err(FieldError::new("ended_at", "out_of_range", "must not be before started_at"));
        }
        if ended_at.0 > now.0 + self.config.rules.skew_allowance_ms {
            return Err(FieldError::new("ended_at", "in_future", "must not be in the future"));
        }
        Ok(Viewing {
            id: new_play_id(started_at),
            profile_id: profile,
            title_id,
            key: None,
            started_at,
            ended_at,
            watched_ms,
            completed,
            is_play: true,
            manual: false,
        })
    }

    /// Delete a play; it stays deleted whatever is redelivered.
    pub async fn delete_play(&self, p: &Principal, profile: ProfileId, play: PlayId) -> Result<(), AppError> {
        self.delete_play_if(p, profile, play, &IfMatch::Absent).await
    }

    /// Delete a play if its current entity tag is admitted by `if_match` (412 otherwise, judged
    /// in the deleting transaction); 404 for a play that is not the profile's.
    pub async fn delete_play_if(
        &self,
        p: &Principal,
        profile: ProfileId,
        play: PlayId,
        if_match: &IfMatch,
    ) -> Result<(), AppError> {
        self.reachable_profile(p, profile, Operation::DeletePlay).await?;
        self.ports.viewing.delete_play_if(profile, play, self.clock.now(), if_match).await.map_err(|e| {
            match e {
                StoreError::NotFound => AppError::NotFound("play"),
                other => other.into(),
            }
        })?;
        self.cache.invalidate(profile).await;
        // Deletes win in the feed too: what the play published leaves every feed.
        self.retract(profile, playhead_core::ports::ActivityRef::Play(play)).await
    }

    /// Hide a title from Continue watching until the next event for it; progress is kept.
    pub async fn hide(&self, p: &Principal, profile: ProfileId, title: &TitleId) -> Result<(), AppError> {
        self.reachable_profile(p, profile, Operation::HideFromContinueWatching).await?;
        self.title_or_404(title).await?;
        self.ports.viewing.hide(profile, title, self.clock.now()).await?;
        self.cache.invalidate(profile).await;
        self.retract(profile, playhead_core::ports::ActivityRef::Title(title.clone())).await
    }

    /// The Continue watching row.
    pub async fn continue_watching(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        limit: u32,
    ) -> Result<RowPage, AppError> {
        let (profile, pre) = self.reachable_profile_for_row(p, profile_id, Row::Continue).await?;
        let row = self
            .cache
            .row_prefetched(profile_id, Row::Continue, pre, self.load_continue_watching(profile))
            .await?;
        Ok(RowPage::new(row, limit))
    }

    /// The whole row (up to the page maximum), from the store.
    async fn load_continue_watching(&self, profile: Profile) -> Result<Vec<RowItem>, AppError> {
        let profile_id = profile.id;
        let limit = PAGE_MAX;
        let now = self.clock.now();
        let since = now.plus_ms(-self.config.rules.stale_after_ms);
        let rows = self.ports.viewing.recent_progress(profile_id, since, ROW_CANDIDATES).await?;
        let titles = self.title_map(rows.iter().map(|r| r.progress.title_id.clone())).await?;
        let cands: Vec<ResumeCandidate<'_>> = rows
            .iter()
            .filter_map(|r| {
                titles.get(&r.progress.title_id).map(|t| ResumeCandidate {
                    progress: &r.progress,
                    hidden_at: r.hidden_at,
                    title: t,
                })
            })
            .collect();
        let mut items: Vec<RowItem> =
            continue_watching(&cands, &profile, now, &self.config.rules, limit as usize)
                .into_iter()
                .map(|c| RowItem {
                    title: c.title.clone(),
                    position_ms: c.progress.position_ms,
                    percent: percent(c.progress.position_ms, c.progress.duration_ms),
                    activity_at: c.progress.occurred_at,
                    watch: Default::default(),
                })
                .collect();
        self.stamp_watch_states(profile_id, &mut items).await?;
        Ok(items)
    }

    /// The Next up row: one card per series with a completed play, most recent activity first.
    pub async fn next_up(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        limit: u32,
    ) -> Result<RowPage, AppError> {
        let (profile, pre) = self.reachable_profile_for_row(p, profile_id, Row::NextUp).await?;
        let row = self.cache.row_prefetched(profile_id, Row::NextUp, pre, self.load_next_up(profile)).await?;
        Ok(RowPage::new(row, limit))
    }

    /// The whole row (up to the page maximum), from the store.
    async fn load_next_up(&self, profile: Profile) -> Result<Vec<RowItem>, AppError> {
        let profile_id = profile.id;
        let limit = PAGE_MAX;
        let now = self.clock.now();
        let plays = self.ports.viewing.episode_plays(profile_id).await?;
        let mut by_series: BTreeMap<TitleId, Vec<EpisodePlay>> = BTreeMap::new();
        for (series, v) in plays {
            by_series.entry(series).or_default().push(EpisodePlay {
                title_id: v.title_id,
                started_at: v.started_at,
                ended_at: v.ended_at,
                completed: v.completed,
            });
        }
        let series_ids: Vec<TitleId> = by_series.keys().cloned().collect();
        let mut episodes: HashMap<TitleId, Vec<Title>> = HashMap::new();
        for t in self.ports.catalog.episodes_of(&series_ids).await? {
            if let Some(s) = t.series_id.clone() {
                episodes.entry(s).or_default().push(t);
            }
        }
        let mut cards: Vec<(Timestamp, Title)> = Vec::new();
        for (series, plays) in &by_series {
            let eps = episodes.get(series).map_or(&[][..], Vec::as_slice);
            if let Some(next) = next_up(eps, plays, &profile, now) {
                let activity = plays.iter().map(|p| p.ended_at).max().unwrap_or_default();
                cards.push((activity, next.clone()));
            }
        }
        cards.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        cards.truncate(limit as usize);
        // A started next episode carries its resume point so the card can show a bar: read all
        // of them at once (one read per card made the row cost grow with its length).
        let ids: Vec<TitleId> = cards.iter().map(|(_, t)| t.id.clone()).collect();
        let mut resume: HashMap<TitleId, ResumeRow> = self
            .ports
            .viewing
            .progress_of(profile_id, &ids)
            .await?
            .into_iter()
            .map(|r| (r.progress.title_id.clone(), r))
            .collect();
        let mut items = Vec::with_capacity(cards.len());
        for (activity_at, title) in cards {
            let row = resume.remove(&title.id);
            let facts = TitleFacts::from(&title);
            let (position_ms, pct) = match row {
                Some(r)
                    if self.config.rules.in_resume_window(r.progress.position_ms, &facts)
                        && !r.progress.finished =>
                {
                    (r.progress.position_ms, percent(r.progress.position_ms, r.progress.duration_ms))
                }
                _ => (0, 0.0),
            };
            items.push(RowItem { title, position_ms, percent: pct, activity_at, watch: Default::default() });
        }
        self.stamp_watch_states(profile_id, &mut items).await?;
        Ok(items)
    }

    /// Fill each row item's watched state (one read for the whole row).
    async fn stamp_watch_states(&self, profile: ProfileId, items: &mut [RowItem]) -> Result<(), AppError> {
        if items.is_empty() {
            return Ok(());
        }
        let titles: Vec<&Title> = items.iter().map(|i| &i.title).collect();
        let states = self.watch_states(profile, &titles).await?;
        for i in items.iter_mut() {
            i.watch = states.get(&i.title.id).copied().unwrap_or_default();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn play(n: u128, started: i64) -> Viewing {
        Viewing {
            id: PlayId(Uuid::from_u128(n)),
            profile_id: ProfileId(Uuid::nil()),
            title_id: TitleId::parse("t").unwrap(),
            key: None,
            started_at: Timestamp(started),
            ended_at: Timestamp(started + 1),
            watched_ms: 1,
            completed: true,
            is_play: true,
            manual: false,
        }
    }

    fn month(start: i64, title: &str) -> PlayRollup {
        PlayRollup {
            profile_id: ProfileId(Uuid::nil()),
            title_id: TitleId::parse(title).unwrap(),
            month: Timestamp(start),
            plays: 1,
            watched_ms: 1,
            completed_plays: 1,
        }
    }

    #[test]
    fn a_month_follows_the_plays_that_started_in_it() {
        let plays = vec![play(1, 300), play(2, 100), play(3, 50)];
        let rollups = vec![month(100, "b"), month(100, "a"), month(0, "a")];
        let merged: Vec<String> = merge_newest_first(plays, rollups, 10)
            .into_iter()
            .map(|e| match e {
                Ok(v) => format!("play@{}", v.started_at.0),
                Err(r) => format!("{}@{}", r.title_id.as_str(), r.month.0),
            })
            .collect();
        assert_eq!(merged, ["play@300", "play@100", "b@100", "a@100", "play@50", "a@0"]);
        assert_eq!(merge_newest_first(vec![play(1, 1)], vec![month(0, "a")], 1).len(), 1);
    }

    #[test]
    fn play_cursors_keep_their_old_shape_and_rollup_cursors_never_read_as_plays() {
        let id = Uuid::from_u128(7);
        let play = serde_json::to_string(&HistoryPos::Play(42, id)).unwrap();
        assert_eq!(play, serde_json::to_string(&(42_i64, id)).unwrap(), "cursors issued before roll-ups");
        let title_like_a_uuid = id.to_string();
        let rollup = serde_json::to_string(&HistoryPos::Rollup(42, title_like_a_uuid, 0)).unwrap();
        assert!(matches!(serde_json::from_str::<HistoryPos>(&rollup).unwrap(), HistoryPos::Rollup(42, _, 0)));
        assert!(matches!(serde_json::from_str::<HistoryPos>(&play).unwrap(), HistoryPos::Play(42, _)));
    }
}
