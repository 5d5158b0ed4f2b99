//! The durable event log: `events` (every admitted event, with its state) and `event_queue` (what
//! the consumer has yet to apply).
//!
//! The rule: `append` is the ingest hot path, and appends share commits: one appender task takes
//! every append that queued while the previous commit was running and writes them in one
//! transaction (group commit) with a fixed number of statements whatever the number of appends
//! and events in it (one count, one bulk insert of the events, one bulk insert of the queue
//! rows), so concurrent clients pay one fsync and three statements between them, not one and
//! three each (decision 0111). Each append still gets its own outcome (including
//! its own `Full`), and none is answered before the commit that holds it. Do not add per-event
//! statements here; benchmark any change against raw SQLite inserts (docs/benchmarks.md).

use std::collections::HashSet;

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::{EventId, ProfileId};
use playhead_core::ports::{AppendOutcome, EventLog, LogEntry, QueuedEvent};
use playhead_core::time::Timestamp;

use crate::codec::{self, event_columns};
use crate::{SqliteStore, error};

/// One event as a JSON array for the bulk insert, in the column order of [`INSERT_EVENTS`]
/// (element 0 is `event_id`, ... 11 is `state`). Arrays rather than objects: SQLite extracts
/// `value ->> 3` markedly faster than `value ->> 'kind'`, and this is the ingest hot path.
type EventRow<'a> = (
    &'a EventId,
    &'a ProfileId,
    &'a str,
    &'static str,
    i64,
    Option<i64>,
    i64,
    i64,
    i64,
    Option<&'a str>,
    Option<&'a str>,
    &'static str,
);

/// Insert a JSON array of [`EventRow`]s in array order (so of two copies in one batch the first
/// is stored and the second hits the conflict); `RETURNING` names exactly the rows stored.
const INSERT_EVENTS: &str = "INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, \
     duration_ms, occurred_at, occurred_at_raw, received_at, device_id, session_id, state) \
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
     value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11 \
     FROM json_each(?1) WHERE true ORDER BY key \
     ON CONFLICT (event_id) DO NOTHING \
     RETURNING event_id";

/// Exact queue depth. `COUNT(*)` walks the queue's B-tree without decoding rows: well under a
/// millisecond at 100k rows, and exact even after out-of-order acknowledgements (a
/// `MAX(seq) - MIN(seq)` estimate would overcount gaps and refuse appends for nothing).
const BACKLOG: &str = "SELECT COUNT(*) FROM event_queue";
/// The queue head's receive time: the queue is in seq order, so its first row is (nearly always)
/// the oldest accepted event; one index probe instead of a scan of the whole backlog.
const OLDEST_UNAPPLIED: &str =
    "SELECT e.received_at FROM event_queue q JOIN events e ON e.event_id = q.event_id ORDER BY q.seq LIMIT 1";

/// Appends waiting for the appender. Live players send one event per request, so under load
/// hundreds of single-event appends wait at once: the queue holds them all, and the appender
/// commits them together (decision 0111).
pub(crate) const APPEND_QUEUE: usize = 1_024;
/// Most events committed together (bounds one transaction's statements, its JSON parameter and
/// its holders' latency): 16 full API batches of 500, or that many single heartbeats.
const GROUP_MAX_EVENTS: usize = 8_000;

/// One `append` call waiting for the appender.
pub(crate) struct AppendRequest {
    entries: Vec<LogEntry>,
    max_backlog: u64,
    reply: tokio::sync::oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>,
}

