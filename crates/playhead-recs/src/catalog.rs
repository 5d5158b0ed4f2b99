//! The catalog as the recommender sees it: titles, and the *items* the models work on.
//!
//! An item is a movie or a series. Episodes count toward their series (so a show never
//! recommends its own next episode: that is [`Catalog::next_episode`]'s job), and a recommended
//! item is turned back into something a player can start with [`Catalog::playable`]: the movie
//! itself, or the series' first unwatched available episode.
//!
//! Rule: episode order is the core's Next up order, (season, episode) with shows numbered only
//! by episode as season 1 and the specials (season 0) after every regular season, and an
//! episode's effective maturity is the higher of its own and its series', so a kids row can never
//! reach an adult show through one mislabelled episode.

use std::collections::HashMap;

use playhead_core::title::{Title, TitleKind};
use playhead_core::{Timestamp, TitleId};

/// Index of a title in [`Catalog::titles`].
pub type TitleIdx = u32;
/// Index of an item in [`Catalog::items`].
pub type ItemIdx = u32;

/// A movie or a series: the unit the models score.
#[derive(Debug, Clone)]
pub struct Item {
    /// The movie's or the series' id.
    pub id: TitleId,
    /// Movie or series.
    pub kind: TitleKind,
    /// The catalog row of the movie or series itself (a series may be known only by its episodes).
    pub title: Option<TitleIdx>,
    /// For a series: its episodes in viewing order (regular seasons, then specials).
    pub episodes: Vec<TitleIdx>,
    /// Display name (the series id when the series row is missing).
    pub name: String,
    /// Genres of the movie or series row (for a series without a row: of its first episode).
    pub genres: Vec<String>,
    /// Genre set as a bit mask (each genre hashed to one of 64 bits) for fast overlap.
    pub genre_mask: u64,
    /// Minimum age of the movie or series.
    pub maturity: u8,
    /// When the movie or series becomes playable, if later than always.
    pub available_from: Option<Timestamp>,
}

/// Titles and items with the lookups serving needs. Immutable once built.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    titles: Vec<Title>,
    by_id: HashMap<String, TitleIdx>,
    items: Vec<Item>,
    item_by_id: HashMap<String, ItemIdx>,
    title_item: Vec<ItemIdx>,
}

/// Viewing-order key: specials after every regular season, unnumbered seasons as season 1.
fn order_key(t: &Title) -> (bool, i32, i32) {
    (t.season == Some(0), t.season.unwrap_or(1), t.episode.unwrap_or(0))
}

/// Hash a genre name onto one bit of a `u64` mask (FNV-1a; stable across runs and machines).
pub fn genre_bit(genre: &str) -> u64 {
    1u64 << (fnv1a(genre.to_lowercase().as_bytes()) % 64)
}

/// FNV-1a, 64 bit: a stable hash for shard selection and genre bits (std's hasher is seeded).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mask_of(genres: &[String]) -> u64 {
    genres.iter().fold(0, |m, g| m | genre_bit(g))
}

impl Catalog {
    /// Build from validated titles. A later duplicate id replaces an earlier one (import upsert).
    pub fn new(titles: Vec<Title>) -> Self {
        let mut dedup: Vec<Title> = Vec::with_capacity(titles.len());
        let mut by_id: HashMap<String, TitleIdx> = HashMap::new();
        for t in titles {
            match by_id.get(t.id.as_str()) {
                Some(&i) => dedup[i as usize] = t,
                None => {
                    by_id.insert(t.id.as_str().to_owned(), dedup.len() as TitleIdx);
                    dedup.push(t);
                }
            }
        }
        let titles = dedup;
        let mut items: Vec<Item> = Vec::new();
        let mut item_by_id: HashMap<String, ItemIdx> = HashMap::new();
        let mut title_item = vec![0 as ItemIdx; titles.len()];
        // Movies and series rows first, so an item's own row wins over what its episodes imply.
        for (ti, t) in titles.iter().enumerate() {
            if matches!(t.kind, TitleKind::Movie | TitleKind::Series) {
                let idx = items.len() as ItemIdx;
                item_by_id.insert(t.id.as_str().to_owned(), idx);
                items.push(Item {
                    id: t.id.clone(),
                    kind: t.kind,
                    title: Some(ti as TitleIdx),
                    episodes: Vec::new(),
                    name: t.name.clone(),
                    genres: t.genres.clone(),
                    genre_mask: mask_of(&t.genres),
                    maturity: t.maturity,
                    available_from: t.available_from,
                });
                title_item[ti] = idx;
            }
        }
        for (ti, t) in titles.iter().enumerate() {
            if t.kind != TitleKind::Episode {
                continue;
            }
            // validate() guarantees series_id on an episode; fall back to the episode itself.
            let sid = t.series_id.clone().unwrap_or_else(|| t.id.clone());
            let idx = match item_by_id.get(sid.as_str()) {
                Some(&i) => i,
                None => {
                    let i = items.len() as ItemIdx;
                    item_by_id.insert(sid.as_str().to_owned(), i);
                    items.push(Item {
                        name: sid.to_string(),
                        id: sid,
                        kind: TitleKind::Series,
                        title: None,
                        episodes: Vec::new(),
                        genres: t.genres.clone(),
                        genre_mask: mask_of(&t.genres),
                        maturity: 0,
                        available_from: None,
                    });
                    i
                }
            };
            items[idx as usize].episodes.push(ti as TitleIdx);
            title_item[ti] = idx;
        }
        for item in &mut items {
            item.episodes.sort_by_key(|&e| (order_key(&titles[e as usize]), e));
        }
        Self { titles, by_id, items, item_by_id, title_item }
    }

