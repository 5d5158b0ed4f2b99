//! This replica's durable pull consumer: fetch a batch, apply it through the application's
//! idempotent apply (one transaction, which claims the outbox rows), and ack only after that
//! commit.
//!
//! Failures:
//! - a payload that cannot be decoded never will be: dead-lettered at once;
//! - the database unavailable (or the log full): the whole batch is NAKed with a delay and the
//!   consumer pauses, backing off up to [`MAX_BACKOFF`];
//! - any other apply error: the batch is split and each event applied alone, so one poison
//!   event does not hold the others back; an event that still fails is NAKed until its
//!   `poison_after_deliveries`-th delivery, then dead-lettered.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use playhead_app::AppError;
use playhead_core::ports::QueuedEvent;
use tokio::sync::watch;

use crate::{CONSUMER, NatsError, Pipeline, broker, pause, wire};

/// Longest pause while the database is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one fetch waits for messages (also how quickly a shutdown is noticed).
const FETCH_WAIT: Duration = Duration::from_secs(1);

/// Errors a retry can resolve.
fn transient(e: &AppError) -> bool {
    matches!(e, AppError::Unavailable(_) | AppError::Overloaded { .. })
}

pub(crate) async fn run(p: Pipeline, mut shutdown: watch::Receiver<bool>) {
    let mut consumer: Option<PullConsumer> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let c = match &consumer {
            Some(c) => c.clone(),
            None => match bind(&p).await {
                Ok(c) => {
                    consumer = Some(c.clone());
                    c
                }
                Err(e) => {
                    tracing::debug!(error = %e, "consumer: stream not reachable yet");
                    pause(backoff, &mut shutdown).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let batch = match fetch(&c, p.app.config().consumer_batch).await {
            Ok(b) => b,
            Err(e) => {
                // Deleted consumer or stream, NATS restarted: bind again.
                tracing::warn!(error = %e, "consumer: fetch failed; binding again");
                consumer = None;
                pause(backoff, &mut shutdown).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if batch.is_empty() {
            // Idle: make sure the consumer still exists (an operator may have deleted it to
            // replay the stream, or NATS lost it); a fetch on a vanished consumer may just come
            // back empty.
            let mut probe = c.clone();
            if probe.info().await.is_err() {
                consumer = None;
            }
            continue;
        }
        match handle(&p, batch, backoff).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "applying events failed; NAKed, consumer paused");
                metrics::counter!("playhead_apply_failures_total").increment(1);
                pause(backoff, &mut shutdown).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    tracing::info!("consumer stopped");
}

/// Bind to (creating if needed) the shared durable consumer.
async fn bind(p: &Pipeline) -> Result<PullConsumer, NatsError> {
    let s = &p.settings;
    let stream = p.js.get_stream(&s.stream).await.map_err(broker)?;
    let config = pull::Config {
        durable_name: Some(CONSUMER.to_owned()),
        description: Some("every replica applies from here; ack after commit".to_owned()),
        // A new (or deleted and re-created) consumer starts from the oldest message still in the
        // stream: replaying applied messages changes nothing.
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(s.ack_wait_secs),
        // Never give up on a message: transient failures retry for ever (the DLQ decision is
        // ours, by delivery count, not the broker's).
        max_deliver: -1,
        filter_subject: s.subject(),
        max_ack_pending: i64::try_from(p.app.config().consumer_batch.saturating_mul(4)).unwrap_or(10_000),
        ..Default::default()
    };
    stream.get_or_create_consumer(CONSUMER, config).await.map_err(broker)
}

async fn fetch(c: &PullConsumer, max: usize) -> Result<Vec<Message>, NatsError> {
    let mut messages = c.fetch().max_messages(max).expires(FETCH_WAIT).messages().await.map_err(broker)?;
    let mut out = Vec::new();
    while let Some(m) = messages.next().await {
        out.push(m.map_err(broker)?);
    }
    Ok(out)
}

/// Apply one fetched batch. `Err` when the batch was NAKed for a transient failure.
async fn handle(p: &Pipeline, batch: Vec<Message>, backoff: Duration) -> Result<(), NatsError> {
    let mut decoded: Vec<(Message, QueuedEvent)> = Vec::with_capacity(batch.len());
    for m in batch {
        match wire::decode(m.headers.as_ref(), &m.payload) {
            Ok(q) => decoded.push((m, q)),
            Err(reason) => {
                let seq = wire::seq_of(m.headers.as_ref());
                let event = wire::header(m.headers.as_ref(), wire::EVENT_ID)
                    .and_then(|s| playhead_core::EventId::parse(&s).ok());
                dead_letter(p, &m, &reason, seq, event).await?;
            }
        }
    }
    if decoded.is_empty() {
        return Ok(());
    }
    // The claim is by seq, and seqs restart in every database: a message from another deployment
    // sharing the stream, or one published before the database was restored, could name a row
    // that now holds a different event, and claiming it would delete that event unapplied. Only
    // messages whose (seq, event id) is in this outbox are applied; a seq with no row is done.
    let seqs: Vec<i64> = decoded.iter().map(|(_, q)| q.seq).collect();
    let owners: std::collections::HashMap<i64, playhead_core::EventId> = match p.outbox.events_at(&seqs).await
    {
        Ok(o) => o.into_iter().collect(),
        Err(e) => {
            nak_all(decoded.iter().map(|(m, _)| m), backoff).await;
            return Err(NatsError::Store(e));
        }
    };
    let (mine, others): (Vec<_>, Vec<_>) =
        decoded.into_iter().partition(|(_, q)| owners.get(&q.seq).is_none_or(|id| *id == q.event.event_id));
    if !others.is_empty() {
        tracing::warn!(
            message.count = others.len(),
            "messages naming outbox rows of other events ignored (another deployment on this stream, or a restored database?)"
        );
        metrics::counter!("playhead_consumer_foreign_total").increment(others.len() as u64);
        ack_all(others.iter().map(|(m, _)| m)).await;
    }
    let decoded = mine;
    if decoded.is_empty() {
        return Ok(());
    }
    // One copy per outbox row: a sweep outside the duplicate window can put two messages for one
    // row into a batch (the claim would hand the event over once, but apply it from both).
    let mut rows = std::collections::HashSet::new();
    let events: Vec<QueuedEvent> =
        decoded.iter().filter(|(_, q)| rows.insert(q.seq)).map(|(_, q)| q.clone()).collect();
    let started = std::time::Instant::now();
    match p.app.apply_queued(&events).await {
        Ok(stats) => {
            metrics::histogram!("playhead_apply_batch_seconds").record(started.elapsed().as_secs_f64());
            tracing::debug!(
                event.count = stats.applied,
                redelivered = stats.redelivered,
                duration_ms = started.elapsed().as_millis() as u64,
                "applied batch"
            );
            ack_all(decoded.iter().map(|(m, _)| m)).await;
            Ok(())
        }
        Err(e) if transient(&e) => {
            nak_all(decoded.iter().map(|(m, _)| m), backoff).await;
            Err(NatsError::Broker(format!("transient apply failure: {e}")))
        }
        Err(e) => {
            tracing::warn!(error = %e, event.count = decoded.len(), "batch failed deterministically; applying its events one by one");
            for (m, q) in &decoded {
                match p.app.apply_queued(std::slice::from_ref(q)).await {
                    Ok(_) => ack_all(std::iter::once(m)).await,
                    Err(e) if transient(&e) => {
                        nak_all(std::iter::once(m), backoff).await;
                        return Err(NatsError::Broker(format!("transient apply failure: {e}")));
                    }
                    Err(e) => {
                        let delivered = m.info().map(|i| i.delivered).unwrap_or(1);
                        if delivered >= p.settings.poison_after_deliveries {
                            dead_letter(
                                p,
                                m,
                                &format!("apply failed: {e}"),
                                Some(q.seq),
                                Some(q.event.event_id),
                            )
                            .await?;
                        } else {
                            tracing::warn!(error = %e, event.id = %q.event.event_id, delivered, "event failed to apply; retrying before dead-lettering it");
                            nak_all(std::iter::once(m), backoff).await;
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

async fn ack_all<'a>(msgs: impl Iterator<Item = &'a Message>) {
    for m in msgs {
        // A lost ack only means a redelivery, which the claim makes a no-op.
        if let Err(e) = m.ack().await {
            tracing::debug!(error = %e, "ack not sent; the message will be redelivered harmlessly");
        }
    }
}

async fn nak_all<'a>(msgs: impl Iterator<Item = &'a Message>, delay: Duration) {
    let mut n = 0u64;
    for m in msgs {
        n += 1;
        let _ = m.ack_with(AckKind::Nak(Some(delay))).await;
    }
    metrics::counter!("playhead_consumer_naks_total").increment(n);
}

/// Park a message on the dead-letter stream, mark its outbox row dead (the sweeper then leaves
/// it alone) when the message names both the row and its event, and terminate it. If the
/// dead-letter publish fails the message is NAKed instead: nothing is terminated without a copy.
async fn dead_letter(
    p: &Pipeline,
    m: &Message,
    reason: &str,
    seq: Option<i64>,
    event: Option<playhead_core::EventId>,
) -> Result<(), NatsError> {
    let original = m.info().map(|i| i.stream_sequence).unwrap_or_default();
    let mut h = async_nats::HeaderMap::new();
    // One dead letter per original message, even if it is delivered again before the term lands.
    h.insert(async_nats::header::NATS_MESSAGE_ID, format!("dlq:{}:{original}", p.settings.stream).as_str());
    h.insert(wire::REASON, truncate(reason, 400));
    h.insert(wire::ORIGINAL, original.to_string().as_str());
    if let Some(seq) = seq {
        h.insert(wire::SEQ, seq.to_string().as_str());
    }
    if let Some(id) = event {
        h.insert(wire::EVENT_ID, id.to_string().as_str());
    }
    let published = async {
        p.js.publish_with_headers(p.settings.dlq_subject(), h, m.payload.clone())
            .await
            .map_err(broker)?
            .await
            .map_err(broker)
    }
    .await;
    if let Err(e) = published {
        let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        return Err(e);
    }
    if let (Some(seq), Some(event)) = (seq, event) {
        p.outbox.mark_dead(seq, event, p.app.clock().now()).await?;
    }
    let _ = m.ack_with(AckKind::Term).await;
    tracing::error!(
        reason,
        outbox.seq = seq,
        stream.seq = original,
        "message dead-lettered (playhead admin dlq list)"
    );
    metrics::counter!("playhead_dlq_dead_lettered_total").increment(1);
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    // Header values are one line.
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(max) {
        Some((i, _)) => one_line[..i].to_owned(),
        None => one_line,
    }
}
