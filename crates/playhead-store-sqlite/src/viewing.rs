//! Progress, viewings (plays), hides and tombstones: [`ViewingStore`] and its apply transaction
//! [`SqliteViewingTx`].
//!
//! The rules: an apply transaction owns the single writer connection from `BEGIN IMMEDIATE` to
//! commit (dropping it rolls back), which is how appliers are serialised; and deletes win: every
//! read of events for an apply excludes what a tombstone covers, and a backfill never recreates a
//! deleted play.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::event::PlaybackEvent;
use playhead_core::ids::{EventId, PlayId, ProfileId, TitleId};
use playhead_core::ports::{
    BackfillOutcome, GroupEvent, ListEntry, ListQuery, PlayQuery, ResumeRow, RollupQuery, Viewing,
    ViewingStore, ViewingTx, WatchCount,
};
use playhead_core::precondition::{IfMatch, play_etag};
use playhead_core::rules::progress::ProgressRecord;
use playhead_core::rules::recs::PlayCount;
use playhead_core::rules::rollup::PlayRollup;
use playhead_core::rules::viewing::SessionKey;
use playhead_core::time::Timestamp;
use playhead_store_rows::{Columns, decode};
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::SqliteStore;
use crate::codec::{self, event_columns, progress_columns, viewing_columns};
use crate::error::{self, Unique};

const RESUME_ROW_SELECT: &str = concat!(
    "SELECT ",
    progress_columns!(),
    ", h.hidden_at FROM progress p \
     LEFT JOIN hides h ON h.profile_id = p.profile_id AND h.title_id = p.title_id "
);

/// An apply transaction: holds the writer connection inside `BEGIN IMMEDIATE` until
/// [`ViewingTx::commit`]; dropped uncommitted, it rolls back.
pub struct SqliteViewingTx {
    tx: Transaction<'static, Sqlite>,
}

impl SqliteViewingTx {
    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// Insert or replace a viewing by id (used by `replace_viewings`; backfills insert directly).
async fn upsert_viewing(conn: &mut SqliteConnection, v: &Viewing) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO viewings (id, profile_id, title_id, session_key, started_at, ended_at, watched_ms, \
         completed, is_play) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (id) DO UPDATE SET profile_id = excluded.profile_id, title_id = excluded.title_id, \
         session_key = excluded.session_key, started_at = excluded.started_at, \
         ended_at = excluded.ended_at, watched_ms = excluded.watched_ms, \
         completed = excluded.completed, is_play = excluded.is_play",
    )
    .bind(v.id.to_string())
    .bind(v.profile_id.to_string())
    .bind(v.title_id.as_str())
    .bind(v.key.as_ref().map(SessionKey::encode))
    .bind(v.started_at.0)
    .bind(v.ended_at.0)
    .bind(v.watched_ms)
    .bind(v.completed)
    .bind(v.is_play)
    .execute(conn)
    .await
    .map_err(error::db)?;
    Ok(())
}

fn viewings(rows: &[SqliteRow]) -> Result<Vec<Viewing>, StoreError> {
    rows.iter().map(codec::decode).collect()
}

