//! The followers' feed on PostgreSQL: [`FeedStore`]. The same statements as SQLite's `feed.rs` in
//! this dialect (decision 0024), plus what many replicas need:
//!
//! - writes that change a profile's follower count lock that profile's `feed_profiles` row first
//!   (created if missing), so two racing follows of one edge count once (READ COMMITTED sees the
//!   first one's edge after the lock);
//! - a fan-out step takes its queue entry `FOR UPDATE SKIP LOCKED`: replicas work on different
//!   activities, and a step that fails leaves its entry for the next.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::feed::{Activity, FanoutMode, FollowState};
use playhead_core::ids::{ActivityId, ProfileId};
use playhead_core::ports::{ActivityRef, FanoutStep, FeedStore, FollowEdge, FollowSide};
use playhead_core::time::Timestamp;
use playhead_store_rows::{Columns, activity_columns, to_u64};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{PgStore, codec, error};

/// Lock `profile`'s feed row (creating it) for the rest of the transaction.
async fn lock_profile(conn: &mut PgConnection, profile: ProfileId) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO feed_profiles (profile_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(profile.0)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    sqlx::query("SELECT 1 FROM feed_profiles WHERE profile_id = $1 FOR UPDATE")
        .bind(profile.0)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    Ok(())
}

async fn add_followers(conn: &mut PgConnection, profile: ProfileId, delta: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE feed_profiles SET followers = GREATEST(followers + $2, 0) WHERE profile_id = $1")
        .bind(profile.0)
        .bind(delta)
        .execute(conn)
        .await
        .map_err(error::db)?;
    Ok(())
}

/// Remove one edge with the follower's inbox rows of the followee (the followee's row is locked
/// by the caller).
async fn remove_edge(
    conn: &mut PgConnection,
    follower: ProfileId,
    followee: ProfileId,
) -> Result<bool, StoreError> {
    let state: Option<String> =
        sqlx::query_scalar("DELETE FROM follows WHERE follower = $1 AND followee = $2 RETURNING state")
            .bind(follower.0)
            .bind(followee.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(error::db)?;
    if state.as_deref() == Some(FollowState::Following.as_str()) {
        add_followers(conn, followee, -1).await?;
    }
    sqlx::query("DELETE FROM feed_inbox WHERE reader = $1 AND actor = $2")
        .bind(follower.0)
        .bind(followee.0)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    Ok(state.is_some())
}

/// Keep only the newest `inbox_max` rows of each of `readers`.
async fn trim_inboxes(conn: &mut PgConnection, readers: &[Uuid], inbox_max: u32) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM feed_inbox WHERE (reader, at, activity_id) IN ( \
           SELECT reader, at, activity_id FROM ( \
             SELECT reader, at, activity_id, \
                    row_number() OVER (PARTITION BY reader ORDER BY at DESC, activity_id DESC) AS rn \
             FROM feed_inbox WHERE reader = ANY($1)) r \
           WHERE rn > $2)",
    )
    .bind(readers)
    .bind(i64::from(inbox_max))
    .execute(conn)
    .await
    .map_err(error::db)?;
    Ok(())
}

