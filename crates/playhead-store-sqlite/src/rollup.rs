//! The retention roll-up's store work (decision 0083): [`Pruner::roll_up`] batches and the
//! roll-up reads of [`ViewingStore::rollups`]; `prune.rs` and `viewing.rs` delegate here.
//!
//! The rule: a batch adds its plays to `play_rollups` and deletes their viewings and raw events
//! in one `BEGIN IMMEDIATE` transaction, so a crash leaves all of it or none, and the single
//! writer orders it with every apply (an apply never sees half a batch). Events still queued
//! for the consumer and held events are never deleted: they have not been applied yet.
//!
//! [`Pruner::roll_up`]: playhead_core::ports::Pruner::roll_up
//! [`ViewingStore::rollups`]: playhead_core::ports::ViewingStore::rollups

use playhead_core::StoreError;
use playhead_core::ids::{ProfileId, TitleId};
use playhead_core::ports::{RolledUp, RollupQuery, Viewing};
use playhead_core::rules::rollup::{PlayRollup, aggregate};
use playhead_core::rules::viewing::SessionKey;
use playhead_core::time::Timestamp;
use playhead_store_rows::Columns;
use sqlx::SqliteConnection;

use crate::codec::{self, json_list, to_u64, viewing_columns};
use crate::{SqliteStore, error};

/// Delete the raw events of one group (a viewing's or a tombstone's) between `from` and `to`,
/// except held ones and those still queued. Returns how many.
async fn delete_group_events(
    conn: &mut SqliteConnection,
    profile: ProfileId,
    title: &TitleId,
    key: &SessionKey,
    from: Timestamp,
    to: Timestamp,
) -> Result<u64, StoreError> {
    let (group, value) = match key {
        SessionKey::Explicit(s) => ("session_id = ?3", Some(s.as_str().to_owned())),
        SessionKey::Implicit(d) => {
            ("session_id IS NULL AND device_id IS ?3", d.as_ref().map(|d| d.as_str().to_owned()))
        }
    };
    let sql = format!(
        "DELETE FROM events WHERE profile_id = ?1 AND title_id = ?2 AND {group} \
         AND occurred_at BETWEEN ?4 AND ?5 AND state <> 'held' \
         AND event_id NOT IN (SELECT event_id FROM event_queue)"
    );
    let r = sqlx::query(&sql)
        .bind(profile.to_string())
        .bind(title.as_str())
        .bind(value)
        .bind(from.0)
        .bind(to.0)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    Ok(r.rows_affected())
}

/// Add `rollups` to what the table holds (sums: see `playhead_core::rules::rollup`).
async fn add_rollups(conn: &mut SqliteConnection, rollups: &[PlayRollup]) -> Result<(), StoreError> {
    for r in rollups {
        sqlx::query(
            "INSERT INTO play_rollups (profile_id, month, title_id, plays, watched_ms, completed_plays) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (profile_id, month, title_id) DO UPDATE SET \
             plays = plays + excluded.plays, watched_ms = watched_ms + excluded.watched_ms, \
             completed_plays = completed_plays + excluded.completed_plays",
        )
        .bind(r.profile_id.to_string())
        .bind(r.month.0)
        .bind(r.title_id.as_str())
        .bind(codec::to_i64(r.plays))
        .bind(r.watched_ms)
        .bind(codec::to_i64(r.completed_plays))
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    }
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn do_roll_up(&self, cutoff: Timestamp, batch: u32) -> Result<RolledUp, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            viewing_columns!(),
            " FROM viewings v WHERE v.ended_at < ?1 AND v.manual = 0 ORDER BY v.ended_at LIMIT ?2"
        ))
        .bind(cutoff.0)
        .bind(i64::from(batch))
        .fetch_all(&mut *tx)
        .await
        .map_err(error::db)?;
        let viewings: Vec<Viewing> = rows.iter().map(codec::decode).collect::<Result<_, _>>()?;
        let rollups = aggregate(&viewings);
        add_rollups(&mut tx, &rollups).await?;
        let mut done = RolledUp {
            plays: rollups.iter().map(|r| r.plays).sum(),
            viewings: viewings.len() as u64,
            ..RolledUp::default()
        };
        for v in &viewings {
            if let Some(key) = &v.key {
                done.events +=
                    delete_group_events(&mut tx, v.profile_id, &v.title_id, key, v.started_at, v.ended_at)
                        .await?;
            }
        }
        let ids: Vec<String> = viewings.iter().map(|v| v.id.to_string()).collect();
        sqlx::query("DELETE FROM viewings WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(json_list(&ids)?)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        done.events += self.roll_up_tombstones(&mut tx, cutoff, batch, &mut done.tombstones).await?;
        tx.commit().await.map_err(error::db)?;
        Ok(done)
    }

    /// Delete up to `batch` tombstones whose range ended before `cutoff` and the events they
    /// covered (a deleted play's events are otherwise kept for ever). Returns the events deleted.
    async fn roll_up_tombstones(
        &self,
        conn: &mut SqliteConnection,
        cutoff: Timestamp,
        batch: u32,
        tombstones: &mut u64,
    ) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT rowid AS id, profile_id, title_id, session_key, from_ts, to_ts FROM tombstones \
             WHERE to_ts < ?1 LIMIT ?2",
        )
        .bind(cutoff.0)
        .bind(i64::from(batch))
        .fetch_all(&mut *conn)
        .await
        .map_err(error::db)?;
        let mut events = 0;
        for r in &rows {
            let c = codec::cols(r);
            let key = c.opt_string("session_key")?;
            // A deleted backfilled play (no key) has no events.
            if let Some(key) = key.as_deref().and_then(SessionKey::decode) {
                let (profile, title) = (ProfileId(c.uuid("profile_id")?), c.title_id("title_id")?);
                let (from, to) = (c.timestamp("from_ts")?, c.timestamp("to_ts")?);
                events += delete_group_events(conn, profile, &title, &key, from, to).await?;
            }
            sqlx::query("DELETE FROM tombstones WHERE rowid = ?1")
                .bind(c.i64("id")?)
                .execute(&mut *conn)
                .await
                .map_err(error::db)?;
            *tombstones += 1;
        }
        Ok(events)
    }

    pub(crate) async fn do_rollups(
        &self,
        profile: ProfileId,
        query: &RollupQuery,
    ) -> Result<Vec<PlayRollup>, StoreError> {
        let mut sql = String::from(
            "SELECT profile_id, month, title_id, plays, watched_ms, completed_plays FROM play_rollups \
             WHERE profile_id = ?",
        );
        match &query.before {
            Some((_, Some(_))) => sql.push_str(" AND (month, title_id) < (?, ?)"),
            Some((_, None)) => sql.push_str(" AND month < ?"),
            None => {}
        }
        if query.title_id.is_some() {
            sql.push_str(" AND title_id = ?");
        }
        match query.completed {
            Some(true) => sql.push_str(" AND completed_plays > 0"),
            Some(false) => sql.push_str(" AND plays > completed_plays"),
            None => {}
        }
        sql.push_str(" ORDER BY month DESC, title_id DESC LIMIT ?");
        let mut q = sqlx::query(&sql).bind(profile.to_string());
        if let Some((month, title)) = &query.before {
            q = q.bind(month.0);
            if let Some(t) = title {
                q = q.bind(t.as_str());
            }
        }
        if let Some(t) = &query.title_id {
            q = q.bind(t.as_str());
        }
        let rows = q.bind(i64::from(query.limit)).fetch_all(&self.reader).await.map_err(error::db)?;
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
