//! The followers' feed on SQLite: [`FeedStore`] (follow graph, activities, inboxes, the fan-out
//! queue). Statements mirror the PostgreSQL adapter's `feed.rs` (decision 0024: per dialect).
//!
//! The rule: every multi-statement write is one `BEGIN IMMEDIATE` transaction on the writer, so a
//! follower count never disagrees with the edges it counts, and a fan-out step's inbox rows, trim
//! and queue progress commit together.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::feed::{Activity, FanoutMode, FollowState};
use playhead_core::ids::{ActivityId, ProfileId};
use playhead_core::ports::{ActivityRef, FanoutStep, FeedStore, FollowEdge, FollowSide};
use playhead_core::time::Timestamp;
use playhead_store_rows::{Columns, activity_columns, to_u64};
use sqlx::SqliteConnection;
use uuid::Uuid;

use crate::{SqliteStore, codec, error};

/// Remove one follow edge (any state) with the follower's inbox rows of the followee; keeps the
/// followee's follower count. Returns whether an edge existed.
async fn remove_edge(
    conn: &mut SqliteConnection,
    follower: ProfileId,
    followee: ProfileId,
) -> Result<bool, StoreError> {
    let state: Option<String> =
        sqlx::query_scalar("DELETE FROM follows WHERE follower = ?1 AND followee = ?2 RETURNING state")
            .bind(follower.to_string())
            .bind(followee.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(error::db)?;
    if state.as_deref() == Some(FollowState::Following.as_str()) {
        add_followers(conn, followee, -1).await?;
    }
    sqlx::query("DELETE FROM feed_inbox WHERE reader = ?1 AND actor = ?2")
        .bind(follower.to_string())
        .bind(followee.to_string())
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    Ok(state.is_some())
}

async fn add_followers(
    conn: &mut SqliteConnection,
    profile: ProfileId,
    delta: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO feed_profiles (profile_id, followers) VALUES (?1, max(?2, 0)) \
         ON CONFLICT (profile_id) DO UPDATE SET followers = max(followers + ?2, 0)",
    )
    .bind(profile.to_string())
    .bind(delta)
    .execute(conn)
    .await
    .map_err(error::db)?;
    Ok(())
}

/// Keep only the newest `inbox_max` rows of each of `readers` (a JSON array of ids).
async fn trim_inboxes(
    conn: &mut SqliteConnection,
    readers_json: &str,
    inbox_max: u32,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM feed_inbox WHERE (reader, at, activity_id) IN ( \
           SELECT reader, at, activity_id FROM ( \
             SELECT reader, at, activity_id, \
                    row_number() OVER (PARTITION BY reader ORDER BY at DESC, activity_id DESC) AS rn \
             FROM feed_inbox WHERE reader IN (SELECT value FROM json_each(?1))) \
           WHERE rn > ?2)",
    )
    .bind(readers_json)
    .bind(i64::from(inbox_max))
    .execute(conn)
    .await
    .map_err(error::db)?;
    Ok(())
}

fn json_ids(ids: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(ids).map_err(|e| StoreError::Internal(format!("encoding ids: {e}")))
}

