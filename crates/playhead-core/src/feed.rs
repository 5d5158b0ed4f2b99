//! The followers' activity feed: the follow graph's rules, which plays publish which activities,
//! and the hybrid fan-out switch (DESIGN.md, "Domain"; issue 14; decisions 0060-0062).
//!
//! Rules a contributor must keep here:
//! - Everything is a pure function of its arguments (no clock, no ids made here: the caller passes
//!   `now` and an id maker), so each rule has a unit test below.
//! - An activity is published only from a fact the consumer applied (a play that newly completed
//!   or newly became a play) or from feedback; raw heartbeats never publish anything.
//! - Every activity carries a `subject_key` unique per (actor, kind): a redelivered or recomputed
//!   play can never publish the same activity twice, and "remove what this play published" or
//!   "remove the loved activity of this title" are exact.

use std::collections::HashSet;

use crate::ids::{ActivityId, PlayId, ProfileId, TitleId};
use crate::ports::Viewing;
use crate::profile::Profile;
use crate::time::Timestamp;
use crate::title::{Title, TitleKind};

/// State of one follow edge (follower -> followee).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FollowState {
    /// Waiting for a private profile to approve.
    Requested,
    /// Accepted: the follower sees the followee's activities.
    Following,
}

impl FollowState {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Following => "following",
        }
    }

    /// Parse a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(Self::Requested),
            "following" => Some(Self::Following),
            _ => None,
        }
    }
}

/// Why a follow is refused. Each is a client error (4xx) with its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowRefusal {
    /// A profile cannot follow itself.
    SelfFollow,
    /// Kids profiles neither follow nor publish.
    KidsFollower,
    /// Kids profiles cannot be followed.
    KidsFollowee,
    /// One of the two blocked the other.
    Blocked,
}

impl FollowRefusal {
    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::SelfFollow => "self_follow",
            Self::KidsFollower | Self::KidsFollowee => "kids_profile",
            Self::Blocked => "blocked",
        }
    }

    /// What went wrong, in words a client author can act on.
    pub fn message(self) -> &'static str {
        match self {
            Self::SelfFollow => "a profile cannot follow itself",
            Self::KidsFollower => "kids profiles cannot follow other profiles",
            Self::KidsFollowee => "kids profiles cannot be followed",
            Self::Blocked => "this profile cannot be followed",
        }
    }
}

/// Decide a follow: refused, or the state the new edge starts in (a private profile must approve).
/// `blocked_either_way`: the followee blocked the follower or the other way round.
pub fn check_follow(
    follower: &Profile,
    followee: &Profile,
    blocked_either_way: bool,
) -> Result<FollowState, FollowRefusal> {
    if follower.id == followee.id {
        return Err(FollowRefusal::SelfFollow);
    }
    if follower.kids {
        return Err(FollowRefusal::KidsFollower);
    }
    if followee.kids {
        return Err(FollowRefusal::KidsFollowee);
    }
    if blocked_either_way {
        return Err(FollowRefusal::Blocked);
    }
    Ok(if followee.private { FollowState::Requested } else { FollowState::Following })
}

/// What an activity says the actor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActivityKind {
    /// Finished a movie or an episode.
    Finished,
    /// Played a first episode of a series.
    StartedSeries,
    /// Completed every episode of a season.
    FinishedSeason,
    /// Completed every episode of a series (specials aside).
    FinishedSeries,
    /// Gave a title a thumbs up.
    Loved,
}

impl ActivityKind {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::StartedSeries => "started_series",
            Self::FinishedSeason => "finished_season",
            Self::FinishedSeries => "finished_series",
            Self::Loved => "loved",
        }
    }

    /// Parse a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "finished" => Some(Self::Finished),
            "started_series" => Some(Self::StartedSeries),
            "finished_season" => Some(Self::FinishedSeason),
            "finished_series" => Some(Self::FinishedSeries),
            "loved" => Some(Self::Loved),
            _ => None,
        }
    }
}

/// One published activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// UUIDv7 stamped with `at`.
    pub id: ActivityId,
    /// Who did it.
    pub actor: ProfileId,
    /// What they did.
    pub kind: ActivityKind,
    /// The title the feed shows: the movie or episode finished, or the series.
    pub title_id: TitleId,
    /// The title played (or loved): hiding it removes the activity.
    pub source_title: TitleId,
    /// The play it came from: deleting that play removes it. `None` for feedback.
    pub play_id: Option<PlayId>,
    /// Unique per (actor, kind): the play id, the series id, `series#season` or the title id.
    pub subject_key: String,
    /// Maturity (minimum age) of the title shown: readers above their limit never see it.
    pub maturity: u8,
    /// When it happened (the play's end, or the feedback's time).
    pub at: Timestamp,
}

