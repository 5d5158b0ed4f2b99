//! The relay's side of the outbox ([`Outbox`]): which `event_queue` rows were handed to the
//! broker (`published_at`) and which were dead-lettered (`dead_at`), migration 0006.
//!
//! The rules:
//! - Nothing here deletes a row for good: only `claim` in the apply transaction does (`revive`
//!   replaces a parked row by a new one for the same event, in one statement).
//! - Relays on several replicas take disjoint rows (`FOR UPDATE SKIP LOCKED`), so a row is
//!   normally published once; when it is published twice anyway (a sweep racing a slow
//!   consumer), the apply's claim by seq makes the second delivery a no-op.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::EventId;
use playhead_core::ports::{Outbox, OutboxDepth, QueuedEvent};
use playhead_core::time::Timestamp;
use playhead_store_rows::{Columns, decode};

use crate::codec::{self, event_columns};
use crate::{PgStore, error};

#[async_trait]
impl Outbox for PgStore {
    async fn take_unpublished(&self, max: usize, now: Timestamp) -> Result<Vec<QueuedEvent>, StoreError> {
        // One statement: pick, mark and read. SKIP LOCKED lets every replica's relay run without
        // waiting for the others; a row being claimed by an apply is skipped too (it is done).
        let rows = sqlx::query(concat!(
            "WITH picked AS ( \
               SELECT seq FROM event_queue WHERE published_at IS NULL AND dead_at IS NULL \
               ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED \
             ), marked AS ( \
               UPDATE event_queue q SET published_at = $2 FROM picked WHERE q.seq = picked.seq \
               RETURNING q.seq, q.event_id, q.traceparent \
             ) \
             SELECT m.seq, m.traceparent, ",
            event_columns!(),
            " FROM marked m JOIN events e ON e.event_id = m.event_id ORDER BY m.seq"
        ))
        .bind(codec::to_i64(max))
        .bind(now.0)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn unpublish(&self, seqs: &[i64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        sqlx::query("UPDATE event_queue SET published_at = NULL WHERE seq = ANY($1::int8[])")
            .bind(seqs)
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn sweep(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        // SKIP LOCKED: a row locked by an apply transaction is being applied right now; waiting
        // for it would only stall the sweeper (and could deadlock with the claim's lock order).
        let r = sqlx::query(
            "UPDATE event_queue q SET published_at = NULL FROM ( \
               SELECT seq FROM event_queue WHERE published_at < $1 AND dead_at IS NULL \
               ORDER BY seq FOR UPDATE SKIP LOCKED \
             ) stale WHERE q.seq = stale.seq",
        )
        .bind(cutoff.0)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(r.rows_affected())
    }

    async fn mark_dead(&self, seq: i64, event: EventId, now: Timestamp) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE event_queue SET dead_at = $3 WHERE seq = $1 AND event_id = $2")
            .bind(seq)
            .bind(event.0)
            .bind(now.0)
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(r.rows_affected() > 0)
    }

    async fn revive(&self, seq: i64) -> Result<Option<i64>, StoreError> {
        // A new seq, so the new message gets a new Nats-Msg-Id and the broker's duplicate window
        // cannot drop it as a copy of the dead-lettered one.
        sqlx::query_scalar(
            "WITH old AS (DELETE FROM event_queue WHERE seq = $1 RETURNING event_id, traceparent) \
             INSERT INTO event_queue (event_id, traceparent) SELECT event_id, traceparent FROM old RETURNING seq",
        )
        .bind(seq)
        .fetch_optional(&self.pool)
        .await
        .map_err(error::db)
    }

    async fn events_at(&self, seqs: &[i64]) -> Result<Vec<(i64, EventId)>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query("SELECT seq, event_id FROM event_queue WHERE seq = ANY($1::int8[])")
            .bind(seqs)
            .fetch_all(&self.pool)
            .await
            .map_err(error::db)?;
        rows.iter().map(|r| decode::claimed(&codec::cols(r))).collect()
    }

    async fn depth(&self) -> Result<OutboxDepth, StoreError> {
        let r = sqlx::query(
            "SELECT count(*) FILTER (WHERE published_at IS NULL AND dead_at IS NULL) AS unpublished, \
                    count(*) AS unapplied, \
                    count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead \
             FROM event_queue",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(error::db)?;
        let c = codec::cols(&r);
        let get = |col: &str| c.i64(col).map(codec::to_u64);
        Ok(OutboxDepth { unpublished: get("unpublished")?, unapplied: get("unapplied")?, dead: get("dead")? })
    }
}