#[async_trait]
impl FeedStore for SqliteStore {
    async fn follow(
        &self,
        follower: ProfileId,
        followee: ProfileId,
        state: FollowState,
        at: Timestamp,
        inbox_max: u32,
    ) -> Result<FollowState, StoreError> {
        let mut tx = self.begin_write().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT state FROM follows WHERE follower = ?1 AND followee = ?2")
                .bind(follower.to_string())
                .bind(followee.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        let current = current.as_deref().and_then(FollowState::parse);
        if current == Some(FollowState::Following) || current == Some(state) {
            return Ok(current.unwrap_or(state));
        }
        sqlx::query(
            "INSERT INTO follows (follower, followee, state, since) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (follower, followee) DO UPDATE SET state = excluded.state, since = excluded.since",
        )
        .bind(follower.to_string())
        .bind(followee.to_string())
        .bind(state.as_str())
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if state == FollowState::Following {
            add_followers(&mut tx, followee, 1).await?;
            // A new follower sees the followee's recent activities at once, pushed or pulled.
            sqlx::query(
                "INSERT INTO feed_inbox (reader, at, activity_id, actor) \
                 SELECT ?1, at, id, actor FROM activities WHERE actor = ?2 \
                 ORDER BY at DESC, id DESC LIMIT ?3 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(follower.to_string())
            .bind(followee.to_string())
            .bind(i64::from(inbox_max))
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
            trim_inboxes(&mut tx, &json_ids(&[follower.to_string()])?, inbox_max).await?;
        }
        tx.commit().await.map_err(error::db)?;
        Ok(state)
    }

    async fn unfollow(&self, follower: ProfileId, followee: ProfileId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let removed = remove_edge(&mut tx, follower, followee).await?;
        tx.commit().await.map_err(error::db)?;
        Ok(removed)
    }

    async fn follow_state(
        &self,
        follower: ProfileId,
        followee: ProfileId,
    ) -> Result<Option<FollowState>, StoreError> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM follows WHERE follower = ?1 AND followee = ?2")
                .bind(follower.to_string())
                .bind(followee.to_string())
                .fetch_optional(&self.reader)
                .await
                .map_err(error::db)?;
        Ok(state.as_deref().and_then(FollowState::parse))
    }

    async fn follows(
        &self,
        profile: ProfileId,
        side: FollowSide,
        state: FollowState,
        after: Option<ProfileId>,
        limit: u32,
    ) -> Result<Vec<FollowEdge>, StoreError> {
        let sql = match side {
            FollowSide::Following => {
                "SELECT follower, followee, state, since FROM follows \
                 WHERE follower = ?1 AND state = ?2 AND followee > ?3 ORDER BY followee LIMIT ?4"
            }
            FollowSide::Followers => {
                "SELECT follower, followee, state, since FROM follows \
                 WHERE followee = ?1 AND state = ?2 AND follower > ?3 ORDER BY follower LIMIT ?4"
            }
        };
        let rows = sqlx::query(sql)
            .bind(profile.to_string())
            .bind(state.as_str())
            .bind(after.map_or_else(String::new, |p| p.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn follower_count(&self, profile: ProfileId) -> Result<u64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT followers FROM feed_profiles WHERE profile_id = ?1")
            .bind(profile.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        Ok(to_u64(n.unwrap_or(0)))
    }

    async fn block(&self, blocker: ProfileId, blocked: ProfileId, at: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO blocks (blocker, blocked, at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
            .bind(blocker.to_string())
            .bind(blocked.to_string())
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        remove_edge(&mut tx, blocker, blocked).await?;
        remove_edge(&mut tx, blocked, blocker).await?;
        tx.commit().await.map_err(error::db)?;
        Ok(())
    }

    async fn unblock(&self, blocker: ProfileId, blocked: ProfileId) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM blocks WHERE blocker = ?1 AND blocked = ?2")
            .bind(blocker.to_string())
            .bind(blocked.to_string())
            .execute(&self.writer)
            .await
            .map_err(error::db)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn blocked_either_way(&self, a: ProfileId, b: ProfileId) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker = ?1 AND blocked = ?2) \
                                                 OR (blocker = ?2 AND blocked = ?1))",
        )
        .bind(a.to_string())
        .bind(b.to_string())
        .fetch_one(&self.reader)
        .await
        .map_err(error::db)
    }

    async fn blocked_by(&self, blocker: ProfileId) -> Result<Vec<(ProfileId, Timestamp)>, StoreError> {
        let rows = sqlx::query("SELECT blocked, at FROM blocks WHERE blocker = ?1 ORDER BY blocked")
            .bind(blocker.to_string())
            .fetch_all(&self.reader)
            .await
            .map_err(error::db)?;
        rows.iter()
            .map(|r| {
                let c = codec::cols(r);
                Ok((ProfileId(c.uuid("blocked")?), c.timestamp("at")?))
            })
            .collect()
    }

    async fn set_share_activity(&self, profile: ProfileId, share: bool) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO feed_profiles (profile_id, share_activity) VALUES (?1, ?2) \
             ON CONFLICT (profile_id) DO UPDATE SET share_activity = excluded.share_activity",
        )
        .bind(profile.to_string())
        .bind(share)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn share_activity(&self, profile: ProfileId) -> Result<bool, StoreError> {
        let share: Option<bool> =
            sqlx::query_scalar("SELECT share_activity FROM feed_profiles WHERE profile_id = ?1")
                .bind(profile.to_string())
                .fetch_optional(&self.reader)
                .await
                .map_err(error::db)?;
        Ok(share.unwrap_or(true))
    }