    /// All titles (index = [`TitleIdx`]).
    pub fn titles(&self) -> &[Title] {
        &self.titles
    }

    /// All items (index = [`ItemIdx`]).
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The title with this id.
    pub fn title(&self, id: &str) -> Option<&Title> {
        self.title_idx(id).map(|i| &self.titles[i as usize])
    }

    /// Index of the title with this id.
    pub fn title_idx(&self, id: &str) -> Option<TitleIdx> {
        self.by_id.get(id).copied()
    }

    /// Index of the item (movie or series) with this id.
    pub fn item_idx(&self, id: &str) -> Option<ItemIdx> {
        self.item_by_id.get(id).copied()
    }

    /// The item a title counts toward: itself for a movie or series, the series for an episode.
    pub fn item_of_title(&self, t: TitleIdx) -> ItemIdx {
        self.title_item[t as usize]
    }

    /// The item id a title id counts toward (for callers that store co-watch state by id).
    pub fn item_id_of(&self, title_id: &str) -> Option<&TitleId> {
        self.title_idx(title_id).map(|t| &self.items[self.item_of_title(t) as usize].id)
    }

    /// Number of playable titles (movies and episodes): the denominator of catalog coverage.
    pub fn playable_count(&self) -> usize {
        self.titles.iter().filter(|t| t.kind != TitleKind::Series).count()
    }

    /// Effective maturity of a playable title: the higher of its own and its item's.
    pub fn maturity_of(&self, t: TitleIdx) -> u8 {
        let item = &self.items[self.item_of_title(t) as usize];
        self.titles[t as usize].maturity.max(item.maturity)
    }

    /// Whether a playable title can be played at `now` (the episode and its series both).
    pub fn is_available(&self, t: TitleIdx, now: Timestamp) -> bool {
        let item = &self.items[self.item_of_title(t) as usize];
        self.titles[t as usize].is_available(now) && item.available_from.is_none_or(|a| a <= now)
    }

    /// The title to start for a recommended item: a movie itself; for a series, its first
    /// available regular episode that `watched` says is unwatched (every one when `rewatch`),
    /// falling back to the specials only for a show that has nothing else. `None` when nothing
    /// is playable (not yet released, or all watched).
    pub fn playable(
        &self,
        item: ItemIdx,
        now: Timestamp,
        rewatch: bool,
        watched: impl Fn(TitleIdx) -> bool,
    ) -> Option<TitleIdx> {
        let it = &self.items[item as usize];
        if it.kind == TitleKind::Movie {
            return it.title.filter(|&t| self.is_available(t, now));
        }
        let ok = |e: TitleIdx| self.is_available(e, now) && (rewatch || !watched(e));
        // Episodes are sorted with the specials last, so one pass finds the first regular one.
        let mut has_regular = false;
        for &e in &it.episodes {
            if self.titles[e as usize].season != Some(0) {
                has_regular = true;
                if ok(e) {
                    return Some(e);
                }
            }
        }
        if has_regular { None } else { it.episodes.iter().copied().find(|&e| ok(e)) }
    }

