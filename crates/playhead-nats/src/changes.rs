//! Live resume-point changes across replicas: the application's [`ChangeFeed`] on a NATS core
//! subject (`<stream>.changes.progress`), and the subscription that hands every change any
//! replica published to this replica's subscribers.
//!
//! Core NATS, not JetStream: a change is a live notification (at most once is the contract, see
//! `playhead_app::changes`), so storing it would only replay stale resume points to whoever
//! reconnects. Every replica, the publisher included, receives each change once through its own
//! subscription, so a subscriber is told the same way wherever the write was applied.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use playhead_app::App;
use playhead_core::ports::{ChangeFeed, ProgressChange};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Changes waiting to be published before new ones are dropped (counted): a NATS outage must not
/// grow memory or slow down applies.
const BUFFER: usize = 4096;

/// The feed the application publishes through.
#[derive(Debug, Clone)]
pub struct NatsChangeFeed(mpsc::Sender<ProgressChange>);

impl ChangeFeed for NatsChangeFeed {
    fn publish(&self, change: &ProgressChange) {
        if self.0.try_send(change.clone()).is_err() {
            metrics::counter!("playhead_progress_changes_dropped_total").increment(1);
        }
    }
}

/// The subject changes travel on.
pub fn subject(stream: &str) -> String {
    format!("{stream}.changes.progress")
}

/// Install the feed on `app` and start the publisher and the subscription; both stop once
/// `shutdown` turns true.
pub(crate) fn spawn(
    client: async_nats::Client,
    stream: &str,
    app: &App,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let subject = subject(stream);
    let (tx, mut rx) = mpsc::channel::<ProgressChange>(BUFFER);
    app.set_change_feed(std::sync::Arc::new(NatsChangeFeed(tx)));
    let publisher = {
        let (client, subject, mut stop) = (client.clone(), subject.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    c = rx.recv() => c,
                    _ = stop.changed() => None,
                };
                let Some(change) = change else { break };
                let payload = match serde_json::to_vec(&change) {
                    Ok(p) => Bytes::from(p),
                    Err(e) => {
                        tracing::error!(error = %e, "encoding a progress change");
                        continue;
                    }
                };
                // The client buffers while NATS reconnects; an error here means it gave up on
                // this message: counted, not retried (at most once).
                if let Err(e) = client.publish(subject.clone(), payload).await {
                    metrics::counter!("playhead_progress_changes_dropped_total").increment(1);
                    tracing::debug!(error = %e, "publishing a progress change failed");
                }
            }
        })
    };
    let app = app.clone();
    tokio::spawn(async move {
        loop {
            let mut sub = match client.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "subscribing to progress changes failed; retrying");
                    crate::pause(Duration::from_secs(1), &mut shutdown).await;
                    if *shutdown.borrow() {
                        break;
                    }
                    continue;
                }
            };
            loop {
                let msg = tokio::select! {
                    m = sub.next() => m,
                    _ = shutdown.changed() => None,
                };
                let Some(msg) = msg else { break };
                match serde_json::from_slice::<ProgressChange>(&msg.payload) {
                    Ok(change) => app.deliver_progress_change(change),
                    Err(e) => tracing::warn!(error = %e, "an undecodable progress change was ignored"),
                }
            }
            // Stopping, or the shutdown sender is gone (nobody can stop us later: stop now).
            if *shutdown.borrow() || shutdown.has_changed().is_err() {
                break;
            }
        }
        publisher.abort();
    })
}
