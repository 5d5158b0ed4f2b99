//! The durable event log: `events` (every admitted event, with its state) and `event_queue`, the
//! outbox of events not applied yet.
//!
//! The rules:
//! - `append` is the ingest hot path and costs a fixed number of statements whatever the batch
//!   size: one count, one statement that inserts the events and queues the new ones (a
//!   data-modifying CTE), one commit. Do not add per-event statements here.
//! - An outbox row is deleted only by [`claim`](playhead_core::ports::ViewingTx::claim) inside
//!   the transaction that applies its event, never when a broker acknowledges a publish: a broker
//!   that loses its last seconds loses nothing (DESIGN.md, "Delivery, durability, deletion").
//! - Seqs come from a sequence, so they are unique and increasing *in allocation order*, but
//!   concurrent appends commit in any order: a reader can see seq 11 before seq 10 becomes
//!   visible. Nothing may treat "the highest seq seen" as a watermark (a relay must re-read from
//!   the oldest unpublished row, not from the last seq it published).
//!
//! The backlog bound under concurrency: `append` counts the queue inside its transaction, at READ
//! COMMITTED, so it sees what other appends have *committed*, not what they are still writing.
//! Each append keeps `committed backlog + its own new events <= max_backlog`; appends running at
//! the same moment do not see each other, so the queue can exceed `max_backlog` by at most the new
//! events of the batches in flight together (fewer than `concurrent appends x batch size`, e.g.
//! 2 replicas x 10 connections x 500 events). The bound is a pressure valve, not an invariant, so
//! this is not worth serialising every append for.

use std::collections::HashSet;

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::ProfileId;
use playhead_core::ports::{AppendOutcome, EventLog, LogEntry, QueuedEvent};
use playhead_core::time::Timestamp;
use uuid::Uuid;

use crate::codec::{self, event_columns};
use crate::{PgStore, error};

/// Insert events from parallel arrays, and queue the newly stored, not held ones in batch order.
/// Rows are inserted in `event_id` order (then batch order, so of two copies in one batch the
/// first is stored and the second hits the conflict): two appends sharing some event ids wait for
/// each other's uncommitted keys in one global order, so they cannot deadlock whatever order
/// their batches list the events in. `RETURNING` names exactly the events stored. The sub-statements of a data-modifying
/// `WITH` all run, and see one snapshot; the queue insert reads the stored rows from `ins`.
const APPEND: &str = "WITH input AS ( \
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
         $7::int8[], $8::int8[], $9::int8[], $10::text[], $11::text[], $12::bool[], $13::text[]) WITH ORDINALITY \
       AS u(event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at, \
         occurred_at_raw, received_at, device_id, session_id, hold, traceparent, ord) \
     ), ins AS ( \
       INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at, \
         occurred_at_raw, received_at, device_id, session_id, state) \
       SELECT event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at, \
         occurred_at_raw, received_at, device_id, session_id, \
         CASE WHEN hold THEN 'held' ELSE 'logged' END \
       FROM input ORDER BY event_id, ord \
       ON CONFLICT (event_id) DO NOTHING \
       RETURNING event_id, state \
     ), queued AS ( \
       INSERT INTO event_queue (event_id, traceparent) \
       SELECT i.event_id, o.traceparent FROM ins i \
       JOIN (SELECT DISTINCT ON (event_id) event_id, ord, traceparent FROM input ORDER BY event_id, ord) o \
         USING (event_id) \
       WHERE i.state = 'logged' ORDER BY o.ord \
     ) \
     SELECT event_id FROM ins";

/// Exact queue depth (the outbox is small in steady state; see the module docs for the bound).
const BACKLOG: &str = "SELECT COUNT(*) FROM event_queue";
/// The queue head's receive time: the queue is in seq order, so its first row is (nearly always)
/// the oldest accepted event; one index probe instead of a scan of the whole backlog.
const OLDEST_UNAPPLIED: &str = "SELECT e.received_at FROM event_queue q JOIN events e ON e.event_id = q.event_id WHERE q.dead_at IS NULL ORDER BY q.seq LIMIT 1";

#[async_trait]
impl EventLog for PgStore {
    async fn append(&self, entries: &[LogEntry], max_backlog: u64) -> Result<Vec<AppendOutcome>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = entries.iter().map(|e| e.event.event_id.0).collect();
        let mut tx = self.begin_tx().await?;
        let backlog =
            codec::to_u64(sqlx::query_scalar(BACKLOG).fetch_one(&mut *tx).await.map_err(error::db)?);
        let at_most_new = entries.iter().filter(|e| !e.hold).count() as u64;
        if backlog.saturating_add(at_most_new) > max_backlog {
            // Near the limit, count precisely which events are new before writing anything, so a
            // refused batch costs one read (this is the path taken under overload).
            let existing: HashSet<Uuid> =
                sqlx::query_scalar("SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])")
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(error::db)?
                    .into_iter()
                    .collect();
            let mut seen = HashSet::new();
            let new_queued = entries
                .iter()
                .zip(&ids)
                .filter(|(e, id)| !existing.contains(id) && seen.insert(**id) && !e.hold)
                .count() as u64;
            // A batch that queues nothing cannot grow the backlog, so it is never refused.
            if new_queued > 0 && backlog.saturating_add(new_queued) > max_backlog {
                return Err(StoreError::Full); // `tx` drops: rolled back, nothing written.
            }
        }

