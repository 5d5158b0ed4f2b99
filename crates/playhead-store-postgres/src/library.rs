//! Watched marks (manual plays), play counts and My list on PostgreSQL: the parts of
//! [`ViewingStore`](playhead_core::ports::ViewingStore) that issue 17 added (decision 0090).
//! `viewing.rs` delegates here to keep each file one concern.
//!
//! Rules: a mark is one manual play per (profile, title) (a unique partial index guarantees it,
//! and marks run under the profile's apply lock so two replicas marking at once store one);
//! an unmark deletes manual plays only; list reads join the catalog so a title that left it is
//! never listed. Every statement names the profile, so it touches one partition.

use playhead_core::StoreError;
use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::{ListEntry, ListQuery, WatchCount};
use playhead_core::time::Timestamp;
use playhead_store_rows::Columns;
use uuid::Uuid;

use crate::codec;
use crate::error::{self, Unique};
use crate::{PgStore, lock_profile};
use playhead_store_rows::to_u32;

impl PgStore {
    pub(crate) async fn do_mark_watched(
        &self,
        profile: ProfileId,
        plays: &[(TitleId, PlayId)],
        at: Timestamp,
        move_existing: bool,
    ) -> Result<Vec<PlayId>, StoreError> {
        let mut tx = self.begin_tx().await?;
        lock_profile(&mut tx, profile).await?;
        let mut out = Vec::with_capacity(plays.len());
        for (title, id) in plays {
            let existing: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM viewings WHERE profile_id = $1 AND title_id = $2 AND manual",
            )
            .bind(profile.0)
            .bind(title.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
            if let Some(existing) = existing {
                if move_existing {
                    sqlx::query(
                        "UPDATE viewings SET started_at = $3, ended_at = $3 WHERE profile_id = $1 AND id = $2",
                    )
                    .bind(profile.0)
                    .bind(existing)
                    .bind(at.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(error::db)?;
                }
                out.push(PlayId(existing));
                continue;
            }
            sqlx::query(
                "INSERT INTO viewings (profile_id, id, title_id, session_key, started_at, ended_at, \
                 watched_ms, completed, is_play, manual) VALUES ($1, $2, $3, NULL, $4, $4, 0, true, true, true)",
            )
            .bind(profile.0)
            .bind(id.0)
            .bind(title.as_str())
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| error::map(e, &[Unique::PlayId]))?;
            out.push(*id);
        }
        tx.commit().await.map_err(error::db)?;
        Ok(out)
    }