/// The appender: commits queued appends in groups until every store handle is dropped.
pub(crate) async fn run_appender(
    writer: sqlx::SqlitePool,
    mut requests: tokio::sync::mpsc::Receiver<AppendRequest>,
) {
    while let Some(first) = requests.recv().await {
        let mut events = first.entries.len();
        let mut group = vec![first];
        while events < GROUP_MAX_EVENTS {
            match requests.try_recv() {
                Ok(r) => {
                    events += r.entries.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        let results = append_group(&writer, &group).await;
        for (req, result) in group.into_iter().zip(results) {
            // A caller that gave up (request cancelled) no longer listens; its events are
            // durable anyway and will be answered `duplicate` on a retry.
            let _ = req.reply.send(result);
        }
    }
}

/// Write a group in one transaction; one result per request.
async fn append_group(
    writer: &sqlx::SqlitePool,
    group: &[AppendRequest],
) -> Vec<Result<Vec<AppendOutcome>, StoreError>> {
    let mut tx = match writer.begin_with("BEGIN IMMEDIATE").await.map_err(error::db) {
        Ok(tx) => tx,
        Err(e) => return group.iter().map(|_| Err(clone_err(&e))).collect(),
    };
    let results = match append_in(&mut tx, group).await {
        Ok(results) => results,
        // A database failure: nothing of the group is committed, everyone hears why.
        Err(e) => return group.iter().map(|_| Err(clone_err(&e))).collect(),
    };
    // synchronous=FULL: the commit returns after the WAL is fsynced. Durable from here on.
    if let Err(e) = tx.commit().await.map_err(error::db) {
        return group.iter().map(|_| Err(clone_err(&e))).collect();
    }
    results
}

fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::Conflict(c) => StoreError::Conflict(c.clone()),
        StoreError::PreconditionFailed => StoreError::PreconditionFailed,
        StoreError::Full => StoreError::Full,
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
    }
}

/// Which of `ids` the log already holds (one read; only taken near the backlog limit).
async fn existing_ids(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    ids: &[String],
) -> Result<HashSet<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?1))")
        .bind(codec::json_list(ids)?)
        .fetch_all(&mut **tx)
        .await
        .map_err(error::db)?
        .into_iter()
        .collect())
}

