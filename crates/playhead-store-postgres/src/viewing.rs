//! Progress, viewings (plays, hash-partitioned by profile), hides and tombstones:
//! [`ViewingStore`] and its apply transaction [`PgViewingTx`].
//!
//! The rules:
//! - an apply transaction takes a profile's advisory lock (crate docs) before its first read or
//!   write of that profile's state, and keeps it until commit or rollback;
//! - every query of `viewings` names the profile, so PostgreSQL prunes it to one partition (the
//!   one exception is documented at [`PgViewingTx::replace_viewings`]);
//! - deletes win: every read of events for an apply flags what a tombstone covers, and a
//!   backfill never recreates a deleted play.

use std::collections::{BTreeSet, HashMap, HashSet};

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
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::codec::{self, event_columns, progress_columns, viewing_columns};
use crate::error::{self, Unique};
use crate::{PgStore, lock_profile};

const RESUME_ROW_SELECT: &str = concat!(
    "SELECT ",
    progress_columns!(),
    ", h.hidden_at FROM progress p \
     LEFT JOIN hides h ON h.profile_id = p.profile_id AND h.title_id = p.title_id "
);

/// The `deleted` column of [`ViewingTx::events`]: whether a tombstone of the group (`$3`, the
/// encoded session key) covers the event.
/// The flag of [`ViewingTx::last_event`]: a tombstone of the group reaches this event or later.
macro_rules! tombstoned_since {
    () => {
        ", EXISTS (SELECT 1 FROM tombstones t WHERE t.profile_id = e.profile_id \
         AND t.title_id = e.title_id AND t.session_key = $3 AND t.to_ts >= e.occurred_at) AS deleted"
    };
}

macro_rules! tombstoned {
    () => {
        ", EXISTS (SELECT 1 FROM tombstones t WHERE t.profile_id = e.profile_id \
         AND t.title_id = e.title_id AND t.session_key = $3 \
         AND e.occurred_at BETWEEN t.from_ts AND t.to_ts) AS deleted"
    };
}

/// Insert or replace viewings from parallel arrays (one statement for the whole list).
const UPSERT_VIEWINGS: &str = "INSERT INTO viewings (profile_id, id, title_id, session_key, started_at, \
     ended_at, watched_ms, completed, is_play) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
       $7::int8[], $8::bool[], $9::bool[]) \
     ON CONFLICT (profile_id, id) DO UPDATE SET title_id = excluded.title_id, \
     session_key = excluded.session_key, started_at = excluded.started_at, ended_at = excluded.ended_at, \
     watched_ms = excluded.watched_ms, completed = excluded.completed, is_play = excluded.is_play";

/// Viewings as parallel arrays for [`UPSERT_VIEWINGS`] (and the backfill insert).
#[derive(Default)]
struct ViewingColumns {
    profiles: Vec<Uuid>,
    ids: Vec<Uuid>,
    titles: Vec<String>,
    keys: Vec<Option<String>>,
    started: Vec<i64>,
    ended: Vec<i64>,
    watched: Vec<i64>,
    completed: Vec<bool>,
    is_play: Vec<bool>,
}

impl ViewingColumns {
    fn push(&mut self, v: &Viewing) {
        self.profiles.push(v.profile_id.0);
        self.ids.push(v.id.0);
        self.titles.push(v.title_id.as_str().to_owned());
        self.keys.push(v.key.as_ref().map(SessionKey::encode));
        self.started.push(v.started_at.0);
        self.ended.push(v.ended_at.0);
        self.watched.push(v.watched_ms);
        self.completed.push(v.completed);
        self.is_play.push(v.is_play);
    }

