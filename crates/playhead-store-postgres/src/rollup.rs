//! The retention roll-up's store work on PostgreSQL (decision 0083): [`Pruner::roll_up`] batches
//! and the roll-up reads of [`ViewingStore::rollups`]. The same statements as SQLite's
//! `rollup.rs` in this dialect (decision 0024), plus what many replicas need:
//!
//! - a batch takes the apply lock of each profile it rolls up (`pg_try_advisory_xact_lock`, in
//!   ascending order) before it locks any viewing: an apply of that profile commits before the
//!   batch or runs after it, so it never recomputes a viewing from events the batch deleted; a
//!   profile whose lock is busy (an apply, an erase step or another replica's batch) is left for
//!   the next batch instead of waited for;
//! - the viewings are then taken `FOR UPDATE SKIP LOCKED`, and the roll-ups added, the viewings,
//!   their events and the tombstones deleted in the same transaction.
//!
//! [`Pruner::roll_up`]: playhead_core::ports::Pruner::roll_up
//! [`ViewingStore::rollups`]: playhead_core::ports::ViewingStore::rollups

use playhead_core::StoreError;
use playhead_core::ids::{ProfileId, TitleId};
use playhead_core::ports::{RolledUp, RollupQuery, Viewing};
use playhead_core::rules::rollup::{PlayRollup, aggregate};
use playhead_core::rules::viewing::SessionKey;
use playhead_core::time::Timestamp;
use playhead_store_rows::{Columns, to_i64, to_u64};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::codec::{self, viewing_columns};
use crate::{PgStore, error, profile_lock_key};

/// Delete the raw events of one group between `from` and `to`, except held ones and those still
/// in the outbox. Returns how many.
async fn delete_group_events(
    conn: &mut PgConnection,
    profile: ProfileId,
    title: &TitleId,
    key: &SessionKey,
    from: Timestamp,
    to: Timestamp,
) -> Result<u64, StoreError> {
    let (group, value) = match key {
        SessionKey::Explicit(s) => ("e.session_id = $3", Some(s.as_str().to_owned())),
        SessionKey::Implicit(Some(d)) => {
            ("e.session_id IS NULL AND e.device_id = $3", Some(d.as_str().to_owned()))
        }
        SessionKey::Implicit(None) => {
            ("e.session_id IS NULL AND e.device_id IS NULL AND $3::text IS NULL", None)
        }
    };
    let sql = format!(
        "DELETE FROM events e WHERE e.profile_id = $1 AND e.title_id = $2 AND {group} \
         AND e.occurred_at BETWEEN $4 AND $5 AND e.state <> 'held' \
         AND NOT EXISTS (SELECT 1 FROM event_queue q WHERE q.event_id = e.event_id)"
    );
    let r = sqlx::query(&sql)
        .bind(profile.0)
        .bind(title.as_str())
        .bind(value)
        .bind(from.0)
        .bind(to.0)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    Ok(r.rows_affected())
}

async fn add_rollups(conn: &mut PgConnection, rollups: &[PlayRollup]) -> Result<(), StoreError> {
    for r in rollups {
        sqlx::query(
            "INSERT INTO play_rollups AS p (profile_id, month, title_id, plays, watched_ms, completed_plays) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (profile_id, month, title_id) DO UPDATE SET \
             plays = p.plays + excluded.plays, watched_ms = p.watched_ms + excluded.watched_ms, \
             completed_plays = p.completed_plays + excluded.completed_plays",
        )
        .bind(r.profile_id.0)
        .bind(r.month.0)
        .bind(r.title_id.as_str())
        .bind(to_i64(r.plays))
        .bind(r.watched_ms)
        .bind(to_i64(r.completed_plays))
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    }
    Ok(())
}

/// Of the profiles owning the oldest `batch` due viewings, those whose apply lock this
/// transaction got (ascending; busy ones are skipped).
async fn lock_due_profiles(
    conn: &mut PgConnection,
    cutoff: Timestamp,
    batch: u32,
) -> Result<Vec<Uuid>, StoreError> {
    let candidates: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT profile_id FROM (SELECT profile_id FROM viewings \
         WHERE ended_at < $1 AND NOT manual ORDER BY ended_at LIMIT $2) x ORDER BY 1",
    )
    .bind(cutoff.0)
    .bind(i64::from(batch))
    .fetch_all(&mut *conn)
    .await
    .map_err(error::db)?;
    let mut locked = Vec::with_capacity(candidates.len());
    for p in candidates {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(profile_lock_key(ProfileId(p)))
            .fetch_one(&mut *conn)
            .await
            .map_err(error::db)?;
        if got {
            locked.push(p);
        }
    }
    Ok(locked)
}

