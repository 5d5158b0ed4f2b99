//! Erasure sagas and their steps' store work ([`ErasureStore`], decision 0085).
//!
//! The rule: each step is one `BEGIN IMMEDIATE` transaction of deletes keyed by the saga's
//! profile (and account) ids, so it either happened or did not, and running it again finds
//! nothing left to do. The single writer serialises a step with every apply, so an apply either
//! committed before the step (and the step deletes what it wrote) or runs after it (and finds no
//! queue row to claim).

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::erasure::{Erasure, Scope, StepState};
use playhead_core::identity::AuditEntry;
use playhead_core::ids::{AccountId, ErasureId, ProfileId};
use playhead_core::ports::ErasureStore;
use playhead_core::rules::recs::{TRENDING_HALF_LIFE_MS, uncount};
use playhead_core::time::Timestamp;
use playhead_store_rows::erasure::{ERASURE_COLS, profile_strings, profiles_json, steps_json, target};

use crate::codec::{self};
use crate::{SqliteStore, error};

fn ids_json(ids: &[String]) -> Result<String, StoreError> {
    playhead_store_rows::json_list(ids)
}

fn failing(e: &Erasure) -> bool {
    e.steps.iter().any(|s| s.state == StepState::Failing)
}

#[async_trait]
impl ErasureStore for SqliteStore {
    async fn start_erasure(&self, e: &Erasure) -> Result<Erasure, StoreError> {
        let mut tx = self.begin_write().await?;
        let existing =
            sqlx::query(&format!("SELECT {ERASURE_COLS} FROM erasures WHERE target = ?1 AND done = 0"))
                .bind(target(e.scope))
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
        if let Some(row) = existing {
            return codec::decode(&row);
        }
        let profile = match e.scope {
            Scope::Account(_) => None,
            Scope::Profile { profile, .. } => Some(profile.to_string()),
        };
        sqlx::query(
            "INSERT INTO erasures (id, scope, account_id, profile_id, target, profiles, requested_by, \
             requested_at, steps, done, failing, next_attempt_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, 0, ?10)",
        )
        .bind(e.id.to_string())
        .bind(e.scope.kind())
        .bind(e.scope.account().to_string())
        .bind(profile)
        .bind(target(e.scope))
        .bind(profiles_json(e)?)
        .bind(&e.requested_by)
        .bind(e.requested_at.0)
        .bind(steps_json(e)?)
        .bind(e.next_attempt_at.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        tx.commit().await.map_err(error::db)?;
        Ok(e.clone())
    }

    async fn erasure(&self, id: ErasureId) -> Result<Option<Erasure>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ERASURE_COLS} FROM erasures WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
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
            "UPDATE erasures SET lease_owner = ?1, lease_until = ?3 WHERE id = ( \
               SELECT id FROM erasures WHERE done = 0 AND next_attempt_at <= ?2 \
               AND (lease_until IS NULL OR lease_until < ?2) ORDER BY requested_at, id LIMIT 1) \
             RETURNING {ERASURE_COLS}"
        ))
        .bind(owner)
        .bind(now.0)
        .bind(lease_until.0)
        .fetch_optional(&self.writer)
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
            "UPDATE erasures SET steps = ?3, done = ?4, failing = ?5, next_attempt_at = ?6, completed_at = ?7, \
             lease_owner = CASE WHEN ?8 IS NULL THEN NULL ELSE ?2 END, lease_until = ?8 \
             WHERE id = ?1 AND lease_owner = ?2",
        )
        .bind(e.id.to_string())
        .bind(owner)
        .bind(steps_json(e)?)
        .bind(e.is_done())
        .bind(failing(e))
        .bind(e.next_attempt_at.0)
        .bind(e.completed_at.map(|t| t.0))
        .bind(lease_until.map(|t| t.0))
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn erasure_backlog(&self) -> Result<(u64, u64), StoreError> {
        let (n, failing): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(failing), 0) FROM erasures WHERE done = 0")
                .fetch_one(&self.reader)
                .await
                .map_err(error::db)?;
        Ok((codec::to_u64(n), codec::to_u64(failing)))
    }

    async fn erased_profile(&self, profile: ProfileId) -> Result<Option<(AccountId, ErasureId)>, StoreError> {
        let row = sqlx::query("SELECT account_id, erasure_id FROM erased_profiles WHERE profile_id = ?1")
            .bind(profile.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.map(|r| {
            let c = codec::cols(&r);
            use playhead_store_rows::Columns;
            Ok::<_, StoreError>((AccountId(c.uuid("account_id")?), ErasureId(c.uuid("erasure_id")?)))
        })
        .transpose()
    }

    async fn admin_accounts(&self) -> Result<Vec<AccountId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT s.account_id FROM sessions s JOIN accounts a ON a.id = s.account_id \
             WHERE s.revoked_at IS NULL AND (' ' || s.scopes || ' ') LIKE '% admin %' ORDER BY 1",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        ids.iter()
            .map(|s| AccountId::parse(s).map_err(|e| error::corrupt("sessions.account_id", e)))
            .collect()
    }

    async fn erase_stop(&self, e: &Erasure, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let mut profiles = profile_strings(e);
        if let Scope::Account(a) = e.scope {
            // A profile made after the saga was asked for is erased too.
            let more: Vec<String> = sqlx::query_scalar("SELECT id FROM profiles WHERE account_id = ?1")
                .bind(a.to_string())
                .fetch_all(&mut *tx)
                .await
                .map_err(error::db)?;
            for p in more {
                if !profiles.contains(&p) {
                    profiles.push(p);
                }
            }
            sqlx::query("UPDATE erasures SET profiles = ?2 WHERE id = ?1")
                .bind(e.id.to_string())
                .bind(ids_json(&profiles)?)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        let list = ids_json(&profiles)?;
        sqlx::query(
            "INSERT INTO erased_profiles (profile_id, account_id, erasure_id, erased_at) \
             SELECT value, ?2, ?3, ?4 FROM json_each(?1) WHERE true ON CONFLICT (profile_id) DO NOTHING",
        )
        .bind(&list)
        .bind(e.scope.account().to_string())
        .bind(e.id.to_string())
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        sqlx::query("DELETE FROM profiles WHERE id IN (SELECT value FROM json_each(?1))")
            .bind(&list)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        let revoke = match e.scope {
            Scope::Account(a) => {
                sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE account_id = ?1")
                    .bind(a.to_string())
            }
            Scope::Profile { .. } => sqlx::query(
                "UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2) \
                 WHERE profile_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(list.clone()),
        };
        revoke.bind(now.0).execute(&mut *tx).await.map_err(error::db)?;
        if let Scope::Account(a) = e.scope {
            sqlx::query(
                "UPDATE web_sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE account_id = ?1",
            )
            .bind(a.to_string())
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        }
        tx.commit().await.map_err(error::db)
    }

    async fn erase_queued(&self, e: &Erasure) -> Result<(), StoreError> {
        let list = ids_json(&profile_strings(e))?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM event_queue WHERE event_id IN \
             (SELECT event_id FROM events WHERE profile_id IN (SELECT value FROM json_each(?1)))",
        )
        .bind(&list)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        sqlx::query(
            "DELETE FROM events WHERE state = 'held' AND profile_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(&list)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        tx.commit().await.map_err(error::db)
    }

    async fn erase_recs_signals(&self, e: &Erasure) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for profile in &e.profiles {
            let plays = crate::recs::counted_plays(&mut tx, *profile).await?;
            let u = uncount(&plays, TRENDING_HALF_LIFE_MS);
            for (a, b, n) in &u.pairs {
                sqlx::query("UPDATE recs_cowatch SET count = MAX(count - ?3, 0) WHERE a = ?1 AND b = ?2")
                    .bind(a.as_str())
                    .bind(b)
                    .bind(i64::from(*n))
                    .execute(&mut *tx)
                    .await
                    .map_err(error::db)?;
                sqlx::query("DELETE FROM recs_cowatch WHERE a = ?1 AND b = ?2 AND count <= 0")
                    .bind(a.as_str())
                    .bind(b)
                    .execute(&mut *tx)
                    .await
                    .map_err(error::db)?;
            }
            for (item, shard, weight) in &u.votes {
                sqlx::query(
                    "UPDATE recs_trending SET weight = MAX(weight - ?3, 0.0) WHERE item = ?1 AND shard = ?2",
                )
                .bind(item.as_str())
                .bind(i64::from(*shard))
                .bind(*weight)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
            }
            for table in ["recs_counted_plays", "recs_feedback", "recs_impressions"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE profile_id = ?1"))
                    .bind(profile.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(error::db)?;
            }
        }
        tx.commit().await.map_err(error::db)
    }

    async fn erase_rows(&self, e: &Erasure) -> Result<(), StoreError> {
        let list = ids_json(&profile_strings(e))?;
        let mut tx = self.begin_write().await?;
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
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE profile_id IN (SELECT value FROM json_each(?1))"
            ))
            .bind(&list)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        }
        // The feed (issue 14): its graph edges both ways (the followees' counts drop with them),
        // its activities wherever they were pushed, its inbox and settings.
        for sql in [
            "UPDATE feed_profiles SET followers = max(followers - (SELECT count(*) FROM follows f \
               WHERE f.followee = feed_profiles.profile_id AND f.state = 'following' \
               AND f.follower IN (SELECT value FROM json_each(?1))), 0) \
             WHERE profile_id IN (SELECT followee FROM follows WHERE follower IN (SELECT value FROM json_each(?1)))",
            "DELETE FROM follows WHERE follower IN (SELECT value FROM json_each(?1)) \
               OR followee IN (SELECT value FROM json_each(?1))",
            "DELETE FROM blocks WHERE blocker IN (SELECT value FROM json_each(?1)) \
               OR blocked IN (SELECT value FROM json_each(?1))",
            "DELETE FROM feed_fanout WHERE activity_id IN \
               (SELECT id FROM activities WHERE actor IN (SELECT value FROM json_each(?1)))",
            "DELETE FROM feed_inbox WHERE reader IN (SELECT value FROM json_each(?1)) \
               OR actor IN (SELECT value FROM json_each(?1))",
            "DELETE FROM activities WHERE actor IN (SELECT value FROM json_each(?1))",
            "DELETE FROM feed_profiles WHERE profile_id IN (SELECT value FROM json_each(?1))",
        ] {
            sqlx::query(sql).bind(&list).execute(&mut *tx).await.map_err(error::db)?;
        }
        sqlx::query(
            "DELETE FROM refresh_tokens WHERE session_id IN \
             (SELECT id FROM sessions WHERE profile_id IN (SELECT value FROM json_each(?1)))",
        )
        .bind(&list)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        if let Scope::Account(a) = e.scope {
            let a = a.to_string();
            let statements = [
                "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE account_id = ?1)",
                "DELETE FROM credentials WHERE account_id = ?1",
                "DELETE FROM web_sessions WHERE account_id = ?1",
                "DELETE FROM auth_codes WHERE account_id = ?1",
                "DELETE FROM device_codes WHERE account_id = ?1",
                "DELETE FROM external_identities WHERE account_id = ?1",
                "DELETE FROM idempotency_keys WHERE key >= 'acct:' || ?1 || ':' AND key < 'acct:' || ?1 || ';'",
                "DELETE FROM profiles WHERE account_id = ?1",
                "DELETE FROM accounts WHERE id = ?1",
            ];
            for s in statements {
                sqlx::query(s).bind(&a).execute(&mut *tx).await.map_err(error::db)?;
            }
        }
        tx.commit().await.map_err(error::db)
    }

    async fn erase_audit(&self, _erasure: ErasureId, entry: &AuditEntry) -> Result<(), StoreError> {
        // The detail names the saga id: an entry already there (a crash after the insert, before
        // the step was saved done) is not appended again.
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, detail, client_addr) SELECT ?1, ?2, ?3, ?4, ?5 \
             WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE action = ?3 AND detail = ?4)",
        )
        .bind(entry.at.0)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.detail)
        .bind(&entry.client_addr)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        Ok(())
    }
}