    /// Insert or replace these viewings by (profile, id): [`UPSERT_VIEWINGS`].
    async fn upsert(self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(UPSERT_VIEWINGS)
            .bind(self.profiles)
            .bind(self.ids)
            .bind(self.titles)
            .bind(self.keys)
            .bind(self.started)
            .bind(self.ended)
            .bind(self.watched)
            .bind(self.completed)
            .bind(self.is_play)
            .execute(conn)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    /// Insert backfilled plays; an id already stored for the profile is `Conflict("play id")`
    /// (never an overwrite of another play).
    async fn insert(self, conn: &mut PgConnection) -> Result<(), StoreError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO viewings (profile_id, id, title_id, session_key, started_at, ended_at, \
             watched_ms, completed, is_play) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
               $7::int8[], $8::bool[], $9::bool[])",
        )
        .bind(self.profiles)
        .bind(self.ids)
        .bind(self.titles)
        .bind(self.keys)
        .bind(self.started)
        .bind(self.ended)
        .bind(self.watched)
        .bind(self.completed)
        .bind(self.is_play)
        .execute(conn)
        .await
        .map_err(|e| error::map(e, &[Unique::PlayId]))?;
        Ok(())
    }
}

/// An apply transaction at READ COMMITTED: holds one pooled connection until
/// [`ViewingTx::commit`]; dropped uncommitted, it rolls back (sqlx sends the `ROLLBACK` when the
/// connection goes back to the pool, which also releases the profile locks).
pub struct PgViewingTx {
    tx: Transaction<'static, Postgres>,
    /// Profiles whose apply lock this transaction holds.
    locked: BTreeSet<ProfileId>,
}

impl PgViewingTx {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Take `profile`'s apply lock unless this transaction holds it already.
    async fn lock(&mut self, profile: ProfileId) -> Result<(), StoreError> {
        if self.locked.contains(&profile) {
            return Ok(());
        }
        if self.locked.last().is_some_and(|last| *last > profile) {
            // Out of ascending order: a cycle with another applier is possible (then PostgreSQL
            // aborts one of them with 40P01 -> Unavailable, and it is retried).
            tracing::debug!(profile.id = %profile, "profile locked out of ascending order");
        }
        lock_profile(&mut self.tx, profile).await?;
        self.locked.insert(profile);
        Ok(())
    }
}

fn viewings(rows: &[PgRow]) -> Result<Vec<Viewing>, StoreError> {
    rows.iter().map(codec::decode).collect()
}