impl PgStore {
    pub(crate) async fn do_roll_up(&self, cutoff: Timestamp, batch: u32) -> Result<RolledUp, StoreError> {
        let mut tx = self.begin_tx().await?;
        let profiles = lock_due_profiles(&mut tx, cutoff, batch).await?;
        let mut done = RolledUp::default();
        if !profiles.is_empty() {
            let rows = sqlx::query(concat!(
                "SELECT ",
                viewing_columns!(),
                " FROM viewings v WHERE v.profile_id = ANY($3) AND v.ended_at < $1 AND NOT v.manual \
                 ORDER BY v.ended_at LIMIT $2 FOR UPDATE SKIP LOCKED"
            ))
            .bind(cutoff.0)
            .bind(i64::from(batch))
            .bind(&profiles)
            .fetch_all(&mut *tx)
            .await
            .map_err(error::db)?;
            let viewings: Vec<Viewing> = rows.iter().map(codec::decode).collect::<Result<_, _>>()?;
            let rollups = aggregate(&viewings);
            add_rollups(&mut tx, &rollups).await?;
            done.plays = rollups.iter().map(|r| r.plays).sum();
            done.viewings = viewings.len() as u64;
            for v in &viewings {
                if let Some(key) = &v.key {
                    done.events += delete_group_events(
                        &mut tx,
                        v.profile_id,
                        &v.title_id,
                        key,
                        v.started_at,
                        v.ended_at,
                    )
                    .await?;
                }
            }
            let ids: Vec<Uuid> = viewings.iter().map(|v| v.id.0).collect();
            sqlx::query("DELETE FROM viewings WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        done.events += roll_up_tombstones(&mut tx, cutoff, batch, &mut done.tombstones).await?;
        tx.commit().await.map_err(error::db)?;
        Ok(done)
    }

    pub(crate) async fn do_rollups(
        &self,
        profile: ProfileId,
        query: &RollupQuery,
    ) -> Result<Vec<PlayRollup>, StoreError> {
        let mut sql = String::from(
            "SELECT profile_id, month, title_id, plays, watched_ms, completed_plays FROM play_rollups \
             WHERE profile_id = $1",
        );
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        match &query.before {
            Some((_, Some(_))) => {
                let (a, b) = (next(), next());
                sql.push_str(&format!(" AND (month, title_id) < (${a}, ${b})"));
            }
            Some((_, None)) => sql.push_str(&format!(" AND month < ${}", next())),
            None => {}
        }
        if query.title_id.is_some() {
            sql.push_str(&format!(" AND title_id = ${}", next()));
        }
        match query.completed {
            Some(true) => sql.push_str(" AND completed_plays > 0"),
            Some(false) => sql.push_str(" AND plays > completed_plays"),
            None => {}
        }
        sql.push_str(&format!(" ORDER BY month DESC, title_id DESC LIMIT ${}", next()));
        let mut q = sqlx::query(&sql).bind(profile.0);
        if let Some((month, title)) = &query.before {
            q = q.bind(month.0);
            if let Some(t) = title {
                q = q.bind(t.as_str());
            }
        }
        if let Some(t) = &query.title_id {
            q = q.bind(t.as_str());
        }
        let rows = q.bind(i64::from(query.limit)).fetch_all(&self.pool).await.map_err(error::db)?;
        rows.iter()
            .map(|r| {
                let c = codec::cols(r);
                Ok(PlayRollup {
                    profile_id: ProfileId(c.uuid("profile_id")?),
                    title_id: c.title_id("title_id")?,
                    month: c.timestamp("month")?,
                    plays: to_u64(c.i64("plays")?),
                    watched_ms: c.i64("watched_ms")?,
                    completed_plays: to_u64(c.i64("completed_plays")?),
                })
            })
            .collect()
    }
}

/// Delete up to `batch` tombstones whose range ended before `cutoff` (skipping rows another
/// replica holds) and the events they covered. Returns the events deleted.
async fn roll_up_tombstones(
    conn: &mut PgConnection,
    cutoff: Timestamp,
    batch: u32,
    tombstones: &mut u64,
) -> Result<u64, StoreError> {
    let rows = sqlx::query(
        "DELETE FROM tombstones WHERE ctid = ANY (ARRAY (SELECT t.ctid FROM tombstones t \
         WHERE t.to_ts < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)) \
         RETURNING profile_id, title_id, session_key, from_ts, to_ts",
    )
    .bind(cutoff.0)
    .bind(i64::from(batch))
    .fetch_all(&mut *conn)
    .await
    .map_err(error::db)?;
    let mut events = 0;
    for r in &rows {
        let c = codec::cols(r);
        if let Some(key) = c.opt_string("session_key")?.as_deref().and_then(SessionKey::decode) {
            let (profile, title) = (ProfileId(c.uuid("profile_id")?), c.title_id("title_id")?);
            let (from, to) = (c.timestamp("from_ts")?, c.timestamp("to_ts")?);
            events += delete_group_events(conn, profile, &title, &key, from, to).await?;
        }
        *tombstones += 1;
    }
    Ok(events)
}
