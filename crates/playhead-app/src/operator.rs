//! Operator use cases: what `playhead admin` does from the machine the service runs on.
//!
//! The operator is whoever runs the binary against its store (the process owner), so these take
//! no principal; they exist so the CLI goes through the application like every other caller
//! rather than reaching into the ports.

use playhead_auth::{ApiKey, ApiKeySecret};
use playhead_core::auth::Scopes;
use playhead_core::ids::AccountId;
use playhead_core::profile::Account;

use crate::{App, AppError};

/// An API key just created: the secret (shown once) and its lookup prefix.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The key; its plaintext exists only here.
    pub secret: ApiKeySecret,
    /// Visible prefix, the handle for revocation.
    pub prefix: String,
}

/// What a full replay of the log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Events put back in the queue.
    pub requeued: u64,
    /// Events applied by this command (the rest are applied by a running server's consumer).
    pub applied: u64,
}

impl App {
    /// An account by id.
    pub async fn account(&self, id: AccountId) -> Result<Account, AppError> {
        self.ports.accounts.account(id).await?.ok_or(AppError::NotFound("account"))
    }

    /// Create a service API key with `scopes`.
    pub async fn create_api_key(&self, name: String, scopes: Scopes) -> Result<CreatedApiKey, AppError> {
        let (secret, record) = ApiKey::generate(name, scopes, self.clock.now());
        self.ports.api_keys.create_api_key(&record).await?;
        Ok(CreatedApiKey { secret, prefix: record.prefix })
    }

    /// Revoke an API key by prefix (replicas stop accepting it within the key cache's lifetime).
    pub async fn revoke_api_key(&self, prefix: &str) -> Result<(), AppError> {
        Ok(self.ports.api_keys.revoke_api_key(prefix, self.clock.now()).await?)
    }

    /// Queue every logged event again and apply the queue: deletes and hides win, so the result
    /// is the state before (DESIGN.md, "Deletes win").
    pub async fn replay_log(&self) -> Result<Replayed, AppError> {
        let requeued = self.ports.log.requeue_all().await?;
        let applied = self.drain().await?;
        Ok(Replayed { requeued, applied })
    }
}
