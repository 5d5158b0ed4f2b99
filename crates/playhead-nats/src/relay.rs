//! The relay (outbox rows -> the events stream) and the sweeper (rows handed over but still
//! unapplied after `sweep_after_secs` are offered again), plus the periodic housekeeping and
//! gauges of a replica whose events flow through JetStream.
//!
//! The relay runs on every replica; the outbox hands each row to one of them. A row is marked
//! "handed over" before it is published and unmarked when the publish is not acknowledged, so a
//! relay that dies mid-publish leaves rows that the sweeper re-offers later: never a row nobody
//! will publish.

use std::time::Duration;

use futures::future::join_all;
use tokio::sync::watch;

use crate::{Pipeline, pause, wire};

/// Poll the outbox at least this often (the append notification is per process: rows appended
/// on another replica, or re-offered by a sweep, are found by polling).
const POLL: Duration = Duration::from_millis(500);
/// Longest wait between relay retries while NATS refuses.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Held events are released or expired this often (the in-process consumer's job otherwise).
const HELD_SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Gauges are refreshed this often.
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// How long one round of publishes may wait for its acknowledgements.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn run(p: Pipeline, mut shutdown: watch::Receiver<bool>) {
    let wake = p.app.appended();
    let mut streams_ready = false;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !streams_ready {
            match p.ensure_streams().await {
                Ok(()) => {
                    streams_ready = true;
                    p.set_problem(None);
                }
                Err(e) => {
                    p.set_problem(Some(e.to_string()));
                    metrics::counter!("playhead_relay_publish_errors_total").increment(1);
                    pause(backoff, &mut shutdown).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        match relay_once(&p).await {
            Ok(n) if n >= p.settings.relay_batch => {
                backoff = Duration::from_millis(100);
                p.set_problem(None);
            }
            Ok(_) => {
                backoff = Duration::from_millis(100);
                p.set_problem(None);
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "relay: publishing failed; rows stay in the outbox");
                p.set_problem(Some(format!("publishing: {e}")));
                // A NATS that lost its store lost the streams: re-create them before retrying.
                streams_ready = false;
                pause(backoff, &mut shutdown).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracing::info!("relay stopped");
}

/// Publish one round of rows; returns how many were taken.
async fn relay_once(p: &Pipeline) -> Result<usize, crate::NatsError> {
    let rows = p.outbox.take_unpublished(p.settings.relay_batch, p.app.clock().now()).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    // Bounded: while NATS is away the client buffers publishes, and a relay must not sit on its
    // rows for ever (they are unmarked and retried).
    let (failed, first_error) = match tokio::time::timeout(PUBLISH_TIMEOUT, publish_all(p, &rows)).await {
        Ok(r) => r,
        Err(_) => {
            (rows.iter().map(|q| q.seq).collect(), Some("no publish acknowledgement within 10 s".to_owned()))
        }
    };
    let published = (rows.len() - failed.len()) as u64;
    metrics::counter!("playhead_relay_published_total").increment(published);
    if failed.is_empty() {
        return Ok(rows.len());
    }
    metrics::counter!("playhead_relay_publish_errors_total").increment(failed.len() as u64);
    p.outbox.unpublish(&failed).await?;
    Err(crate::NatsError::Broker(format!(
        "{} of {} publishes failed: {}",
        failed.len(),
        rows.len(),
        first_error.unwrap_or_default()
    )))
}

/// Publish rows; returns the seqs not acknowledged and the first error.
async fn publish_all(p: &Pipeline, rows: &[playhead_core::ports::QueuedEvent]) -> (Vec<i64>, Option<String>) {
    let subject = p.settings.subject();
    // Send every publish first, then wait for the acks together: one round trip per batch.
    let mut pending = Vec::with_capacity(rows.len());
    let mut failed: Vec<i64> = Vec::new();
    let mut first_error = None;
    // A span per traced row, open until its publish is acknowledged: request -> relay -> apply
    // in one trace (decision 0075). The message hands on the relay span's context.
    let mut spans = Vec::new();
    for q in rows {
        let mut q = q.clone();
        if let Some(t) = q.trace {
            let (span, handed) = playhead_app::telemetry::continue_trace(
                tracing::info_span!("relay", trace_id = %t.trace_id_hex(), outbox.seq = q.seq),
                t,
            );
            q.trace = Some(handed);
            spans.push(span);
        }
        let (headers, body) = wire::encode(&q);
        match p.js.publish_with_headers(subject.clone(), headers, body).await {
            Ok(ack) => pending.push((q.seq, ack)),
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                failed.push(q.seq);
            }
        }
    }
    let (seqs, acks): (Vec<i64>, Vec<_>) = pending.into_iter().unzip();
    for (seq, ack) in seqs.into_iter().zip(join_all(acks.into_iter().map(IntoFuture::into_future)).await) {
        // A duplicate ack means the stream already holds this row's message: done too.
        if let Err(e) = ack {
            first_error.get_or_insert_with(|| e.to_string());
            failed.push(seq);
        }
    }
    drop(spans);
    (failed, first_error)
}

/// The sweeper and housekeeping loop.
pub(crate) async fn sweeper(p: Pipeline, mut shutdown: watch::Receiver<bool>) {
    let horizon_ms = i64::try_from(p.settings.sweep_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    // Several sweeps per horizon, so a lost message waits at most ~1.25 horizons.
    let every = Duration::from_millis((p.settings.sweep_after_secs * 1000 / 4).clamp(250, 15_000));
    let wake = p.app.appended();
    let mut next_held = tokio::time::Instant::now();
    let mut next_gauges = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let cutoff = p.app.clock().now().plus_ms(-horizon_ms);
        match p.outbox.sweep(cutoff).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    event.count = n,
                    sweep_after_secs = p.settings.sweep_after_secs,
                    "sweeper: unapplied rows published again (the broker lost them or the consumers are behind)"
                );
                metrics::counter!("playhead_sweeper_republished_total").increment(n);
                wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "sweeper: outbox unavailable"),
        }
        let now = tokio::time::Instant::now();
        if now >= next_held {
            if let Err(e) = p.app.sweep_held().await {
                tracing::error!(error = %e, "held-event sweep failed");
            }
            next_held = now + HELD_SWEEP_EVERY;
        }
        if now >= next_gauges {
            gauges(&p).await;
            next_gauges = now + GAUGES_EVERY;
        }
        pause(every, &mut shutdown).await;
    }
}

async fn gauges(p: &Pipeline) {
    if let Ok(d) = p.outbox.depth().await {
        metrics::gauge!("playhead_outbox_unpublished").set(d.unpublished as f64);
        metrics::gauge!("playhead_outbox_unapplied").set(d.unapplied as f64);
        metrics::gauge!("playhead_outbox_dead").set(d.dead as f64);
        // The same name the in-process consumer reports, so one alert covers both modes.
        metrics::gauge!("playhead_event_backlog").set(d.unapplied as f64);
    }
    if let Ok((pending, ack_pending)) = p.consumer_counts().await {
        metrics::gauge!("playhead_consumer_pending").set(pending as f64);
        metrics::gauge!("playhead_consumer_ack_pending").set(ack_pending as f64);
    }
    if let Ok(n) = p.dlq_size().await {
        metrics::gauge!("playhead_dlq_messages").set(n as f64);
    }
}
