//! The followers' activity feed (issue 14): follow, request, approve, block, share settings, the
//! feed read, publishing activities from applied plays, and the asynchronous fan-out.
//!
//! Rules of this module:
//! - Graph changes authorize like every use case (scope from the policy table, then the path's
//!   profile must be reachable); the *other* profile in a follow is anyone's, so a missing one is
//!   a field error naming `profile_id`, never a probe of ownership.
//! - Activities are published after the apply transaction commits, from the plays it changed
//!   (never from raw heartbeats), and fan-out runs in its own task in bounded steps, so an
//!   author with a million followers never holds the apply path (decision 0061).
//! - What a reader sees is decided at read time by the graph as it is now (the store's
//!   [`FeedStore::feed`] contract); nothing has to be rebuilt when follows, blocks, sharing or
//!   the threshold change.

use std::collections::HashMap;
use std::time::Duration;

use playhead_core::FieldError;
use playhead_core::auth::Principal;
use playhead_core::feed::{
    Activity, ActivityKind, AppliedPlay, FollowState, PlayContext, activities_for_play, check_follow,
    loved_activity, publishes,
};
use playhead_core::identity::AuditEntry;
use playhead_core::ids::{ActivityId, ProfileId};
use playhead_core::ports::{ActivityRef, FollowEdge, FollowSide, PlayQuery};
use playhead_core::profile::Profile;
use playhead_core::time::Timestamp;
use playhead_core::title::{Title, TitleKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::access::{Operation, partition_of};
use crate::{App, AppError};

/// One feed entry as transports show it.
#[derive(Debug, Clone)]
pub struct FeedItem {
    /// The activity.
    pub activity: Activity,
    /// The actor's display name now.
    pub actor_name: String,
    /// The title shown.
    pub title: Title,
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct FeedPage {
    /// Newest first.
    pub items: Vec<FeedItem>,
    /// Continue here, if there may be more.
    pub next_cursor: Option<String>,
}

/// A page of follow edges.
#[derive(Debug, Clone)]
pub struct FollowPage {
    /// Ordered by the other profile's id.
    pub items: Vec<FollowEdge>,
    /// Continue here, if there may be more.
    pub next_cursor: Option<String>,
}

/// Which follow list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowList {
    /// Whom the profile follows.
    Following,
    /// Who follows the profile.
    Followers,
    /// Who asked to follow the profile and waits for a decision.
    Requests,
}

impl FollowList {
    fn scope(self, profile: ProfileId) -> String {
        let name = match self {
            Self::Following => "following",
            Self::Followers => "followers",
            Self::Requests => "follow-requests",
        };
        format!("{name}:{profile}")
    }
}

/// A fresh activity id: UUIDv7 stamped with the activity's time, so ids sort like the feed.
fn new_activity_id(at: Timestamp) -> ActivityId {
    let secs = u64::try_from(at.0.div_euclid(1000)).unwrap_or(0);
    let nanos = u32::try_from(at.0.rem_euclid(1000) * 1_000_000).unwrap_or(0);
    ActivityId(Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos)))
}

fn unknown_profile() -> AppError {
    AppError::invalid(FieldError::new("profile_id", "unknown_profile", "no such profile"))
}

impl App {
    /// The other profile of a graph change: any profile that exists (follows cross accounts).
    async fn other_profile(&self, id: ProfileId) -> Result<Profile, AppError> {
        let load = async { Ok(self.ports.accounts.profile(id).await?) };
        self.cache.profile(id, load).await?.ok_or_else(unknown_profile)
    }

    /// `profile` follows `target`: `following` at once, or `requested` when `target` is private.
    /// Refused (4xx) for itself, kids profiles on either side, a block either way, or past the
    /// follow quota (429, and audited: a spam-follow run shows in the audit log).
    pub async fn follow(
        &self,
        p: &Principal,
        profile: ProfileId,
        target: ProfileId,
    ) -> Result<FollowState, AppError> {
        let me = self.reachable_profile(p, profile, Operation::Follow).await?;
        let other = self.other_profile(target).await?;
        let blocked = self.ports.feed.blocked_either_way(me.id, other.id).await?;
        let state = check_follow(&me, &other, blocked).map_err(|r| match r {
            playhead_core::feed::FollowRefusal::Blocked => AppError::Forbidden(r.message()),
            _ => AppError::invalid(FieldError::new("profile_id", r.code(), r.message())),
        })?;
        if let Some(existing) = self.ports.feed.follow_state(me.id, other.id).await? {
            // Already following or requested: idempotent, and free of the follow quota.
            return Ok(existing);
        }
        let quota = self.config.follow_quota;
        let d = self.ports.limiter.check(&format!("follow:{}", me.id), quota, 1, self.clock.now()).await?;
        if !d.allowed {
            metrics::counter!("playhead_rate_limited_total", "class" => "follow").increment(1);
            self.audit(AuditEntry {
                at: self.clock.now(),
                actor: partition_of(p),
                action: "feed.follow_refused".into(),
                detail: serde_json::json!({
                    "reason": "follow_quota", "profile_id": me.id.to_string(),
                    "target": other.id.to_string(), "limit": quota.limit, "window_ms": quota.window_ms,
                })
                .to_string(),
                client_addr: None,
            })
            .await;
            return Err(AppError::RateLimited {
                class: crate::limits::RouteClass::Write,
                quota,
                retry_after_ms: d.retry_after_ms,
            });
        }
        let rules = &self.config.feed;
        Ok(self.ports.feed.follow(me.id, other.id, state, self.clock.now(), rules.inbox_max).await?)
    }

