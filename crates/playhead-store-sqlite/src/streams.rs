//! Concurrent streams (decision 0092). SQLite has one writer: a `touch_streams` that changes
//! anything runs in one `BEGIN IMMEDIATE` transaction, so it holds the write lock from its first
//! read, and two such batches of one account (or of any accounts) take turns. That is the whole
//! race story here. Most batches change nothing (heartbeats of live streams): they are decided on
//! a read snapshot first and never queue for the writer (decision 0111).

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::{AccountId, StreamId};
use playhead_core::ports::{StreamOutcome, StreamStore};
use playhead_core::streams::{Stream, StreamRules, StreamTouch, plan};
use playhead_core::time::Timestamp;
use playhead_store_rows::streams::STREAM_COLS;
use uuid::Uuid;

use crate::SqliteStore;
use crate::codec::decode;
use crate::error;

/// The rows as one JSON array parameter (read back with `json_each`).
fn rows_json(streams: &[Stream]) -> String {
    let rows: Vec<_> = streams
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id.to_string(), "profile": s.profile.to_string(), "key": s.key,
                "title": s.title.as_str(), "device": s.device_id, "signin": s.signin_session,
                "started": s.started_at.0, "seen": s.last_seen.0, "stopped": s.stopped_at.map(|t| t.0),
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// The account's limit and stored streams.
async fn load(
    conn: &mut sqlx::SqliteConnection,
    account: AccountId,
    rules: &StreamRules,
) -> Result<(u32, Vec<Stream>), StoreError> {
    let own: Option<i64> =
        sqlx::query_scalar("SELECT max_streams FROM account_stream_limits WHERE account_id = ?1")
            .bind(account.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(error::db)?;
    let limit = own.map_or(rules.max_per_account, |n| u32::try_from(n).unwrap_or(0));
    let rows = sqlx::query(&format!(
        "SELECT {STREAM_COLS} FROM streams WHERE account_id = ?1 ORDER BY started_at, stream_id"
    ))
    .bind(account.to_string())
    .fetch_all(&mut *conn)
    .await
    .map_err(error::db)?;
    let stored = rows.iter().map(decode).collect::<Result<Vec<Stream>, _>>()?;
    Ok((limit, stored))
}

#[async_trait]
impl StreamStore for SqliteStore {
    async fn touch_streams(
        &self,
        account: AccountId,
        touches: &[StreamTouch],
        rules: &StreamRules,
        now: Timestamp,
    ) -> Result<StreamOutcome, StoreError> {
        // A batch that changes nothing (heartbeats of live streams whose `last_seen` is fresh)
        // is answered from a snapshot: deciding it again under the lock would give the same
        // verdicts, and it would only queue behind the log's group commits for the writer.
        {
            let mut conn = self.reader.acquire().await.map_err(error::db)?;
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
        let mut tx = self.begin_write().await?;
        let (limit, stored) = load(&mut tx, account, rules).await?;
        let decided = plan(account, stored, limit, touches, rules, now, || StreamId(Uuid::now_v7()));
        if decided.changed {
            sqlx::query("DELETE FROM streams WHERE account_id = ?1")
                .bind(account.to_string())
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            sqlx::query(
                "INSERT INTO streams (account_id, stream_id, profile_id, stream_key, title_id, device_id, \
                 signin_session, started_at, last_seen, stopped_at) \
                 SELECT ?1, json_extract(j.value, '$.id'), json_extract(j.value, '$.profile'), \
                 json_extract(j.value, '$.key'), json_extract(j.value, '$.title'), json_extract(j.value, '$.device'), \
                 json_extract(j.value, '$.signin'), json_extract(j.value, '$.started'), \
                 json_extract(j.value, '$.seen'), json_extract(j.value, '$.stopped') FROM json_each(?2) j",
            )
            .bind(account.to_string())
            .bind(rows_json(&decided.streams))
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
            "SELECT {STREAM_COLS} FROM streams WHERE account_id = ?1 AND stopped_at IS NULL AND last_seen >= ?2 \
             ORDER BY started_at, stream_id"
        ))
        .bind(account.to_string())
        .bind(now.0 - timeout_ms)
        .fetch_all(&self.reader)
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
        // `last_seen` moves to now: the stopped row is kept one timeout from here, long enough
        // for a player that is still running to send its next event and learn.
        let done = sqlx::query(
            "UPDATE streams SET stopped_at = ?3, last_seen = ?3 WHERE account_id = ?1 AND stream_id = ?2 \
             AND stopped_at IS NULL AND last_seen >= ?4",
        )
        .bind(account.to_string())
        .bind(id.to_string())
        .bind(now.0)
        .bind(now.0 - timeout_ms)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn set_stream_limit(&self, account: AccountId, limit: Option<u32>) -> Result<(), StoreError> {
        let q = match limit {
            Some(n) => sqlx::query(
                "INSERT INTO account_stream_limits (account_id, max_streams) VALUES (?1, ?2) \
                 ON CONFLICT (account_id) DO UPDATE SET max_streams = excluded.max_streams",
            )
            .bind(account.to_string())
            .bind(i64::from(n)),
            None => sqlx::query("DELETE FROM account_stream_limits WHERE account_id = ?1")
                .bind(account.to_string()),
        };
        q.execute(&self.writer).await.map_err(error::db)?;
        Ok(())
    }

    async fn stream_limit(&self, account: AccountId) -> Result<Option<u32>, StoreError> {
        let own: Option<i64> =
            sqlx::query_scalar("SELECT max_streams FROM account_stream_limits WHERE account_id = ?1")
                .bind(account.to_string())
                .fetch_optional(&self.reader)
                .await
                .map_err(error::db)?;
        Ok(own.map(|n| u32::try_from(n).unwrap_or(0)))
    }
}