#[async_trait]
impl ViewingTx for PgViewingTx {
    async fn claim(&mut self, seqs: &[i64]) -> Result<Vec<EventId>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        // Only rows still present are deleted and returned: a redelivered seq returns nothing.
        // Two transactions claiming one seq at once: the second waits for the first's row lock,
        // then re-checks the row; it is gone if the first committed (the second gets nothing) and
        // still there if it rolled back (the second claims it). Either way one of them gets it.
        // Rows are locked in seq order (`ORDER BY ... FOR UPDATE`) whatever plan the DELETE gets,
        // so claimers of overlapping seqs cannot deadlock.
        let rows = sqlx::query(
            "WITH mine AS (SELECT seq FROM event_queue WHERE seq = ANY($1::int8[]) ORDER BY seq FOR UPDATE) \
             DELETE FROM event_queue q USING mine WHERE q.seq = mine.seq RETURNING q.seq, q.event_id",
        )
        .bind(seqs)
        .fetch_all(self.conn())
        .await
        .map_err(error::db)?;
        let mut claimed =
            rows.iter().map(|r| decode::claimed(&codec::cols(r))).collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, id)| id).collect())
    }

    async fn record_applied(&mut self, ev: &PlaybackEvent) -> Result<bool, StoreError> {
        // No profile lock: the primary key decides (a concurrent insert of the same id waits for
        // the first transaction, then does nothing).
        let r = sqlx::query(
            "INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, \
             occurred_at, occurred_at_raw, received_at, device_id, session_id, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'logged') \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(ev.event_id.0)
        .bind(ev.profile_id.0)
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
        self.lock(profile).await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            progress_columns!(),
            " FROM progress p WHERE p.profile_id = $1 AND p.title_id = $2"
        ))
        .bind(profile.0)
        .bind(title.as_str())
        .fetch_optional(self.conn())
        .await
        .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn save_progress(&mut self, rec: &ProgressRecord) -> Result<(), StoreError> {
        self.lock(rec.profile_id).await?;
        sqlx::query(
            "INSERT INTO progress (profile_id, title_id, position_ms, duration_ms, occurred_at, event_id, \
             finished, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (profile_id, title_id) DO UPDATE SET position_ms = excluded.position_ms, \
             duration_ms = excluded.duration_ms, occurred_at = excluded.occurred_at, \
             event_id = excluded.event_id, finished = excluded.finished, updated_at = excluded.updated_at",
        )
        .bind(rec.profile_id.0)
        .bind(rec.title_id.as_str())
        .bind(rec.position_ms)
        .bind(rec.duration_ms)
        .bind(rec.occurred_at.0)
        .bind(rec.event_id.0)
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
        self.lock(profile).await?;
        let q = match key {
            SessionKey::Explicit(_) => sqlx::query(concat!(
                "SELECT ",
                viewing_columns!(),
                " FROM viewings v WHERE v.profile_id = $1 AND v.title_id = $2 AND v.session_key = $3 \
                 ORDER BY v.started_at, v.id"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode()),
            SessionKey::Implicit(_) => sqlx::query(concat!(
                "SELECT ",
                viewing_columns!(),
                " FROM viewings v WHERE v.profile_id = $1 AND v.title_id = $2 AND v.session_key = $3 \
                 AND v.started_at <= $5 AND v.ended_at >= $4 ORDER BY v.started_at, v.id"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode())
            .bind(from.0)
            .bind(to.0),
        };
        let rows = q.fetch_all(self.conn()).await.map_err(error::db)?;
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
        self.lock(profile).await?;
        // Events a deleted play covered come back flagged `deleted` (they still link a late event
        // to the deleted viewing, which then stays deleted). Held events are included (an apply
        // may see a premiere's early events), dropped ones never. `device_id = $4` and
        // `device_id IS NULL` are separate statements so the group index serves both.
        let q = match key {
            SessionKey::Explicit(s) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                tombstoned!(),
                " FROM events e WHERE e.profile_id = $1 AND e.title_id = $2 AND e.session_id = $4 \
                 AND e.state <> 'dropped' ORDER BY e.occurred_at, e.event_id"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode())
            .bind(s.as_str()),
            SessionKey::Implicit(Some(device)) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                tombstoned!(),
                " FROM events e WHERE e.profile_id = $1 AND e.title_id = $2 AND e.session_id IS NULL \
                 AND e.device_id = $4 AND e.occurred_at BETWEEN $5 AND $6 \
                 AND e.state <> 'dropped' ORDER BY e.occurred_at, e.event_id"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode())
            .bind(device.as_str())
            .bind(from.0)
            .bind(to.0),
            SessionKey::Implicit(None) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                tombstoned!(),
                " FROM events e WHERE e.profile_id = $1 AND e.title_id = $2 AND e.session_id IS NULL \
                 AND e.device_id IS NULL AND e.occurred_at BETWEEN $4 AND $5 \
                 AND e.state <> 'dropped' ORDER BY e.occurred_at, e.event_id"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode())
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
        self.lock(profile).await?;
        // Newest first along the group index, the first row not in `except`; separate
        // statements per key shape so the index serves each (as in `events`).
        let except: Vec<Uuid> = except.iter().map(|e| e.0).collect();
        let q = match key {
            SessionKey::Explicit(s) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                tombstoned_since!(),
                " FROM events e WHERE e.profile_id = $1 AND e.title_id = $2 AND e.session_id = $4 \
                 AND e.state <> 'dropped' AND NOT (e.event_id = ANY($5::uuid[])) \
                 ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT 1"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode())
            .bind(s.as_str())
            .bind(except),
            SessionKey::Implicit(Some(device)) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                tombstoned_since!(),
                " FROM events e WHERE e.profile_id = $1 AND e.title_id = $2 AND e.session_id IS NULL \
                 AND e.device_id = $4 AND e.state <> 'dropped' AND NOT (e.event_id = ANY($5::uuid[])) \
                 ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT 1"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode())
            .bind(device.as_str())
            .bind(except),
            SessionKey::Implicit(None) => sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                tombstoned_since!(),
                " FROM events e WHERE e.profile_id = $1 AND e.title_id = $2 AND e.session_id IS NULL \
                 AND e.device_id IS NULL AND e.state <> 'dropped' AND NOT (e.event_id = ANY($4::uuid[])) \
                 ORDER BY e.occurred_at DESC, e.event_id DESC LIMIT 1"
            ))
            .bind(profile.0)
            .bind(title.as_str())
            .bind(key.encode())
            .bind(except),
        };
        let row = q.fetch_optional(self.conn()).await.map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn drop_events(&mut self, ids: &[EventId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        // No profile lock: dropping only ever moves an event to its final state, and the
        // application drops what it found invalid for the title, which any applier would drop too.
        let ids: Vec<Uuid> = ids.iter().map(|e| e.0).collect();
        sqlx::query("UPDATE events SET state = 'dropped' WHERE event_id = ANY($1::uuid[])")
            .bind(ids)
            .execute(self.conn())
            .await
            .map_err(error::db)?;
        Ok(())
    }

    /// Removes first, then upserts (one statement each). The upserted viewings' profiles are
    /// locked first. The port names removed viewings by id only, but the table is keyed and
    /// partitioned by profile: removal first looks in the profiles this transaction has locked
    /// (in the application, always where they are, as it removes what it just read), and only ids
    /// not found there are looked for across every partition.
    async fn replace_viewings(&mut self, remove: &[PlayId], upsert: &[Viewing]) -> Result<(), StoreError> {
        let profiles: BTreeSet<ProfileId> = upsert.iter().map(|v| v.profile_id).collect();
        for p in profiles {
            self.lock(p).await?;
        }
        if !remove.is_empty() {
            let ids: Vec<Uuid> = remove.iter().map(|p| p.0).collect();
            let locked: Vec<Uuid> = self.locked.iter().map(|p| p.0).collect();
            let gone: HashSet<Uuid> = sqlx::query_scalar(
                "DELETE FROM viewings WHERE profile_id = ANY($1::uuid[]) AND id = ANY($2::uuid[]) RETURNING id",
            )
            .bind(locked)
            .bind(&ids)
            .fetch_all(self.conn())
            .await
            .map_err(error::db)?
            .into_iter()
            .collect();
            let rest: Vec<Uuid> = ids.into_iter().filter(|id| !gone.contains(id)).collect();
            if !rest.is_empty() {
                sqlx::query("DELETE FROM viewings WHERE id = ANY($1::uuid[])")
                    .bind(rest)
                    .execute(self.conn())
                    .await
                    .map_err(error::db)?;
            }
        }
        // One statement cannot update a row twice: of two copies of one viewing, the last wins
        // (as two upserts in order would have it).
        let mut last: HashMap<(ProfileId, PlayId), usize> = HashMap::new();
        for (i, v) in upsert.iter().enumerate() {
            last.insert((v.profile_id, v.id), i);
        }
        let mut cols = ViewingColumns::default();
        for (i, v) in upsert.iter().enumerate() {
            if last.get(&(v.profile_id, v.id)) == Some(&i) {
                cols.push(v);
            }
        }
        cols.upsert(self.conn()).await
    }

    async fn recs_window(&mut self, profile: ProfileId, limit: u32) -> Result<Vec<TitleId>, StoreError> {
        self.lock(profile).await?;
        crate::recs::recs_window(self.conn(), profile, limit).await
    }

    async fn count_play(&mut self, count: &PlayCount) -> Result<bool, StoreError> {
        self.lock(count.profile_id).await?;
        crate::recs::count_play(self.conn(), count).await
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(error::db)
    }
}

