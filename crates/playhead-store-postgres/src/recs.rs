//! Recommendation state: [`RecsStore`] (training reads, feedback, impressions, counter reads)
//! and the apply transaction's counter writes ([`count_play`], [`recs_window`]).
//!
//! The rules: counters change only inside an apply transaction, together with the play id that
//! caused them (`recs_counted_plays`), so a redelivered play adds nothing. Pair rows are shared
//! between profiles, so one statement writes all of a play's pairs in `(a, b)` order: two appliers
//! counting overlapping pairs lock them in the same order and cannot deadlock.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::{PlayId, ProfileId, TitleId};
use playhead_core::ports::{
    CoWatchCounts, Feedback, Impressions, ModelVersion, RecsStore, StoredModel, Viewing,
};
use playhead_core::rules::recs::{PlayCount, TRENDING_HALF_LIFE_MS, uncount_play};
use playhead_core::time::Timestamp;
use playhead_store_rows::{Columns, decode, to_u32};
use sqlx::PgConnection;

use crate::codec::{self, viewing_columns};
use crate::{PgStore, error};

/// Items of the profile's most recent counted plays, most recent last.
pub(crate) async fn recs_window(
    conn: &mut PgConnection,
    profile: ProfileId,
    limit: u32,
) -> Result<Vec<TitleId>, StoreError> {
    let rows = sqlx::query(
        "SELECT item FROM recs_counted_plays WHERE profile_id = $1 \
         ORDER BY at DESC, play_id DESC LIMIT $2",
    )
    .bind(profile.0)
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await
    .map_err(error::db)?;
    let mut items = rows.iter().map(|r| codec::cols(r).title_id("item")).collect::<Result<Vec<_>, _>>()?;
    items.reverse();
    Ok(items)
}

/// Record the play id; when new, add its co-watch pairs and its trending vote.
pub(crate) async fn count_play(conn: &mut PgConnection, c: &PlayCount) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO recs_counted_plays (play_id, profile_id, item, at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (play_id) DO NOTHING",
    )
    .bind(c.play_id.0)
    .bind(c.profile_id.0)
    .bind(c.item.as_str())
    .bind(c.at.0)
    .execute(&mut *conn)
    .await
    .map_err(error::db)?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    let mut a: Vec<&str> = Vec::new();
    let mut b: Vec<&str> = Vec::new();
    if c.counts {
        a.push(c.item.as_str());
        b.push("");
    }
    for p in &c.partners {
        a.extend([c.item.as_str(), p.as_str()]);
        b.extend([p.as_str(), c.item.as_str()]);
    }
    if !a.is_empty() {
        sqlx::query(
            "INSERT INTO recs_cowatch (a, b, count) \
             SELECT a, b, 1 FROM unnest($1::text[], $2::text[]) AS x(a, b) ORDER BY a, b \
             ON CONFLICT (a, b) DO UPDATE SET count = recs_cowatch.count + 1",
        )
        .bind(&a)
        .bind(&b)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    }
    if !c.counts {
        return Ok(true);
    }
    sqlx::query(
        "INSERT INTO recs_trending (item, shard, weight) VALUES ($1, $2, $3) \
         ON CONFLICT (item, shard) DO UPDATE SET weight = recs_trending.weight + excluded.weight",
    )
    .bind(c.item.as_str())
    .bind(i32::try_from(c.shard).unwrap_or(0))
    .bind(c.weight)
    .execute(&mut *conn)
    .await
    .map_err(error::db)?;
    Ok(true)
}

/// The profile's counted plays `(play, item, at)`, the input of the uncount rules.
pub(crate) async fn counted_plays(
    conn: &mut PgConnection,
    profile: ProfileId,
) -> Result<Vec<(PlayId, TitleId, Timestamp)>, StoreError> {
    let rows = sqlx::query("SELECT play_id, item, at FROM recs_counted_plays WHERE profile_id = $1")
        .bind(profile.0)
        .fetch_all(conn)
        .await
        .map_err(error::db)?;
    rows.iter()
        .map(|r| {
            let c = codec::cols(r);
            Ok((PlayId(c.uuid("play_id")?), c.title_id("item")?, c.timestamp("at")?))
        })
        .collect()
}

