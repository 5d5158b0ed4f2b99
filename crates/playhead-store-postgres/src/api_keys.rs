//! API keys for platform services: looked up by their visible prefix, stored as SHA-256 (`bytea`).
//!
//! The rule: the secret never reaches this module, only its hash; and a revocation is never
//! undone or moved (revoking twice keeps the first `revoked_at`, which audits rely on).

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ports::{ApiKeyRecord, ApiKeyStore};
use playhead_core::time::Timestamp;

use crate::error::{self, Unique};
use crate::{PgStore, codec};

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (prefix, name, hash, scopes, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.prefix)
        .bind(&key.name)
        .bind(&key.hash[..])
        .bind(key.scopes.to_string())
        .bind(key.created_at.0)
        .bind(key.revoked_at.map(|t| t.0))
        .execute(&self.pool)
        .await
        .map_err(|e| error::map(e, &[Unique::ApiKeyPrefix]))?;
        Ok(())
    }

    async fn api_key(&self, prefix: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT prefix, name, hash, scopes, created_at, revoked_at FROM api_keys WHERE prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await
        .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn revoke_api_key(&self, prefix: &str, at: Timestamp) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE prefix = $1")
            .bind(prefix)
            .bind(at.0)
            .execute(&self.pool)
            .await
            .map_err(error::db)?;
        if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
