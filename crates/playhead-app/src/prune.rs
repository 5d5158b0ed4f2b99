//! Nothing grows without bound (issue 16): a background job deletes, in small batches, what is
//! past its horizon in every table that only ever gained rows. Decision 0081.
//!
//! The horizons are the rules here (the stores only delete what they are told is past them):
//! - identity leftovers (authorization and device codes, refresh tokens, sessions, browser
//!   sessions, token deny-list entries) are kept [`IDENTITY_GRACE_MS`] past their end, so a
//!   code or refresh token replayed shortly after it expired is still recognised as a replay,
//!   and a session outlives every access token it issued by far more than the revocation poll's
//!   window (the grace exceeds the longest access-token lifetime allowed, one hour, plus leeway);
//! - idempotency records go [`IDEMPOTENCY_HORIZON_MS`] after they expired (completed) or started
//!   (a request that never finished);
//! - audit entries go after the configured retention (`retention.audit_days`; 0 keeps them);
//! - concurrent-stream rows go [`STREAM_HORIZON_MS`] after their last event (an account that
//!   never plays again would otherwise keep its last streams).
//!
//! Tombstones of deleted plays are not pruned here: the raw events they cover stay in the event
//! log, and a replay of the log must keep finding them (DESIGN.md, "Deletes win"). The retention
//! roll-up (decision 0083, off unless `retention.rollup_after_days` is set) deletes them together
//! with those events once they are past its cutoff, in the same round, batch by batch: each batch
//! adds plays to the monthly roll-ups and deletes their rows in one transaction, so a crash
//! mid-round never counts a play twice and a second round finds nothing left to do.

use std::sync::Arc;
use std::time::Duration;

use playhead_core::ports::{Clock, PruneKind, Pruner, RolledUp};
use playhead_core::rules::rollup;
use playhead_core::time::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AppError;

/// How long identity records are kept past their expiry.
pub const IDENTITY_GRACE_MS: i64 = 86_400_000;
/// How long idempotency records are kept past their expiry or their start.
pub const IDEMPOTENCY_HORIZON_MS: i64 = 86_400_000;
/// How long a concurrent-stream row is kept past its last event. The stream timeout is at most
/// an hour (config), so a row this old has been ignored by the stream rule for 23 hours at least.
pub const STREAM_HORIZON_MS: i64 = 86_400_000;
/// Most batches of one kind in one round: a large backlog is worked off over several rounds
/// rather than in one long burst.
pub const MAX_BATCHES_PER_ROUND: u32 = 100;

/// Tunables of the pruning job (the binary fills them from `[retention]`).
#[derive(Debug, Clone)]
pub struct PruneConfig {
    /// Rows per delete statement.
    pub batch: u32,
    /// Pause between two rounds.
    pub interval: Duration,
    /// Audit entries older than this are deleted; `None` keeps them for ever.
    pub audit_retention_ms: Option<i64>,
    /// Plays that ended this many days ago (from the start of that month) are rolled up into
    /// monthly aggregates; `None`: never (the default).
    pub rollup_after_days: Option<u32>,
}

impl Default for PruneConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            interval: Duration::from_secs(600),
            audit_retention_ms: Some(365 * 86_400_000),
            rollup_after_days: None,
        }
    }
}

/// The horizon of `kind` at `now`: rows past it may be deleted. `None`: this kind is kept.
pub fn horizon(kind: PruneKind, now: Timestamp, config: &PruneConfig) -> Option<Timestamp> {
    match kind {
        PruneKind::AuthCodes
        | PruneKind::DeviceCodes
        | PruneKind::RefreshTokens
        | PruneKind::Sessions
        | PruneKind::WebSessions
        | PruneKind::TokenDenials => Some(now.plus_ms(-IDENTITY_GRACE_MS)),
        PruneKind::IdempotencyKeys => Some(now.plus_ms(-IDEMPOTENCY_HORIZON_MS)),
        PruneKind::Audit => config.audit_retention_ms.map(|ms| now.plus_ms(-ms)),
        PruneKind::Streams => Some(now.plus_ms(-STREAM_HORIZON_MS)),
    }
}

/// The pruning job over one store.
#[derive(Clone)]
pub struct Pruning {
    pruner: Arc<dyn Pruner>,
    clock: Arc<dyn Clock>,
    config: PruneConfig,
}

impl Pruning {
    /// A job over `pruner`.
    pub fn new(pruner: Arc<dyn Pruner>, clock: Arc<dyn Clock>, config: PruneConfig) -> Self {
        Self { pruner, clock, config }
    }

