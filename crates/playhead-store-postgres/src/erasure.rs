//! Erasure sagas and their steps' store work ([`ErasureStore`], decision 0085).
//!
//! The rules: each step is one transaction that first takes the apply lock of every profile it
//! erases (ascending ids, the crate's lock order), so an apply of those profiles either committed
//! before the step (which then deletes what it wrote) or runs after it (and finds no outbox row
//! to claim). Sagas are leased with `FOR UPDATE SKIP LOCKED`: one runner per saga across every
//! replica, and a dead replica's lease simply expires.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::erasure::{Erasure, Scope, StepState};
use playhead_core::identity::AuditEntry;
use playhead_core::ids::{AccountId, ErasureId, ProfileId};
use playhead_core::ports::ErasureStore;
use playhead_core::rules::recs::{TRENDING_HALF_LIFE_MS, uncount};
use playhead_core::time::Timestamp;
use playhead_store_rows::Columns;
use playhead_store_rows::erasure::{ERASURE_COLS, profiles_json, steps_json, target};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::codec;
use crate::{PgStore, error, lock_profile};

fn failing(e: &Erasure) -> bool {
    e.steps.iter().any(|s| s.state == StepState::Failing)
}

fn uuids(e: &Erasure) -> Vec<Uuid> {
    let mut v: Vec<Uuid> = e.profiles.iter().map(|p| p.0).collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl PgStore {
    /// A transaction holding the apply lock of each of `profiles` (sorted ascending).
    async fn erase_tx(&self, profiles: &[Uuid]) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.begin_tx().await?;
        for p in profiles {
            lock_profile(&mut tx, ProfileId(*p)).await?;
        }
        Ok(tx)
    }
}

async fn exec(conn: &mut PgConnection, sql: &str, ids: &[Uuid]) -> Result<(), StoreError> {
    sqlx::query(sql).bind(ids).execute(conn).await.map_err(error::db)?;
    Ok(())
}

#[async_trait]
impl ErasureStore for PgStore {
    async fn start_erasure(&self, e: &Erasure) -> Result<Erasure, StoreError> {
        let profile = match e.scope {
            Scope::Account(_) => None,
            Scope::Profile { profile, .. } => Some(profile.0),
        };
        // The partial unique index decides between two racing requests: the loser inserts
        // nothing and reads the winner's saga.
        sqlx::query(
            "INSERT INTO erasures (id, scope, account_id, profile_id, target, profiles, requested_by, \
             requested_at, steps, done, failing, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, false, $10) \
             ON CONFLICT (target) WHERE NOT done DO NOTHING",
        )
        .bind(e.id.0)
        .bind(e.scope.kind())
        .bind(e.scope.account().0)
        .bind(profile)
        .bind(target(e.scope))
        .bind(profiles_json(e)?)
        .bind(&e.requested_by)
        .bind(e.requested_at.0)
        .bind(steps_json(e)?)
        .bind(e.next_attempt_at.0)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        let row = sqlx::query(&format!("SELECT {ERASURE_COLS} FROM erasures WHERE target = $1 AND NOT done"))
            .bind(target(e.scope))
            .fetch_optional(&self.pool)
            .await
            .map_err(error::db)?;
        match row {
            Some(r) => codec::decode(&r),
            // Finished between the two statements (a saga takes seconds at least): it is this one.
            None => Ok(e.clone()),
        }
    }

