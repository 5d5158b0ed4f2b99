//! Data export requests and the reads only an export needs ([`ExportStore`], decision 0088).

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::{AccountId, ExportId, ProfileId, TitleId};
use playhead_core::ports::{AuthorisedClient, ExportStore};
use playhead_core::time::Timestamp;
use playhead_store_rows::Columns;

use crate::codec;
use crate::{SqliteStore, error};

#[async_trait]
impl ExportStore for SqliteStore {
    async fn create_export(
        &self,
        id: ExportId,
        account: AccountId,
        requested_by: &str,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO exports (id, account_id, requested_by, requested_at) \
             SELECT ?1, id, ?3, ?4 FROM accounts WHERE id = ?2",
        )
        .bind(id.to_string())
        .bind(account.to_string())
        .bind(requested_by)
        .bind(at.0)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn export(&self, id: ExportId) -> Result<Option<(AccountId, Timestamp)>, StoreError> {
        let row = sqlx::query("SELECT account_id, requested_at FROM exports WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.map(|r| {
            let c = codec::cols(&r);
            Ok::<_, StoreError>((AccountId(c.uuid("account_id")?), c.timestamp("requested_at")?))
        })
        .transpose()
    }

    async fn authorised_clients(&self, account: AccountId) -> Result<Vec<AuthorisedClient>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, scopes, created_at, revoked_at FROM sessions WHERE account_id = ?1 \
             ORDER BY created_at, id",
        )
        .bind(account.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter()
            .map(|r| {
                let c = codec::cols(r);
                Ok(AuthorisedClient {
                    client_id: c.string("client_id")?,
                    scopes: c.string("scopes")?,
                    created_at: c.timestamp("created_at")?,
                    revoked_at: c.opt_timestamp("revoked_at")?,
                })
            })
            .collect()
    }

    async fn hidden_titles(&self, profile: ProfileId) -> Result<Vec<(TitleId, Timestamp)>, StoreError> {
        let rows =
            sqlx::query("SELECT title_id, hidden_at FROM hides WHERE profile_id = ?1 ORDER BY title_id")
                .bind(profile.to_string())
                .fetch_all(&self.reader)
                .await
                .map_err(error::db)?;
        rows.iter()
            .map(|r| {
                let c = codec::cols(r);
                Ok((c.title_id("title_id")?, c.timestamp("hidden_at")?))
            })
            .collect()
    }
}
