//! The devices list: session activity and "sign out everywhere" (decision 0091). The
//! [`IdentityStore`](playhead_core::ports::IdentityStore) impl delegates here.

use playhead_core::StoreError;
use playhead_core::identity::SessionActivity;
use playhead_core::ids::AccountId;
use playhead_core::time::Timestamp;
use playhead_store_rows::identity::SESSION_ACTIVITY_COLS;

use crate::PgStore;
use crate::codec::decode;
use crate::error;

impl PgStore {
    pub(crate) async fn do_touch_session(
        &self,
        id: &str,
        at: Timestamp,
        addr: Option<&str>,
    ) -> Result<(), StoreError> {
        // One statement: two replicas refreshing the same session at once both land, and the
        // later `at` wins whichever commits last.
        sqlx::query(
            "UPDATE sessions SET first_addr = COALESCE(first_addr, $3), \
             last_addr = CASE WHEN last_seen_at IS NULL OR last_seen_at <= $2 THEN COALESCE($3, last_addr) ELSE last_addr END, \
             last_seen_at = GREATEST(COALESCE(last_seen_at, $2), $2) WHERE id = $1",
        )
        .bind(id)
        .bind(at.0)
        .bind(addr)
        .execute(&self.pool)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    pub(crate) async fn do_live_sessions(
        &self,
        account: AccountId,
    ) -> Result<Vec<SessionActivity>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_ACTIVITY_COLS} FROM sessions WHERE account_id = $1::uuid AND revoked_at IS NULL \
             ORDER BY COALESCE(last_seen_at, created_at) DESC, id"
        ))
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn do_revoke_account_sessions(
        &self,
        account: AccountId,
        at: Timestamp,
        except: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $2 WHERE account_id = $1::uuid AND revoked_at IS NULL \
             AND ($3::text IS NULL OR id <> $3::text) RETURNING id",
        )
        .bind(account.to_string())
        .bind(at.0)
        .bind(except)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)
    }
}