/// The feed's rules and sizes (the binary fills them from `[feed]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedRules {
    /// Authors with at least this many followers are pulled at read time; others are pushed into
    /// their followers' inboxes (decision 0061 derives the default from the benchmark).
    pub fanout_threshold: u64,
    /// Entries kept per reader inbox; the oldest are dropped.
    pub inbox_max: u32,
    /// Plays that ended longer ago than this (backfills, late uploads) publish nothing.
    pub max_activity_age_ms: i64,
    /// Inbox rows one fan-out step writes at most (back pressure: a celebrity's activity is
    /// pushed in steps between which other work runs).
    pub fanout_step_rows: u32,
}

impl Default for FeedRules {
    fn default() -> Self {
        Self {
            fanout_threshold: 10_000,
            inbox_max: 500,
            max_activity_age_ms: 3 * 24 * 3_600_000,
            fanout_step_rows: 1_000,
        }
    }
}

/// How one author's activity reaches followers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanoutMode {
    /// Written into each follower's inbox (cheap reads).
    Push,
    /// Left with the author and merged at read time (cheap writes).
    Pull,
}

impl FanoutMode {
    /// The hybrid's switch: authors with at least `threshold` followers are pulled.
    pub fn choose(followers: u64, threshold: u64) -> Self {
        if followers >= threshold { Self::Pull } else { Self::Push }
    }
}

/// What the consumer knows about one play it just applied.
#[derive(Debug, Clone)]
pub struct AppliedPlay {
    /// The play as stored after the apply.
    pub play: Viewing,
    /// It reached the watched point in this apply (was not completed before).
    pub newly_completed: bool,
    /// It passed the play threshold in this apply (was no play before).
    pub newly_play: bool,
}

/// The actor's other plays that decide a play's activities (read after the apply committed).
#[derive(Debug, Clone, Default)]
pub struct PlayContext {
    /// The actor completed this title in an earlier play (this one is a rewatch).
    pub completed_before: bool,
    /// For an episode: the actor has another play of the same series that started earlier.
    pub earlier_series_play: bool,
    /// For an episode: the series' episodes in the catalog.
    pub episodes: Vec<Title>,
    /// For an episode: episodes of the series the actor completed (this one included).
    pub completed_episodes: HashSet<TitleId>,
}

/// The activities one applied play publishes (DESIGN.md rule, decision 0060):
/// - nothing from a kids actor or one with sharing off (the caller checks; see [`publishes`]);
/// - nothing from a play that ended more than `max_activity_age_ms` before `now` (backfills and
///   late uploads must not flood feeds with old news);
/// - `finished` when a movie or episode newly completed, unless the actor completed the title
///   before (a rewatch is not news);
/// - `started_series` when an episode newly became a play and no earlier play of the series
///   exists (so a rewatch from episode 1 publishes nothing either);
/// - `finished_season` / `finished_series` when that first completion of an episode made every
///   episode of its season (specials, season 0, aside) / of the whole series completed.
#[expect(
    clippy::too_many_arguments,
    reason = "the play, its titles, its context, the rules, the clock and the id maker"
)]
pub fn activities_for_play(
    actor: ProfileId,
    applied: &AppliedPlay,
    title: &Title,
    series: Option<&Title>,
    ctx: &PlayContext,
    rules: &FeedRules,
    now: Timestamp,
    mut new_id: impl FnMut(Timestamp) -> ActivityId,
) -> Vec<Activity> {
    let play = &applied.play;
    if !play.is_play || now.0.saturating_sub(play.ended_at.0) > rules.max_activity_age_ms {
        return Vec::new();
    }
    let at = play.ended_at;
    let mut make = |kind: ActivityKind, shown: &Title, subject_key: String| Activity {
        id: new_id(at),
        actor,
        kind,
        title_id: shown.id.clone(),
        source_title: title.id.clone(),
        play_id: Some(play.id),
        subject_key,
        maturity: shown.maturity,
        at,
    };
    let mut out = Vec::new();
    let episode_of = match (title.kind, series) {
        (TitleKind::Episode, Some(s)) => Some(s),
        _ => None,
    };
    if let Some(s) = episode_of
        && applied.newly_play
        && !ctx.earlier_series_play
    {
        out.push(make(ActivityKind::StartedSeries, s, s.id.to_string()));
    }
    if !applied.newly_completed || ctx.completed_before || title.kind == TitleKind::Series {
        return out;
    }
    out.push(make(ActivityKind::Finished, title, play.id.to_string()));
    let Some(s) = episode_of else { return out };
    let done = |e: &Title| ctx.completed_episodes.contains(&e.id);
    let regular: Vec<&Title> = ctx.episodes.iter().filter(|e| e.season != Some(0)).collect();
    if let Some(season) = title.season.filter(|n| *n != 0) {
        let mut of_season = regular.iter().copied().filter(|e| e.season == Some(season)).peekable();
        if of_season.peek().is_some() && of_season.all(done) {
            out.push(make(ActivityKind::FinishedSeason, s, format!("{}#{season}", s.id)));
        }
    }
    if !regular.is_empty() && regular.iter().copied().all(done) {
        out.push(make(ActivityKind::FinishedSeries, s, s.id.to_string()));
    }
    out
}

