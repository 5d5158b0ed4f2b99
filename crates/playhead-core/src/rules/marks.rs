//! Watched marks: which titles a mark (or an unmark) covers.
//!
//! DESIGN.md: "Watched" means at least one completed play, or an explicit mark. A mark is stored
//! as a manual play (completed, no events), so every reader of plays (history, Next up, the
//! recommender's exclusions) honours it without a second source of truth. This module only
//! decides the set of titles a request names: one title, a whole season, or a whole series.

use crate::title::{Title, TitleKind};

/// How much a mark covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkScope {
    /// The title itself (a movie or an episode).
    Title,
    /// Every episode of the episode's season.
    Season,
    /// Every episode of the series (named by the series or one of its episodes).
    Series,
}

impl MarkScope {
    /// Parse the wire name (`season`, `series`; absent means the title itself).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "title" => Some(Self::Title),
            "season" => Some(Self::Season),
            "series" => Some(Self::Series),
            _ => None,
        }
    }
}

/// Why a scope cannot apply to a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// `season` needs an episode with a season number: a series has many seasons.
    #[error("scope=season needs an episode id with a season number")]
    SeasonNeedsEpisode,
    /// `series` needs a series or one of its episodes.
    #[error("scope=series needs a series id or an episode of a series")]
    NotInSeries,
    /// A series has nothing to mark until its episodes are in the catalog.
    #[error("the series has no episodes in the catalog")]
    NoEpisodes,
}

/// The series a scoped mark on `target` reaches (`None`: the title itself, or a movie).
pub fn series_of(target: &Title, scope: MarkScope) -> Option<&crate::ids::TitleId> {
    match (scope, target.kind) {
        (MarkScope::Title, TitleKind::Series) | (MarkScope::Series, TitleKind::Series) => Some(&target.id),
        (MarkScope::Season | MarkScope::Series, TitleKind::Episode) => target.series_id.as_ref(),
        _ => None,
    }
}

/// The titles a mark on `target` with `scope` covers, given the episodes of its series
/// (`episodes` is ignored for a plain title). A series named without a scope means the whole
/// series: a series itself is not playable, so marking it can only mean its episodes.
pub fn covered<'a>(
    target: &'a Title,
    scope: MarkScope,
    episodes: &'a [Title],
) -> Result<Vec<&'a Title>, ScopeError> {
    let all_of_series = |series: &crate::ids::TitleId| -> Result<Vec<&'a Title>, ScopeError> {
        let eps: Vec<&Title> = episodes.iter().filter(|e| e.series_id.as_ref() == Some(series)).collect();
        if eps.is_empty() { Err(ScopeError::NoEpisodes) } else { Ok(eps) }
    };
    match (scope, target.kind) {
        (MarkScope::Title, TitleKind::Series) | (MarkScope::Series, TitleKind::Series) => {
            all_of_series(&target.id)
        }
        (MarkScope::Title, _) => Ok(vec![target]),
        (MarkScope::Season, TitleKind::Episode) => match (&target.series_id, target.season) {
            (Some(series), Some(season)) => Ok(episodes
                .iter()
                .filter(|e| e.series_id.as_ref() == Some(series) && e.season == Some(season))
                .chain(std::iter::once(target))
                .fold(Vec::new(), |mut acc, e| {
                    if !acc.iter().any(|a: &&Title| a.id == e.id) {
                        acc.push(e);
                    }
                    acc
                })),
            _ => Err(ScopeError::SeasonNeedsEpisode),
        },
        (MarkScope::Season, _) => Err(ScopeError::SeasonNeedsEpisode),
        (MarkScope::Series, TitleKind::Episode) => match &target.series_id {
            Some(series) => all_of_series(series),
            None => Err(ScopeError::NotInSeries),
        },
        (MarkScope::Series, TitleKind::Movie) => Err(ScopeError::NotInSeries),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TitleId;

    fn id(s: &str) -> TitleId {
        TitleId::parse(s).expect("title id")
    }

    fn movie(s: &str) -> Title {
        Title {
            id: id(s),
            kind: TitleKind::Movie,
            name: s.into(),
            duration_ms: 1000,
            credits_start_ms: None,
            series_id: None,
            season: None,
            episode: None,
            genres: vec![],
            maturity: 0,
            release_year: None,
            available_from: None,
            external_ids: Default::default(),
        }
    }

    fn ep(s: &str, season: i32, n: i32) -> Title {
        Title {
            kind: TitleKind::Episode,
            series_id: Some(id("show")),
            season: Some(season),
            episode: Some(n),
            ..movie(s)
        }
    }

    fn ids(v: &[&Title]) -> Vec<String> {
        let mut out: Vec<String> = v.iter().map(|t| t.id.to_string()).collect();
        out.sort();
        out
    }

    #[test]
    fn scopes_cover_the_title_its_season_or_its_series() {
        let eps = vec![
            ep("e11", 1, 1),
            ep("e12", 1, 2),
            ep("e21", 2, 1),
            Title { series_id: Some(id("other")), ..ep("x", 1, 1) },
        ];
        let show = Title { kind: TitleKind::Series, ..movie("show") };
        assert_eq!(ids(&covered(&eps[0], MarkScope::Title, &eps).unwrap()), ["e11"]);
        assert_eq!(ids(&covered(&eps[1], MarkScope::Season, &eps).unwrap()), ["e11", "e12"]);
        assert_eq!(ids(&covered(&eps[2], MarkScope::Series, &eps).unwrap()), ["e11", "e12", "e21"]);
        assert_eq!(ids(&covered(&show, MarkScope::Series, &eps).unwrap()), ["e11", "e12", "e21"]);
        // A series without a scope means its episodes: the series itself is never played.
        assert_eq!(ids(&covered(&show, MarkScope::Title, &eps).unwrap()), ["e11", "e12", "e21"]);
        assert_eq!(ids(&covered(&movie("m"), MarkScope::Title, &eps).unwrap()), ["m"]);
    }

    #[test]
    fn scopes_that_make_no_sense_are_refused() {
        let eps = vec![ep("e11", 1, 1)];
        let show = Title { kind: TitleKind::Series, ..movie("show") };
        assert_eq!(covered(&show, MarkScope::Season, &eps), Err(ScopeError::SeasonNeedsEpisode));
        assert_eq!(covered(&movie("m"), MarkScope::Season, &eps), Err(ScopeError::SeasonNeedsEpisode));
        assert_eq!(covered(&movie("m"), MarkScope::Series, &eps), Err(ScopeError::NotInSeries));
        let empty = Title { kind: TitleKind::Series, ..movie("empty") };
        assert_eq!(covered(&empty, MarkScope::Series, &eps), Err(ScopeError::NoEpisodes));
        let unnumbered = Title { season: None, ..ep("u", 1, 1) };
        assert_eq!(covered(&unnumbered, MarkScope::Season, &eps), Err(ScopeError::SeasonNeedsEpisode));
        assert_eq!(MarkScope::parse("season"), Some(MarkScope::Season));
        assert_eq!(MarkScope::parse("seasons"), None);
    }
}
