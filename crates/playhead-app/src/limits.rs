//! Request quotas by principal and route class, and idempotency keys: the cross-cutting contract
//! every transport applies the same way (REST today; gRPC and GraphQL use the same calls).

use playhead_core::ports::{IdempotencyBegin, StoredResponse};
use playhead_core::rate::{Quota, RateDecision};
use playhead_core::time::{DAY_MS, MINUTE_MS};

use crate::{App, AppError};

/// What a request costs quota from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// GETs.
    Read,
    /// Changes other than ingestion and imports.
    Write,
    /// Playback event batches.
    Ingest,
    /// Bulk imports: catalog NDJSON and history backfills.
    Import,
    /// Unauthenticated requests and sign-in (keyed by client address).
    Auth,
}

impl RouteClass {
    /// The policy name in RateLimit headers.
    pub const fn as_str(self) -> &'static str {
        match self {
            RouteClass::Read => "read",
            RouteClass::Write => "write",
            RouteClass::Ingest => "ingest",
            RouteClass::Import => "import",
            RouteClass::Auth => "auth",
        }
    }
}

/// One quota per route class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// GETs.
    pub read: Quota,
    /// Other changes.
    pub write: Quota,
    /// Event batches.
    pub ingest: Quota,
    /// Imports and backfills.
    pub import: Quota,
    /// Unauthenticated and sign-in.
    pub auth: Quota,
}

impl Default for Quotas {
    /// Generous for a person's devices, protective against a runaway script: a platform backend
    /// importing 100,000 plays (200 backfill requests) finishes in about a minute.
    fn default() -> Self {
        let per_min = |limit| Quota { limit, window_ms: MINUTE_MS };
        Self {
            read: per_min(1_200),
            write: per_min(300),
            ingest: per_min(600),
            import: per_min(120),
            auth: per_min(60),
        }
    }
}

impl Quotas {
    /// The quota of a class.
    pub const fn of(&self, class: RouteClass) -> Quota {
        match class {
            RouteClass::Read => self.read,
            RouteClass::Write => self.write,
            RouteClass::Ingest => self.ingest,
            RouteClass::Import => self.import,
            RouteClass::Auth => self.auth,
        }
    }
}

/// How long a completed response is kept for replay (published in the API description).
pub const IDEMPOTENCY_TTL_MS: i64 = DAY_MS;
/// A running request holding a key longer than this is presumed dead (twice the request timeout).
pub const IDEMPOTENCY_LEASE_MS: i64 = MINUTE_MS;

impl App {
    /// Charge one request of `cost` units to `partition` (a principal or client address).
    pub async fn charge(
        &self,
        partition: &str,
        class: RouteClass,
        cost: u32,
    ) -> Result<(RateDecision, Quota), AppError> {
        let quota = self.config.quotas.of(class);
        let key = format!("{}:{partition}", class.as_str());
        let d = self.ports.limiter.check(&key, quota, cost, self.clock.now()).await?;
        if !d.allowed {
            metrics::counter!("playhead_rate_limited_total", "class" => class.as_str()).increment(1);
        }
        Ok((d, quota))
    }

    /// Claim an idempotency key (already scoped to the principal) for a payload fingerprint.
    pub async fn idempotency_begin(
        &self,
        key: &str,
        fingerprint: [u8; 32],
    ) -> Result<IdempotencyBegin, AppError> {
        Ok(self.ports.idempotency.begin(key, fingerprint, self.clock.now(), IDEMPOTENCY_LEASE_MS).await?)
    }

    /// Store the response of a request holding `key`.
    pub async fn idempotency_complete(
        &self,
        key: &str,
        fingerprint: [u8; 32],
        response: &StoredResponse,
    ) -> Result<(), AppError> {
        let expires = self.clock.now().plus_ms(IDEMPOTENCY_TTL_MS);
        Ok(self.ports.idempotency.complete(key, fingerprint, response, expires).await?)
    }

    /// Free a key whose response must not be replayed.
    pub async fn idempotency_release(&self, key: &str, fingerprint: [u8; 32]) -> Result<(), AppError> {
        Ok(self.ports.idempotency.release(key, fingerprint).await?)
    }
}
