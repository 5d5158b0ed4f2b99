//! Recording playback events: the write path's front half.
//!
//! Authorize, admit each event by the core's rules, commit the batch to the durable log, wake
//! the consumer, answer per event. "Accepted" means durable: the log's append returns only after
//! the commit is on disk. One bad event never fails its batch; a full log fails the whole batch
//! (503, nothing written) so the client retries it as a unit.

use std::collections::{HashMap, HashSet};

use playhead_core::auth::Principal;
use playhead_core::event::{BatchContext, RawEvent, admit, batch_clock_shift};
use playhead_core::ids::{ProfileId, TitleId};
use playhead_core::ports::{AppendOutcome, LogEntry};
use playhead_core::profile::Recording;
use playhead_core::trace::TraceContext;
use playhead_core::{FieldError, Timestamp};

use crate::access::Operation;
use crate::streams::AccountStreams;
use crate::{App, AppError};

/// A batch as the transport parsed it. Events that failed to parse carry their error.
#[derive(Debug, Clone, Default)]
pub struct IngestBatch {
    /// Client clock at send, for skew correction.
    pub sent_at: Option<Timestamp>,
    /// Old events allowed (importing history from another tracker).
    pub backfill: bool,
    /// The events, in the client's order.
    pub events: Vec<Result<RawEvent, (Option<String>, FieldError)>>,
    /// The trace context of the request (its span as the parent): stored with every queued
    /// event so the apply step continues the trace (decision 0075).
    pub trace: Option<TraceContext>,
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Durably logged; will be applied.
    Accepted,
    /// Seen before; nothing changed.
    Duplicate,
    /// Logged, waiting for the title to be imported.
    Held,
    /// Not logged; see the problem.
    Rejected,
    /// Not recorded: the profile's history is paused (resume points may still have moved, as
    /// the profile chose). Retrying changes nothing until the profile resumes.
    Paused,
    /// Not recorded: it would start a stream beyond the account's concurrent-stream limit (the
    /// result lists the live streams, so the app can offer to stop one).
    TooManyStreams,
    /// Not recorded: its stream was stopped from another device; the player must stop.
    StreamStopped,
}

impl EventStatus {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventStatus::Accepted => "accepted",
            EventStatus::Duplicate => "duplicate",
            EventStatus::Held => "held",
            EventStatus::Rejected => "rejected",
            EventStatus::Paused => "paused",
            EventStatus::TooManyStreams => "too_many_streams",
            EventStatus::StreamStopped => "stream_stopped",
        }
    }
}

/// The answer for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResult {
    /// The event id as sent (absent when the client sent none).
    pub event_id: Option<String>,
    /// Outcome.
    pub status: EventStatus,
    /// Why it was rejected.
    pub problem: Option<FieldError>,
    /// For `too_many_streams`: the account's live streams and its limit.
    pub streams: Option<AccountStreams>,
}

