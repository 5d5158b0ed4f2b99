//! Applying logged events to state: the write path's back half, shared by the consumer and the
//! synchronous resume-point PUT.
//!
//! Everything for one batch happens in one store transaction that also acknowledges the queue
//! entries, so a redelivered event is claimed by nobody and changes nothing. Within it, per
//! (profile, title): the resume register takes the greatest `(occurred_at, event_id)`; viewings
//! touched by the new events are recomputed from *all* their stored events (so arrival order
//! never matters) and keep their play ids. The live case, events that only extend a viewing
//! (each after every stored event of its group), takes the viewing's stored summary instead of
//! re-reading the session: the same result (`rules::viewing::extend`, property-tested against
//! `summarize`), at a cost that does not grow with the session (decision 0113).

use std::collections::{BTreeMap, HashMap, HashSet};

use playhead_core::event::{PlaybackEvent, clamp_position};
use playhead_core::feed::AppliedPlay;
use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::{GroupEvent, ProgressChange, QueuedEvent, Viewing, ViewingTx};
use playhead_core::rules::TitleFacts;
use playhead_core::rules::progress::{merge_all, percent, state};
use playhead_core::rules::recs::{COWATCH_WINDOW, TRENDING_HALF_LIFE_MS, count_play, is_positive, item_of};
use playhead_core::rules::viewing::{SessionKey, ViewingSummary, extend, split_by_gap, summarize};
use playhead_core::title::Title;
use playhead_core::trace::TraceContext;
use playhead_core::{EventId, Timestamp};
use uuid::Uuid;

use crate::{App, AppError, telemetry};

/// What an apply changed that others hear about after its commit.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Resume points moved (live subscribers).
    pub changed: Vec<ProgressChange>,
    /// Plays that became plays or completed (the feed).
    pub plays: Vec<AppliedPlay>,
}

/// Counts from one apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Events applied now.
    pub applied: u64,
    /// Events already applied before (redelivery).
    pub redelivered: u64,
    /// Events found invalid against the catalog at apply time.
    pub dropped: u64,
}

/// A fresh play id: UUIDv7 stamped with the viewing's start, so ids sort like history does.
pub(crate) fn new_play_id(started_at: Timestamp) -> PlayId {
    let secs = u64::try_from(started_at.0.div_euclid(1000)).unwrap_or(0);
    let nanos = u32::try_from(started_at.0.rem_euclid(1000) * 1_000_000).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos);
    PlayId(Uuid::new_v7(ts))
}

impl App {
    /// Apply a batch taken from the queue. Idempotent.
    pub async fn apply_queued(&self, batch: &[QueuedEvent]) -> Result<ApplyStats, AppError> {
        if batch.is_empty() {
            return Ok(ApplyStats::default());
        }
        let _applying = Applying::start(&self.applying);
        // One span per request the batch's events came from, open for the whole apply: each
        // continues its request's trace (decision 0075); closed (and exported) when it ends.
        let mut traced: BTreeMap<u128, (tracing::Span, TraceContext)> = BTreeMap::new();
        for t in batch.iter().filter_map(|q| q.trace) {
            traced.entry(t.trace_id()).or_insert_with(|| {
                let span = tracing::info_span!("apply", trace_id = %t.trace_id_hex());
                telemetry::continue_trace(span, t)
            });
        }
        // The catalog is read before the transaction opens: inside it, a read from the same
        // pool would hold one connection while waiting for another, and enough concurrent
        // applies (PostgreSQL) would then wait on each other until the acquire timeout.
        let titles = self.titles_of(batch.iter().map(|q| &q.event)).await?;
        let mut tx = self.ports.viewing.begin().await?;
        let seqs: Vec<i64> = batch.iter().map(|q| q.seq).collect();
        let claimed: HashSet<EventId> = tx.claim(&seqs).await?.into_iter().collect();
        let events: Vec<PlaybackEvent> =
            batch.iter().filter(|q| claimed.contains(&q.event.event_id)).map(|q| q.event.clone()).collect();
        let redelivered = (batch.len() - events.len()) as u64;
        let mut effects = Effects::default();
        let mut stats = self.apply_in_tx(tx.as_mut(), &events, &titles, &mut effects).await?;
        tx.commit().await?;
        let touched: std::collections::BTreeSet<ProfileId> = events.iter().map(|e| e.profile_id).collect();
        for p in touched {
            self.cache.invalidate(p).await;
        }
        // After the commit and the invalidation: a subscriber that re-reads sees the change.
        for c in effects.changed {
            self.announce_progress(c);
        }
        // After the commit too, and outside the apply transaction: a feed's work never holds a
        // resume point back.
        self.publish_plays(&effects.plays).await;
        stats.redelivered = redelivered;
        for q in batch {
            if let Some((span, t)) = q.trace.and_then(|t| traced.get(&t.trace_id())) {
                tracing::debug!(
                    parent: span,
                    trace_id = %t.trace_id_hex(),
                    event.id = %q.event.event_id,
                    redelivered = !claimed.contains(&q.event.event_id),
                    "applied event"
                );
            }
        }
        metrics::counter!("playhead_events_applied_total").increment(stats.applied);
        metrics::counter!("playhead_events_redelivered_total").increment(stats.redelivered);
        metrics::counter!("playhead_events_dropped_total", "reason" => "invalid_at_apply")
            .increment(stats.dropped);
        Ok(stats)
    }