#[async_trait]
impl ViewingStore for PgStore {
    async fn begin(&self) -> Result<Box<dyn ViewingTx>, StoreError> {
        Ok(Box::new(PgViewingTx { tx: self.begin_tx().await?, locked: BTreeSet::new() }))
    }

    async fn progress(&self, profile: ProfileId, title: &TitleId) -> Result<Option<ResumeRow>, StoreError> {
        let sql = format!("{RESUME_ROW_SELECT} WHERE p.profile_id = $1 AND p.title_id = $2");
        let row = sqlx::query(&sql)
            .bind(profile.0)
            .bind(title.as_str())
            .fetch_optional(&self.pool)
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
        let ids: Vec<&str> = titles.iter().map(TitleId::as_str).collect();
        let sql = format!("{RESUME_ROW_SELECT} WHERE p.profile_id = $1 AND p.title_id = ANY($2::text[])");
        let rows =
            sqlx::query(&sql).bind(profile.0).bind(ids).fetch_all(&self.pool).await.map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn recent_progress(
        &self,
        profile: ProfileId,
        since: Timestamp,
        limit: u32,
    ) -> Result<Vec<ResumeRow>, StoreError> {
        let sql = format!(
            "{RESUME_ROW_SELECT} WHERE p.profile_id = $1 AND p.occurred_at >= $2 \
             ORDER BY p.occurred_at DESC, p.event_id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(profile.0)
            .bind(since.0)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn plays(&self, profile: ProfileId, query: &PlayQuery) -> Result<Vec<Viewing>, StoreError> {
        // At most 8 statement texts (each optional filter on or off), each prepared once per
        // connection. `v.is_play` is spelled literally so the partial index `viewings_history`
        // applies; `v.profile_id = $1` prunes to one partition.
        let mut sql = String::from(concat!(
            "SELECT ",
            viewing_columns!(),
            " FROM viewings v WHERE v.profile_id = $1 AND v.is_play"
        ));
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        if query.before.is_some() {
            let (a, b) = (next(), next());
            sql.push_str(&format!(" AND (v.started_at, v.id) < (${a}, ${b})"));
        }
        if query.title_id.is_some() {
            sql.push_str(&format!(" AND v.title_id = ${}", next()));
        }
        if query.completed.is_some() {
            sql.push_str(&format!(" AND v.completed = ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY v.started_at DESC, v.id DESC LIMIT ${}", next()));
        let mut q = sqlx::query(&sql).bind(profile.0);
        if let Some((at, id)) = query.before {
            q = q.bind(at.0).bind(id.0);
        }
        if let Some(t) = &query.title_id {
            q = q.bind(t.as_str());
        }
        if let Some(c) = query.completed {
            q = q.bind(c);
        }
        let rows = q.bind(i64::from(query.limit)).fetch_all(&self.pool).await.map_err(error::db)?;
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
             WHERE v.profile_id = $1 AND v.is_play AND t.kind = 'episode' AND t.series_id IS NOT NULL \
             ORDER BY v.started_at DESC, v.id DESC"
        ))
        .bind(profile.0)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(|r| decode::series_play(&codec::cols(r))).collect()
    }

    async fn hide(&self, profile: ProfileId, title: &TitleId, at: Timestamp) -> Result<(), StoreError> {
        // One statement, no lock: applies never write hides, and GREATEST makes concurrent hides
        // commute.
        sqlx::query(
            "INSERT INTO hides (profile_id, title_id, hidden_at) VALUES ($1, $2, $3) \
             ON CONFLICT (profile_id, title_id) DO UPDATE SET hidden_at = GREATEST(hides.hidden_at, excluded.hidden_at)",
        )
        .bind(profile.0)
        .bind(title.as_str())
        .bind(at.0)
        .execute(&self.pool)
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
        // Under the profile's apply lock: an apply that read this viewing before the delete would
        // otherwise write it back after it (and miss the tombstone when grouping events). The
        // lock also keeps the play as the precondition saw it until the delete.
        let mut tx = self.begin_tx().await?;
        lock_profile(&mut tx, profile).await?;
        if let IfMatch::OneOf(_) = if_match {
            let row = sqlx::query(
                "SELECT ended_at, watched_ms, completed FROM viewings WHERE profile_id = $1 AND id = $2 AND is_play",
            )
            .bind(profile.0)
            .bind(play.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?
            .ok_or(StoreError::NotFound)?;
            let c = codec::cols(&row);
            let current =
                play_etag(Timestamp(c.i64("ended_at")?), c.i64("watched_ms")?, c.bool("completed")?);
            if !if_match.admits(&current) {
                return Err(StoreError::PreconditionFailed);
            }
        }
        // A backfilled play has no events: its tombstone marks just its start, which is what a
        // later backfill of the same play is checked against.
        let tombstoned = sqlx::query(
            "WITH gone AS ( \
               DELETE FROM viewings WHERE profile_id = $1 AND id = $2 AND is_play \
               RETURNING title_id, session_key, started_at, ended_at \
             ) \
             INSERT INTO tombstones (profile_id, title_id, session_key, from_ts, to_ts, created_at) \
             SELECT $1, title_id, session_key, started_at, \
               CASE WHEN session_key IS NULL THEN started_at ELSE ended_at END, $3 \
             FROM gone",
        )
        .bind(profile.0)
        .bind(play.0)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?
        .rows_affected();
        if tombstoned == 0 {
            return Err(StoreError::NotFound);
        }
        // Deletes win in the live counters too (decision 0108), in the same transaction.
        crate::recs::uncount_deleted_play(&mut tx, profile, play).await?;
        tx.commit().await.map_err(error::db)
    }

    async fn backfill(&self, plays: &[Viewing]) -> Result<Vec<BackfillOutcome>, StoreError> {
        if plays.is_empty() {
            return Ok(Vec::new());
        }
        // Check-then-insert, so under the profiles' apply locks (ascending, like appliers): two
        // replicas backfilling the same play at once store it once.
        let mut tx = self.begin_tx().await?;
        let profiles: BTreeSet<ProfileId> = plays.iter().map(|p| p.profile_id).collect();
        for p in &profiles {
            lock_profile(&mut tx, *p).await?;
        }
        // One statement: for each play, whether a deleted play started at that instant, and the
        // stored play (lowest id) it would duplicate.
        let n = plays.len();
        let mut profile_ids = Vec::with_capacity(n);
        let mut titles = Vec::with_capacity(n);
        let mut starts = Vec::with_capacity(n);
        for p in plays {
            profile_ids.push(p.profile_id.0);
            titles.push(p.title_id.as_str());
            starts.push(p.started_at.0);
        }
        let rows = sqlx::query(
            "SELECT k.ord, \
               EXISTS (SELECT 1 FROM tombstones t WHERE t.profile_id = k.profile_id \
                 AND t.title_id = k.title_id AND t.from_ts = k.started_at) AS deleted, \
               (SELECT v.id FROM viewings v WHERE v.profile_id = k.profile_id AND v.title_id = k.title_id \
                 AND v.started_at = k.started_at AND v.is_play ORDER BY v.id LIMIT 1) AS existing \
             FROM unnest($1::uuid[], $2::text[], $3::int8[]) WITH ORDINALITY \
               AS k(profile_id, title_id, started_at, ord) \
             ORDER BY k.ord",
        )
        .bind(profile_ids)
        .bind(titles)
        .bind(starts)
        .fetch_all(&mut *tx)
        .await
        .map_err(error::db)?;
        if rows.len() != n {
            return Err(StoreError::Internal(format!("backfill check returned {} rows for {n}", rows.len())));
        }

        let mut out = Vec::with_capacity(n);
        // Plays created earlier in this batch, by (profile, title, started_at).
        let mut created: HashMap<(ProfileId, &str, i64), PlayId> = HashMap::new();
        let mut cols = ViewingColumns::default();
        for (p, row) in plays.iter().zip(&rows) {
            let found = codec::cols(row);
            let deleted = found.bool("deleted")?;
            let existing = found.opt_uuid("existing")?;
            let key = (p.profile_id, p.title_id.as_str(), p.started_at.0);
            out.push(if deleted {
                BackfillOutcome::Deleted
            } else if let Some(id) = existing {
                BackfillOutcome::Duplicate(PlayId(id))
            } else if let Some(id) = created.get(&key) {
                BackfillOutcome::Duplicate(*id)
            } else {
                created.insert(key, p.id);
                cols.push(&Viewing { key: None, ..p.clone() });
                BackfillOutcome::Created(p.id)
            });
        }
        cols.insert(&mut tx).await?;
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