#[async_trait]
impl FeedStore for PgStore {
    async fn follow(
        &self,
        follower: ProfileId,
        followee: ProfileId,
        state: FollowState,
        at: Timestamp,
        inbox_max: u32,
    ) -> Result<FollowState, StoreError> {
        let mut tx = self.begin_tx().await?;
        lock_profile(&mut tx, followee).await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT state FROM follows WHERE follower = $1 AND followee = $2")
                .bind(follower.0)
                .bind(followee.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        let current = current.as_deref().and_then(FollowState::parse);
        if current == Some(FollowState::Following) || current == Some(state) {
            return Ok(current.unwrap_or(state));
        }
        sqlx::query(
            "INSERT INTO follows (follower, followee, state, since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (follower, followee) DO UPDATE SET state = excluded.state, since = excluded.since",
        )
        .bind(follower.0)
        .bind(followee.0)
        .bind(state.as_str())
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if state == FollowState::Following {
            add_followers(&mut tx, followee, 1).await?;
            sqlx::query(
                "INSERT INTO feed_inbox (reader, at, activity_id, actor) \
                 SELECT $1, at, id, actor FROM activities WHERE actor = $2 \
                 ORDER BY at DESC, id DESC LIMIT $3 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(follower.0)
            .bind(followee.0)
            .bind(i64::from(inbox_max))
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
            trim_inboxes(&mut tx, &[follower.0], inbox_max).await?;
        }
        tx.commit().await.map_err(error::db)?;
        Ok(state)
    }

    async fn unfollow(&self, follower: ProfileId, followee: ProfileId) -> Result<bool, StoreError> {
        let mut tx = self.begin_tx().await?;
        lock_profile(&mut tx, followee).await?;
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
            sqlx::query_scalar("SELECT state FROM follows WHERE follower = $1 AND followee = $2")
                .bind(follower.0)
                .bind(followee.0)
                .fetch_optional(&self.pool)
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
                 WHERE follower = $1 AND state = $2 AND followee > $3 ORDER BY followee LIMIT $4"
            }
            FollowSide::Followers => {
                "SELECT follower, followee, state, since FROM follows \
                 WHERE followee = $1 AND state = $2 AND follower > $3 ORDER BY follower LIMIT $4"
            }
        };
        let rows = sqlx::query(sql)
            .bind(profile.0)
            .bind(state.as_str())
            .bind(after.map_or(Uuid::nil(), |p| p.0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn follower_count(&self, profile: ProfileId) -> Result<u64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT followers FROM feed_profiles WHERE profile_id = $1")
            .bind(profile.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(error::db)?;
        Ok(to_u64(n.unwrap_or(0)))
    }

    async fn block(&self, blocker: ProfileId, blocked: ProfileId, at: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        // Both counts may change: lock in id order so two crossing blocks cannot deadlock.
        let (first, second) = if blocker < blocked { (blocker, blocked) } else { (blocked, blocker) };
        lock_profile(&mut tx, first).await?;
        lock_profile(&mut tx, second).await?;
        sqlx::query("INSERT INTO blocks (blocker, blocked, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(blocker.0)
            .bind(blocked.0)
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
        let n = sqlx::query("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2")
            .bind(blocker.0)
            .bind(blocked.0)
            .execute(&self.pool)
            .await
            .map_err(error::db)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn blocked_either_way(&self, a: ProfileId, b: ProfileId) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker = $1 AND blocked = $2) \
                                                 OR (blocker = $2 AND blocked = $1))",
        )
        .bind(a.0)
        .bind(b.0)
        .fetch_one(&self.pool)
        .await
        .map_err(error::db)
    }

    async fn blocked_by(&self, blocker: ProfileId) -> Result<Vec<(ProfileId, Timestamp)>, StoreError> {
        let rows = sqlx::query("SELECT blocked, at FROM blocks WHERE blocker = $1 ORDER BY blocked")
            .bind(blocker.0)
            .fetch_all(&self.pool)
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
            "INSERT INTO feed_profiles (profile_id, share_activity) VALUES ($1, $2) \
             ON CONFLICT (profile_id) DO UPDATE SET share_activity = excluded.share_activity",
        )
        .bind(profile.0)
        .bind(share)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn share_activity(&self, profile: ProfileId) -> Result<bool, StoreError> {
        let share: Option<bool> =
            sqlx::query_scalar("SELECT share_activity FROM feed_profiles WHERE profile_id = $1")
                .bind(profile.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(error::db)?;
        Ok(share.unwrap_or(true))
    }

    async fn add_activities(&self, activities: &[Activity]) -> Result<u64, StoreError> {
        if activities.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_tx().await?;
        let mut added = 0;
        for a in activities {
            let n = sqlx::query(
                "INSERT INTO activities \
                   (id, actor, kind, title_id, source_title, play_id, subject_key, maturity, at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                 WHERE $6::uuid IS NULL \
                    OR EXISTS (SELECT 1 FROM viewings WHERE profile_id = $2 AND id = $6 AND is_play) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(a.id.0)
            .bind(a.actor.0)
            .bind(a.kind.as_str())
            .bind(a.title_id.as_str())
            .bind(a.source_title.as_str())
            .bind(a.play_id.map(|p| p.0))
            .bind(&a.subject_key)
            .bind(i32::from(a.maturity))
            .bind(a.at.0)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?
            .rows_affected();
            if n > 0 {
                sqlx::query("INSERT INTO feed_fanout (activity_id) VALUES ($1)")
                    .bind(a.id.0)
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
            ActivityRef::Play(p) => ("actor = $1 AND play_id = $2::uuid", vec![p.to_string()]),
            ActivityRef::Title(t) => {
                ("actor = $1 AND (title_id = $2 OR source_title = $2)", vec![t.to_string()])
            }
            ActivityRef::Subject(k, key) => {
                ("actor = $1 AND kind = $2 AND subject_key = $3", vec![k.as_str().to_owned(), key.clone()])
            }
        };
        let mut tx = self.begin_tx().await?;
        let mut n = 0;
        for sql in [
            format!("DELETE FROM feed_inbox WHERE activity_id IN (SELECT id FROM activities WHERE {cond})"),
            format!("DELETE FROM feed_fanout WHERE activity_id IN (SELECT id FROM activities WHERE {cond})"),
            format!("DELETE FROM activities WHERE {cond}"),
        ] {
            let mut q = sqlx::query(&sql).bind(actor.0);
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
        let mut tx = self.begin_tx().await?;
        let head = sqlx::query(
            "SELECT seq, activity_id, after FROM feed_fanout ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?;
        let Some(head) = head else { return Ok(None) };
        let c = codec::cols(&head);
        let seq = c.i64("seq")?;
        let activity = ActivityId(c.uuid("activity_id")?);
        let after = c.opt_uuid("after")?.unwrap_or(Uuid::nil());
        let finish = |mode, rows| FanoutStep { activity, mode, rows, done: true };
        let author = sqlx::query(
            "SELECT a.actor, a.at, p.followers FROM activities a \
             LEFT JOIN feed_profiles p ON p.profile_id = a.actor WHERE a.id = $1",
        )
        .bind(activity.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?;
        let delete = "DELETE FROM feed_fanout WHERE seq = $1";
        let Some(author) = author else {
            sqlx::query(delete).bind(seq).execute(&mut *tx).await.map_err(error::db)?;
            tx.commit().await.map_err(error::db)?;
            return Ok(Some(finish(FanoutMode::Push, 0)));
        };
        let c = codec::cols(&author);
        let actor = c.uuid("actor")?;
        let at = c.i64("at")?;
        let followers = to_u64(c.opt_i64("followers")?.unwrap_or(0));
        if FanoutMode::choose(followers, threshold) == FanoutMode::Pull {
            sqlx::query(delete).bind(seq).execute(&mut *tx).await.map_err(error::db)?;
            tx.commit().await.map_err(error::db)?;
            return Ok(Some(finish(FanoutMode::Pull, 0)));
        }
        let readers: Vec<Uuid> = sqlx::query_scalar(
            "SELECT follower FROM follows WHERE followee = $1 AND state = 'following' AND follower > $2 \
             ORDER BY follower LIMIT $3",
        )
        .bind(actor)
        .bind(after)
        .bind(i64::from(max_rows))
        .fetch_all(&mut *tx)
        .await
        .map_err(error::db)?;
        let rows = sqlx::query(
            "INSERT INTO feed_inbox (reader, at, activity_id, actor) \
             SELECT r, $2, $3, $4 FROM unnest($1::uuid[]) AS r ON CONFLICT DO NOTHING",
        )
        .bind(&readers)
        .bind(at)
        .bind(activity.0)
        .bind(actor)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?
        .rows_affected();
        trim_inboxes(&mut tx, &readers, inbox_max).await?;
        let done = readers.len() < max_rows as usize;
        if done {
            sqlx::query("UPDATE activities SET pushed = true WHERE id = $1")
                .bind(activity.0)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            sqlx::query(delete).bind(seq).execute(&mut *tx).await.map_err(error::db)?;
        } else {
            sqlx::query("UPDATE feed_fanout SET after = $2 WHERE seq = $1")
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
            .fetch_one(&self.pool)
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
        let (at, id) = before.map_or((i64::MAX, Uuid::max()), |(t, a)| (t.0, a.0));
        let rows = sqlx::query(concat!(
            "WITH cand AS ( \
               (SELECT i.activity_id AS id FROM feed_inbox i JOIN activities a ON a.id = i.activity_id \
                WHERE i.reader = $1 AND (i.at < $3 OR (i.at = $3 AND i.activity_id < $4)) \
                  AND a.maturity <= $2 \
                  AND EXISTS (SELECT 1 FROM follows f WHERE f.follower = $1 AND f.followee = i.actor \
                              AND f.state = 'following') \
                  AND NOT EXISTS (SELECT 1 FROM feed_profiles p WHERE p.profile_id = i.actor \
                                  AND NOT p.share_activity) \
                ORDER BY i.at DESC, i.activity_id DESC LIMIT $5) \
               UNION \
               SELECT y.id FROM follows f CROSS JOIN LATERAL ( \
                   SELECT x.id FROM activities x WHERE x.actor = f.followee AND NOT x.pushed \
                     AND (x.at < $3 OR (x.at = $3 AND x.id < $4)) AND x.maturity <= $2 \
                   ORDER BY x.at DESC, x.id DESC LIMIT $5) y \
               WHERE f.follower = $1 AND f.state = 'following' \
                 AND NOT EXISTS (SELECT 1 FROM feed_profiles p WHERE p.profile_id = f.followee \
                                 AND NOT p.share_activity)) \
             SELECT ",
            activity_columns!(),
            " FROM activities a WHERE a.id IN (SELECT id FROM cand) ORDER BY a.at DESC, a.id DESC LIMIT $5"
        ))
        .bind(reader.0)
        .bind(i32::from(maturity_limit.unwrap_or(u8::MAX)))
        .bind(at)
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }
}