    async fn erasure(&self, id: ErasureId) -> Result<Option<Erasure>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ERASURE_COLS} FROM erasures WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn claim_erasure(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Erasure>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE erasures SET lease_owner = $1, lease_until = $3 WHERE id = ( \
               SELECT id FROM erasures WHERE NOT done AND next_attempt_at <= $2 \
               AND (lease_until IS NULL OR lease_until < $2) ORDER BY requested_at, id LIMIT 1 \
               FOR UPDATE SKIP LOCKED) \
             RETURNING {ERASURE_COLS}"
        ))
        .bind(owner)
        .bind(now.0)
        .bind(lease_until.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn save_erasure(
        &self,
        e: &Erasure,
        owner: &str,
        lease_until: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE erasures SET steps = $3, done = $4, failing = $5, next_attempt_at = $6, completed_at = $7, \
             lease_owner = CASE WHEN $8::bigint IS NULL THEN NULL ELSE $2 END, lease_until = $8 \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(e.id.0)
        .bind(owner)
        .bind(steps_json(e)?)
        .bind(e.is_done())
        .bind(failing(e))
        .bind(e.next_attempt_at.0)
        .bind(e.completed_at.map(|t| t.0))
        .bind(lease_until.map(|t| t.0))
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn erasure_backlog(&self) -> Result<(u64, u64), StoreError> {
        let (n, failing): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE failing) FROM erasures WHERE NOT done")
                .fetch_one(&self.pool)
                .await
                .map_err(error::db)?;
        Ok((codec::to_u64(n), codec::to_u64(failing)))
    }

    async fn erased_profile(&self, profile: ProfileId) -> Result<Option<(AccountId, ErasureId)>, StoreError> {
        let row = sqlx::query("SELECT account_id, erasure_id FROM erased_profiles WHERE profile_id = $1")
            .bind(profile.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(error::db)?;
        row.map(|r| {
            let c = codec::cols(&r);
            Ok::<_, StoreError>((AccountId(c.uuid("account_id")?), ErasureId(c.uuid("erasure_id")?)))
        })
        .transpose()
    }

    async fn admin_accounts(&self) -> Result<Vec<AccountId>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT s.account_id FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.revoked_at IS NULL AND ' ' || s.scopes || ' ' LIKE '% admin %' ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(ids.into_iter().map(AccountId).collect())
    }

    async fn erase_stop(&self, e: &Erasure, now: Timestamp) -> Result<(), StoreError> {
        let mut profiles = uuids(e);
        if let Scope::Account(a) = e.scope {
            // A profile made after the saga was asked for is erased too.
            let more: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM profiles WHERE account_id = $1")
                .bind(a.0)
                .fetch_all(&self.pool)
                .await
                .map_err(error::db)?;
            profiles.extend(more);
            profiles.sort_unstable();
            profiles.dedup();
        }
        let mut tx = self.erase_tx(&profiles).await?;
        if matches!(e.scope, Scope::Account(_)) {
            let list: Vec<String> = profiles.iter().map(ToString::to_string).collect();
            sqlx::query("UPDATE erasures SET profiles = $2 WHERE id = $1")
                .bind(e.id.0)
                .bind(playhead_store_rows::json_list(&list)?)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        sqlx::query(
            "INSERT INTO erased_profiles (profile_id, account_id, erasure_id, erased_at) \
             SELECT p, $2, $3, $4 FROM unnest($1::uuid[]) AS p ON CONFLICT (profile_id) DO NOTHING",
        )
        .bind(&profiles)
        .bind(e.scope.account().0)
        .bind(e.id.0)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        exec(&mut tx, "DELETE FROM profiles WHERE id = ANY($1)", &profiles).await?;
        match e.scope {
            Scope::Account(a) => {
                for table in ["sessions", "web_sessions"] {
                    sqlx::query(&format!(
                        "UPDATE {table} SET revoked_at = COALESCE(revoked_at, $2) WHERE account_id = $1"
                    ))
                    .bind(a.0)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(error::db)?;
                }
            }
            Scope::Profile { .. } => {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE profile_id = ANY($1)",
                )
                .bind(&profiles)
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            }
        }
        tx.commit().await.map_err(error::db)
    }

    async fn erase_queued(&self, e: &Erasure) -> Result<(), StoreError> {
        let profiles = uuids(e);
        let mut tx = self.erase_tx(&profiles).await?;
        exec(
            &mut tx,
            "DELETE FROM event_queue q USING events ev WHERE ev.event_id = q.event_id AND ev.profile_id = ANY($1)",
            &profiles,
        )
        .await?;
        exec(&mut tx, "DELETE FROM events WHERE state = 'held' AND profile_id = ANY($1)", &profiles).await?;
        tx.commit().await.map_err(error::db)
    }

    async fn erase_recs_signals(&self, e: &Erasure) -> Result<(), StoreError> {
        let profiles = uuids(e);
        let mut tx = self.erase_tx(&profiles).await?;
        for profile in &profiles {
            let plays = crate::recs::counted_plays(&mut tx, ProfileId(*profile)).await?;
            let u = uncount(&plays, TRENDING_HALF_LIFE_MS);
            if !u.pairs.is_empty() {
                let a: Vec<&str> = u.pairs.iter().map(|p| p.0.as_str()).collect();
                let b: Vec<&str> = u.pairs.iter().map(|p| p.1.as_str()).collect();
                let n: Vec<i64> = u.pairs.iter().map(|p| i64::from(p.2)).collect();
                // Rows in (a, b) order, as count_play locks them: no deadlock with an apply.
                sqlx::query(
                    "UPDATE recs_cowatch c SET count = GREATEST(c.count - x.n, 0) \
                     FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(a, b, n) ORDER BY a, b) x \
                     WHERE c.a = x.a AND c.b = x.b",
                )
                .bind(&a)
                .bind(&b)
                .bind(&n)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
                sqlx::query(
                    "DELETE FROM recs_cowatch c USING unnest($1::text[], $2::text[]) AS x(a, b) \
                     WHERE c.a = x.a AND c.b = x.b AND c.count <= 0",
                )
                .bind(&a)
                .bind(&b)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            }
            if !u.votes.is_empty() {
                let items: Vec<&str> = u.votes.iter().map(|v| v.0.as_str()).collect();
                let shards: Vec<i32> = u.votes.iter().map(|v| i32::try_from(v.1).unwrap_or(0)).collect();
                let weights: Vec<f64> = u.votes.iter().map(|v| v.2).collect();
                sqlx::query(
                    "UPDATE recs_trending t SET weight = GREATEST(t.weight - x.w, 0) \
                     FROM (SELECT item, shard, SUM(w) AS w FROM unnest($1::text[], $2::int[], $3::float8[]) \
                           AS v(item, shard, w) GROUP BY item, shard) x \
                     WHERE t.item = x.item AND t.shard = x.shard",
                )
                .bind(&items)
                .bind(&shards)
                .bind(&weights)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            }
        }
        for table in ["recs_counted_plays", "recs_feedback", "recs_impressions"] {
            exec(&mut tx, &format!("DELETE FROM {table} WHERE profile_id = ANY($1)"), &profiles).await?;
        }
        tx.commit().await.map_err(error::db)
    }

    async fn erase_rows(&self, e: &Erasure) -> Result<(), StoreError> {
        let profiles = uuids(e);
        let mut tx = self.erase_tx(&profiles).await?;
        for table in [
            "events",
            "progress",
            "hides",
            "viewings",
            "play_rollups",
            "tombstones",
            "auth_codes",
            "device_codes",
        ] {
            exec(&mut tx, &format!("DELETE FROM {table} WHERE profile_id = ANY($1)"), &profiles).await?;
        }
        // The feed (issue 14): its graph edges both ways (the followees' counts drop with them),
        // its activities wherever they were pushed, its inbox and settings.
        for sql in [
            "UPDATE feed_profiles fp SET followers = greatest(fp.followers - f.n, 0) FROM \
               (SELECT followee, count(*) AS n FROM follows WHERE follower = ANY($1) AND state = 'following' \
                GROUP BY followee) f WHERE fp.profile_id = f.followee",
            "DELETE FROM follows WHERE follower = ANY($1) OR followee = ANY($1)",
            "DELETE FROM blocks WHERE blocker = ANY($1) OR blocked = ANY($1)",
            "DELETE FROM feed_fanout WHERE activity_id IN (SELECT id FROM activities WHERE actor = ANY($1))",
            "DELETE FROM feed_inbox WHERE reader = ANY($1) OR actor = ANY($1)",
            "DELETE FROM activities WHERE actor = ANY($1)",
            "DELETE FROM feed_profiles WHERE profile_id = ANY($1)",
        ] {
            exec(&mut tx, sql, &profiles).await?;
        }
        exec(
            &mut tx,
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE profile_id = ANY($1))",
            &profiles,
        )
        .await?;
        if let Scope::Account(a) = e.scope {
            let statements = [
                "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE account_id = $1)",
                "DELETE FROM credentials WHERE account_id = $1",
                "DELETE FROM web_sessions WHERE account_id = $1",
                "DELETE FROM auth_codes WHERE account_id = $1",
                "DELETE FROM device_codes WHERE account_id = $1",
                "DELETE FROM external_identities WHERE account_id = $1",
                "DELETE FROM profiles WHERE account_id = $1",
                "DELETE FROM accounts WHERE id = $1",
            ];
            for s in statements {
                sqlx::query(s).bind(a.0).execute(&mut *tx).await.map_err(error::db)?;
            }
            sqlx::query("DELETE FROM idempotency_keys WHERE key LIKE $1")
                .bind(format!("acct:{a}:%"))
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        tx.commit().await.map_err(error::db)
    }

    async fn erase_audit(&self, _erasure: ErasureId, entry: &AuditEntry) -> Result<(), StoreError> {
        // The detail names the saga id: an entry already there (a crash after the insert, before
        // the step was saved done) is not appended again.
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, detail, client_addr) SELECT $1, $2, $3, $4, $5 \
             WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE action = $3 AND detail = $4)",
        )
        .bind(entry.at.0)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.detail)
        .bind(&entry.client_addr)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(())
    }
}