    pub(crate) async fn do_unmark_watched(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<u64, StoreError> {
        if titles.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = titles.iter().map(TitleId::as_str).collect();
        let done = sqlx::query(
            "DELETE FROM viewings WHERE profile_id = $1 AND manual AND title_id = ANY($2::text[])",
        )
        .bind(profile.0)
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn do_watch_counts(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<Vec<WatchCount>, StoreError> {
        if titles.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = titles.iter().map(TitleId::as_str).collect();
        let rows = sqlx::query(
            // Rolled-up months count their plays, and a completed one keeps the title watched
            // (decision 0083).
            "SELECT title_id, SUM(plays)::int8 AS plays, bool_or(watched) AS watched FROM ( \
               SELECT title_id, COUNT(*)::int8 AS plays, bool_or(completed) AS watched FROM viewings \
               WHERE profile_id = $1 AND is_play AND title_id = ANY($2::text[]) GROUP BY title_id \
               UNION ALL \
               SELECT title_id, SUM(plays)::int8, bool_or(completed_plays > 0) FROM play_rollups \
               WHERE profile_id = $1 AND title_id = ANY($2::text[]) GROUP BY title_id \
             ) w GROUP BY title_id",
        )
        .bind(profile.0)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter()
            .map(|r| {
                let c = codec::cols(r);
                Ok(WatchCount {
                    title_id: c.title_id("title_id")?,
                    plays: to_u32(c.i64("plays")?),
                    watched: c.bool("watched")?,
                })
            })
            .collect()
    }

    pub(crate) async fn do_watched_titles(&self, profile: ProfileId) -> Result<Vec<TitleId>, StoreError> {
        let rows = sqlx::query(
            "SELECT title_id FROM viewings WHERE profile_id = $1 AND is_play AND completed \
             UNION SELECT title_id FROM play_rollups WHERE profile_id = $1 AND completed_plays > 0",
        )
        .bind(profile.0)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(|r| codec::cols(r).title_id("title_id")).collect()
    }

    pub(crate) async fn do_list_add(
        &self,
        profile: ProfileId,
        title: &TitleId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO list_items (profile_id, title_id, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (profile_id, title_id) DO NOTHING",
        )
        .bind(profile.0)
        .bind(title.as_str())
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn do_list_remove(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<u64, StoreError> {
        if titles.is_empty() {
            return Ok(0);
        }
        let ids: Vec<&str> = titles.iter().map(TitleId::as_str).collect();
        let done = sqlx::query("DELETE FROM list_items WHERE profile_id = $1 AND title_id = ANY($2::text[])")
            .bind(profile.0)
            .bind(ids)
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn do_list_page(
        &self,
        profile: ProfileId,
        q: &ListQuery,
    ) -> Result<Vec<ListEntry>, StoreError> {
        // One statement text: absent filters bind NULL and switch their condition off.
        let (before_at, before_id) = match &q.before {
            Some((at, id)) => (Some(at.0), Some(id.as_str().to_owned())),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT l.title_id, l.added_at FROM list_items l JOIN titles t ON t.id = l.title_id \
             WHERE l.profile_id = $1 \
               AND ($2::int8 IS NULL OR (l.added_at, l.title_id) < ($2::int8, $3::text COLLATE \"C\")) \
               AND ($4::int4 IS NULL OR t.maturity <= $4::int4) \
               AND ($5::int8 IS NULL OR t.available_from IS NULL OR t.available_from <= $5::int8) \
               AND (NOT $6::bool OR NOT EXISTS (SELECT 1 FROM viewings v WHERE v.profile_id = l.profile_id \
                    AND v.title_id = l.title_id AND v.is_play AND v.completed AND v.ended_at >= l.added_at)) \
             ORDER BY l.added_at DESC, l.title_id DESC LIMIT $7",
        )
        .bind(profile.0)
        .bind(before_at)
        .bind(before_id)
        .bind(q.max_maturity.map(i32::from))
        .bind(q.available_at.map(|t| t.0))
        .bind(q.hide_finished)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter()
            .map(|r| {
                let c = codec::cols(r);
                Ok(ListEntry { title_id: c.title_id("title_id")?, added_at: c.timestamp("added_at")? })
            })
            .collect()
    }

    pub(crate) async fn do_list_titles(
        &self,
        profile: ProfileId,
        limit: u32,
    ) -> Result<Vec<TitleId>, StoreError> {
        let rows = sqlx::query(
            "SELECT title_id FROM list_items WHERE profile_id = $1 \
             ORDER BY added_at DESC, title_id DESC LIMIT $2",
        )
        .bind(profile.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(|r| codec::cols(r).title_id("title_id")).collect()
    }

    pub(crate) async fn do_list_leaves_when_finished(&self, profile: ProfileId) -> Result<bool, StoreError> {
        let on: Option<bool> =
            sqlx::query_scalar("SELECT leave_when_finished FROM list_settings WHERE profile_id = $1")
                .bind(profile.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(error::db)?;
        Ok(on.unwrap_or(false))
    }

    pub(crate) async fn do_set_list_leaves_when_finished(
        &self,
        profile: ProfileId,
        on: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO list_settings (profile_id, leave_when_finished) VALUES ($1, $2) \
             ON CONFLICT (profile_id) DO UPDATE SET leave_when_finished = excluded.leave_when_finished",
        )
        .bind(profile.0)
        .bind(on)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(())
    }
}
