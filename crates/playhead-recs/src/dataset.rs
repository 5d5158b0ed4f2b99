//! Interactions joined to the catalog: per-profile, time-ordered plays over catalog indices.
//!
//! Rule: this is the one place that orders plays (by time, then file order) and drops plays of
//! titles the catalog does not know; training, batch and evaluation all read it, so they can never
//! disagree about what a profile watched or in which order.

use std::collections::HashMap;

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
}

impl Dataset {
    /// Join interactions to the catalog.
    pub fn new(interactions: &[Interaction], catalog: &Catalog) -> Self {
        let mut pos: HashMap<&str, usize> = HashMap::new();
        let mut ds = Dataset::default();
        let mut order: Vec<Vec<(i64, usize, Play)>> = Vec::new();
        for (n, i) in interactions.iter().enumerate() {
            let Some(title) = catalog.title_idx(i.title_id.as_str()) else {
                ds.unknown_titles += 1;
                continue;
            };
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

    /// The latest play time in the data (the "end of the file").
    pub fn end(&self) -> Timestamp {
        Timestamp(self.plays.iter().flat_map(|p| p.last()).map(|p| p.at).max().unwrap_or(0))
    }
}