    /// The next episode of a series in progress: the first available regular episode after the
    /// furthest one `positive` says was watched, skipping episodes already played (`played`).
    /// `None` when the series was not started, is finished, or the next one is not out yet.
    pub fn next_episode(
        &self,
        series: ItemIdx,
        now: Timestamp,
        positive: impl Fn(TitleIdx) -> bool,
        played: impl Fn(TitleIdx) -> bool,
    ) -> Option<TitleIdx> {
        let it = &self.items[series as usize];
        let regular = it.episodes.iter().copied().filter(|&e| self.titles[e as usize].season != Some(0));
        let furthest =
            regular.clone().filter(|&e| positive(e)).map(|e| order_key(&self.titles[e as usize])).max()?;
        regular
            .filter(|&e| order_key(&self.titles[e as usize]) > furthest)
            .find(|&e| self.is_available(e, now) && !played(e))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    pub(crate) fn movie(id: &str, genres: &[&str], maturity: u8) -> Title {
        Title {
            id: TitleId::parse(id).unwrap(),
            kind: TitleKind::Movie,
            name: id.to_uppercase(),
            duration_ms: 5_400_000,
            credits_start_ms: None,
            series_id: None,
            season: None,
            episode: None,
            genres: genres.iter().map(|g| (*g).to_owned()).collect(),
            maturity,
            release_year: None,
            available_from: None,
            external_ids: BTreeMap::new(),
        }
    }

    pub(crate) fn series(id: &str, genres: &[&str], maturity: u8) -> Title {
        Title { kind: TitleKind::Series, duration_ms: 0, ..movie(id, genres, maturity) }
    }

    pub(crate) fn episode(series: &str, season: i32, ep: i32) -> Title {
        Title {
            kind: TitleKind::Episode,
            series_id: Some(TitleId::parse(series).unwrap()),
            season: Some(season),
            episode: Some(ep),
            duration_ms: 2_700_000,
            ..movie(&format!("{series}.s{season:02}e{ep:02}"), &[], 0)
        }
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::tests::{episode, movie, series};
    use super::*;

    fn show() -> Catalog {
        let mut special = episode("show", 0, 1);
        special.name = "Special".into();
        let mut late = episode("show", 2, 1);
        late.available_from = Some(Timestamp(1_000));
        Catalog::new(vec![
            late,
            special,
            episode("show", 1, 2),
            episode("show", 1, 1),
            series("show", &["Drama"], 16),
            movie("m1", &["Drama"], 0),
        ])
    }

    fn idx(c: &Catalog, id: &str) -> TitleIdx {
        c.title_idx(id).unwrap()
    }

    #[test]
    fn episodes_are_in_viewing_order_with_specials_last() {
        let c = show();
        let s = c.item_idx("show").unwrap();
        let order: Vec<&str> =
            c.items()[s as usize].episodes.iter().map(|&e| c.titles()[e as usize].id.as_str()).collect();
        assert_eq!(order, ["show.s01e01", "show.s01e02", "show.s02e01", "show.s00e01"]);
        assert_eq!(c.item_id_of("show.s01e02").unwrap().as_str(), "show");
        assert_eq!(c.maturity_of(idx(&c, "show.s01e01")), 16, "an episode inherits its series' maturity");
    }

    #[test]
    fn a_series_maps_to_its_first_unwatched_available_episode() {
        let c = show();
        let s = c.item_idx("show").unwrap();
        let e1 = idx(&c, "show.s01e01");
        let e2 = idx(&c, "show.s01e02");
        let now = Timestamp(0);
        assert_eq!(c.playable(s, now, false, |_| false), Some(e1));
        assert_eq!(c.playable(s, now, false, |t| t == e1), Some(e2));
        // Season 2 is not out yet and specials are not a show's start: nothing playable.
        assert_eq!(c.playable(s, now, false, |t| t == e1 || t == e2), None);
        assert_eq!(
            c.playable(s, Timestamp(1_000), false, |t| t == e1 || t == e2),
            Some(idx(&c, "show.s02e01"))
        );
        assert_eq!(c.playable(s, now, true, |_| true), Some(e1), "rewatch starts over");
        let m = c.item_idx("m1").unwrap();
        assert_eq!(c.playable(m, now, false, |_| false), Some(idx(&c, "m1")));
    }

    #[test]
    fn next_episode_follows_the_furthest_positive_one() {
        let c = show();
        let s = c.item_idx("show").unwrap();
        let (e1, e2) = (idx(&c, "show.s01e01"), idx(&c, "show.s01e02"));
        assert_eq!(c.next_episode(s, Timestamp(0), |t| t == e1, |t| t == e1), Some(e2));
        assert_eq!(c.next_episode(s, Timestamp(0), |t| t == e2, |t| t == e2), None, "s02e01 not out yet");
        assert_eq!(
            c.next_episode(s, Timestamp(1_000), |t| t == e2, |t| t == e2),
            Some(idx(&c, "show.s02e01"))
        );
        assert_eq!(c.next_episode(s, Timestamp(0), |_| false, |_| false), None, "not started");
    }

    #[test]
    fn a_series_known_only_by_its_episodes_is_still_an_item() {
        let c = Catalog::new(vec![episode("orphan", 1, 1)]);
        let s = c.item_idx("orphan").unwrap();
        assert_eq!(c.items()[s as usize].kind, TitleKind::Series);
        assert_eq!(c.playable(s, Timestamp(0), false, |_| false), c.title_idx("orphan.s01e01"));
    }
}