/// Take a deleted play out of the live counters, in the deleting transaction (which holds the
/// profile's apply lock): the change the core's rule computes ([`uncount_play`]), then forget its
/// play id. A play never counted changes nothing. Pair rows are written in `(a, b)` order, as
/// [`count_play`] writes them, so the two never deadlock.
pub(crate) async fn uncount_deleted_play(
    conn: &mut PgConnection,
    profile: ProfileId,
    play: PlayId,
) -> Result<(), StoreError> {
    let plays = counted_plays(&mut *conn, profile).await?;
    if !plays.iter().any(|p| p.0 == play) {
        return Ok(());
    }
    let d = uncount_play(&plays, play, TRENDING_HALF_LIFE_MS);
    if !d.pairs.is_empty() {
        let a: Vec<&str> = d.pairs.iter().map(|p| p.0.as_str()).collect();
        let b: Vec<&str> = d.pairs.iter().map(|p| p.1.as_str()).collect();
        let n: Vec<i64> = d.pairs.iter().map(|p| p.2).collect();
        // A missing row takes the change as is and, when it is a decrease, is removed below.
        sqlx::query(
            "INSERT INTO recs_cowatch (a, b, count) \
             SELECT a, b, n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(a, b, n) ORDER BY a, b \
             ON CONFLICT (a, b) DO UPDATE SET count = GREATEST(recs_cowatch.count + EXCLUDED.count, 0)",
        )
        .bind(&a)
        .bind(&b)
        .bind(&n)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
        sqlx::query(
            "DELETE FROM recs_cowatch c USING unnest($1::text[], $2::text[]) AS x(a, b) \
             WHERE c.a = x.a AND c.b = x.b AND c.count <= 0",
        )
        .bind(&a)
        .bind(&b)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    }
    if !d.votes.is_empty() {
        let items: Vec<&str> = d.votes.iter().map(|v| v.0.as_str()).collect();
        let shards: Vec<i32> = d.votes.iter().map(|v| i32::try_from(v.1).unwrap_or(0)).collect();
        let weights: Vec<f64> = d.votes.iter().map(|v| v.2).collect();
        // As for pairs: a missing row taking a decrease is removed right after.
        sqlx::query(
            "INSERT INTO recs_trending (item, shard, weight) \
             SELECT item, shard, w FROM unnest($1::text[], $2::int[], $3::float8[]) AS x(item, shard, w) \
             ORDER BY item, shard \
             ON CONFLICT (item, shard) DO UPDATE SET weight = GREATEST(recs_trending.weight + EXCLUDED.weight, 0)",
        )
        .bind(&items)
        .bind(&shards)
        .bind(&weights)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
        sqlx::query(
            "DELETE FROM recs_trending t USING unnest($1::text[], $2::int[]) AS x(item, shard) \
             WHERE t.item = x.item AND t.shard = x.shard AND t.weight <= 0",
        )
        .bind(&items)
        .bind(&shards)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    }
    sqlx::query("DELETE FROM recs_counted_plays WHERE play_id = $1")
        .bind(play.0)
        .execute(&mut *conn)
        .await
        .map_err(error::db)?;
    Ok(())
}

