//! [`FeedStore`](playhead_core::ports::FeedStore): the follow graph, activities, bounded
//! inboxes, the fan-out queue and the merged feed read.

use playhead_core::feed::{Activity, ActivityKind, FanoutMode, FollowState};
use playhead_core::ids::{ActivityId, PlayId, ProfileId};
use playhead_core::ports::{ActivityRef, FollowSide};
use uuid::Uuid;

use crate::Stores;
use crate::fixtures::{at, new_profile, store_viewings, tid, viewing};

fn pid(n: u128) -> ProfileId {
    ProfileId(Uuid::from_u128(0xfeed_0000 + n))
}

/// A `loved` activity of `actor` (no play), numbered `n`, at `T0 + n` seconds.
fn act(actor: ProfileId, n: u128) -> Activity {
    let n64 = i64::try_from(n).expect("small");
    Activity {
        id: ActivityId(Uuid::from_u128(0xac00_0000 + n)),
        actor,
        kind: ActivityKind::Loved,
        title_id: tid(&format!("t{n}")),
        source_title: tid(&format!("t{n}")),
        play_id: None,
        subject_key: format!("t{n}"),
        maturity: 0,
        at: at(n64 * 1_000),
    }
}

fn ids(acts: &[Activity]) -> Vec<ActivityId> {
    acts.iter().map(|a| a.id).collect()
}

async fn fan_out(s: &Stores, threshold: u64, inbox_max: u32, max_rows: u32) -> Vec<(FanoutMode, u64, bool)> {
    let mut steps = Vec::new();
    while let Some(step) = s.feed.fanout_step(threshold, inbox_max, max_rows).await.expect("fanout_step") {
        steps.push((step.mode, step.rows, step.done));
        assert!(steps.len() < 1_000, "the fan-out queue never empties");
    }
    steps
}

async fn feed(s: &Stores, reader: ProfileId, limit: u32) -> Vec<ActivityId> {
    ids(&s.feed.feed(reader, None, None, limit).await.expect("feed"))
}

/// Follows are idempotent, counted once, never downgraded by a request; lists page by the other
/// profile's id; unfollowing removes the edge and the count.
pub async fn follows_count_once_and_list_in_id_order(s: &Stores) {
    let (a, b, c) = (pid(1), pid(2), pid(3));
    let f = &s.feed;
    assert_eq!(
        f.follow(a, c, FollowState::Following, at(0), 10).await.expect("feed store"),
        FollowState::Following
    );
    assert_eq!(
        f.follow(a, b, FollowState::Following, at(1), 10).await.expect("feed store"),
        FollowState::Following
    );
    assert_eq!(
        f.follow(a, b, FollowState::Following, at(2), 10).await.expect("feed store"),
        FollowState::Following
    );
    assert_eq!(f.follow_count_of(b).await, 1, "a repeated follow counts once");
    // A request stays a request; an accepted follow is never downgraded to one.
    assert_eq!(
        f.follow(c, b, FollowState::Requested, at(3), 10).await.expect("feed store"),
        FollowState::Requested
    );
    assert_eq!(
        f.follow(a, b, FollowState::Requested, at(4), 10).await.expect("feed store"),
        FollowState::Following
    );
    assert_eq!(f.follow_count_of(b).await, 1, "a request is not a follower");
    let following =
        f.follows(a, FollowSide::Following, FollowState::Following, None, 10).await.expect("feed store");
    assert_eq!(following.iter().map(|e| e.followee).collect::<Vec<_>>(), vec![b, c], "by id");
    let page =
        f.follows(a, FollowSide::Following, FollowState::Following, Some(b), 10).await.expect("feed store");
    assert_eq!(page.iter().map(|e| e.followee).collect::<Vec<_>>(), vec![c], "after is exclusive");
    let requests =
        f.follows(b, FollowSide::Followers, FollowState::Requested, None, 10).await.expect("feed store");
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].follower, requests[0].state, requests[0].since),
        (c, FollowState::Requested, at(3))
    );
    // Approving: the request becomes a follow.
    assert_eq!(
        f.follow(c, b, FollowState::Following, at(5), 10).await.expect("feed store"),
        FollowState::Following
    );
    assert_eq!(f.follow_count_of(b).await, 2);
    assert_eq!(f.follow_state(c, b).await.expect("feed store"), Some(FollowState::Following));
    assert!(f.unfollow(a, b).await.expect("feed store"));
    assert!(!f.unfollow(a, b).await.expect("feed store"), "nothing left to remove");
    assert_eq!(f.follow_count_of(b).await, 1);
    assert_eq!(f.follow_state(a, b).await.expect("feed store"), None);
}