#[async_trait]
impl ViewingTx for SqliteViewingTx {
    async fn claim(&mut self, seqs: &[i64]) -> Result<Vec<EventId>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        // Only rows still present are deleted and returned: a redelivered seq returns nothing.
        let rows = sqlx::query(
            "DELETE FROM event_queue WHERE seq IN (SELECT value FROM json_each(?1)) RETURNING seq, event_id",
        )
        .bind(codec::json_list(seqs)?)
        .fetch_all(self.conn())
        .await
        .map_err(error::db)?;
        let mut claimed =
            rows.iter().map(|r| decode::claimed(&codec::cols(r))).collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, id)| id).collect())
    }

    async fn record_applied(&mut self, ev: &PlaybackEvent) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, \
             occurred_at, occurred_at_raw, received_at, device_id, session_id, state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'logged') \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(ev.event_id.to_string())
        .bind(ev.profile_id.to_string())
        .bind(ev.title_id.as_str())
        .bind(ev.kind.as_str())
        .bind(ev.position_ms)
        .bind(ev.duration_ms)
        .bind(ev.occurred_at.0)
        .bind(ev.occurred_at_raw.0)
        .bind(ev.received_at.0)
        .bind(ev.device_id.as_ref().map(|d| d.as_str()))
        .bind(ev.session_id.as_ref().map(|s| s.as_str()))
        .execute(self.conn())
        .await
        .map_err(error::db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn progress(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
    ) -> Result<Option<ProgressRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            progress_columns!(),
            " FROM progress p WHERE p.profile_id = ?1 AND p.title_id = ?2"
        ))
        .bind(profile.to_string())
        .bind(title.as_str())
        .fetch_optional(self.conn())
        .await
        .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn save_progress(&mut self, rec: &ProgressRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO progress (profile_id, title_id, position_ms, duration_ms, occurred_at, event_id, \
             finished, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (profile_id, title_id) DO UPDATE SET position_ms = excluded.position_ms, \
             duration_ms = excluded.duration_ms, occurred_at = excluded.occurred_at, \
             event_id = excluded.event_id, finished = excluded.finished, updated_at = excluded.updated_at",
        )
        .bind(rec.profile_id.to_string())
        .bind(rec.title_id.as_str())
        .bind(rec.position_ms)
        .bind(rec.duration_ms)
        .bind(rec.occurred_at.0)
        .bind(rec.event_id.to_string())
        .bind(rec.finished)
        .bind(rec.updated_at.0)
        .execute(self.conn())
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn viewings(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
        key: &SessionKey,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Viewing>, StoreError> {
        let q = match key {
            SessionKey::Explicit(_) => sqlx::query(concat!(
                "SELECT ",
                viewing_columns!(),
                " FROM viewings v WHERE v.profile_id = ?1 AND v.title_id = ?2 AND v.session_key = ?3 \
                 ORDER BY v.started_at, v.id"
            )),
            SessionKey::Implicit(_) => sqlx::query(concat!(
                "SELECT ",
                viewing_columns!(),
                " FROM viewings v WHERE v.profile_id = ?1 AND v.title_id = ?2 AND v.session_key = ?3 \
                 AND v.started_at <= ?5 AND v.ended_at >= ?4 ORDER BY v.started_at, v.id"
            )),
        };
        // `?N` is the N-th bind in call order: the shared ?1-?3 first, then ?4-?5 (which the
        // explicit form does not mention; SQLite ignores binds beyond the last parameter).
        let rows = q
            .bind(profile.to_string())
            .bind(title.as_str())
            .bind(key.encode())
            .bind(from.0)
            .bind(to.0)
            .fetch_all(self.conn())
            .await
            .map_err(error::db)?;
        viewings(&rows)
    }

    async fn events(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
        key: &SessionKey,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<GroupEvent>, StoreError> {
        // Events a deleted play covered come back flagged `deleted` (they still link a late event
        // to the deleted viewing, which then stays deleted). Held events are included (an apply
        // may see a premiere's early events), dropped ones never.
        let q = match key {
            SessionKey::Explicit(s) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                ", EXISTS (SELECT 1 FROM tombstones t WHERE t.profile_id = e.profile_id \
                 AND t.title_id = e.title_id AND t.session_key = ?3 \
                 AND e.occurred_at BETWEEN t.from_ts AND t.to_ts) AS deleted",
                " FROM events e WHERE e.profile_id = ?1 AND e.title_id = ?2 AND e.session_id = ?4 \
                 AND e.state <> 'dropped' \
                 ORDER BY e.occurred_at, e.event_id"
            ))
            .bind(profile.to_string())
            .bind(title.as_str())
            .bind(key.encode())
            .bind(s.as_str()),
            SessionKey::Implicit(device) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                ", EXISTS (SELECT 1 FROM tombstones t WHERE t.profile_id = e.profile_id \
                 AND t.title_id = e.title_id AND t.session_key = ?3 \
                 AND e.occurred_at BETWEEN t.from_ts AND t.to_ts) AS deleted",
                " FROM events e WHERE e.profile_id = ?1 AND e.title_id = ?2 AND e.session_id IS NULL \
                 AND e.device_id IS ?4 AND e.occurred_at BETWEEN ?5 AND ?6 \
                 AND e.state <> 'dropped' \
                 ORDER BY e.occurred_at, e.event_id"
            ))
            .bind(profile.to_string())
            .bind(title.as_str())
            .bind(key.encode())
            .bind(device.as_ref().map(|d| d.as_str()))
            .bind(from.0)
            .bind(to.0),
        };
        let rows = q.fetch_all(self.conn()).await.map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn last_event(
        &mut self,
        profile: ProfileId,
        title: &TitleId,
        key: &SessionKey,
        except: &[EventId],
    ) -> Result<Option<GroupEvent>, StoreError> {
        // One index range (events_by_group), newest first, stopping at the first row not in
        // `except`; the flag asks whether any tombstone of the group reaches this event or later.
        let q = match key {
            SessionKey::Explicit(s) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                ", EXISTS (SELECT 1 FROM tombstones t WHERE t.profile_id = e.profile_id \
                 AND t.title_id = e.title_id AND t.session_key = ?3 AND t.to_ts >= e.occurred_at) AS deleted",
                " FROM events e WHERE e.profile_id = ?1 AND e.title_id = ?2 AND e.session_id = ?4 \
                 AND e.state <> 'dropped' AND e.event_id NOT IN (SELECT value FROM json_each(?5)) \
                 ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT 1"
            ))
            .bind(profile.to_string())
            .bind(title.as_str())
            .bind(key.encode())
            .bind(s.as_str()),
            SessionKey::Implicit(device) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                ", EXISTS (SELECT 1 FROM tombstones t WHERE t.profile_id = e.profile_id \
                 AND t.title_id = e.title_id AND t.session_key = ?3 AND t.to_ts >= e.occurred_at) AS deleted",
                " FROM events e WHERE e.profile_id = ?1 AND e.title_id = ?2 AND e.session_id IS NULL \
                 AND e.device_id IS ?4 AND e.state <> 'dropped' \
                 AND e.event_id NOT IN (SELECT value FROM json_each(?5)) \
                 ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT 1"
            ))
            .bind(profile.to_string())
            .bind(title.as_str())
            .bind(key.encode())
            .bind(device.as_ref().map(|d| d.as_str())),
        };
        let row = q.bind(codec::json_list(except)?).fetch_optional(self.conn()).await.map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn drop_events(&mut self, ids: &[EventId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE events SET state = 'dropped' WHERE event_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(codec::json_list(ids)?)
        .execute(self.conn())
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn replace_viewings(&mut self, remove: &[PlayId], upsert: &[Viewing]) -> Result<(), StoreError> {
        if !remove.is_empty() {
            sqlx::query("DELETE FROM viewings WHERE id IN (SELECT value FROM json_each(?1))")
                .bind(codec::json_list(remove)?)
                .execute(self.conn())
                .await
                .map_err(error::db)?;
        }
        for v in upsert {
            upsert_viewing(self.conn(), v).await?;
        }
        Ok(())
    }

    async fn recs_window(&mut self, profile: ProfileId, limit: u32) -> Result<Vec<TitleId>, StoreError> {
        crate::recs::recs_window(self.conn(), profile, limit).await
    }

    async fn count_play(&mut self, count: &PlayCount) -> Result<bool, StoreError> {
        crate::recs::count_play(self.conn(), count).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(error::db)
    }
}

#[async_trait]
impl ViewingStore for SqliteStore {
    async fn begin(&self) -> Result<Box<dyn ViewingTx>, StoreError> {
        Ok(Box::new(SqliteViewingTx { tx: self.begin_write().await? }))
    }

    async fn progress(&self, profile: ProfileId, title: &TitleId) -> Result<Option<ResumeRow>, StoreError> {
        let sql = format!("{RESUME_ROW_SELECT} WHERE p.profile_id = ?1 AND p.title_id = ?2");
        let row = sqlx::query(&sql)
            .bind(profile.to_string())
            .bind(title.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn progress_of(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<Vec<ResumeRow>, StoreError> {
        if titles.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{RESUME_ROW_SELECT} WHERE p.profile_id = ?1 AND p.title_id IN (SELECT value FROM json_each(?2))"
        );
        let rows = sqlx::query(&sql)
            .bind(profile.to_string())
            .bind(codec::json_list(titles)?)
            .fetch_all(&self.reader)
            .await
            .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn recent_progress(
        &self,
        profile: ProfileId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<ResumeRow>, StoreError> {
        let sql = format!(
            "{RESUME_ROW_SELECT} WHERE p.profile_id = ?1 AND p.occurred_at >= ?2 \
             ORDER BY p.occurred_at DESC, p.event_id DESC LIMIT ?3"
        );
        let rows = sqlx::query(&sql)
            .bind(profile.to_string())
            .bind(since.0)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn plays(&self, profile: ProfileId, query: &PlayQuery) -> Result<Vec<Viewing>, StoreError> {
        // At most 8 statement texts (each optional filter on or off), each cached once prepared.
        // `is_play = 1` is spelled literally so the partial index `viewings_history` applies.
        let mut sql = String::from(concat!(
            "SELECT ",
            viewing_columns!(),
            " FROM viewings v WHERE v.profile_id = ? AND v.is_play = 1"
        ));
        if query.before.is_some() {
            sql.push_str(" AND (v.started_at, v.id) < (?, ?)");
        }
        if query.title_id.is_some() {
            sql.push_str(" AND v.title_id = ?");
        }
        if query.completed.is_some() {
            sql.push_str(" AND v.completed = ?");
        }
        sql.push_str(" ORDER BY v.started_at DESC, v.id DESC LIMIT ?");
        let mut q = sqlx::query(&sql).bind(profile.to_string());
        if let Some((at, id)) = query.before {
            q = q.bind(at.0).bind(id.to_string());
        }
        if let Some(t) = &query.title_id {
            q = q.bind(t.as_str());
        }
        if let Some(c) = query.completed {
            q = q.bind(c);
        }
        let rows = q.bind(i64::from(query.limit)).fetch_all(&self.reader).await.map_err(error::db)?;
        viewings(&rows)
    }

    async fn rollups(&self, profile: ProfileId, query: &RollupQuery) -> Result<Vec<PlayRollup>, StoreError> {
        self.do_rollups(profile, query).await
    }

    async fn episode_plays(&self, profile: ProfileId) -> Result<Vec<(TitleId, Viewing)>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT t.series_id AS series_id, ",
            viewing_columns!(),
            " FROM viewings v JOIN titles t ON t.id = v.title_id \
             WHERE v.profile_id = ?1 AND v.is_play = 1 AND t.kind = 'episode' AND t.series_id IS NOT NULL \
             ORDER BY v.started_at DESC, v.id DESC"
        ))
        .bind(profile.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(|r| decode::series_play(&codec::cols(r))).collect()
    }

    async fn hide(&self, profile: ProfileId, title: &TitleId, at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO hides (profile_id, title_id, hidden_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (profile_id, title_id) DO UPDATE SET hidden_at = max(hidden_at, excluded.hidden_at)",
        )
        .bind(profile.to_string())
        .bind(title.as_str())
        .bind(at.0)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn delete_play(&self, profile: ProfileId, play: PlayId, now: Timestamp) -> Result<(), StoreError> {
        self.delete_play_if(profile, play, now, &IfMatch::Absent).await
    }

    async fn delete_play_if(
        &self,
        profile: ProfileId,
        play: PlayId,
        now: Timestamp,
        if_match: &IfMatch,
    ) -> Result<(), StoreError> {
        // The write transaction holds SQLite's one writer lock: no apply changes the play between
        // the precondition and the delete.
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT title_id, session_key, started_at, ended_at, watched_ms, completed FROM viewings \
             WHERE id = ?1 AND profile_id = ?2 AND is_play = 1",
        )
        .bind(play.to_string())
        .bind(profile.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?
        .ok_or(StoreError::NotFound)?;
        let c = codec::cols(&row);
        let title = c.string("title_id")?;
        let key = c.opt_string("session_key")?;
        let started_at = c.i64("started_at")?;
        let current = play_etag(Timestamp(c.i64("ended_at")?), c.i64("watched_ms")?, c.bool("completed")?);
        if !if_match.admits(&current) {
            return Err(StoreError::PreconditionFailed);
        }
        // A backfilled play has no events: its tombstone marks just its start, which is what a
        // later backfill of the same play is checked against.
        let to = if key.is_some() { c.i64("ended_at")? } else { started_at };
        sqlx::query(
            "INSERT INTO tombstones (profile_id, title_id, session_key, from_ts, to_ts, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(profile.to_string())
        .bind(&title)
        .bind(&key)
        .bind(started_at)
        .bind(to)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        sqlx::query("DELETE FROM viewings WHERE id = ?1")
            .bind(play.to_string())
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        // Deletes win in the live counters too (decision 0108), in the same transaction.
        crate::recs::uncount_deleted_play(&mut tx, profile, play).await?;
        tx.commit().await.map_err(error::db)
    }

    async fn backfill(&self, plays: &[Viewing]) -> Result<Vec<BackfillOutcome>, StoreError> {
        if plays.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(plays.len());
        for p in plays {
            let profile = p.profile_id.to_string();
            // Any deleted play of this title that started at this instant (backfilled or not):
            // deletes win.
            let deleted: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM tombstones WHERE profile_id = ?1 AND title_id = ?2 AND from_ts = ?3 LIMIT 1",
            )
            .bind(&profile)
            .bind(p.title_id.as_str())
            .bind(p.started_at.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
            if deleted.is_some() {
                out.push(BackfillOutcome::Deleted);
                continue;
            }
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM viewings WHERE profile_id = ?1 AND title_id = ?2 AND started_at = ?3 \
                 AND is_play = 1 ORDER BY id LIMIT 1",
            )
            .bind(&profile)
            .bind(p.title_id.as_str())
            .bind(p.started_at.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
            if let Some(id) = existing {
                let id = PlayId::parse(&id).map_err(|e| error::corrupt("viewings.id", e))?;
                out.push(BackfillOutcome::Duplicate(id));
                continue;
            }
            sqlx::query(
                "INSERT INTO viewings (id, profile_id, title_id, session_key, started_at, ended_at, \
                 watched_ms, completed, is_play) VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(p.id.to_string())
            .bind(&profile)
            .bind(p.title_id.as_str())
            .bind(p.started_at.0)
            .bind(p.ended_at.0)
            .bind(p.watched_ms)
            .bind(p.completed)
            .bind(p.is_play)
            .execute(&mut *tx)
            .await
            .map_err(|e| error::map(e, &[Unique::PlayId]))?;
            out.push(BackfillOutcome::Created(p.id));
        }
        tx.commit().await.map_err(error::db)?;
        Ok(out)
    }
    async fn mark_watched(
        &self,
        profile: ProfileId,
        plays: &[(TitleId, PlayId)],
        at: Timestamp,
        move_existing: bool,
    ) -> Result<Vec<PlayId>, StoreError> {
        self.do_mark_watched(profile, plays, at, move_existing).await
    }

    async fn unmark_watched(&self, profile: ProfileId, titles: &[TitleId]) -> Result<u64, StoreError> {
        self.do_unmark_watched(profile, titles).await
    }

    async fn watch_counts(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
    ) -> Result<Vec<WatchCount>, StoreError> {
        self.do_watch_counts(profile, titles).await
    }

    async fn watched_titles(&self, profile: ProfileId) -> Result<Vec<TitleId>, StoreError> {
        self.do_watched_titles(profile).await
    }

    async fn list_add(&self, profile: ProfileId, title: &TitleId, at: Timestamp) -> Result<bool, StoreError> {
        self.do_list_add(profile, title, at).await
    }

    async fn list_remove(&self, profile: ProfileId, titles: &[TitleId]) -> Result<u64, StoreError> {
        self.do_list_remove(profile, titles).await
    }

    async fn list_page(&self, profile: ProfileId, query: &ListQuery) -> Result<Vec<ListEntry>, StoreError> {
        self.do_list_page(profile, query).await
    }

    async fn list_titles(&self, profile: ProfileId, limit: u32) -> Result<Vec<TitleId>, StoreError> {
        self.do_list_titles(profile, limit).await
    }

    async fn list_leaves_when_finished(&self, profile: ProfileId) -> Result<bool, StoreError> {
        self.do_list_leaves_when_finished(profile).await
    }

    async fn set_list_leaves_when_finished(&self, profile: ProfileId, on: bool) -> Result<(), StoreError> {
        self.do_set_list_leaves_when_finished(profile, on).await
    }
}