/// The group's statements inside its transaction, a fixed number whatever the number of
/// appends in it (one count, one insert of every event, one insert of every queue row): the
/// cost of a commit of 256 single-event appends is close to that of one append of 256 events.
/// Each append is admitted or refused `Full` on its own, in arrival order, before anything is
/// written; of two copies of an event id in the group, the first in arrival order is stored and
/// answered (the later is a duplicate), exactly as if the appends had been committed one by one.
async fn append_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    group: &[AppendRequest],
) -> Result<Vec<Result<Vec<AppendOutcome>, StoreError>>, StoreError> {
    let backlog = codec::to_u64(sqlx::query_scalar(BACKLOG).fetch_one(&mut **tx).await.map_err(error::db)?);
    // Admission, append by append: `queued` grows by what each admitted append can add at most
    // (precisely, near the limit), so an append is refused only when the ones before it in the
    // group really leave no room.
    let mut queued_before = 0u64;
    let mut admitted = vec![false; group.len()];
    let mut checked: HashSet<String> = HashSet::new();
    for (i, req) in group.iter().enumerate() {
        if req.entries.is_empty() {
            continue;
        }
        let at_most_new = req.entries.iter().filter(|e| !e.hold).count() as u64;
        let mut adds = at_most_new;
        if backlog.saturating_add(queued_before).saturating_add(at_most_new) > req.max_backlog {
            // Near the limit, count precisely which events are new before writing anything, so a
            // refused append costs one read (this is the path taken under overload).
            let ids: Vec<String> = req.entries.iter().map(|e| e.event.event_id.to_string()).collect();
            let existing = existing_ids(tx, &ids).await?;
            let mut seen = HashSet::new();
            adds = req
                .entries
                .iter()
                .zip(&ids)
                .filter(|(e, id)| {
                    !existing.contains(id.as_str())
                        && !checked.contains(id.as_str())
                        && seen.insert(id.as_str())
                        && !e.hold
                })
                .count() as u64;
            // An append that queues nothing cannot grow the backlog, so it is never refused.
            if adds > 0 && backlog.saturating_add(queued_before).saturating_add(adds) > req.max_backlog {
                continue; // refused: nothing of this append is written
            }
        }
        checked.extend(req.entries.iter().map(|e| e.event.event_id.to_string()));
        queued_before += adds;
        admitted[i] = true;
    }

    let rows: Vec<EventRow<'_>> = group
        .iter()
        .zip(&admitted)
        .filter(|(_, ok)| **ok)
        .flat_map(|(req, _)| req.entries.iter())
        .map(|e| {
            let ev = &e.event;
            (
                &ev.event_id,
                &ev.profile_id,
                ev.title_id.as_str(),
                ev.kind.as_str(),
                ev.position_ms,
                ev.duration_ms,
                ev.occurred_at.0,
                ev.occurred_at_raw.0,
                ev.received_at.0,
                ev.device_id.as_ref().map(|d| d.as_str()),
                ev.session_id.as_ref().map(|s| s.as_str()),
                if e.hold { "held" } else { "logged" },
            )
        })
        .collect();
    let mut inserted: HashSet<String> = if rows.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar(INSERT_EVENTS)
            .bind(codec::json_list(&rows)?)
            .fetch_all(&mut **tx)
            .await
            .map_err(error::db)?
            .into_iter()
            .collect()
    };

    let mut results = Vec::with_capacity(group.len());
    let mut queued: Vec<(String, Option<String>)> = Vec::new();
    for (req, ok) in group.iter().zip(&admitted) {
        if !*ok && !req.entries.is_empty() {
            results.push(Err(StoreError::Full));
            continue;
        }
        let mut outcomes = Vec::with_capacity(req.entries.len());
        for entry in &req.entries {
            let id = entry.event.event_id.to_string();
            // `remove`: only the first copy of an id in the group is the stored one.
            outcomes.push(match inserted.remove(&id) {
                false => AppendOutcome::Duplicate,
                true if entry.hold => AppendOutcome::Held,
                true => {
                    queued.push((id, entry.trace.map(|t| t.traceparent())));
                    AppendOutcome::Accepted
                }
            });
        }
        results.push(Ok(outcomes));
    }
    if !queued.is_empty() {
        sqlx::query(
            "INSERT INTO event_queue (event_id, traceparent) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1) ORDER BY key",
        )
        .bind(codec::json_list(&queued)?)
        .execute(&mut **tx)
        .await
        .map_err(error::db)?;
    }
    Ok(results)
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, entries: &[LogEntry], max_backlog: u64) -> Result<Vec<AppendOutcome>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = AppendRequest { entries: entries.to_vec(), max_backlog, reply };
        self.appender
            .send(request)
            .await
            .map_err(|_| StoreError::Unavailable("the appender stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the appender stopped".into()))?
    }

    async fn next_batch(&self, max: usize) -> Result<Vec<QueuedEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT q.seq, q.traceparent, ",
            event_columns!(),
            " FROM event_queue q JOIN events e ON e.event_id = q.event_id ORDER BY q.seq LIMIT ?1"
        ))
        .bind(codec::to_i64(max))
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn backlog(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(BACKLOG).fetch_one(&self.reader).await.map_err(error::db)?;
        Ok(codec::to_u64(n))
    }

    async fn oldest_unapplied(&self) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> =
            sqlx::query_scalar(OLDEST_UNAPPLIED).fetch_optional(&self.reader).await.map_err(error::db)?;
        Ok(at.map(Timestamp))
    }

    async fn release_held(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        // Queue first (in arrival order), then flip the state; BEGIN IMMEDIATE keeps both
        // statements looking at the same held set.
        sqlx::query(
            "INSERT INTO event_queue (event_id) \
             SELECT event_id FROM events \
             WHERE state = 'held' AND title_id IN (SELECT id FROM titles) ORDER BY rowid",
        )
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        let released = sqlx::query(
            "UPDATE events SET state = 'logged' WHERE state = 'held' AND title_id IN (SELECT id FROM titles)",
        )
        .execute(&mut *tx)
        .await
        .map_err(error::db)?
        .rows_affected();
        tx.commit().await.map_err(error::db)?;
        Ok(released)
    }

    async fn expire_held(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE events SET state = 'dropped' WHERE state = 'held' AND received_at < ?1")
            .bind(cutoff.0)
            .execute(&self.writer)
            .await
            .map_err(error::db)?;
        Ok(r.rows_affected())
    }

    async fn held_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE state = 'held'")
            .fetch_one(&self.reader)
            .await
            .map_err(error::db)?;
        Ok(codec::to_u64(n))
    }

    async fn held_for_profile(&self, profile: ProfileId) -> Result<u64, StoreError> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE state = 'held' AND profile_id = ?1")
                .bind(profile.to_string())
                .fetch_one(&self.reader)
                .await
                .map_err(error::db)?;
        Ok(codec::to_u64(n))
    }

    async fn requeue_all(&self) -> Result<u64, StoreError> {
        // Events still waiting in the queue are not queued twice: the replay delivers each logged
        // event once more, not once per call.
        let r = sqlx::query(
            "INSERT INTO event_queue (event_id) \
             SELECT event_id FROM events \
             WHERE state = 'logged' AND event_id NOT IN (SELECT event_id FROM event_queue) ORDER BY rowid",
        )
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        Ok(r.rows_affected())
    }
}