/// A block ends the follows both ways (counts included) and the blocked profile leaves the
/// blocker's feed; unblocking lifts it once.
pub async fn blocks_end_follows_both_ways(s: &Stores) {
    let (a, b) = (pid(1), pid(2));
    let f = &s.feed;
    f.follow(a, b, FollowState::Following, at(0), 10).await.expect("feed store");
    f.follow(b, a, FollowState::Following, at(0), 10).await.expect("feed store");
    f.add_activities(&[act(b, 1)]).await.expect("feed store");
    fan_out(s, 100, 10, 100).await;
    assert_eq!(feed(s, a, 10).await.len(), 1);
    f.block(a, b, at(1)).await.expect("feed store");
    f.block(a, b, at(2)).await.expect("feed store");
    assert!(f.blocked_either_way(a, b).await.expect("feed store"));
    assert!(f.blocked_either_way(b, a).await.expect("feed store"));
    assert_eq!(f.blocked_by(a).await.expect("feed store"), vec![(b, at(1))], "the first block's time");
    assert!(f.blocked_by(b).await.expect("feed store").is_empty());
    assert_eq!(
        (f.follow_state(a, b).await.expect("feed store"), f.follow_state(b, a).await.expect("feed store")),
        (None, None)
    );
    assert_eq!((f.follow_count_of(a).await, f.follow_count_of(b).await), (0, 0));
    assert!(feed(s, a, 10).await.is_empty(), "the blocked profile left the blocker's feed");
    assert!(f.unblock(a, b).await.expect("feed store"));
    assert!(!f.unblock(a, b).await.expect("feed store"));
    assert!(!f.blocked_either_way(a, b).await.expect("feed store"));
    assert!(f.blocked_by(a).await.expect("feed store").is_empty());
}

/// An activity is stored once per (actor, kind, subject), and one naming a play only while that
/// play exists.
pub async fn activities_are_stored_once_and_only_for_existing_plays(s: &Stores) {
    let actor = new_profile(s, 1).await;
    let mut finished = act(actor, 1);
    finished.kind = ActivityKind::Finished;
    finished.play_id = Some(PlayId(Uuid::from_u128(77)));
    finished.subject_key = PlayId(Uuid::from_u128(77)).to_string();
    assert_eq!(
        s.feed.add_activities(std::slice::from_ref(&finished)).await.expect("feed store"),
        0,
        "no such play"
    );
    let v = viewing(77, actor, "t1", None, at(0), at(60_000), true);
    store_viewings(s, &[], &[v]).await;
    assert_eq!(s.feed.add_activities(std::slice::from_ref(&finished)).await.expect("feed store"), 1);
    // The same (actor, kind, subject) again, under a new id: nothing new.
    let again = Activity { id: ActivityId(Uuid::from_u128(0xbeef)), ..finished.clone() };
    assert_eq!(s.feed.add_activities(&[again]).await.expect("feed store"), 0);
    assert_eq!(s.feed.fanout_backlog().await.expect("feed store"), 1, "queued once");
}

/// The feed is the inbox merged with pulled authors, newest first, the same before and after
/// fan-out, paged by (at, id), filtered by maturity, sharing and the follow as it is now.
pub async fn the_feed_merges_inbox_and_pulled_authors_newest_first(s: &Stores) {
    let (reader, small, big, other) = (pid(1), pid(2), pid(3), pid(4));
    let f = &s.feed;
    for (who, whom) in [(reader, small), (reader, big), (other, big)] {
        f.follow(who, whom, FollowState::Following, at(0), 50).await.expect("feed store");
    }
    let (a1, b2, a3) = (act(small, 1), act(big, 2), act(small, 3));
    let mut adult = act(small, 4);
    adult.maturity = 18;
    f.add_activities(&[a1.clone(), b2.clone(), a3.clone(), adult.clone()]).await.expect("feed store");
    // Before any fan-out, every activity is pulled: the feed is complete at once.
    assert_eq!(feed(s, reader, 10).await, vec![adult.id, a3.id, b2.id, a1.id]);
    // Threshold 2: `big` (2 followers) is pulled, `small` (1) pushed.
    let steps = fan_out(s, 2, 50, 100).await;
    assert_eq!(steps.iter().filter(|(m, _, _)| *m == FanoutMode::Pull).count(), 1);
    assert_eq!(steps.iter().filter(|(m, _, _)| *m == FanoutMode::Push).map(|(_, r, _)| r).sum::<u64>(), 3);
    assert_eq!(feed(s, reader, 10).await, vec![adult.id, a3.id, b2.id, a1.id], "same feed after fan-out");
    // Pages: strictly before the cursor, without gaps or repeats.
    let page1 = s.feed.feed(reader, None, None, 2).await.expect("feed store");
    assert_eq!(ids(&page1), vec![adult.id, a3.id]);
    let last = page1.last().map(|a| (a.at, a.id));
    let page2 = s.feed.feed(reader, None, last, 2).await.expect("feed store");
    assert_eq!(ids(&page2), vec![b2.id, a1.id]);
    // The reader's maturity limit filters pushed and pulled entries alike.
    assert_eq!(
        ids(&s.feed.feed(reader, Some(12), None, 10).await.expect("feed store")),
        vec![a3.id, b2.id, a1.id]
    );
    // Sharing off hides everything the author published; on again shows it.
    f.set_share_activity(small, false).await.expect("feed store");
    assert!(!f.share_activity(small).await.expect("feed store"));
    assert_eq!(feed(s, reader, 10).await, vec![b2.id]);
    f.set_share_activity(small, true).await.expect("feed store");
    // Unfollowing the pulled author removes it without any rebuild.
    f.unfollow(reader, big).await.expect("feed store");
    assert_eq!(feed(s, reader, 10).await, vec![adult.id, a3.id, a1.id]);
    // The round trip keeps every field.
    let got = s.feed.feed(reader, None, None, 10).await.expect("feed store");
    assert_eq!(got.iter().find(|a| a.id == adult.id), Some(&adult));
}

