//! Concurrent streams (decision 0092). Every write of an account's `streams` rows runs in a
//! transaction that first takes the account's advisory lock ([`stream_lock_key`], a statement of
//! its own: at READ COMMITTED only reads issued after the grant see the previous holder's
//! commit). So two replicas deciding starts for one account take turns: the second reads the
//! first's new stream and counts it, and a start flood can never pass the limit. Accounts do
//! not wait on each other. The lock is the only one these transactions take, so they cannot
//! deadlock with appliers (which lock profiles, never accounts). A batch that would change
//! nothing (heartbeats of live streams) is decided on a plain read first and takes neither the
//! lock nor a transaction (decision 0111).

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::{AccountId, StreamId};
use playhead_core::ports::{StreamOutcome, StreamStore};
use playhead_core::streams::{Stream, StreamRules, StreamTouch, plan};
use playhead_core::time::Timestamp;
use playhead_store_rows::streams::STREAM_COLS;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::PgStore;
use crate::codec::decode;
use crate::error;

/// The advisory-lock key of an account's streams: the UUID folded into a `bigint`, salted
/// differently from the profile apply locks (a collision would only make two unrelated
/// transactions take turns, never deadlock: each holds one lock).
pub fn stream_lock_key(account: AccountId) -> i64 {
    const SALT: u64 = 0x7374_7265_616d_7321; // "streams!"
    let (hi, lo) = account.0.as_u64_pair();
    i64::from_ne_bytes((hi ^ lo ^ SALT).to_ne_bytes())
}

async fn lock_account(conn: &mut PgConnection, account: AccountId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(stream_lock_key(account))
        .execute(conn)
        .await
        .map_err(error::db)?;
    Ok(())
}

/// The account's limit and stored streams.
async fn load(
    conn: &mut PgConnection,
    account: AccountId,
    rules: &StreamRules,
) -> Result<(u32, Vec<Stream>), StoreError> {
    let own: Option<i32> =
        sqlx::query_scalar("SELECT max_streams FROM account_stream_limits WHERE account_id = $1")
            .bind(account.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(error::db)?;
    let limit = own.map_or(rules.max_per_account, |n| u32::try_from(n).unwrap_or(0));
    let rows = sqlx::query(&format!(
        "SELECT {STREAM_COLS} FROM streams WHERE account_id = $1 ORDER BY started_at, stream_id"
    ))
    .bind(account.0)
    .fetch_all(&mut *conn)
    .await
    .map_err(error::db)?;
    let stored = rows.iter().map(decode).collect::<Result<Vec<Stream>, _>>()?;
    Ok((limit, stored))
}

#[async_trait]
impl StreamStore for PgStore {
    async fn touch_streams(
        &self,
        account: AccountId,
        touches: &[StreamTouch],
        rules: &StreamRules,
        now: Timestamp,
    ) -> Result<StreamOutcome, StoreError> {
        // A batch that changes nothing (heartbeats of live streams whose `last_seen` is fresh)
        // is answered from a snapshot, without the account's lock or a transaction: deciding it
        // again under the lock would give the same verdicts (decision 0111).
        {
            let mut conn = self.pool.acquire().await.map_err(error::db)?;
            let (limit, stored) = load(&mut conn, account, rules).await?;
            let decided = plan(account, stored, limit, touches, rules, now, || StreamId(Uuid::now_v7()));
            if !decided.changed {
                return Ok(StreamOutcome {
                    live: decided.live(now, rules.timeout_ms),
                    verdicts: decided.verdicts,
                    limit,
                });
            }
        }
        let mut tx = self.begin_tx().await?;
        lock_account(&mut tx, account).await?;
        let (limit, stored) = load(&mut tx, account, rules).await?;
        let decided = plan(account, stored, limit, touches, rules, now, || StreamId(Uuid::now_v7()));
        if decided.changed {
            sqlx::query("DELETE FROM streams WHERE account_id = $1")
                .bind(account.0)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            let s = &decided.streams;
            sqlx::query(
                "INSERT INTO streams (account_id, stream_id, profile_id, stream_key, title_id, device_id, \
                 signin_session, started_at, last_seen, stopped_at) \
                 SELECT $1, * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::bigint[], $9::bigint[], $10::bigint[])",
            )
            .bind(account.0)
            .bind(s.iter().map(|x| x.id.0).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.profile.0).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.key.clone()).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.title.as_str().to_owned()).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.device_id.clone()).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.signin_session.clone()).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.started_at.0).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.last_seen.0).collect::<Vec<_>>())
            .bind(s.iter().map(|x| x.stopped_at.map(|t| t.0)).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        }
        tx.commit().await.map_err(error::db)?;
        Ok(StreamOutcome { live: decided.live(now, rules.timeout_ms), verdicts: decided.verdicts, limit })
    }

    async fn live_streams(
        &self,
        account: AccountId,
        now: Timestamp,
        timeout_ms: i64,
    ) -> Result<Vec<Stream>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STREAM_COLS} FROM streams WHERE account_id = $1 AND stopped_at IS NULL AND last_seen >= $2 \
             ORDER BY started_at, stream_id"
        ))
        .bind(account.0)
        .bind(now.0 - timeout_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(decode).collect()
    }

    async fn stop_stream(
        &self,
        account: AccountId,
        id: StreamId,
        now: Timestamp,
        timeout_ms: i64,
    ) -> Result<(), StoreError> {
        // Under the account's lock: a batch deciding concurrently rewrites the account's rows
        // from what it read, and must not write back the stream as not stopped.
        let mut tx = self.begin_tx().await?;
        lock_account(&mut tx, account).await?;
        let done = sqlx::query(
            "UPDATE streams SET stopped_at = $3, last_seen = $3 WHERE account_id = $1 AND stream_id = $2 \
             AND stopped_at IS NULL AND last_seen >= $4",
        )
        .bind(account.0)
        .bind(id.0)
        .bind(now.0)
        .bind(now.0 - timeout_ms)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        tx.commit().await.map_err(error::db)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn set_stream_limit(&self, account: AccountId, limit: Option<u32>) -> Result<(), StoreError> {
        let q = match limit {
            Some(n) => sqlx::query(
                "INSERT INTO account_stream_limits (account_id, max_streams) VALUES ($1, $2) \
                 ON CONFLICT (account_id) DO UPDATE SET max_streams = excluded.max_streams",
            )
            .bind(account.0)
            .bind(i32::try_from(n).unwrap_or(i32::MAX)),
            None => sqlx::query("DELETE FROM account_stream_limits WHERE account_id = $1").bind(account.0),
        };
        q.execute(&self.pool).await.map_err(error::db)?;
        Ok(())
    }

    async fn stream_limit(&self, account: AccountId) -> Result<Option<u32>, StoreError> {
        let own: Option<i32> =
            sqlx::query_scalar("SELECT max_streams FROM account_stream_limits WHERE account_id = $1")
                .bind(account.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(error::db)?;
        Ok(own.map(|n| u32::try_from(n).unwrap_or(0)))
    }
}
