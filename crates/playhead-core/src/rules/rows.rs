//! The two rows: Continue watching and Next up.
//!
//! Both are pure selections over loaded state, so the same inputs always give the same row and
//! every rule (window, hiding, staleness, one card per series, specials, rewatch, maturity) is
//! tested here without a database.

use std::collections::HashMap;

use super::{Rules, TitleFacts};
use crate::ids::TitleId;
use crate::profile::Profile;
use crate::rules::progress::ProgressRecord;
use crate::time::Timestamp;
use crate::title::Title;

/// One resume point with what the row needs to judge it.
#[derive(Debug, Clone, Copy)]
pub struct ResumeCandidate<'a> {
    /// The register.
    pub progress: &'a ProgressRecord,
    /// When the viewer hid the title from the row, if ever.
    pub hidden_at: Option<Timestamp>,
    /// The catalog entry.
    pub title: &'a Title,
}

/// Whether the title is hidden: hidden and no event since.
pub fn is_hidden(progress: &ProgressRecord, hidden_at: Option<Timestamp>) -> bool {
    hidden_at.is_some_and(|h| progress.occurred_at <= h)
}

/// The row key: the series for an episode, the title itself otherwise.
/// Select the Continue watching row: resume points in the window, newest activity first, one card
/// per series (its most recent episode; if that one is finished, hidden or not yet started, the
/// series has no card), minus hidden, stale and too-mature titles.
pub fn continue_watching<'a>(
    candidates: &[ResumeCandidate<'a>],
    profile: &Profile,
    now: Timestamp,
    rules: &Rules,
    limit: usize,
) -> Vec<ResumeCandidate<'a>> {
    let mut newest: HashMap<&TitleId, ResumeCandidate<'a>> = HashMap::new();
    for c in candidates {
        let key = c.title.series_or_self();
        match newest.get(key) {
            Some(cur) if cur.progress.version() >= c.progress.version() => {}
            _ => {
                newest.insert(key, *c);
            }
        }
    }
    let mut row: Vec<ResumeCandidate<'a>> = newest
        .into_values()
        .filter(|c| {
            let facts = TitleFacts::from(c.title);
            let facts = TitleFacts {
                duration_ms: if facts.duration_ms > 0 { facts.duration_ms } else { c.progress.duration_ms },
                ..facts
            };
            !c.progress.finished
                && rules.in_resume_window(c.progress.position_ms, &facts)
                && !is_hidden(c.progress, c.hidden_at)
                && c.progress.occurred_at.0 >= now.0 - rules.stale_after_ms
                && profile.may_see(c.title.maturity)
        })
        .collect();
    row.sort_by_key(|c| std::cmp::Reverse(c.progress.version()));
    row.truncate(limit);
    row
}

/// One play of an episode, as Next up sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodePlay {
    /// The episode.
    pub title_id: TitleId,
    /// When the viewing started (plays are replayed in this order).
    pub started_at: Timestamp,
    /// When it ended (the card's activity time).
    pub ended_at: Timestamp,
    /// Reached the watched point.
    pub completed: bool,
}

/// Sort key of an episode in viewing order. Shows numbered only by episode (no season) sort as
/// season 1; season 0 holds the specials.
fn order_key(t: &Title) -> (i32, i32) {
    (t.season.unwrap_or(1), t.episode.unwrap_or(0))
}

fn is_special(t: &Title) -> bool {
    t.season == Some(0)
}