    /// The catalog's titles of these events, by id: read by the caller *before* it opens the
    /// apply transaction (see [`App::apply_in_tx`]).
    pub(crate) async fn titles_of<'a>(
        &self,
        events: impl Iterator<Item = &'a PlaybackEvent>,
    ) -> Result<HashMap<TitleId, Title>, AppError> {
        let ids: Vec<TitleId> =
            events.map(|e| e.title_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self.ports.catalog.titles(&ids).await?.into_iter().map(|t| (t.id.clone(), t)).collect())
    }

    /// Apply events inside an open transaction (the caller commits, then announces
    /// `effects.changed`, the resume points this apply moved, and publishes `effects.plays`).
    /// `titles` holds the events' titles, read before the transaction opened: nothing here may
    /// take a second connection from the pool the transaction holds one of.
    pub(crate) async fn apply_in_tx(
        &self,
        tx: &mut dyn ViewingTx,
        events: &[PlaybackEvent],
        titles: &HashMap<TitleId, Title>,
        effects: &mut Effects,
    ) -> Result<ApplyStats, AppError> {
        let mut stats = ApplyStats::default();
        if events.is_empty() {
            return Ok(stats);
        }

        let mut groups: BTreeMap<(ProfileId, TitleId), Vec<&PlaybackEvent>> = BTreeMap::new();
        for e in events {
            groups.entry((e.profile_id, e.title_id.clone())).or_default().push(e);
        }
        let mut dropped: Vec<EventId> = Vec::new();
        for ((profile, title_id), evs) in groups {
            let Some(title) = titles.get(&title_id) else {
                // Queued events always had a title; a missing one means the catalog lost it.
                tracing::warn!(title.id = %title_id, event.count = evs.len(), "title vanished; events dropped");
                dropped.extend(evs.iter().map(|e| e.event_id));
                continue;
            };
            let facts = TitleFacts::from(title);
            // Held events were admitted without the catalog's duration: check them now.
            let (valid, invalid): (Vec<&PlaybackEvent>, Vec<&PlaybackEvent>) =
                evs.into_iter().partition(|e| {
                    clamp_position(e.position_ms, Some(title.duration_ms), &self.config.rules).is_ok()
                });
            dropped.extend(invalid.iter().map(|e| e.event_id));
            if valid.is_empty() {
                continue;
            }
            stats.applied += valid.len() as u64;
            self.merge_resume_point(tx, profile, &title_id, &facts, &valid, &mut effects.changed).await?;
            let mut by_key: BTreeMap<SessionKey, Vec<&PlaybackEvent>> = BTreeMap::new();
            for e in valid {
                by_key.entry(SessionKey::of(e)).or_default().push(e);
            }
            let item = item_of(title);
            for (key, new_events) in by_key {
                let plays = &mut effects.plays;
                self.recompute_viewings(tx, profile, &title_id, &facts, &key, &new_events, &item, plays)
                    .await?;
            }
        }
        if !dropped.is_empty() {
            stats.dropped = dropped.len() as u64;
            tx.drop_events(&dropped).await?;
        }
        Ok(stats)
    }

    /// The resume register of one (profile, title) takes the greatest `(occurred_at, event_id)`
    /// of `events` and what it held.
    pub(crate) async fn merge_resume_point(
        &self,
        tx: &mut dyn ViewingTx,
        profile: ProfileId,
        title_id: &TitleId,
        facts: &TitleFacts,
        events: &[&PlaybackEvent],
        changed: &mut Vec<ProgressChange>,
    ) -> Result<(), AppError> {
        let current = tx.progress(profile, title_id).await?;
        let now = self.clock.now();
        if let Some(rec) = merge_all(current, events.iter().copied(), facts, &self.config.rules, now) {
            tx.save_progress(&rec).await?;
            changed.push(ProgressChange {
                profile_id: profile,
                title_id: title_id.clone(),
                position_ms: rec.position_ms,
                duration_ms: rec.duration_ms,
                percent: percent(rec.position_ms, rec.duration_ms),
                state: state(&rec, facts, &self.config.rules),
                updated_at: rec.updated_at,
            });
        }
        Ok(())
    }

    /// Move resume points and nothing else (history paused, resume points kept): the same merge
    /// as a full apply, in one transaction, committed before the answer. No event is stored or
    /// marked applied, so no play, history entry or recommendation signal can come of them, not
    /// even from a later replay of the log. Events for titles the catalog does not hold, or
    /// whose position the title cannot have, move nothing.
    pub(crate) async fn apply_resume_points_only(&self, events: &[PlaybackEvent]) -> Result<(), AppError> {
        if events.is_empty() {
            return Ok(());
        }
        let titles = self.titles_of(events.iter()).await?;
        let mut groups: BTreeMap<(ProfileId, TitleId), Vec<&PlaybackEvent>> = BTreeMap::new();
        for e in events {
            groups.entry((e.profile_id, e.title_id.clone())).or_default().push(e);
        }
        let mut changed = Vec::new();
        let mut tx = self.ports.viewing.begin().await?;
        for ((profile, title_id), evs) in groups {
            let Some(title) = titles.get(&title_id) else { continue };
            let facts = TitleFacts::from(title);
            let valid: Vec<&PlaybackEvent> = evs
                .into_iter()
                .filter(|e| {
                    clamp_position(e.position_ms, Some(title.duration_ms), &self.config.rules).is_ok()
                })
                .collect();
            if !valid.is_empty() {
                self.merge_resume_point(tx.as_mut(), profile, &title_id, &facts, &valid, &mut changed)
                    .await?;
            }
        }
        tx.commit().await?;
        let touched: std::collections::BTreeSet<ProfileId> = events.iter().map(|e| e.profile_id).collect();
        for p in touched {
            self.cache.invalidate(p).await;
        }
        for c in changed {
            self.announce_progress(c);
        }
        Ok(())
    }

    /// Recompute the viewings of one group that the new events can touch, keeping play ids:
    /// extend the viewing they follow (the live case), or load the affected events and regroup
    /// them; reconcile with the stored viewings, then count the plays that became positives for
    /// recommendations.
    #[expect(clippy::too_many_arguments, reason = "one group's identity, facts and item: all needed here")]
    async fn recompute_viewings(
        &self,
        tx: &mut dyn ViewingTx,
        profile: ProfileId,
        title_id: &TitleId,
        facts: &TitleFacts,
        key: &SessionKey,
        new_events: &[&PlaybackEvent],
        item: &TitleId,
        plays: &mut Vec<AppliedPlay>,
    ) -> Result<(), AppError> {
        let (existing, recomputed) =
            match self.extension(tx, profile, title_id, facts, key, new_events).await? {
                Some(extended) => {
                    metrics::counter!("playhead_apply_groups_total", "path" => "extended").increment(1);
                    extended
                }
                None => {
                    metrics::counter!("playhead_apply_groups_total", "path" => "recomputed").increment(1);
                    let Some(full) = self.recomputed(tx, profile, title_id, facts, key, new_events).await?
                    else {
                        return Ok(()); // the new events are not stored (dropped meanwhile): nothing to do
                    };
                    full
                }
            };
        let (remove, upsert) = reconcile(&existing, &recomputed, profile, title_id, key);
        let changed = !remove.is_empty() || upsert.iter().any(|v| !existing.contains(v));
        if changed {
            tx.replace_viewings(&remove, &upsert).await?;
        }
        // Plays that became plays or reached the watched point now: what the feed may publish.
        let before: HashMap<PlayId, &Viewing> = existing.iter().map(|v| (v.id, v)).collect();
        for v in upsert.iter().filter(|v| v.is_play) {
            let prev = before.get(&v.id);
            let newly_play = prev.is_none_or(|p| !p.is_play);
            let newly_completed = v.completed && prev.is_none_or(|p| !(p.completed && p.is_play));
            if newly_play || newly_completed {
                plays.push(AppliedPlay { play: v.clone(), newly_completed, newly_play });
            }
        }
        self.count_new_positives(tx, profile, facts, item, &existing, &upsert).await
    }

    /// The live case without reading the session: when every new event comes after the group's
    /// latest stored event (and, server-grouped, within a gap of the one before), they extend the
    /// viewing that ends at that event, and its summary follows from the stored one
    /// ([`extend`]). Returns that viewing and its extension, or `None` for anything else (an
    /// event out of order, a gap, a tombstone at or after the last event, no such viewing, an
    /// unknown duration), which the full recomputation then decides. An event stored but not
    /// yet applied that this skips comes after nothing new, so its own apply recomputes fully.
    async fn extension(
        &self,
        tx: &mut dyn ViewingTx,
        profile: ProfileId,
        title_id: &TitleId,
        facts: &TitleFacts,
        key: &SessionKey,
        new_events: &[&PlaybackEvent],
    ) -> Result<Option<(Vec<Viewing>, Vec<ViewingSummary>)>, AppError> {
        let rules = &self.config.rules;
        if facts.duration_ms <= 0 {
            return Ok(None);
        }
        let ids: Vec<EventId> = new_events.iter().map(|e| e.event_id).collect();
        let Some(last) = tx.last_event(profile, title_id, key, &ids).await? else {
            return Ok(None);
        };
        if last.deleted || new_events.iter().any(|e| e.version() <= last.event.version()) {
            return Ok(None);
        }
        let at = last.event.occurred_at;
        let existing = tx.viewings(profile, title_id, key, at, at).await?;
        let [viewing] = existing.as_slice() else {
            return Ok(None);
        };
        let summary = ViewingSummary {
            started_at: viewing.started_at,
            ended_at: viewing.ended_at,
            watched_ms: viewing.watched_ms,
            completed: viewing.completed,
            is_play: viewing.is_play,
        };
        let gap = matches!(key, SessionKey::Implicit(_)).then_some(rules.session_gap_ms);
        if viewing.manual {
            return Ok(None);
        }
        Ok(extend(&summary, &last.event, new_events, gap, facts, rules).map(|e| (existing, vec![e])))
    }

    /// Recompute the viewings the new events can touch from all their stored events: the
    /// viewings stored for that span and what they are now. `None` when none of the new events
    /// is stored.
    async fn recomputed(
        &self,
        tx: &mut dyn ViewingTx,
        profile: ProfileId,
        title_id: &TitleId,
        facts: &TitleFacts,
        key: &SessionKey,
        new_events: &[&PlaybackEvent],
    ) -> Result<Option<(Vec<Viewing>, Vec<ViewingSummary>)>, AppError> {
        let rules = &self.config.rules;
        let Some((stored, span)) = self.affected_events(tx, profile, title_id, key, new_events).await? else {
            return Ok(None);
        };
        let deleted: HashSet<EventId> =
            stored.iter().filter(|g| g.deleted).map(|g| g.event.event_id).collect();
        let refs: Vec<&PlaybackEvent> = stored
            .iter()
            .map(|g| &g.event)
            .filter(|e| e.occurred_at >= span.0 && e.occurred_at <= span.1)
            .collect();
        let groups = match key {
            SessionKey::Explicit(_) => vec![refs],
            SessionKey::Implicit(_) => split_by_gap(&refs, rules),
        };
        let existing = tx.viewings(profile, title_id, key, span.0, span.1).await?;
        let recomputed: Vec<ViewingSummary> = groups
            .iter()
            // Part of a deleted play: stays deleted, whatever joins it later.
            .filter(|g| !g.iter().any(|e| deleted.contains(&e.event_id)))
            .filter_map(|g| summarize(g, facts, rules))
            .collect();
        Ok(Some((existing, recomputed)))
    }

    /// The stored events of one group that the new events can regroup, and the time span whose
    /// viewings they decide.
    ///
    /// Explicit sessions: all of them. Implicit groups: load the stored events around the new
    /// ones, regroup them, and widen the window until the viewings that hold a new event (and
    /// any between them) end more than one gap inside it: only then can nothing outside the
    /// window join them. `None` when none of the new events is stored.
    async fn affected_events(
        &self,
        tx: &mut dyn ViewingTx,
        profile: ProfileId,
        title_id: &TitleId,
        key: &SessionKey,
        new_events: &[&PlaybackEvent],
    ) -> Result<Option<(Vec<GroupEvent>, (Timestamp, Timestamp))>, AppError> {
        let rules = &self.config.rules;
        let gap = rules.session_gap_ms;
        if let SessionKey::Explicit(_) = key {
            let all = tx.events(profile, title_id, key, Timestamp(i64::MIN), Timestamp(i64::MAX)).await?;
            return Ok(Some((all, (Timestamp(i64::MIN), Timestamp(i64::MAX)))));
        }
        let new_ids: HashSet<EventId> = new_events.iter().map(|e| e.event_id).collect();
        let min = new_events.iter().map(|e| e.occurred_at).min().unwrap_or_default();
        let max = new_events.iter().map(|e| e.occurred_at).max().unwrap_or_default();
        let (mut lo, mut hi) = (min.plus_ms(-gap), max.plus_ms(gap));
        loop {
            let loaded = tx.events(profile, title_id, key, lo, hi).await?;
            let refs: Vec<&PlaybackEvent> = loaded.iter().map(|g| &g.event).collect();
            let groups = split_by_gap(&refs, rules);
            let touched: Vec<&Vec<&PlaybackEvent>> =
                groups.iter().filter(|g| g.iter().any(|e| new_ids.contains(&e.event_id))).collect();
            let (Some(first), Some(last)) = (touched.first(), touched.last()) else {
                return Ok(None);
            };
            let s = first.first().map_or(min, |e| e.occurred_at);
            let e = last.last().map_or(max, |e| e.occurred_at);
            if s.plus_ms(-gap) >= lo && e.plus_ms(gap) <= hi {
                return Ok(Some((loaded, (s, e))));
            }
            lo = lo.min(s.plus_ms(-gap));
            hi = hi.max(e.plus_ms(gap));
        }
    }

    /// Recommendation counters, in the apply transaction and keyed by play id (DESIGN.md,
    /// "Delivery"): a play counts the first time it is a positive; recomputing or redelivering
    /// it later counts nothing. A play that grows past the threshold later is counted then; one
    /// that was a positive before this apply was counted when it became one.
    async fn count_new_positives(
        &self,
        tx: &mut dyn ViewingTx,
        profile: ProfileId,
        facts: &TitleFacts,
        item: &TitleId,
        before: &[Viewing],
        after: &[Viewing],
    ) -> Result<(), AppError> {
        let positive = |v: &Viewing| v.is_play && is_positive(v.completed, v.watched_ms, facts.duration_ms);
        let counted_before: HashSet<PlayId> = before.iter().filter(|v| positive(v)).map(|v| v.id).collect();
        for v in after.iter().filter(|v| positive(v) && !counted_before.contains(&v.id)) {
            let window = tx.recs_window(profile, COWATCH_WINDOW as u32).await?;
            let count = count_play(profile, v.id, item.clone(), v.started_at, &window, TRENDING_HALF_LIFE_MS);
            if tx.count_play(&count).await? {
                metrics::counter!("playhead_recs_plays_counted_total").increment(1);
            }
        }
        Ok(())
    }
}