    /// One round: every kind, batch after batch until nothing more is due (or
    /// [`MAX_BATCHES_PER_ROUND`]). Returns the rows deleted per kind; counts them in
    /// `playhead_pruned_rows_total{table}`. A failing kind is logged and the others still run;
    /// the first error is returned after the round.
    pub async fn run_once(&self) -> Result<Vec<(PruneKind, u64)>, AppError> {
        let mut done = Vec::with_capacity(PruneKind::ALL.len());
        let mut first_error = None;
        for kind in PruneKind::ALL {
            match self.prune_kind(kind).await {
                Ok(n) => done.push((kind, n)),
                Err(e) => {
                    tracing::warn!(table = kind.table(), error = %e, "pruning failed; retried next round");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.roll_up().await {
            tracing::warn!(error = %e, "roll-up failed; retried next round");
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// The roll-up part of a round (nothing when it is off): batch after batch until one finds
    /// nothing due (or [`MAX_BATCHES_PER_ROUND`]). Returns the round's total; counts deleted rows
    /// in `playhead_rolled_up_rows_total{table}` and plays in `playhead_rolled_up_plays_total`.
    pub async fn roll_up(&self) -> Result<RolledUp, AppError> {
        let Some(days) = self.config.rollup_after_days else {
            // Off: the series still exist (at 0), so dashboards and alerts see the job is idle.
            for table in ["viewings", "events", "tombstones"] {
                metrics::counter!("playhead_rolled_up_rows_total", "table" => table).increment(0);
            }
            metrics::counter!("playhead_rolled_up_plays_total").increment(0);
            return Ok(RolledUp::default());
        };
        let cutoff = rollup::cutoff(self.clock.now(), days);
        let batch = self.config.batch.max(1);
        let mut total = RolledUp::default();
        for _ in 0..MAX_BATCHES_PER_ROUND {
            let n = self.pruner.roll_up(cutoff, batch).await?;
            for (table, rows) in
                [("viewings", n.viewings), ("events", n.events), ("tombstones", n.tombstones)]
            {
                metrics::counter!("playhead_rolled_up_rows_total", "table" => table).increment(rows);
            }
            metrics::counter!("playhead_rolled_up_plays_total").increment(n.plays);
            total.plays += n.plays;
            total.viewings += n.viewings;
            total.events += n.events;
            total.tombstones += n.tombstones;
            if n.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if !total.is_empty() {
            tracing::info!(
                plays = total.plays,
                viewings = total.viewings,
                events = total.events,
                tombstones = total.tombstones,
                cutoff = %cutoff.to_rfc3339(),
                "rolled up"
            );
        }
        Ok(total)
    }

    async fn prune_kind(&self, kind: PruneKind) -> Result<u64, AppError> {
        let Some(h) = horizon(kind, self.clock.now(), &self.config) else {
            return Ok(0);
        };
        let batch = self.config.batch.max(1);
        let mut total = 0;
        for _ in 0..MAX_BATCHES_PER_ROUND {
            let n = self.pruner.prune(kind, h, batch).await?;
            total += n;
            metrics::counter!("playhead_pruned_rows_total", "table" => kind.table()).increment(n);
            if n < u64::from(batch) {
                break;
            }
            // Let requests and the consumer at the store between two batches.
            tokio::task::yield_now().await;
        }
        if total > 0 {
            tracing::info!(table = kind.table(), rows = total, "pruned");
        }
        Ok(total)
    }

    /// Run a round every `interval` until `stop` turns true (the first one right away).
    pub fn spawn(self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                // Errors are logged per kind inside the round.
                let _ = self.run_once().await;
                tokio::select! {
                    () = tokio::time::sleep(self.config.interval) => {}
                    () = async { let _ = stop.wait_for(|v| *v).await; } => break,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_leftovers_outlive_the_longest_access_token_and_audit_can_be_kept() {
        let now = Timestamp(10_000_000_000);
        let cfg = PruneConfig { audit_retention_ms: None, ..PruneConfig::default() };
        for kind in PruneKind::ALL {
            let h = horizon(kind, now, &cfg);
            match kind {
                PruneKind::Audit => assert_eq!(h, None),
                // One hour of access token plus leeway is far inside the grace.
                _ => assert!(h.unwrap().0 <= now.0 - 3_600_000 - 30_000, "{kind:?}"),
            }
        }
        let cfg = PruneConfig { audit_retention_ms: Some(1_000), ..PruneConfig::default() };
        assert_eq!(horizon(PruneKind::Audit, now, &cfg), Some(Timestamp(now.0 - 1_000)));
    }
}