/// The Next up episode of one series, or `None` (no completed play, series finished, or the
/// next episode is above the profile's maturity limit).
///
/// The rules (DESIGN.md): the first available episode after the furthest completed one by
/// (season, episode); specials are skipped unless the most recent completed play was a special;
/// playing the first episode after the finale was completed starts a rewatch, which then drives
/// Next up; a finished series reappears when a new episode becomes available.
pub fn next_up<'a>(
    episodes: &'a [Title],
    plays: &[EpisodePlay],
    profile: &Profile,
    now: Timestamp,
) -> Option<&'a Title> {
    let by_id: HashMap<&TitleId, &Title> = episodes.iter().map(|t| (&t.id, t)).collect();
    let mut regular: Vec<&Title> = episodes.iter().filter(|t| !is_special(t)).collect();
    regular.sort_by_key(|t| order_key(t));
    let mut specials: Vec<&Title> = episodes.iter().filter(|t| is_special(t)).collect();
    specials.sort_by_key(|t| order_key(t));
    let available_regular: Vec<&Title> = regular.iter().copied().filter(|t| t.is_available(now)).collect();
    let first = available_regular.first().map(|t| order_key(t));
    let finale = available_regular.last().map(|t| order_key(t));

    let mut ordered: Vec<&EpisodePlay> = plays.iter().collect();
    ordered.sort_by_key(|p| (p.started_at, p.ended_at));

    let mut furthest: Option<(i32, i32)> = None; // furthest completed regular episode in this run
    let mut furthest_special: Option<(i32, i32)> = None;
    let mut watching_specials = false;
    let mut any_completed = false;
    for p in ordered {
        let Some(t) = by_id.get(&p.title_id) else { continue };
        let key = order_key(t);
        if !is_special(t) && Some(key) == first && furthest.is_some() && furthest == finale {
            // The finale was reached and episode 1 is playing again: a rewatch starts.
            furthest = None;
        }
        if p.completed {
            any_completed = true;
            if is_special(t) {
                watching_specials = true;
                furthest_special = furthest_special.max(Some(key));
            } else {
                watching_specials = false;
                furthest = furthest.max(Some(key));
            }
        }
    }
    if !any_completed {
        return None;
    }
    let after = |list: &[&'a Title], from: Option<(i32, i32)>| {
        list.iter().copied().find(|t| t.is_available(now) && from.is_none_or(|f| order_key(t) > f))
    };
    let next = if watching_specials {
        after(&specials, furthest_special).or_else(|| after(&regular, furthest))
    } else {
        after(&regular, furthest)
    }?;
    profile.may_see(next.maturity).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, EventId, ProfileId};
    use crate::profile::ProfileName;
    use crate::time::DAY_MS;
    use crate::title::TitleKind;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn profile(kids: bool) -> Profile {
        Profile {
            id: ProfileId(Uuid::from_u128(1)),
            account_id: AccountId(Uuid::from_u128(2)),
            name: ProfileName::parse("P").unwrap(),
            kids,
            maturity_limit: None,
            private: false,
            history_paused: false,
            keep_resume_points_while_paused: false,
            version: 1,
            created_at: Timestamp(0),
        }
    }

    fn title(id: &str, series: Option<&str>, season: Option<i32>, episode: Option<i32>) -> Title {
        Title {
            id: TitleId::parse(id).unwrap(),
            kind: if series.is_some() { TitleKind::Episode } else { TitleKind::Movie },
            name: id.into(),
            duration_ms: 3_000_000,
            credits_start_ms: None,
            series_id: series.map(|s| TitleId::parse(s).unwrap()),
            season,
            episode,
            genres: vec![],
            maturity: 0,
            release_year: None,
            available_from: None,
            external_ids: BTreeMap::new(),
        }
    }

    fn progress(t: &Title, pos: i64, at: Timestamp, finished: bool) -> ProgressRecord {
        ProgressRecord {
            profile_id: ProfileId(Uuid::from_u128(1)),
            title_id: t.id.clone(),
            position_ms: pos,
            duration_ms: t.duration_ms,
            occurred_at: at,
            event_id: EventId(Uuid::from_u128(at.0 as u128)),
            finished,
            updated_at: at,
        }
    }

    fn ids(row: &[ResumeCandidate<'_>]) -> Vec<String> {
        row.iter().map(|c| c.title.id.to_string()).collect()
    }

    #[test]
    fn continue_watching_shows_the_window_newest_first() {
        let (a, b, c) =
            (title("a", None, None, None), title("b", None, None, None), title("c", None, None, None));
        let pa = progress(&a, 1_000_000, NOW.plus_ms(-3000), false);
        let pb = progress(&b, 1_000_000, NOW.plus_ms(-1000), false);
        let pc = progress(&c, 10_000, NOW.plus_ms(-500), false); // before the window
        let cands = [
            ResumeCandidate { progress: &pa, hidden_at: None, title: &a },
            ResumeCandidate { progress: &pb, hidden_at: None, title: &b },
            ResumeCandidate { progress: &pc, hidden_at: None, title: &c },
        ];
        assert_eq!(ids(&continue_watching(&cands, &profile(false), NOW, &Rules::default(), 20)), ["b", "a"]);
        assert_eq!(ids(&continue_watching(&cands, &profile(false), NOW, &Rules::default(), 1)), ["b"]);
    }

    #[test]
    fn one_card_per_series_its_most_recent_episode() {
        let e1 = title("s.e1", Some("s"), Some(1), Some(1));
        let e2 = title("s.e2", Some("s"), Some(1), Some(2));
        let p1 = progress(&e1, 1_000_000, NOW.plus_ms(-5000), false);
        let p2 = progress(&e2, 1_000_000, NOW.plus_ms(-1000), false);
        let cands = [
            ResumeCandidate { progress: &p1, hidden_at: None, title: &e1 },
            ResumeCandidate { progress: &p2, hidden_at: None, title: &e2 },
        ];
        assert_eq!(ids(&continue_watching(&cands, &profile(false), NOW, &Rules::default(), 20)), ["s.e2"]);
        // The most recent episode finished: the series leaves the row (Next up takes over).
        let p2 = progress(&e2, 0, NOW.plus_ms(-1000), true);
        let cands = [
            ResumeCandidate { progress: &p1, hidden_at: None, title: &e1 },
            ResumeCandidate { progress: &p2, hidden_at: None, title: &e2 },
        ];
        assert!(continue_watching(&cands, &profile(false), NOW, &Rules::default(), 20).is_empty());
    }

    #[test]
    fn hidden_titles_stay_hidden_until_a_newer_event() {
        let a = title("a", None, None, None);
        let p = progress(&a, 1_000_000, NOW.plus_ms(-5000), false);
        let hidden = [ResumeCandidate { progress: &p, hidden_at: Some(NOW.plus_ms(-4000)), title: &a }];
        assert!(continue_watching(&hidden, &profile(false), NOW, &Rules::default(), 20).is_empty());
        let p = progress(&a, 1_100_000, NOW.plus_ms(-3000), false);
        let again = [ResumeCandidate { progress: &p, hidden_at: Some(NOW.plus_ms(-4000)), title: &a }];
        assert_eq!(continue_watching(&again, &profile(false), NOW, &Rules::default(), 20).len(), 1);
    }

    #[test]
    fn stale_titles_drop_out_after_90_days() {
        let a = title("a", None, None, None);
        let p = progress(&a, 1_000_000, NOW.plus_ms(-90 * DAY_MS - 1), false);
        let c = [ResumeCandidate { progress: &p, hidden_at: None, title: &a }];
        assert!(continue_watching(&c, &profile(false), NOW, &Rules::default(), 20).is_empty());
        let p = progress(&a, 1_000_000, NOW.plus_ms(-90 * DAY_MS), false);
        let c = [ResumeCandidate { progress: &p, hidden_at: None, title: &a }];
        assert_eq!(continue_watching(&c, &profile(false), NOW, &Rules::default(), 20).len(), 1);
    }

    #[test]
    fn kids_never_see_titles_above_their_limit() {
        let mut a = title("a", None, None, None);
        a.maturity = 16;
        let p = progress(&a, 1_000_000, NOW, false);
        let c = [ResumeCandidate { progress: &p, hidden_at: None, title: &a }];
        assert!(continue_watching(&c, &profile(true), NOW, &Rules::default(), 20).is_empty());
        assert_eq!(continue_watching(&c, &profile(false), NOW, &Rules::default(), 20).len(), 1);
    }

    fn show() -> Vec<Title> {
        let mut v =
            vec![title("sp1", Some("s"), Some(0), Some(1)), title("sp2", Some("s"), Some(0), Some(2))];
        for (s, e) in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2)] {
            v.push(title(&format!("s{s}e{e}"), Some("s"), Some(s), Some(e)));
        }
        v
    }

    fn play(id: &str, at: i64, completed: bool) -> EpisodePlay {
        EpisodePlay {
            title_id: TitleId::parse(id).unwrap(),
            started_at: Timestamp(at),
            ended_at: Timestamp(at + 1),
            completed,
        }
    }

    fn next(eps: &[Title], plays: &[EpisodePlay]) -> Option<String> {
        next_up(eps, plays, &profile(false), NOW).map(|t| t.id.to_string())
    }

    #[test]
    fn next_up_is_the_episode_after_the_furthest_completed() {
        let eps = show();
        assert_eq!(next(&eps, &[play("s1e1", 1, true)]).as_deref(), Some("s1e2"));
        assert_eq!(next(&eps, &[play("s1e3", 1, true)]).as_deref(), Some("s2e1"));
        // Rewatching an older favourite does not move Next up backwards.
        assert_eq!(next(&eps, &[play("s1e3", 1, true), play("s1e1", 2, true)]).as_deref(), Some("s2e1"));
        // No completed play: no card.
        assert_eq!(next(&eps, &[play("s1e1", 1, false)]), None);
    }

    #[test]
    fn specials_are_skipped_unless_being_watched() {
        let eps = show();
        assert_eq!(next(&eps, &[play("s1e3", 1, true)]).as_deref(), Some("s2e1"));
        assert_eq!(next(&eps, &[play("s1e3", 1, true), play("sp1", 2, true)]).as_deref(), Some("sp2"));
        // After the last special, back to the regular order.
        assert_eq!(next(&eps, &[play("s1e3", 1, true), play("sp2", 2, true)]).as_deref(), Some("s2e1"));
    }

    #[test]
    fn a_finished_series_reappears_when_a_new_episode_is_available() {
        let mut eps = show();
        let mut e3 = title("s2e3", Some("s"), Some(2), Some(3));
        e3.available_from = Some(NOW.plus_ms(DAY_MS));
        eps.push(e3);
        assert_eq!(next(&eps, &[play("s2e2", 1, true)]), None);
        let later = next_up(&eps, &[play("s2e2", 1, true)], &profile(false), NOW.plus_ms(DAY_MS));
        assert_eq!(later.map(|t| t.id.as_str()), Some("s2e3"));
    }

    #[test]
    fn playing_episode_one_after_the_finale_starts_a_rewatch() {
        let eps = show();
        let base = [play("s1e1", 1, true), play("s2e2", 2, true)];
        assert_eq!(next(&eps, &base), None);
        let mut rewatch = base.to_vec();
        rewatch.push(play("s1e1", 3, true));
        assert_eq!(next(&eps, &rewatch).as_deref(), Some("s1e2"));
        rewatch.push(play("s1e2", 4, true));
        assert_eq!(next(&eps, &rewatch).as_deref(), Some("s1e3"));
        // Before the finale, episode 1 is just a rewatched favourite.
        assert_eq!(next(&eps, &[play("s1e3", 1, true), play("s1e1", 2, true)]).as_deref(), Some("s2e1"));
    }

    #[test]
    fn an_unfinished_first_episode_after_the_finale_offers_episode_one() {
        let eps = show();
        let plays = [play("s2e2", 1, true), play("s1e1", 2, false)];
        assert_eq!(next(&eps, &plays).as_deref(), Some("s1e1"));
    }

    #[test]
    fn next_up_respects_maturity() {
        let mut eps = show();
        for e in &mut eps {
            if e.id.as_str() == "s1e2" {
                e.maturity = 18;
            }
        }
        assert_eq!(next_up(&eps, &[play("s1e1", 1, true)], &profile(true), NOW), None);
    }

    #[test]
    fn shows_without_seasons_are_ordered_by_episode() {
        let eps: Vec<Title> = (1..=3).map(|e| title(&format!("a{e}"), Some("a"), None, Some(e))).collect();
        assert_eq!(next(&eps, &[play("a1", 1, true)]).as_deref(), Some("a2"));
    }
}
