//! Interactions joined to the catalog: per-profile, time-ordered plays over catalog indices.
//!
//! Rule: this is the one place that orders plays (by time, then file order) and leaves out bad
//! input: plays of titles the catalog does not know, exact duplicates (same profile, title and
//! instant) and plays after the caller's clock. Each is counted ([`InputReport`]), never dropped
//! silently; training, batch and evaluation all read it, so they can never disagree about what a
//! profile watched or in which order.

use std::collections::{HashMap, HashSet};

use playhead_core::Timestamp;

use crate::catalog::{Catalog, ItemIdx, TitleIdx};
use crate::data::Interaction;

/// One play, resolved against the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Play {
    /// The played title.
    pub title: TitleIdx,
    /// The item it counts toward (movie, or the episode's series).
    pub item: ItemIdx,
    /// When (ms since the epoch).
    pub at: i64,
    /// Whether it is a positive ([`crate::data::POSITIVE_PERCENT`]).
    pub positive: bool,
    /// Percent watched, when known.
    pub percent: Option<f32>,
}

/// All profiles' plays, each profile's sorted by time.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// Profile ids, in first-seen order.
    pub profiles: Vec<String>,
    /// Plays per profile (same index as `profiles`), time-ordered.
    pub plays: Vec<Vec<Play>>,
    /// Interactions skipped because the catalog lacks their title.
    pub unknown_titles: usize,
    /// Interactions kept.
    pub interactions: usize,
    /// Interactions skipped as exact repeats of an earlier row (profile, title, instant).
    pub duplicates: usize,
    /// Interactions skipped because they lie after the caller's clock.
    pub future_timestamps: usize,
}

/// What the input held and what was left out, for the reports (never a silent drop).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputReport {
    /// Rows read.
    pub rows: usize,
    /// Rows used.
    pub kept: usize,
    /// Rows left out: title not in the catalog.
    pub unknown_titles: usize,
    /// Rows left out: an exact repeat of an earlier row.
    pub duplicates: usize,
    /// Rows left out: after the clock of the run.
    pub future_timestamps: usize,
    /// Profiles.
    pub profiles: usize,
    /// Profiles with a single play (kept: they train popularity and EASE but add no co-watch
    /// pair and cannot be evaluated).
    pub single_play_profiles: usize,
}

impl Dataset {
    /// Join interactions to the catalog (no clock: nothing counts as future).
    pub fn new(interactions: &[Interaction], catalog: &Catalog) -> Self {
        Self::checked(interactions, catalog, None)
    }

    /// Join interactions to the catalog, leaving out (and counting) plays after `now`.
    pub fn checked(interactions: &[Interaction], catalog: &Catalog, now: Option<Timestamp>) -> Self {
        let mut pos: HashMap<&str, usize> = HashMap::new();
        let mut ds = Dataset::default();
        let mut order: Vec<Vec<(i64, usize, Play)>> = Vec::new();
        let mut seen: HashSet<(&str, &str, i64)> = HashSet::new();
        for (n, i) in interactions.iter().enumerate() {
            let Some(title) = catalog.title_idx(i.title_id.as_str()) else {
                ds.unknown_titles += 1;
                continue;
            };
            if now.is_some_and(|now| i.watched_at > now) {
                ds.future_timestamps += 1;
                continue;
            }
            if !seen.insert((i.profile_id.as_str(), i.title_id.as_str(), i.watched_at.0)) {
                ds.duplicates += 1;
                continue;
            }
            let p = *pos.entry(i.profile_id.as_str()).or_insert_with(|| {
                ds.profiles.push(i.profile_id.clone());
                order.push(Vec::new());
                ds.profiles.len() - 1
            });
            let play = Play {
                title,
                item: catalog.item_of_title(title),
                at: i.watched_at.0,
                positive: i.is_positive(),
                percent: i.percent,
            };
            order[p].push((i.watched_at.0, n, play));
            ds.interactions += 1;
        }
        ds.plays = order
            .into_iter()
            .map(|mut v| {
                v.sort_by_key(|(at, n, _)| (*at, *n));
                v.into_iter().map(|(_, _, p)| p).collect()
            })
            .collect();
        ds
    }

    /// The input counts for a report.
    pub fn input_report(&self) -> InputReport {
        InputReport {
            rows: self.interactions + self.unknown_titles + self.duplicates + self.future_timestamps,
            kept: self.interactions,
            unknown_titles: self.unknown_titles,
            duplicates: self.duplicates,
            future_timestamps: self.future_timestamps,
            profiles: self.plays.len(),
            single_play_profiles: self.plays.iter().filter(|p| p.len() == 1).count(),
        }
    }

    /// The latest play time in the data (the "end of the file").
    pub fn end(&self) -> Timestamp {
        Timestamp(self.plays.iter().flat_map(|p| p.last()).map(|p| p.at).max().unwrap_or(0))
    }
}
