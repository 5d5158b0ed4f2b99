//! Idempotency keys: claim, complete, release, purge.
//!
//! The rule: `begin` decides under a row lock (`SELECT ... FOR UPDATE`, after an
//! `INSERT ... ON CONFLICT DO NOTHING` that makes the row exist), so two replicas receiving the
//! same key at once can never both be told `Started`.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ports::{IdempotencyBegin, IdempotencyStore, StoredResponse};
use playhead_core::time::Timestamp;
use playhead_store_rows::decode;

use crate::{PgStore, codec, error};

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        now: Timestamp,
        lease_ms: i64,
    ) -> Result<IdempotencyBegin, StoreError> {
        let mut tx = self.begin_tx().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key, fingerprint, state, started_at) VALUES ($1, $2, 'running', $3) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(&fingerprint[..])
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?
        .rows_affected();
        if inserted == 1 {
            tx.commit().await.map_err(error::db)?;
            return Ok(IdempotencyBegin::Started);
        }
        let r = sqlx::query(
            "SELECT fingerprint, state, started_at, status, headers::text AS headers, body, expires_at \
             FROM idempotency_keys WHERE key = $1 FOR UPDATE",
        )
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .map_err(error::db)?;
        let outcome = match decode::idempotency_outcome(&codec::cols(&r), fingerprint, now, lease_ms)? {
            Some(outcome) => outcome,
            // The stored claim no longer counts (expired answer, dead lease): take the key over.
            None => {
                sqlx::query(
                    "UPDATE idempotency_keys SET fingerprint = $2, state = 'running', started_at = $3, status = NULL, \
                     headers = NULL, body = NULL, expires_at = NULL WHERE key = $1",
                )
                .bind(key)
                .bind(&fingerprint[..])
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
                IdempotencyBegin::Started
            }
        };
        tx.commit().await.map_err(error::db)?;
        Ok(outcome)
    }

    async fn complete(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        response: &StoredResponse,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let headers = codec::json_list(&response.headers)?;
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status = $3, headers = $4::jsonb, body = $5, expires_at = $6 \
             WHERE key = $1 AND fingerprint = $2 AND state = 'running'",
        )
        .bind(key)
        .bind(&fingerprint[..])
        .bind(i32::from(response.status))
        .bind(headers)
        .bind(&response.body)
        .bind(expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn release(&self, key: &str, fingerprint: [u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND fingerprint = $2 AND state = 'running'")
            .bind(key)
            .bind(&fingerprint[..])
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM idempotency_keys WHERE state = 'done' AND expires_at <= $1")
            .bind(now.0)
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(r.rows_affected())
    }
}