impl App {
    /// Record a batch of playback events for a profile.
    #[tracing::instrument(skip_all, fields(profile.id = %profile_id, event.count = batch.events.len()))]
    pub async fn record_events(
        &self,
        p: &Principal,
        profile_id: ProfileId,
        batch: IngestBatch,
    ) -> Result<Vec<EventResult>, AppError> {
        let profile = self.reachable_profile(p, profile_id, Operation::RecordEvents).await?;
        let rules = &self.config.rules;
        let now = self.clock.now();
        let ctx = BatchContext {
            now,
            shift_ms: batch_clock_shift(batch.sent_at, now, rules),
            backfill: batch.backfill,
        };

        // One catalog read for the whole batch.
        let wanted: HashSet<TitleId> = batch
            .events
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .filter_map(|r| r.title_id.as_deref().and_then(|t| TitleId::parse(t).ok()))
            .collect();
        let wanted: Vec<TitleId> = wanted.into_iter().collect();
        let durations: HashMap<TitleId, i64> =
            self.ports.catalog.titles(&wanted).await?.into_iter().map(|t| (t.id, t.duration_ms)).collect();

        let mut results: Vec<EventResult> = Vec::with_capacity(batch.events.len());
        let mut entries: Vec<LogEntry> = Vec::new();
        let mut entry_slot: Vec<usize> = Vec::new();
        for item in batch.events {
            let slot = results.len();
            let raw = match item {
                Ok(raw) => raw,
                Err((event_id, problem)) => {
                    results.push(EventResult {
                        event_id,
                        status: EventStatus::Rejected,
                        problem: Some(problem),
                        streams: None,
                    });
                    continue;
                }
            };
            let sent_id = raw.event_id.clone();
            let duration = raw
                .title_id
                .as_deref()
                .and_then(|t| TitleId::parse(t).ok())
                .and_then(|t| durations.get(&t).copied());
            match admit(raw, profile_id, &ctx, duration, rules) {
                Ok(event) => {
                    let hold = duration.is_none();
                    results.push(EventResult {
                        event_id: sent_id,
                        status: EventStatus::Accepted,
                        problem: None,
                        streams: None,
                    });
                    entries.push(LogEntry { event, hold, trace: batch.trace });
                    entry_slot.push(slot);
                }
                Err(problem) => results.push(EventResult {
                    event_id: sent_id,
                    status: EventStatus::Rejected,
                    problem: Some(problem),
                    streams: None,
                }),
            }
        }

        // Before the history-pause check: a paused history still plays, so it still counts.
        self.enforce_streams(p, batch.backfill, &mut entries, &mut entry_slot, &mut results).await?;
        let recording = profile.recording();
        if recording != Recording::Everything {
            // History paused: nothing reaches the log. Events the server would have taken are
            // answered `paused`, so a player stops retrying them.
            let keep = recording == Recording::ResumePointsOnly;
            for slot in &entry_slot {
                let r = &mut results[*slot];
                r.status = EventStatus::Paused;
                r.problem = Some(paused_problem(keep));
            }
            if keep {
                let known: Vec<_> = entries.into_iter().filter(|e| !e.hold).map(|e| e.event).collect();
                self.apply_resume_points_only(&known).await?;
            }
            for r in &results {
                metrics::counter!("playhead_events_total", "status" => r.status.as_str()).increment(1);
            }
            return Ok(results);
        }
        self.cap_held(profile_id, &mut entries, &mut entry_slot, &mut results).await?;
        if !entries.is_empty() {
            let started = std::time::Instant::now();
            let appended = self.ports.log.append(&entries, self.config.max_backlog).await;
            let took = started.elapsed();
            metrics::histogram!("playhead_append_seconds").record(took.as_secs_f64());
            tracing::debug!(event.count = entries.len(), duration_us = took.as_micros() as u64, "appended");
            let outcomes = appended.map_err(|e| match e {
                playhead_core::StoreError::Full => {
                    metrics::counter!("playhead_ingest_backpressure_total").increment(1);
                    AppError::Overloaded { retry_after_secs: 2 }
                }
                other => other.into(),
            })?;
            for (slot, outcome) in entry_slot.iter().zip(outcomes) {
                results[*slot].status = match outcome {
                    AppendOutcome::Accepted => EventStatus::Accepted,
                    AppendOutcome::Held => EventStatus::Held,
                    AppendOutcome::Duplicate => EventStatus::Duplicate,
                };
            }
            self.wake.notify_one();
        }
        for r in &results {
            metrics::counter!("playhead_events_total", "status" => r.status.as_str()).increment(1);
        }
        Ok(results)
    }

    /// Reject held events beyond the per-profile cap (a client sending events for titles that
    /// will never exist must not fill the log for everyone).
    async fn cap_held(
        &self,
        profile_id: ProfileId,
        entries: &mut Vec<LogEntry>,
        slots: &mut Vec<usize>,
        results: &mut [EventResult],
    ) -> Result<(), AppError> {
        let new_held = entries.iter().filter(|e| e.hold).count() as u64;
        if new_held == 0 {
            return Ok(());
        }
        let already = self.ports.log.held_for_profile(profile_id).await?;
        let mut room = self.config.max_held_per_profile.saturating_sub(already);
        let mut keep = vec![true; entries.len()];
        for (i, e) in entries.iter().enumerate() {
            if !e.hold {
                continue;
            }
            if room == 0 {
                keep[i] = false;
                let r = &mut results[slots[i]];
                r.status = EventStatus::Rejected;
                r.problem = Some(FieldError::new(
                    "title_id",
                    "unknown_title",
                    format!(
                        "is not in the catalog and this profile already has {} held events (the limit); import the title first",
                        self.config.max_held_per_profile
                    ),
                ));
            } else {
                room -= 1;
            }
        }
        let mut k = keep.iter();
        entries.retain(|_| *k.next().unwrap_or(&true));
        let mut k = keep.iter();
        slots.retain(|_| *k.next().unwrap_or(&true));
        Ok(())
    }
}

/// The problem of an event dropped because the profile's history is paused.
fn paused_problem(resume_points_kept: bool) -> FieldError {
    let message = if resume_points_kept {
        "history is paused for this profile: the event was not recorded (its resume point was kept); resume history to record events"
    } else {
        "history is paused for this profile: the event was not recorded; resume history to record events"
    };
    FieldError::new("profile_id", "history_paused", message)
}
