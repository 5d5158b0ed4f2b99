//! The authorization server's state ([`IdentityStore`]): passwords, clients, sessions, codes,
//! refresh tokens, signing keys and the audit log.
//!
//! The rule: everything that consumes (an authorization code, a refresh token, a device code)
//! is one conditional `UPDATE ... WHERE <still unused>`; the number of rows it changed decides
//! who won, never a read made before it. Secrets arrive here only as digests.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::identity::{
    AuditEntry, AuthCode, CodeUse, DeviceCode, OAuthClient, RefreshToken, RefreshUse, Session,
    SigningKeyRecord, TokenDenial, WebSession,
};
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::ports::IdentityStore;
use playhead_core::profile::Account;
use playhead_core::time::Timestamp;
use playhead_store_rows::Columns;
use playhead_store_rows::identity::{
    CLIENT_COLS, CODE_COLS, DENIAL_COLS, DEVICE_COLS, REFRESH_COLS, SESSION_COLS, WEB_SESSION_COLS, account,
    device_status,
};

use crate::SqliteStore;
use crate::codec::{self, cols, decode, json_list};
use crate::error::{self, Unique};

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn set_password(&self, account: AccountId, phc: &str) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO credentials (account_id, phc) SELECT id, ?2 FROM accounts WHERE id = ?1 \
             ON CONFLICT (account_id) DO UPDATE SET phc = excluded.phc",
        )
        .bind(account.to_string())
        .bind(phc)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn password(&self, account: AccountId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT phc FROM credentials WHERE account_id = ?1")
            .bind(account.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)
    }

    async fn set_profile_pin(&self, profile: ProfileId, phc: &str, at: Timestamp) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO profile_pins (profile_id, phc, updated_at) SELECT id, ?2, ?3 FROM profiles WHERE id = ?1 \
             ON CONFLICT (profile_id) DO UPDATE SET phc = excluded.phc, updated_at = excluded.updated_at",
        )
        .bind(profile.to_string())
        .bind(phc)
        .bind(at.0)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        if r.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn remove_profile_pin(&self, profile: ProfileId) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM profile_pins WHERE profile_id = ?1")
            .bind(profile.to_string())
            .execute(&self.writer)
            .await
            .map_err(error::db)?;
        Ok(r.rows_affected() > 0)
    }

    async fn profile_pin(&self, profile: ProfileId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT phc FROM profile_pins WHERE profile_id = ?1")
            .bind(profile.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)
    }

    async fn create_client(&self, c: &OAuthClient) -> Result<(), StoreError> {
        let grants: Vec<&str> = c.grants.iter().map(|g| g.as_str()).collect();
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({CLIENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(c.client_type.as_str())
        .bind(c.secret_hash.map(|h| h.to_vec()))
        .bind(json_list(&c.redirect_uris)?)
        .bind(json_list(&grants)?)
        .bind(c.scopes.to_string())
        .bind(c.created_at.0)
        .execute(&self.writer)
        .await
        .map_err(|e| error::map(e, &[Unique::ClientId]))?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CLIENT_COLS} FROM oauth_clients WHERE client_id = ?1"))
            .bind(client_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO sessions ({SESSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .bind(&s.id)
        .bind(s.account.to_string())
        .bind(&s.client_id)
        .bind(s.scopes.to_string())
        .bind(s.profile.map(|p| p.to_string()))
        .bind(s.auth_time.0)
        .bind(s.created_at.0)
        .bind(s.revoked_at.map(|t| t.0))
        .execute(&self.writer)
        .await
        .map_err(|e| error::map(e, &[Unique::SessionId]))?;
        Ok(())
    }

    async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn revoke_session(&self, id: &str, at: Timestamp) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1")
            .bind(id)
            .bind(at.0)
            .execute(&self.writer)
            .await
            .map_err(error::db)?;
        Ok(r.rows_affected() > 0)
    }

    async fn revoked_sessions_since(&self, since: Timestamp) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT id FROM sessions WHERE revoked_at >= ?1")
            .bind(since.0)
            .fetch_all(&self.reader)
            .await
            .map_err(error::db)
    }

    async fn deny_tokens(&self, d: &TokenDenial) -> Result<(), StoreError> {
        insert_denial(d).execute(&self.writer).await.map_err(error::db)?;
        Ok(())
    }

    async fn token_denials(&self, now: Timestamp) -> Result<Vec<TokenDenial>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {DENIAL_COLS} FROM token_denials WHERE until > ?1"))
            .bind(now.0)
            .fetch_all(&self.reader)
            .await
            .map_err(error::db)?;
        rows.iter().map(decode).collect()
    }

    async fn token_denied(&self, jti: &str, client_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM token_denials WHERE until > ?3 \
             AND ((kind = 'jti' AND id = ?1) OR (kind = 'client' AND id = ?2)))",
        )
        .bind(jti)
        .bind(client_id)
        .bind(now.0)
        .fetch_one(&self.reader)
        .await
        .map_err(error::db)
    }

    async fn delete_client(&self, d: &TokenDenial) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let gone = sqlx::query("DELETE FROM oauth_clients WHERE client_id = ?1")
            .bind(&d.id)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE sessions SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL")
            .bind(&d.id)
            .bind(d.revoked_at.0)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        insert_denial(d).execute(&mut *tx).await.map_err(error::db)?;
        tx.commit().await.map_err(error::db)?;
        Ok(true)
    }

    async fn touch_session(&self, id: &str, at: Timestamp, addr: Option<&str>) -> Result<(), StoreError> {
        self.do_touch_session(id, at, addr).await
    }

    async fn live_sessions(
        &self,
        account: AccountId,
    ) -> Result<Vec<playhead_core::identity::SessionActivity>, StoreError> {
        self.do_live_sessions(account).await
    }

    async fn revoke_account_sessions(
        &self,
        account: AccountId,
        at: Timestamp,
        except: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        self.do_revoke_account_sessions(account, at, except).await
    }

    async fn create_web_session(&self, s: &WebSession) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO web_sessions ({WEB_SESSION_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"))
            .bind(&s.hash[..])
            .bind(s.account.to_string())
            .bind(s.auth_time.0)
            .bind(s.expires_at.0)
            .bind(s.revoked_at.map(|t| t.0))
            .execute(&self.writer)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn web_session(&self, h: [u8; 32]) -> Result<Option<WebSession>, StoreError> {
        let row = sqlx::query(&format!("SELECT {WEB_SESSION_COLS} FROM web_sessions WHERE hash = ?1"))
            .bind(&h[..])
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn revoke_web_session(&self, h: [u8; 32], at: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_sessions SET revoked_at = COALESCE(revoked_at, ?2) WHERE hash = ?1")
            .bind(&h[..])
            .bind(at.0)
            .execute(&self.writer)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn create_auth_code(&self, c: &AuthCode) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO auth_codes ({CODE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))
        .bind(&c.hash[..])
        .bind(&c.client_id)
        .bind(c.account.to_string())
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(c.scopes.to_string())
        .bind(c.profile.map(|p| p.to_string()))
        .bind(c.auth_time.0)
        .bind(&c.session_id)
        .bind(c.expires_at.0)
        .bind(c.used_at.map(|t| t.0))
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        Ok(())
    }

    async fn consume_auth_code(&self, h: [u8; 32], now: Timestamp) -> Result<CodeUse, StoreError> {
        // The conditional update decides; RETURNING hands back the winner's row.
        let fresh = sqlx::query(&format!(
            "UPDATE auth_codes SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL RETURNING {CODE_COLS}"
        ))
        .bind(&h[..])
        .bind(now.0)
        .fetch_optional(&self.writer)
        .await
        .map_err(error::db)?;
        if let Some(row) = fresh {
            return Ok(CodeUse::Fresh(decode(&row)?));
        }
        let row = sqlx::query(&format!("SELECT {CODE_COLS} FROM auth_codes WHERE hash = ?1"))
            .bind(&h[..])
            .fetch_optional(&self.writer)
            .await
            .map_err(error::db)?;
        Ok(match row {
            Some(r) => CodeUse::Reused(decode(&r)?),
            None => CodeUse::Unknown,
        })
    }

    async fn create_device_code(&self, d: &DeviceCode) -> Result<(), StoreError> {
        let (status, acct, profile, auth_time) = device_status(d);
        sqlx::query(&format!(
            "INSERT INTO device_codes ({DEVICE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        ))
        .bind(&d.hash[..])
        .bind(&d.user_code)
        .bind(&d.client_id)
        .bind(d.scopes.to_string())
        .bind(d.expires_at.0)
        .bind(d.interval_secs)
        .bind(d.last_poll_at.map(|t| t.0))
        .bind(status)
        .bind(acct)
        .bind(profile)
        .bind(auth_time)
        .bind(d.version)
        .execute(&self.writer)
        .await
        .map_err(|e| error::map(e, &[Unique::UserCode]))?;
        Ok(())
    }

    async fn device_code(&self, h: [u8; 32]) -> Result<Option<DeviceCode>, StoreError> {
        let row = sqlx::query(&format!("SELECT {DEVICE_COLS} FROM device_codes WHERE hash = ?1"))
            .bind(&h[..])
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn pending_device_code(&self, user_code: &str) -> Result<Option<DeviceCode>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLS} FROM device_codes WHERE user_code = ?1 AND status = 'pending'"
        ))
        .bind(user_code)
        .fetch_optional(&self.reader)
        .await
        .map_err(error::db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn device_code_by_user_code(&self, user_code: &str) -> Result<Option<DeviceCode>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLS} FROM device_codes WHERE user_code = ?1 \
             ORDER BY status = 'pending' DESC, expires_at DESC LIMIT 1"
        ))
        .bind(user_code)
        .fetch_optional(&self.reader)
        .await
        .map_err(error::db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn update_device_code(&self, d: &DeviceCode, expected_version: i64) -> Result<(), StoreError> {
        let (status, acct, profile, auth_time) = device_status(d);
        let r = sqlx::query(
            "UPDATE device_codes SET interval_secs = ?2, last_poll_at = ?3, status = ?4, account_id = ?5, \
             profile_id = ?6, auth_time = ?7, version = ?8 WHERE hash = ?1 AND version = ?9",
        )
        .bind(&d.hash[..])
        .bind(d.interval_secs)
        .bind(d.last_poll_at.map(|t| t.0))
        .bind(status)
        .bind(acct)
        .bind(profile)
        .bind(auth_time)
        .bind(d.version)
        .bind(expected_version)
        .execute(&self.writer)
        .await
        .map_err(error::db)?;
        if r.rows_affected() == 0 { Err(StoreError::PreconditionFailed) } else { Ok(()) }
    }

    async fn create_refresh_token(&self, t: &RefreshToken) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO refresh_tokens ({REFRESH_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"))
            .bind(&t.hash[..])
            .bind(&t.session_id)
            .bind(&t.client_id)
            .bind(t.created_at.0)
            .bind(t.expires_at.0)
            .bind(t.used_at.map(|t| t.0))
            .execute(&self.writer)
            .await
            .map_err(error::db)?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        h: [u8; 32],
        now: Timestamp,
        successor: &RefreshToken,
    ) -> Result<RefreshUse, StoreError> {
        let mut tx = self.begin_write().await?;
        let fresh = sqlx::query(&format!(
            "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL RETURNING {REFRESH_COLS}"
        ))
        .bind(&h[..])
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?;
        if let Some(row) = fresh {
            let old = decode(&row)?;
            sqlx::query(&format!(
                "INSERT INTO refresh_tokens ({REFRESH_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))
            .bind(&successor.hash[..])
            .bind(&successor.session_id)
            .bind(&successor.client_id)
            .bind(successor.created_at.0)
            .bind(successor.expires_at.0)
            .bind(successor.used_at.map(|t| t.0))
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
            tx.commit().await.map_err(error::db)?;
            return Ok(RefreshUse::Rotated(old));
        }
        let row = sqlx::query(&format!("SELECT {REFRESH_COLS} FROM refresh_tokens WHERE hash = ?1"))
            .bind(&h[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
        tx.commit().await.map_err(error::db)?;
        Ok(match row {
            Some(r) => RefreshUse::Reused(decode(&r)?),
            None => RefreshUse::Unknown,
        })
    }

    async fn refresh_token(&self, h: [u8; 32]) -> Result<Option<RefreshToken>, StoreError> {
        let row = sqlx::query(&format!("SELECT {REFRESH_COLS} FROM refresh_tokens WHERE hash = ?1"))
            .bind(&h[..])
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?;
        row.as_ref().map(decode).transpose()
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT kid, pem, created_at FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.reader)
            .await
            .map_err(error::db)?;
        rows.iter().map(decode).collect()
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord, keep: usize) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO signing_keys (kid, pem, created_at) VALUES (?1, ?2, ?3)")
            .bind(&key.kid)
            .bind(&key.pem)
            .bind(key.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| error::map(e, &[Unique::SigningKeyId]))?;
        sqlx::query(
            "DELETE FROM signing_keys WHERE kid NOT IN \
             (SELECT kid FROM signing_keys ORDER BY created_at DESC, kid DESC LIMIT ?1)",
        )
        .bind(codec::to_i64(keep.max(1)))
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        tx.commit().await.map_err(error::db)
    }

    async fn link_external_identity(
        &self,
        issuer: &str,
        subject: &str,
        new_account: &Account,
    ) -> Result<AccountId, StoreError> {
        const FIND: &str = "SELECT account_id FROM external_identities WHERE issuer = ?1 AND subject = ?2";
        // Every token after the first finds its link with a read; only a first sight writes.
        if let Some(row) = sqlx::query(FIND)
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.reader)
            .await
            .map_err(error::db)?
        {
            return account(&cols(&row));
        }
        // BEGIN IMMEDIATE serialises writers: a racing first sight finds the link here.
        let mut tx = self.begin_write().await?;
        if let Some(row) =
            sqlx::query(FIND).bind(issuer).bind(subject).fetch_optional(&mut *tx).await.map_err(error::db)?
        {
            return account(&cols(&row));
        }
        sqlx::query("INSERT INTO accounts (id, email, created_at) VALUES (?1, ?2, ?3)")
            .bind(new_account.id.to_string())
            .bind(new_account.email.as_str())
            .bind(new_account.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| error::map(e, &[Unique::AccountEmail, Unique::AccountId]))?;
        sqlx::query(
            "INSERT INTO external_identities (issuer, subject, account_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(new_account.id.to_string())
        .bind(new_account.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(error::db)?;
        tx.commit().await.map_err(error::db)?;
        Ok(new_account.id)
    }

    async fn shared_secret(&self, name: &str, candidate: [u8; 32]) -> Result<[u8; 32], StoreError> {
        // Insert-if-absent, then read whatever won: two replicas starting at once agree.
        sqlx::query("INSERT INTO shared_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(candidate.to_vec())
            .execute(&self.writer)
            .await
            .map_err(error::db)?;
        let row = sqlx::query("SELECT value FROM shared_secrets WHERE name = ?1")
            .bind(name)
            .fetch_one(&self.writer)
            .await
            .map_err(error::db)?;
        cols(&row).hash("value")
    }

    async fn audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for e in entries {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, detail, client_addr) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .bind(e.at.0)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.detail)
            .bind(&e.client_addr)
            .execute(&mut *tx)
            .await
            .map_err(error::db)?;
        }
        tx.commit().await.map_err(error::db)
    }

    async fn audit_since(&self, since: Timestamp, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, detail, client_addr FROM audit_log WHERE at >= ?1 ORDER BY seq LIMIT ?2",
        )
        .bind(since.0)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(decode).collect()
    }
}

/// Store a deny-list entry; an existing one for the same token or client is kept.
fn insert_denial(d: &TokenDenial) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    sqlx::query(
        "INSERT INTO token_denials (kind, id, client_id, revoked_at, until) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (kind, id) DO NOTHING",
    )
    .bind(d.kind.as_str())
    .bind(&d.id)
    .bind(&d.client_id)
    .bind(d.revoked_at.0)
    .bind(d.until.0)
}
