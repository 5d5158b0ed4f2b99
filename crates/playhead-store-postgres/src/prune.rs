//! The pruning job's deletes ([`Pruner`]): one small batch of one table per call. Several
//! replicas prune at once: each batch locks the rows it picked and skips rows another replica's
//! batch holds (`FOR UPDATE SKIP LOCKED`), so batches neither wait for each other nor delete a
//! row twice, and no statement holds locks for long.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ports::{PruneKind, Pruner, RolledUp};
use playhead_core::time::Timestamp;

use crate::PgStore;
use crate::error;

/// What is past the horizon (`$1`) in each table, for rows aliased `t`.
const fn due(kind: PruneKind) -> &'static str {
    match kind {
        PruneKind::AuthCodes | PruneKind::DeviceCodes | PruneKind::RefreshTokens | PruneKind::WebSessions => {
            "t.expires_at < $1"
        }
        // Every access token of a session was issued with a refresh token that expires later,
        // or (no refresh grant) at its creation: neither is left after the horizon. A session
        // revoked after the horizon stays, so the revocation poll keeps seeing it.
        PruneKind::Sessions => {
            "t.created_at < $1 AND (t.revoked_at IS NULL OR t.revoked_at < $1) AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens r WHERE r.session_id = t.id AND r.expires_at >= $1)"
        }
        PruneKind::IdempotencyKeys => {
            "(t.state = 'done' AND t.expires_at < $1) OR (t.state = 'running' AND t.started_at < $1)"
        }
        PruneKind::Audit => "t.at < $1",
        PruneKind::TokenDenials => "t.until < $1",
        PruneKind::Streams => "t.last_seen < $1",
    }
}

#[async_trait]
impl Pruner for PgStore {
    async fn prune(&self, kind: PruneKind, horizon: Timestamp, batch: u32) -> Result<u64, StoreError> {
        let table = kind.table();
        let sql = format!(
            "DELETE FROM {table} WHERE ctid = ANY (ARRAY (SELECT t.ctid FROM {table} t WHERE {} \
             LIMIT $2 FOR UPDATE SKIP LOCKED))",
            due(kind)
        );
        let r = sqlx::query(&sql)
            .bind(horizon.0)
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(r.rows_affected())
    }

    async fn roll_up(&self, cutoff: Timestamp, batch: u32) -> Result<RolledUp, StoreError> {
        self.do_roll_up(cutoff, batch).await
    }
}