    /// Stop following `target` (or withdraw a request). 404 when there was no such edge.
    pub async fn unfollow(
        &self,
        p: &Principal,
        profile: ProfileId,
        target: ProfileId,
    ) -> Result<(), AppError> {
        self.reachable_profile(p, profile, Operation::Unfollow).await?;
        if self.ports.feed.unfollow(profile, target).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("follow"))
        }
    }

    /// A follow list of `profile`, by the other profile's id, `limit` per page.
    pub async fn follow_list(
        &self,
        p: &Principal,
        profile: ProfileId,
        list: FollowList,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<FollowPage, AppError> {
        let op = match list {
            FollowList::Following => Operation::ListFollowing,
            FollowList::Followers => Operation::ListFollowers,
            FollowList::Requests => Operation::ListFollowRequests,
        };
        self.reachable_profile(p, profile, op).await?;
        let scope = list.scope(profile);
        let after = cursor
            .map(|c| self.cursors.decode::<Uuid>(&scope, c))
            .transpose()
            .map_err(AppError::invalid)?
            .map(ProfileId);
        let (side, state) = match list {
            FollowList::Following => (FollowSide::Following, FollowState::Following),
            FollowList::Followers => (FollowSide::Followers, FollowState::Following),
            FollowList::Requests => (FollowSide::Followers, FollowState::Requested),
        };
        let mut items = self.ports.feed.follows(profile, side, state, after, limit + 1).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|e| {
                let other = if side == FollowSide::Following { e.followee } else { e.follower };
                self.cursors.encode(&scope, &other.0)
            })
        } else {
            None
        };
        Ok(FollowPage { items, next_cursor })
    }

    /// Approve or deny `requester`'s pending request to follow `profile`. 404 without one.
    pub async fn decide_follow_request(
        &self,
        p: &Principal,
        profile: ProfileId,
        requester: ProfileId,
        approve: bool,
    ) -> Result<FollowState, AppError> {
        self.reachable_profile(p, profile, Operation::DecideFollowRequest).await?;
        match self.ports.feed.follow_state(requester, profile).await? {
            Some(FollowState::Requested) => {}
            Some(FollowState::Following) if approve => return Ok(FollowState::Following),
            _ => return Err(AppError::NotFound("follow request")),
        }
        if approve {
            let inbox_max = self.config.feed.inbox_max;
            Ok(self
                .ports
                .feed
                .follow(requester, profile, FollowState::Following, self.clock.now(), inbox_max)
                .await?)
        } else {
            self.ports.feed.unfollow(requester, profile).await?;
            Ok(FollowState::Requested)
        }
    }

    /// `profile` blocks `target`: the follows both ways end, each disappears from the other's
    /// feed, and `target` cannot follow again until unblocked.
    pub async fn block(&self, p: &Principal, profile: ProfileId, target: ProfileId) -> Result<(), AppError> {
        self.reachable_profile(p, profile, Operation::Block).await?;
        let other = self.other_profile(target).await?;
        if other.id == profile {
            return Err(AppError::invalid(FieldError::new(
                "profile_id",
                "self_block",
                "a profile cannot block itself",
            )));
        }
        Ok(self.ports.feed.block(profile, other.id, self.clock.now()).await?)
    }

    /// Lift a block. 404 when there was none.
    pub async fn unblock(
        &self,
        p: &Principal,
        profile: ProfileId,
        target: ProfileId,
    ) -> Result<(), AppError> {
        self.reachable_profile(p, profile, Operation::Unblock).await?;
        if self.ports.feed.unblock(profile, target).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("block"))
        }
    }

    /// Whether `profile` shares its activity.
    pub async fn feed_settings(&self, p: &Principal, profile: ProfileId) -> Result<bool, AppError> {
        self.reachable_profile(p, profile, Operation::GetFeedSettings).await?;
        Ok(self.ports.feed.share_activity(profile).await?)
    }

    /// Turn sharing on or off. Off hides everything `profile` published from every feed at once.
    pub async fn set_feed_settings(
        &self,
        p: &Principal,
        profile: ProfileId,
        share: bool,
    ) -> Result<bool, AppError> {
        self.reachable_profile(p, profile, Operation::SetFeedSettings).await?;
        self.ports.feed.set_share_activity(profile, share).await?;
        Ok(share)
    }

    /// The feed of `profile`, newest first.
    pub async fn feed(
        &self,
        p: &Principal,
        profile: ProfileId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<FeedPage, AppError> {
        let reader = self.reachable_profile(p, profile, Operation::GetFeed).await?;
        let scope = format!("feed:{profile}");
        let before = cursor
            .map(|c| self.cursors.decode::<(i64, Uuid)>(&scope, c))
            .transpose()
            .map_err(AppError::invalid)?
            .map(|(t, id)| (Timestamp(t), ActivityId(id)));
        let limit_rule = reader.effective_maturity_limit();
        let rows = self.ports.feed.feed(profile, limit_rule, before, limit).await?;
        let next_cursor = (rows.len() == limit as usize)
            .then(|| rows.last().map(|a| self.cursors.encode(&scope, &(a.at.0, a.id.0))))
            .flatten();
        let titles = self.title_map(rows.iter().map(|a| a.title_id.clone())).await?;
        let mut actors: HashMap<ProfileId, Option<Profile>> = HashMap::new();
        for a in &rows {
            if let std::collections::hash_map::Entry::Vacant(slot) = actors.entry(a.actor) {
                let load = async { Ok(self.ports.accounts.profile(a.actor).await?) };
                slot.insert(self.cache.profile(a.actor, load).await?);
            }
        }
        let items = rows
            .into_iter()
            .filter_map(|a| {
                // An actor turned into a kids profile (or gone), a title gone from the catalog,
                // or one above the reader's limit now: not shown.
                let actor = actors.get(&a.actor)?.as_ref().filter(|x| !x.kids)?;
                let title = titles.get(&a.title_id).filter(|t| reader.may_see(t.maturity))?.clone();
                Some(FeedItem { actor_name: actor.name.as_str().to_owned(), title, activity: a })
            })
            .collect();
        Ok(FeedPage { items, next_cursor })
    }

    /// Publish the activities of plays an apply changed (called after its commit). Best effort:
    /// the plays are committed whatever happens here, so a failure is logged and counted, never
    /// returned (decision 0060 says what that costs).
    pub(crate) async fn publish_plays(&self, plays: &[AppliedPlay]) {
        if plays.is_empty() {
            return;
        }
        let mut added = 0;
        for applied in plays {
            match self.publish_play(applied).await {
                Ok(n) => added += n,
                Err(e) => {
                    metrics::counter!("playhead_feed_publish_failures_total").increment(1);
                    tracing::warn!(error = %e, play.id = %applied.play.id, "activity not published");
                }
            }
        }
        if added > 0 {
            self.feed_wake.notify_one();
        }
    }

    async fn publish_play(&self, applied: &AppliedPlay) -> Result<u64, AppError> {
        let play = &applied.play;
        let actor = play.profile_id;
        let Some(title) = self.ports.catalog.title(&play.title_id).await?.map(|s| s.title) else {
            return Ok(0);
        };
        let series_id = match (title.kind, &title.series_id) {
            (TitleKind::Episode, Some(s)) => Some(s.clone()),
            _ => None,
        };
        if !applied.newly_completed && series_id.is_none() {
            return Ok(0);
        }
        let Some(profile) = self.ports.accounts.profile(actor).await? else { return Ok(0) };
        if !publishes(&profile, self.ports.feed.share_activity(actor).await?) {
            return Ok(0);
        }
        let mut ctx = PlayContext::default();
        let mut series = None;
        if let Some(sid) = &series_id {
            series = self.ports.catalog.title(sid).await?.map(|s| s.title);
            ctx.episodes = self.ports.catalog.episodes_of(std::slice::from_ref(sid)).await?;
            let plays = self.ports.viewing.episode_plays(actor).await?;
            for (_, v) in plays.iter().filter(|(s, _)| s == sid) {
                if v.completed {
                    ctx.completed_episodes.insert(v.title_id.clone());
                }
                if v.id != play.id && v.started_at < play.started_at {
                    ctx.earlier_series_play = true;
                    ctx.completed_before |= v.completed && v.title_id == title.id;
                }
            }
            ctx.completed_episodes.insert(title.id.clone());
        } else {
            let q = PlayQuery {
                before: None,
                limit: 100,
                title_id: Some(title.id.clone()),
                completed: Some(true),
            };
            let earlier = self.ports.viewing.plays(actor, &q).await?;
            ctx.completed_before = earlier.iter().any(|v| v.id != play.id && v.started_at < play.started_at);
        }
        let acts = activities_for_play(
            actor,
            applied,
            &title,
            series.as_ref(),
            &ctx,
            &self.config.feed,
            self.clock.now(),
            new_activity_id,
        );
        let added = self.ports.feed.add_activities(&acts).await?;
        for a in acts.iter().take(usize::try_from(added).unwrap_or(0)) {
            metrics::counter!("playhead_feed_activities_total", "kind" => a.kind.as_str()).increment(1);
        }
        Ok(added)
    }

    /// A thumbs-up publishes `loved`; any other feedback takes it back.
    pub(crate) async fn publish_feedback(&self, profile: &Profile, title: &Title, up: bool, at: Timestamp) {
        let result = async {
            if !up {
                let which = ActivityRef::Subject(ActivityKind::Loved, title.id.to_string());
                self.ports.feed.remove_activities(profile.id, &which).await?;
                return Ok::<_, AppError>(());
            }
            if !publishes(profile, self.ports.feed.share_activity(profile.id).await?) {
                return Ok(());
            }
            let now = self.clock.now();
            if let Some(a) =
                loved_activity(profile.id, title, at, new_activity_id(at), &self.config.feed, now)
                && self.ports.feed.add_activities(&[a]).await? > 0
            {
                metrics::counter!("playhead_feed_activities_total", "kind" => "loved").increment(1);
                self.feed_wake.notify_one();
            }
            Ok(())
        };
        if let Err(e) = result.await {
            metrics::counter!("playhead_feed_publish_failures_total").increment(1);
            tracing::warn!(error = %e, profile.id = %profile.id, "feedback activity not updated");
        }
    }

    /// A deleted play or a hidden title takes its activities out of every feed.
    pub(crate) async fn retract(&self, profile: ProfileId, which: ActivityRef) -> Result<(), AppError> {
        self.ports.feed.remove_activities(profile, &which).await?;
        Ok(())
    }

    /// Run fan-out steps until the queue is empty or `max_steps` ran; returns steps run. For the
    /// worker, the CLI and tests.
    pub async fn fanout(&self, max_steps: usize) -> Result<usize, AppError> {
        let r = self.config.feed;
        let mut steps = 0;
        while steps < max_steps {
            let Some(step) =
                self.ports.feed.fanout_step(r.fanout_threshold, r.inbox_max, r.fanout_step_rows).await?
            else {
                break;
            };
            steps += 1;
            metrics::counter!("playhead_feed_fanout_rows_total").increment(step.rows);
            if step.done {
                let mode = match step.mode {
                    playhead_core::feed::FanoutMode::Push => "push",
                    playhead_core::feed::FanoutMode::Pull => "pull",
                };
                metrics::counter!("playhead_feed_fanout_total", "mode" => mode).increment(1);
            }
            // Let other tasks (the apply consumer, requests) run between bounded steps.
            tokio::task::yield_now().await;
        }
        Ok(steps)
    }

    /// The fan-out worker: woken when activities are published (polls every second as a safety
    /// net, which also picks up activities another replica published). Stops at `shutdown`.
    pub fn spawn_fanout(&self, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                if *shutdown.borrow() {
                    break;
                }
                match app.fanout(64).await {
                    Ok(64) => {
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                    Ok(_) => {
                        backoff = Duration::from_millis(100);
                        if let Ok(n) = app.ports.feed.fanout_backlog().await {
                            #[expect(clippy::cast_precision_loss, reason = "a gauge")]
                            metrics::gauge!("playhead_feed_fanout_backlog").set(n as f64);
                        }
                        tokio::select! {
                            () = app.feed_wake.notified() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "feed fan-out step failed; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            _ = shutdown.changed() => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        })
    }

    /// Write an audit entry when the application has an audit store (the binary always gives
    /// it one); otherwise log it.
    pub(crate) async fn audit(&self, entry: AuditEntry) {
        tracing::info!(audit.action = %entry.action, audit.actor = %entry.actor, audit.detail = %entry.detail, "audit");
        if let Some(store) = &self.audit
            && let Err(e) = store.audit(std::slice::from_ref(&entry)).await
        {
            tracing::error!(error = %e, audit.action = %entry.action, "audit entry not written");
        }
    }
}

/// Parse a decision of a follow request.
pub fn parse_decision(s: &str) -> Result<bool, FieldError> {
    match s {
        "approve" => Ok(true),
        "deny" => Ok(false),
        _ => Err(FieldError::new("decision", "invalid", "must be approve or deny")),
    }
}