/// Activities pushed under one threshold and pulled under another make one whole feed; a new
/// follower sees earlier activities at once.
pub async fn a_threshold_change_keeps_feeds_whole(s: &Stores) {
    let (reader, author) = (pid(1), pid(2));
    let f = &s.feed;
    f.follow(reader, author, FollowState::Following, at(0), 50).await.expect("feed store");
    f.add_activities(&[act(author, 1)]).await.expect("feed store");
    fan_out(s, 1, 50, 100).await; // pulled (1 follower >= 1)
    f.add_activities(&[act(author, 2)]).await.expect("feed store");
    fan_out(s, 100, 50, 100).await; // pushed
    f.add_activities(&[act(author, 3)]).await.expect("feed store");
    fan_out(s, 1, 50, 100).await; // pulled again
    let (i1, i2, i3) = (act(author, 1).id, act(author, 2).id, act(author, 3).id);
    assert_eq!(feed(s, reader, 10).await, vec![i3, i2, i1]);
    // A new follower sees the author's earlier activities, pushed or pulled, at once.
    let late = pid(3);
    f.follow(late, author, FollowState::Following, at(9), 50).await.expect("feed store");
    assert_eq!(feed(s, late, 10).await, vec![i3, i2, i1]);
}

/// A fan-out step writes at most `max_rows` rows and continues where the last stopped; inboxes
/// keep their newest `inbox_max` entries.
pub async fn fan_out_is_bounded_and_inboxes_keep_the_newest(s: &Stores) {
    let author = pid(100);
    let f = &s.feed;
    for n in 1..=5 {
        f.follow(pid(n), author, FollowState::Following, at(0), 2).await.expect("feed store");
    }
    f.add_activities(&[act(author, 1)]).await.expect("feed store");
    let steps = fan_out(s, 1_000, 2, 2).await;
    assert_eq!(
        steps,
        vec![(FanoutMode::Push, 2, false), (FanoutMode::Push, 2, false), (FanoutMode::Push, 1, true)],
        "at most max_rows per step, continuing where the last stopped"
    );
    f.add_activities(&[act(author, 2), act(author, 3)]).await.expect("feed store");
    fan_out(s, 1_000, 2, 100).await;
    for n in 1..=5 {
        assert_eq!(
            feed(s, pid(n), 10).await,
            vec![act(author, 3).id, act(author, 2).id],
            "inbox of {n} trimmed to the newest 2"
        );
    }
    assert_eq!(f.fanout_backlog().await.expect("feed store"), 0);
}

/// Removing activities (by play, title or subject; only the actor's own) takes them out of inboxes,
/// the fan-out queue and every feed.
pub async fn removed_activities_leave_every_feed(s: &Stores) {
    let (reader, author) = (pid(1), pid(2));
    let f = &s.feed;
    f.follow(reader, author, FollowState::Following, at(0), 50).await.expect("feed store");
    let (x, y, z) = (act(author, 1), act(author, 2), act(author, 3));
    f.add_activities(&[x.clone(), y.clone(), z.clone()]).await.expect("feed store");
    fan_out(s, 1_000, 50, 100).await;
    assert_eq!(f.remove_activities(author, &ActivityRef::Title(tid("t1"))).await.expect("feed store"), 1);
    let subject = ActivityRef::Subject(ActivityKind::Loved, "t2".into());
    assert_eq!(f.remove_activities(pid(9), &subject).await.expect("feed store"), 0, "only the actor's own");
    assert_eq!(f.remove_activities(author, &subject).await.expect("feed store"), 1);
    assert_eq!(feed(s, reader, 10).await, vec![z.id]);
    assert_eq!(
        f.remove_activities(author, &ActivityRef::Play(PlayId(Uuid::from_u128(5))))
            .await
            .expect("feed store"),
        0
    );
    // Removed before its fan-out: the queue forgets it too.
    let w = act(author, 4);
    f.add_activities(std::slice::from_ref(&w)).await.expect("feed store");
    f.remove_activities(author, &ActivityRef::Title(tid("t4"))).await.expect("feed store");
    assert_eq!(f.fanout_backlog().await.expect("feed store"), 0);
    assert_eq!(feed(s, reader, 10).await, vec![z.id]);
}

/// Shorthand for the checks: the accepted-follower count.
trait CountOf {
    async fn follow_count_of(&self, p: ProfileId) -> u64;
}

impl CountOf for std::sync::Arc<dyn playhead_core::ports::FeedStore> {
    async fn follow_count_of(&self, p: ProfileId) -> u64 {
        self.follower_count(p).await.expect("follower_count")
    }
}