        let n = entries.len();
        let mut profiles = Vec::with_capacity(n);
        let mut titles = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        let mut durations = Vec::with_capacity(n);
        let mut occurred = Vec::with_capacity(n);
        let mut occurred_raw = Vec::with_capacity(n);
        let mut received = Vec::with_capacity(n);
        let mut devices = Vec::with_capacity(n);
        let mut sessions = Vec::with_capacity(n);
        let mut holds = Vec::with_capacity(n);
        let mut traces = Vec::with_capacity(n);
        for e in entries {
            let ev = &e.event;
            profiles.push(ev.profile_id.0);
            titles.push(ev.title_id.as_str());
            kinds.push(ev.kind.as_str());
            positions.push(ev.position_ms);
            durations.push(ev.duration_ms);
            occurred.push(ev.occurred_at.0);
            occurred_raw.push(ev.occurred_at_raw.0);
            received.push(ev.received_at.0);
            devices.push(ev.device_id.as_ref().map(|d| d.as_str()));
            sessions.push(ev.session_id.as_ref().map(|s| s.as_str()));
            holds.push(e.hold);
            traces.push(e.trace.map(|t| t.traceparent()));
        }
        let mut inserted: HashSet<Uuid> = sqlx::query_scalar(APPEND)
            .bind(&ids)
            .bind(profiles)
            .bind(titles)
            .bind(kinds)
            .bind(positions)
            .bind(durations)
            .bind(occurred)
            .bind(occurred_raw)
            .bind(received)
            .bind(devices)
            .bind(sessions)
            .bind(holds)
            .bind(traces)
            .fetch_all(&mut *tx)
            .await
            .map_err(error::db)?
            .into_iter()
            .collect();

        let outcomes = entries
            .iter()
            .zip(&ids)
            // `remove`: only the first copy of an id in the batch is the stored one.
            .map(|(entry, id)| match inserted.remove(id) {
                false => AppendOutcome::Duplicate,
                true if entry.hold => AppendOutcome::Held,
                true => AppendOutcome::Accepted,
            })
            .collect();
        // synchronous_commit=on: the commit returns after the WAL is flushed. Durable from here on.
        tx.commit().await.map_err(error::db)?;
        Ok(outcomes)
    }

    async fn next_batch(&self, max: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT q.seq, q.traceparent, ",
            event_columns!(),
            " FROM event_queue q JOIN events e ON e.event_id = q.event_id ORDER BY q.seq LIMIT $1"
        ))
        .bind(codec::to_i64(max))
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(BACKLOG).fetch_one(&self.pool).await.map_err(error::db)?;
        Ok(codec::to_u64(n))
    }

    async fn oldest_unapplied(&self) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> =
            sqlx::query_scalar(OLDEST_UNAPPLIED).fetch_optional(&self.pool).await.map_err(error::db)?;
        Ok(at.map(Timestamp))
    }

    async fn release_held(&self) -> Result<u64, StoreError> {
        // One statement: the UPDATE's `state = 'held'` is re-checked after waiting for a row
        // another replica is releasing or expiring, so each held event is released at most once.
        // Queued in arrival order.
        let released: i64 = sqlx::query_scalar(
            "WITH released AS ( \
               UPDATE events e SET state = 'logged' \
               WHERE e.state = 'held' AND EXISTS (SELECT 1 FROM titles t WHERE t.id = e.title_id) \
               RETURNING e.event_id, e.received_at \
             ), queued AS ( \
               INSERT INTO event_queue (event_id) \
               SELECT event_id FROM released ORDER BY received_at, event_id \
               RETURNING 1 \
             ) \
             SELECT COUNT(*) FROM queued",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(codec::to_u64(released))
    }

    async fn expire_held(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE events SET state = 'dropped' WHERE state = 'held' AND received_at < $1")
            .bind(cutoff.0)
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(r.rows_affected())
    }

    async fn held_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE state = 'held'")
            .fetch_one(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(codec::to_u64(n))
    }

    async fn held_for_profile(&self, profile: ProfileId) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE state = 'held' AND profile_id = $1")
                .bind(profile.0)
                .fetch_one(&self.pool)
                .await
                .map_err(error::db)?;
        Ok(codec::to_u64(n))
    }

    async fn requeue_all(&self) -> Result<u64, StoreError> {
        // Events still waiting in the queue are not queued twice: the replay delivers each logged
        // event once more, not once per call. (Two replays running at once could both queue an
        // event; applying it twice changes nothing, since claims and applies are idempotent.)
        let r = sqlx::query(
            "INSERT INTO event_queue (event_id) \
             SELECT e.event_id FROM events e \
             WHERE e.state = 'logged' \
               AND NOT EXISTS (SELECT 1 FROM event_queue q WHERE q.event_id = e.event_id) \
             ORDER BY e.received_at, e.event_id",
        )
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(r.rows_affected())
    }
}
