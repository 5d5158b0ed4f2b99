//! Watched marks (manual plays), play counts and My list: the parts of [`ViewingStore`] that
//! issue 17 added (decision 0090). `viewing.rs` delegates here to keep each file one concern.
//!
//! Rules: a mark is one manual play per (profile, title) (a unique partial index guarantees it);
//! an unmark deletes manual plays only, never a play that came from events; list reads join the
//! catalog so a title that left it is never listed.

use playhead_core::StoreError;
use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::{ListEntry, ListQuery, WatchCount};
use playhead_core::time::Timestamp;
use playhead_store_rows::Columns;

use crate::SqliteStore;
use crate::codec::{self, json_list, to_u64};
use crate::error::{self, Unique};
use playhead_store_rows::to_u32;

impl SqliteStore {
    pub(crate) async fn do_mark_watched(
        &self,
        profile: ProfileId,
        plays: &[(TitleId, PlayId)],
        at: Timestamp,
        move_existing: bool,
    ) -> Result<Vec<PlayId>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(plays.len());
        for (title, id) in plays {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM viewings WHERE profile_id = ?1 AND title_id = ?2 AND manual = 1",
            )
            .bind(profile.to_string())
            .bind(title.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
            if let Some(existing) = existing {
                if move_existing {
                    sqlx::query("UPDATE viewings SET started_at = ?2, ended_at = ?2 WHERE id = ?1")
                        .bind(&existing)
                        .bind(at.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(error::db)?;
                }
                out.push(PlayId::parse(&existing).map_err(|e| error::corrupt("viewings.id", e))?);
                continue;
            }
            sqlx::query(
                "INSERT INTO viewings (id, profile_id, title_id, session_key, started_at, ended_at, \
                 watched_ms, completed, is_play, manual) VALUES (?1, ?2, ?3, NULL, ?4, ?4, 0, 1, 1, 1)",
            )
            .bind(id.to_string())
            .bind(profile.to_string())
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
        let done = sqlx::query(
            "DELETE FROM viewings WHERE profile_id = ?1 AND manual = 1 \
             AND title_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(profile.to_string())
        .bind(json_list(titles)?)
        .execute(&self.writer)
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
        let rows = sqlx::query(
            // Rolled-up months count their plays, and a completed one keeps the title watched
            // (decision 0083).
            "SELECT title_id, SUM(plays) AS plays, MAX(watched) AS watched FROM ( \
               SELECT title_id, COUNT(*) AS plays, MAX(completed) AS watched FROM viewings \
               WHERE profile_id = ?1 AND is_play = 1 AND title_id IN (SELECT value FROM json_each(?2)) \
               GROUP BY title_id \
               UNION ALL \
               SELECT title_id, SUM(plays), MAX(completed_plays > 0) FROM play_rollups \
               WHERE profile_id = ?1 AND title_id IN (SELECT value FROM json_each(?2)) GROUP BY title_id \
             ) GROUP BY title_id",
        )
        .bind(profile.to_string())
        .bind(json_list(titles)?)
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter()
            .map(|r| {
                let c = codec::cols(r);
                Ok(WatchCount {
                    title_id: c.title_id("title_id")?,
                    plays: to_u32(c.i64("plays")?),
                    watched: c.i64("watched")? != 0,
                })
            })
            .collect()
    }

    pub(crate) async fn do_watched_titles(&self, profile: ProfileId) -> Result<Vec<TitleId>, StoreError> {
        let rows = sqlx::query(
            "SELECT title_id FROM viewings WHERE profile_id = ?1 AND is_play = 1 AND completed = 1 \
             UNION SELECT title_id FROM play_rollups WHERE profile_id = ?1 AND completed_plays > 0",
        )
        .bind(profile.to_string())
        .fetch_all(&self.reader)
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
            "INSERT INTO list_items (profile_id, title_id, added_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (profile_id, title_id) DO NOTHING",
        )
        .bind(profile.to_string())
        .bind(title.as_str())
        .bind(at.0)
        .execute(&self.writer)
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
        let done = sqlx::query(
            "DELETE FROM list_items WHERE profile_id = ?1 AND title_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(profile.to_string())
        .bind(json_list(titles)?)
        .execute(&self.writer)
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
             WHERE l.profile_id = ?1 \
               AND (?2 IS NULL OR (l.added_at, l.title_id) < (?2, ?3)) \
               AND (?4 IS NULL OR t.maturity <= ?4) \
               AND (?5 IS NULL OR t.available_from IS NULL OR t.available_from <= ?5) \
               AND (?6 = 0 OR NOT EXISTS (SELECT 1 FROM viewings v WHERE v.profile_id = l.profile_id \
                    AND v.title_id = l.title_id AND v.is_play = 1 AND v.completed = 1 \
                    AND v.ended_at >= l.added_at)) \
             ORDER BY l.added_at DESC, l.title_id DESC LIMIT ?7",
        )
        .bind(profile.to_string())
        .bind(before_at)
        .bind(before_id)
        .bind(q.max_maturity.map(i64::from))
        .bind(q.available_at.map(|t| t.0))
        .bind(q.hide_finished)
        .bind(i64::from(q.limit))
        .fetch_all(&self.reader)
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
            "SELECT title_id FROM list_items WHERE profile_id = ?1 \
             ORDER BY added_at DESC, title_id DESC LIMIT ?2",
        )
        .bind(profile.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(|r| codec::cols(r).title_id("title_id")).collect()
    }

    pub(crate) async fn do_list_leaves_when_finished(&self, profile: ProfileId) -> Result<bool, StoreError> {
        let on: Option<i64> =
            sqlx::query_scalar("SELECT leave_when_finished FROM list_settings WHERE profile_id = ?1")
                .bind(profile.to_string())
                .fetch_optional(&self.reader)
                .await
                .map_err(error::db)?;
        Ok(on.is_some_and(|v| to_u64(v) != 0))
    }

    pub(crate) async fn do_set_list_leaves_when_finished(
        &self,
        profile: ProfileId,
        on: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO list_settings (profile_id, leave_when_finished) VALUES (?1, ?2) \
             ON CONFLICT (profile_id) DO UPDATE SET leave_when_finished = excluded.leave_when_finished",
        )
        .bind(profile.to_string())
        .bind(on)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        Ok(())
    }
}