/// Match recomputed viewings to the stored ones of the same span, keeping ids: a recomputed
/// viewing takes the id of the first stored one it overlaps (plays first, then oldest, so a merge
/// keeps the id clients may already hold). Returns the ids to remove and the rows to upsert.
fn reconcile(
    existing: &[Viewing],
    recomputed: &[ViewingSummary],
    profile: ProfileId,
    title_id: &TitleId,
    key: &SessionKey,
) -> (Vec<PlayId>, Vec<Viewing>) {
    let mut unused: Vec<&Viewing> = existing.iter().collect();
    unused.sort_by_key(|v| (!v.is_play, v.started_at, v.id));
    let mut upsert = Vec::with_capacity(recomputed.len());
    for summary in recomputed {
        let reuse = unused
            .iter()
            .position(|v| v.started_at <= summary.ended_at && v.ended_at >= summary.started_at)
            .map(|i| unused.remove(i));
        let id = reuse.map_or_else(|| new_play_id(summary.started_at), |v| v.id);
        upsert.push(Viewing {
            id,
            profile_id: profile,
            title_id: title_id.clone(),
            key: Some(key.clone()),
            started_at: summary.started_at,
            ended_at: summary.ended_at,
            watched_ms: summary.watched_ms,
            completed: summary.completed,
            is_play: summary.is_play,
            manual: false,
        });
    }
    (unused.iter().map(|v| v.id).collect(), upsert)
}

