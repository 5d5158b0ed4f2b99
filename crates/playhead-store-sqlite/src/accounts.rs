//! Accounts and profiles.
//!
//! The rule: limits and versions are checked inside the same write transaction as the write they
//! guard (`BEGIN IMMEDIATE`), so two concurrent requests can never both pass the check.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::ports::AccountStore;
use playhead_core::profile::{Account, Email, Profile};

use crate::SqliteStore;
use crate::codec::{self, profile_columns};
use crate::error::{self, Unique};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, account: &Account) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO accounts (id, email, created_at) VALUES (?1, ?2, ?3)")
            .bind(account.id.to_string())
            .bind(account.email.as_str())
            .bind(account.created_at.0)
            .execute(&self.writer)
            .await
            .map_err(|e| error::map(e, &[Unique::AccountEmail, Unique::AccountId]))?;
        Ok(())
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT id, email, created_at FROM accounts WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn account_by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query("SELECT id, email, created_at FROM accounts WHERE email = ?1")
            .bind(email.as_str())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn create_profile(&self, profile: &Profile, max_per_account: usize) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM profiles WHERE account_id = ?1")
            .bind(profile.account_id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(error::db)?;
        if count >= codec::to_i64(max_per_account) {
            return Err(StoreError::Conflict("profile limit".to_owned()));
        }
        sqlx::query(
            "INSERT INTO profiles (id, account_id, name, kids, maturity_limit, private, version, created_at, \
             history_paused, keep_resume_points_while_paused) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(profile.id.to_string())
        .bind(profile.account_id.to_string())
        .bind(profile.name.as_str())
        .bind(profile.kids)
        .bind(profile.maturity_limit.map(i64::from))
        .bind(profile.private)
        .bind(profile.version)
        .bind(profile.created_at.0)
        .bind(profile.history_paused)
        .bind(profile.keep_resume_points_while_paused)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            // The port has no word for "no such account": the parent row asked for is missing.
            if error::is_foreign_key_violation(&e) {
                StoreError::NotFound
            } else {
                error::map(e, &[Unique::ProfileId])
            }
        })?;
        tx.commit().await.map_err(error::db)
    }

    async fn profile(&self, id: ProfileId) -> Result<Option<Profile>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", profile_columns!(), " FROM profiles WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn profiles_of(&self, account: AccountId) -> Result<Vec<Profile>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            profile_columns!(),
            " FROM profiles WHERE account_id = ?1 ORDER BY created_at, id"
        ))
        .bind(account.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn update_profile(&self, profile: &Profile, expected_version: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE profiles SET name = ?3, kids = ?4, maturity_limit = ?5, private = ?6, version = ?7, \
             history_paused = ?8, keep_resume_points_while_paused = ?9 WHERE id = ?1 AND version = ?2",
        )
        .bind(profile.id.to_string())
        .bind(expected_version)
        .bind(profile.name.as_str())
        .bind(profile.kids)
        .bind(profile.maturity_limit.map(i64::from))
        .bind(profile.private)
        .bind(profile.version)
        .bind(profile.history_paused)
        .bind(profile.keep_resume_points_while_paused)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?
        .rows_affected();
        if updated == 0 {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM profiles WHERE id = ?1")
                .bind(profile.id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
            return Err(if exists.is_some() { StoreError::PreconditionFailed } else { StoreError::NotFound });
        }
        tx.commit().await.map_err(error::db)
    }
}