/// Whether anything this profile does is published: kids profiles never publish, and a profile
/// with sharing off publishes nothing.
pub fn publishes(actor: &Profile, share_activity: bool) -> bool {
    !actor.kids && share_activity
}

/// The `loved` activity of a thumbs-up, if it publishes (same age rule as plays).
pub fn loved_activity(
    actor: ProfileId,
    title: &Title,
    at: Timestamp,
    id: ActivityId,
    rules: &FeedRules,
    now: Timestamp,
) -> Option<Activity> {
    (now.0.saturating_sub(at.0) <= rules.max_activity_age_ms).then(|| Activity {
        id,
        actor,
        kind: ActivityKind::Loved,
        title_id: title.id.clone(),
        source_title: title.id.clone(),
        play_id: None,
        subject_key: title.id.to_string(),
        maturity: title.maturity,
        at,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::ids::AccountId;
    use crate::profile::ProfileName;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn profile(n: u128, kids: bool, private: bool) -> Profile {
        Profile {
            id: ProfileId(Uuid::from_u128(n)),
            account_id: AccountId(Uuid::from_u128(1000 + n)),
            name: ProfileName::parse("p").unwrap(),
            kids,
            maturity_limit: None,
            private,
            history_paused: false,
            keep_resume_points_while_paused: false,
            version: 1,
            created_at: Timestamp(0),
        }
    }

    fn title(id: &str, kind: TitleKind, series: Option<&str>, season: Option<i32>) -> Title {
        Title {
            id: TitleId::parse(id).unwrap(),
            kind,
            name: id.to_owned(),
            duration_ms: 3_600_000,
            credits_start_ms: None,
            series_id: series.map(|s| TitleId::parse(s).unwrap()),
            season,
            episode: Some(1),
            genres: vec![],
            maturity: 12,
            release_year: None,
            available_from: None,
            external_ids: BTreeMap::new(),
        }
    }

    fn applied(title: &Title, ended: Timestamp, newly_completed: bool, newly_play: bool) -> AppliedPlay {
        AppliedPlay {
            play: Viewing {
                id: PlayId(Uuid::from_u128(7)),
                profile_id: ProfileId(Uuid::from_u128(1)),
                title_id: title.id.clone(),
                key: None,
                started_at: ended.plus_ms(-3_000_000),
                ended_at: ended,
                watched_ms: 3_000_000,
                completed: newly_completed,
                is_play: true,
                manual: false,
            },
            newly_completed,
            newly_play,
        }
    }

    fn kinds(acts: &[Activity]) -> Vec<ActivityKind> {
        acts.iter().map(|a| a.kind).collect()
    }

    fn run(a: &AppliedPlay, t: &Title, s: Option<&Title>, ctx: &PlayContext) -> Vec<Activity> {
        let actor = ProfileId(Uuid::from_u128(1));
        activities_for_play(actor, a, t, s, ctx, &FeedRules::default(), NOW, |_| ActivityId(Uuid::now_v7()))
    }

    #[test]
    fn follows_are_refused_for_self_kids_and_blocks_and_private_profiles_must_approve() {
        let (a, b) = (profile(1, false, false), profile(2, false, false));
        assert_eq!(check_follow(&a, &a, false), Err(FollowRefusal::SelfFollow));
        assert_eq!(check_follow(&profile(3, true, false), &b, false), Err(FollowRefusal::KidsFollower));
        assert_eq!(check_follow(&a, &profile(3, true, false), false), Err(FollowRefusal::KidsFollowee));
        assert_eq!(check_follow(&a, &b, true), Err(FollowRefusal::Blocked));
        assert_eq!(check_follow(&a, &b, false), Ok(FollowState::Following));
        assert_eq!(check_follow(&a, &profile(4, false, true), false), Ok(FollowState::Requested));
    }

    #[test]
    fn the_hybrid_pulls_authors_at_or_above_the_threshold() {
        assert_eq!(FanoutMode::choose(9, 10), FanoutMode::Push);
        assert_eq!(FanoutMode::choose(10, 10), FanoutMode::Pull);
        assert_eq!(FanoutMode::choose(0, 0), FanoutMode::Pull, "threshold 0: pull everyone");
    }

    #[test]
    fn a_finished_movie_publishes_once_and_a_rewatch_or_an_old_backfill_nothing() {
        let m = title("m", TitleKind::Movie, None, None);
        let fresh = applied(&m, NOW.plus_ms(-60_000), true, true);
        let acts = run(&fresh, &m, None, &PlayContext::default());
        assert_eq!(kinds(&acts), vec![ActivityKind::Finished]);
        assert_eq!(acts[0].subject_key, fresh.play.id.to_string());
        assert_eq!(acts[0].at, fresh.play.ended_at);
        let rewatch = PlayContext { completed_before: true, ..PlayContext::default() };
        assert!(run(&fresh, &m, None, &rewatch).is_empty(), "rewatch");
        let old = applied(&m, NOW.plus_ms(-FeedRules::default().max_activity_age_ms - 1), true, true);
        assert!(run(&old, &m, None, &PlayContext::default()).is_empty(), "old backfill");
        let progress = applied(&m, NOW, false, false);
        assert!(run(&progress, &m, None, &PlayContext::default()).is_empty(), "not completed");
    }

    #[test]
    fn episodes_start_and_finish_seasons_and_series() {
        let s = title("s", TitleKind::Series, None, None);
        let e1 = title("s1e1", TitleKind::Episode, Some("s"), Some(1));
        let e2 = title("s1e2", TitleKind::Episode, Some("s"), Some(1));
        let e3 = title("s2e1", TitleKind::Episode, Some("s"), Some(2));
        let sp = title("s0e1", TitleKind::Episode, Some("s"), Some(0));
        let episodes = vec![e1.clone(), e2.clone(), e3.clone(), sp];
        let ids = |ts: &[&Title]| ts.iter().map(|t| t.id.clone()).collect::<HashSet<_>>();

        // First episode played and finished in one apply: started the series, finished it.
        let first = PlayContext {
            episodes: episodes.clone(),
            completed_episodes: ids(&[&e1]),
            ..PlayContext::default()
        };
        let acts = run(&applied(&e1, NOW, true, true), &e1, Some(&s), &first);
        assert_eq!(kinds(&acts), vec![ActivityKind::StartedSeries, ActivityKind::Finished]);
        assert_eq!(acts[0].title_id, s.id, "started_series shows the series");
        assert_eq!(acts[1].title_id, e1.id);

        // The season's last episode: finished the season, not yet the series.
        let season = PlayContext {
            earlier_series_play: true,
            episodes: episodes.clone(),
            completed_episodes: ids(&[&e1, &e2]),
            ..PlayContext::default()
        };
        let acts = run(&applied(&e2, NOW, true, true), &e2, Some(&s), &season);
        assert_eq!(kinds(&acts), vec![ActivityKind::Finished, ActivityKind::FinishedSeason]);
        assert_eq!(acts[1].subject_key, "s#1");

        // The last regular episode (the special unwatched): season and series.
        let all = PlayContext {
            earlier_series_play: true,
            episodes,
            completed_episodes: ids(&[&e1, &e2, &e3]),
            ..PlayContext::default()
        };
        let acts = run(&applied(&e3, NOW, true, true), &e3, Some(&s), &all);
        assert_eq!(
            kinds(&acts),
            vec![ActivityKind::Finished, ActivityKind::FinishedSeason, ActivityKind::FinishedSeries]
        );

        // Rewatching from episode 1 after the finale: nothing.
        let again = PlayContext { completed_before: true, ..all };
        assert!(run(&applied(&e1, NOW, true, true), &e1, Some(&s), &again).is_empty());
    }

    #[test]
    fn kids_and_sharing_off_publish_nothing_and_old_feedback_is_not_news() {
        assert!(publishes(&profile(1, false, false), true));
        assert!(!publishes(&profile(1, true, false), true));
        assert!(!publishes(&profile(1, false, false), false));
        let m = title("m", TitleKind::Movie, None, None);
        let rules = FeedRules::default();
        let id = ActivityId(Uuid::now_v7());
        let actor = ProfileId(Uuid::from_u128(1));
        assert!(loved_activity(actor, &m, NOW, id, &rules, NOW).is_some());
        assert!(
            loved_activity(actor, &m, NOW.plus_ms(-rules.max_activity_age_ms - 1), id, &rules, NOW).is_none()
        );
    }
}