#[async_trait]
impl RecsStore for PgStore {
    async fn training_plays(
        &self,
        after: Option<(ProfileId, PlayId)>,
        limit: u32,
    ) -> Result<Vec<Viewing>, StoreError> {
        // The one scan across every partition, by design: training reads everything.
        let rows = match after {
            None => sqlx::query(concat!(
                "SELECT ",
                viewing_columns!(),
                " FROM viewings v WHERE v.is_play ORDER BY v.profile_id, v.id LIMIT $1"
            ))
            .bind(i64::from(limit)),
            Some((p, id)) => sqlx::query(concat!(
                "SELECT ",
                viewing_columns!(),
                " FROM viewings v WHERE v.is_play AND (v.profile_id, v.id) > ($2, $3) \
                 ORDER BY v.profile_id, v.id LIMIT $1"
            ))
            .bind(i64::from(limit))
            .bind(p.0)
            .bind(id.0),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn set_feedback(&self, profile: ProfileId, f: &Feedback) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO recs_feedback (profile_id, title_id, kind, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (profile_id, title_id) DO UPDATE SET kind = excluded.kind, at = excluded.at \
             WHERE excluded.at >= recs_feedback.at",
        )
        .bind(profile.0)
        .bind(f.title_id.as_str())
        .bind(f.kind.as_str())
        .bind(f.at.0)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn feedback(&self, profile: ProfileId) -> Result<Vec<Feedback>, StoreError> {
        let rows = sqlx::query(
            "SELECT title_id, kind, at FROM recs_feedback WHERE profile_id = $1 ORDER BY title_id",
        )
        .bind(profile.0)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn record_impressions(
        &self,
        profile: ProfileId,
        titles: &[TitleId],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if titles.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<&str> = titles.iter().map(TitleId::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        sqlx::query(
            "INSERT INTO recs_impressions (profile_id, title_id, shown, last_at) \
             SELECT $1, t, 1, $3 FROM unnest($2::text[]) AS t \
             ON CONFLICT (profile_id, title_id) DO UPDATE SET shown = recs_impressions.shown + 1, \
             last_at = greatest(recs_impressions.last_at, excluded.last_at)",
        )
        .bind(profile.0)
        .bind(&ids)
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn impressions(&self, profile: ProfileId) -> Result<Vec<Impressions>, StoreError> {
        let rows = sqlx::query(
            "SELECT title_id, shown, last_at FROM recs_impressions WHERE profile_id = $1 ORDER BY title_id",
        )
        .bind(profile.0)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn cowatch(&self, item: &TitleId, limit: u32) -> Result<CoWatchCounts, StoreError> {
        let own: Option<i64> = sqlx::query_scalar("SELECT count FROM recs_cowatch WHERE a = $1 AND b = ''")
            .bind(item.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(error::db)?;
        let rows = sqlx::query(
            "SELECT c.b AS b, c.count AS together, coalesce(o.count, 0) AS own FROM recs_cowatch c \
             LEFT JOIN recs_cowatch o ON o.a = c.b AND o.b = '' \
             WHERE c.a = $1 AND c.b <> '' ORDER BY c.count DESC, c.b LIMIT $2",
        )
        .bind(item.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        let neighbours =
            rows.iter().map(|r| decode::cowatch_neighbour(&codec::cols(r))).collect::<Result<_, _>>()?;
        Ok(CoWatchCounts { count: own.map_or(0, to_u32), neighbours })
    }

    async fn trending(&self, limit: u32) -> Result<Vec<(TitleId, f64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT item, sum(weight) AS w FROM recs_trending GROUP BY item ORDER BY w DESC, item LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(|r| decode::trending_item(&codec::cols(r))).collect()
    }

    async fn put_model(&self, model: &StoredModel, keep: u32) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(error::db)?;
        sqlx::query(
            "INSERT INTO recs_models (version, trained_at, body) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING",
        )
        .bind(&model.version)
        .bind(model.trained_at.0)
        .bind(&model.body)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        sqlx::query(
            "DELETE FROM recs_models WHERE version NOT IN \
             (SELECT version FROM recs_models ORDER BY trained_at DESC, version DESC LIMIT $1)",
        )
        .bind(i64::from(keep.max(1)))
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        tx.commit().await.map_err(error::db)
    }

    async fn latest_model(&self) -> Result<Option<ModelVersion>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT version, trained_at FROM recs_models ORDER BY trained_at DESC, version DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(row.map(|(version, at)| ModelVersion { version, trained_at: Timestamp(at) }))
    }

    async fn model_body(&self, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT body FROM recs_models WHERE version = $1")
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(error::db)
    }

    async fn lease_training(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        // One statement: concurrent replicas serialise on the row, and the WHERE is re-checked
        // after a wait, so two never both get `true` for one expiry.
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO recs_training_lease (name, holder, until) VALUES ('train', $1, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until \
             WHERE recs_training_lease.until <= $2 OR recs_training_lease.holder = EXCLUDED.holder \
             RETURNING holder",
        )
        .bind(holder)
        .bind(now.0)
        .bind(until.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(held.is_some())
    }
}
