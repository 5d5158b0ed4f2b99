//! The in-process consumer: takes queued events from the log and applies them in batches.
//!
//! It is woken by every append (and polls once a second as a safety net). Failures are
//! transient by assumption (the store is local): the batch stays queued and is retried with
//! backoff, so nothing accepted is lost. On shutdown it finishes the batch in hand and stops; the
//! rest stays queued in the durable log for the next start.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{App, AppError};

/// How often held events are released (title arrived) or expired (held too long).
const HELD_SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Longest wait between retries of a failing batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How far the event pipeline is behind (see [`App::pipeline_lag`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineLag {
    /// Events accepted and not applied yet (held events excluded).
    pub backlog: u64,
    /// Age of the oldest of them, milliseconds; 0 when there is none.
    pub lag_ms: i64,
}

impl App {
    /// Apply everything queued now; returns events applied. For the CLI (demo) and tests.
    pub async fn drain(&self) -> Result<u64, AppError> {
        let mut total = 0;
        loop {
            let batch = self.ports.log.next_batch(self.config.consumer_batch).await?;
            if batch.is_empty() {
                return Ok(total);
            }
            total += self.apply_queued(&batch).await?.applied;
        }
    }

    /// Housekeeping: release held events whose title arrived, drop those held past `held_ttl`,
    /// and forget expired idempotency keys.
    pub async fn sweep_held(&self) -> Result<(u64, u64), AppError> {
        let purged = self.ports.idempotency.purge_expired(self.clock.now()).await?;
        if purged > 0 {
            tracing::debug!(key.count = purged, "expired idempotency keys purged");
        }
        let released = self.release_held().await?;
        let cutoff = self.clock.now().plus_ms(-self.config.rules.held_ttl_ms);
        let expired = self.ports.log.expire_held(cutoff).await?;
        if expired > 0 {
            tracing::warn!(event.count = expired, "held events expired: their titles never arrived");
            metrics::counter!("playhead_events_dropped_total", "reason" => "held_expired").increment(expired);
        }
        #[expect(clippy::cast_precision_loss, reason = "a gauge")]
        metrics::gauge!("playhead_held_events").set(self.ports.log.held_count().await? as f64);
        Ok((released, expired))
    }

    /// How far the event pipeline is behind, in both modes: events accepted and not applied yet,
    /// and the age of the oldest of them. Also sets the `playhead_event_backlog` and
    /// `playhead_pipeline_lag_seconds` gauges, so a consumer that is stuck (failing, or not
    /// running at all) still shows: the consumer's own loop reports only when it is idle.
    pub async fn pipeline_lag(&self) -> Result<PipelineLag, AppError> {
        let backlog = self.ports.log.backlog().await?;
        let oldest = self.ports.log.oldest_unapplied().await?;
        // A client clock cannot skew this: received_at is the server's clock. Replicas' clocks
        // may differ slightly in scale-out; a negative age reads as zero.
        let lag_ms = oldest.map_or(0, |t| (self.clock.now().0 - t.0).max(0));
        #[expect(clippy::cast_precision_loss, reason = "gauges")]
        {
            metrics::gauge!("playhead_event_backlog").set(backlog as f64);
            metrics::gauge!("playhead_pipeline_lag_seconds").set(lag_ms as f64 / 1000.0);
        }
        Ok(PipelineLag { backlog, lag_ms })
    }

    /// Start the consumer; it stops after its current batch once `shutdown` turns true.
    pub fn spawn_consumer(&self, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut next_sweep = tokio::time::Instant::now();
            loop {
                if *shutdown.borrow() {
                    break;
                }
                if tokio::time::Instant::now() >= next_sweep {
                    if let Err(e) = app.sweep_held().await {
                        tracing::error!(error = %e, "held-event sweep failed");
                    }
                    next_sweep = tokio::time::Instant::now() + HELD_SWEEP_EVERY;
                }
                let step = async {
                    let batch = app.ports.log.next_batch(app.config.consumer_batch).await?;
                    if batch.is_empty() {
                        return Ok::<bool, AppError>(false);
                    }
                    let started = std::time::Instant::now();
                    let stats = app.apply_queued(&batch).await?;
                    metrics::histogram!("playhead_apply_batch_seconds")
                        .record(started.elapsed().as_secs_f64());
                    tracing::debug!(
                        event.count = stats.applied,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "applied batch"
                    );
                    Ok(true)
                };
                match step.await {
                    Ok(true) => backoff = Duration::from_millis(100),
                    Ok(false) => {
                        if let Ok(depth) = app.ports.log.backlog().await {
                            #[expect(clippy::cast_precision_loss, reason = "a gauge")]
                            metrics::gauge!("playhead_event_backlog").set(depth as f64);
                        }
                        tokio::select! {
                            () = app.wake.notified() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "applying events failed; will retry");
                        metrics::counter!("playhead_apply_failures_total").increment(1);
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => {}
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            tracing::info!("consumer stopped");
        })
    }
}