    async fn add_activities(&self, activities: &[Activity]) -> Result<u64, StoreError> {
        if activities.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut added = 0;
        for a in activities {
            let n = sqlx::query(
                "INSERT INTO activities \
                   (id, actor, kind, title_id, source_title, play_id, subject_key, maturity, at) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 \
                 WHERE ?6 IS NULL OR EXISTS (SELECT 1 FROM viewings WHERE id = ?6 AND is_play = 1) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(a.id.to_string())
            .bind(a.actor.to_string())
            .bind(a.kind.as_str())
            .bind(a.title_id.as_str())
            .bind(a.source_title.as_str())
            .bind(a.play_id.map(|p| p.to_string()))
            .bind(&a.subject_key)
            .bind(i64::from(a.maturity))
            .bind(a.at.0)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?
            .rows_affected();
            if n > 0 {
                sqlx::query("INSERT INTO feed_fanout (activity_id) VALUES (?1)")
                    .bind(a.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(error::db)?;
                added += 1;
            }
        }
        tx.commit().await.map_err(error::db)?;
        Ok(added)
    }

    async fn remove_activities(&self, actor: ProfileId, which: &ActivityRef) -> Result<u64, StoreError> {
        // One of three constant conditions, never client input; every parameter is bound.
        let (cond, args): (&str, Vec<String>) = match which {
            ActivityRef::Play(p) => ("actor = ?1 AND play_id = ?2", vec![p.to_string()]),
            ActivityRef::Title(t) => {
                ("actor = ?1 AND (title_id = ?2 OR source_title = ?2)", vec![t.to_string()])
            }
            ActivityRef::Subject(k, key) => {
                ("actor = ?1 AND kind = ?2 AND subject_key = ?3", vec![k.as_str().to_owned(), key.clone()])
            }
        };
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for sql in [
            format!("DELETE FROM feed_inbox WHERE activity_id IN (SELECT id FROM activities WHERE {cond})"),
            format!("DELETE FROM feed_fanout WHERE activity_id IN (SELECT id FROM activities WHERE {cond})"),
            format!("DELETE FROM activities WHERE {cond}"),
        ] {
            let mut q = sqlx::query(&sql).bind(actor.to_string());
            for a in &args {
                q = q.bind(a);
            }
            n = q.execute(&mut *tx).await.map_err(error::db)?.rows_affected();
        }
        tx.commit().await.map_err(error::db)?;
        Ok(n)
    }

    async fn fanout_step(
        &self,
        threshold: u64,
        inbox_max: u32,
        max_rows: u32,
    ) -> Result<Option<FanoutStep>, StoreError> {
        let mut tx = self.begin_write().await?;
        let head = sqlx::query(
            "SELECT f.seq, f.activity_id, f.after, a.actor, a.at, p.followers \
             FROM feed_fanout f LEFT JOIN activities a ON a.id = f.activity_id \
             LEFT JOIN feed_profiles p ON p.profile_id = a.actor \
             ORDER BY f.seq LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?;
        let Some(head) = head else { return Ok(None) };
        let c = codec::cols(&head);
        let seq = c.i64("seq")?;
        let activity = ActivityId(c.uuid("activity_id")?);
        let finish = |mode, rows| FanoutStep { activity, mode, rows, done: true };
        let Some(actor) = c.opt_uuid("actor")?.map(ProfileId) else {
            sqlx::query("DELETE FROM feed_fanout WHERE seq = ?1")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            tx.commit().await.map_err(error::db)?;
            return Ok(Some(finish(FanoutMode::Push, 0)));
        };
        let followers = to_u64(c.opt_i64("followers")?.unwrap_or(0));
        let after = c.opt_string("after")?.unwrap_or_default();
        let at = c.i64("at")?;
        if FanoutMode::choose(followers, threshold) == FanoutMode::Pull {
            // Left unpushed: readers pull it. Inbox rows an earlier push step wrote stay (a feed
            // shows each activity once).
            sqlx::query("DELETE FROM feed_fanout WHERE seq = ?1")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            tx.commit().await.map_err(error::db)?;
            return Ok(Some(finish(FanoutMode::Pull, 0)));
        }
        let readers: Vec<String> = sqlx::query_scalar(
            "SELECT follower FROM follows WHERE followee = ?1 AND state = 'following' AND follower > ?2 \
             ORDER BY follower LIMIT ?3",
        )
        .bind(actor.to_string())
        .bind(&after)
        .bind(i64::from(max_rows))
        .fetch_all(&mut *tx)
        .await
        .map_err(error::db)?;
        let json = json_ids(&readers)?;
        let rows = sqlx::query(
            "INSERT INTO feed_inbox (reader, at, activity_id, actor) \
             SELECT value, ?2, ?3, ?4 FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING",
        )
        .bind(&json)
        .bind(at)
        .bind(activity.to_string())
        .bind(actor.to_string())
        .execute(&mut *tx)
        .await
        .map_err(error::db)?
        .rows_affected();
        trim_inboxes(&mut tx, &json, inbox_max).await?;
        let done = readers.len() < max_rows as usize;
        if done {
            sqlx::query("UPDATE activities SET pushed = 1 WHERE id = ?1")
                .bind(activity.to_string())
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            sqlx::query("DELETE FROM feed_fanout WHERE seq = ?1")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        } else {
            sqlx::query("UPDATE feed_fanout SET after = ?2 WHERE seq = ?1")
                .bind(seq)
                .bind(readers.last())
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        tx.commit().await.map_err(error::db)?;
        Ok(Some(FanoutStep { activity, mode: FanoutMode::Push, rows, done }))
    }

    async fn fanout_backlog(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM feed_fanout")
            .fetch_one(&self.reader)
            .await
            .map_err(error::db)?;
        Ok(to_u64(n))
    }

    async fn feed(
        &self,
        reader: ProfileId,
        maturity_limit: Option<u8>,
        before: Option<(Timestamp, ActivityId)>,
        limit: u32,
    ) -> Result<Vec<Activity>, StoreError> {
        let (at, id) = before.map_or((i64::MAX, Uuid::max().to_string()), |(t, a)| (t.0, a.to_string()));
        // Two candidate sets, each already filtered and cut to `limit` (so a page never costs
        // more than 2 x limit rows per pulled author): the inbox, and per followed author its
        // newest activities not fully pushed. Then the union, newest first.
        let rows = sqlx::query(concat!(
            "WITH cand AS ( \
               SELECT activity_id AS id FROM ( \
                 SELECT i.activity_id FROM feed_inbox i JOIN activities a ON a.id = i.activity_id \
                 WHERE i.reader = ?1 AND (i.at < ?3 OR (i.at = ?3 AND i.activity_id < ?4)) \
                   AND a.maturity <= ?2 \
                   AND EXISTS (SELECT 1 FROM follows f WHERE f.follower = ?1 AND f.followee = i.actor \
                               AND f.state = 'following') \
                   AND NOT EXISTS (SELECT 1 FROM feed_profiles p WHERE p.profile_id = i.actor \
                                   AND p.share_activity = 0) \
                 ORDER BY i.at DESC, i.activity_id DESC LIMIT ?5) \
               UNION \
               SELECT x.id FROM follows f JOIN activities x ON x.id IN ( \
                   SELECT y.id FROM activities y WHERE y.actor = f.followee AND y.pushed = 0 \
                     AND (y.at < ?3 OR (y.at = ?3 AND y.id < ?4)) AND y.maturity <= ?2 \
                   ORDER BY y.at DESC, y.id DESC LIMIT ?5) \
               WHERE f.follower = ?1 AND f.state = 'following' \
                 AND NOT EXISTS (SELECT 1 FROM feed_profiles p WHERE p.profile_id = f.followee \
                                 AND p.share_activity = 0)) \
             SELECT ",
            activity_columns!(),
            " FROM activities a WHERE a.id IN (SELECT id FROM cand) ORDER BY a.at DESC, a.id DESC LIMIT ?5"
        ))
        .bind(reader.to_string())
        .bind(i64::from(maturity_limit.unwrap_or(u8::MAX)))
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }
}