/// Counts an apply in progress for [`App::applying`] until dropped (also on error or cancel).
struct Applying<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> Applying<'a> {
    fn start(counter: &'a tokio::sync::watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        Self(counter)
    }
}

impl Drop for Applying<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn play_ids_are_v7_and_sort_by_start() {
        let a = new_play_id(Timestamp(1_700_000_000_000));
        let b = new_play_id(Timestamp(1_700_000_000_001));
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a < b);
    }

    fn summary(start: i64, end: i64, is_play: bool) -> ViewingSummary {
        ViewingSummary {
            started_at: Timestamp(start),
            ended_at: Timestamp(end),
            watched_ms: end - start,
            completed: false,
            is_play,
        }
    }

    fn stored(s: &ViewingSummary, profile: ProfileId, title: &TitleId, key: &SessionKey) -> Viewing {
        let (_, mut v) = reconcile(&[], std::slice::from_ref(s), profile, title, key);
        v.remove(0)
    }

    #[test]
    fn a_merge_keeps_the_play_id_clients_hold_and_removes_the_other() {
        let profile = ProfileId(Uuid::now_v7());
        let title = TitleId::parse("t").expect("title id");
        let key = SessionKey::Implicit(None);
        // A stored non-play viewing started first; the later play is what history showed.
        let preview = stored(&summary(1_000, 2_000, false), profile, &title, &key);
        let play = stored(&summary(5_000, 9_000, true), profile, &title, &key);
        // An event between them joined both into one viewing.
        let merged = summary(1_000, 9_000, true);
        let (remove, upsert) = reconcile(&[preview.clone(), play.clone()], &[merged], profile, &title, &key);
        assert_eq!(upsert.len(), 1);
        assert_eq!(upsert[0].id, play.id, "the play's id survives the merge");
        assert_eq!(remove, vec![preview.id]);
    }

    #[test]
    fn a_split_keeps_one_id_and_mints_one() {
        let profile = ProfileId(Uuid::now_v7());
        let title = TitleId::parse("t").expect("title id");
        let key = SessionKey::Implicit(None);
        let whole = stored(&summary(1_000, 9_000, true), profile, &title, &key);
        let parts = [summary(1_000, 3_000, true), summary(7_000, 9_000, true)];
        let (remove, upsert) = reconcile(std::slice::from_ref(&whole), &parts, profile, &title, &key);
        assert!(remove.is_empty());
        assert_eq!(upsert[0].id, whole.id);
        assert_ne!(upsert[1].id, whole.id);
    }
}
