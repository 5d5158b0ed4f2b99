//! Live resume-point changes: after a change to a resume point commits (the consumer's apply, a
//! synchronous `PUT`), the application announces it, and subscribers of that profile (GraphQL's
//! `progressChanged`) receive it. This is how the resume point a phone sets reaches a TV.
//!
//! Embedded, announcing is a send on an in-process broadcast channel. In scale-out the change is
//! published on the [`ChangeFeed`] (NATS core) instead, and every replica, this one included,
//! hands what the feed delivers to [`App::deliver_progress_change`]: a TV subscribed on replica B
//! hears of a pause applied on replica A. Delivery is at most once (a live notification, not
//! state): a subscriber that lags behind the channel skips to the newest changes, and the store
//! stays the truth a client can always re-read.
//!
//! Rule: announce only after the commit (a subscriber must never see a change that could still
//! roll back), and only to subscribers the use case authorized ([`App::watch_progress`]).

use std::sync::{Arc, OnceLock};

use playhead_core::auth::Principal;
use playhead_core::ids::ProfileId;
use playhead_core::ports::{ChangeFeed, ProgressChange};
use tokio::sync::broadcast;

use crate::access::Operation;
use crate::{App, AppError};

/// Changes buffered per subscriber before the slowest starts skipping.
const CHANNEL_CAPACITY: usize = 1024;

/// The channels of one process.
#[derive(Clone)]
pub(crate) struct Changes {
    local: broadcast::Sender<ProgressChange>,
    feed: Arc<OnceLock<Arc<dyn ChangeFeed>>>,
}

impl Default for Changes {
    fn default() -> Self {
        Self { local: broadcast::channel(CHANNEL_CAPACITY).0, feed: Arc::new(OnceLock::new()) }
    }
}

/// The changes of one profile, for one authorized subscriber.
#[derive(Debug)]
pub struct ProgressWatch {
    profile: ProfileId,
    rx: broadcast::Receiver<ProgressChange>,
}

impl ProgressWatch {
    /// The next change of this profile's resume points; `None` once the application is gone.
    pub async fn next(&mut self) -> Option<ProgressChange> {
        loop {
            match self.rx.recv().await {
                Ok(c) if c.profile_id == self.profile => return Some(c),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    metrics::counter!("playhead_progress_changes_skipped_total").increment(skipped);
                    tracing::debug!(skipped, "a progress subscriber lagged; skipping to newer changes");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl App {
    /// Announce committed changes through the feed every replica hears (scale-out) instead of
    /// this process's channel. Set once, at start; later calls are ignored (clones of this `App`
    /// share the setting, so the event pipeline's copy announces through it too).
    pub fn set_change_feed(&self, feed: Arc<dyn ChangeFeed>) {
        if self.changes.feed.set(feed).is_err() {
            tracing::warn!("a change feed was already installed; keeping the first");
        }
    }

    /// Announce a committed change (the feed's, else this process's subscribers).
    pub(crate) fn announce_progress(&self, change: ProgressChange) {
        metrics::counter!("playhead_progress_changes_total").increment(1);
        match self.changes.feed.get() {
            Some(feed) => feed.publish(&change),
            None => self.deliver_progress_change(change),
        }
    }

    /// Hand a change to this process's subscribers (the change feed calls this for every change
    /// any replica announced).
    pub fn deliver_progress_change(&self, change: ProgressChange) {
        // No subscriber is not an error: nobody is watching.
        let _ = self.changes.local.send(change);
    }

    /// Watch a profile's resume points: needs what reading them needs (scope and a reachable
    /// profile), checked once, now.
    pub async fn watch_progress(&self, p: &Principal, profile: ProfileId) -> Result<ProgressWatch, AppError> {
        // Subscribed before the check, so no change committed meanwhile is missed.
        let rx = self.changes.local.subscribe();
        self.reachable_profile(p, profile, Operation::GetProgress).await?;
        Ok(ProgressWatch { profile, rx })
    }
}
