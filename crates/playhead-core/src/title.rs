//! The catalog: movies, series and episodes, owned by the platform and imported (idempotent upsert).
//!
//! [`TitleInput`] is the one wire shape (REST PUT, NDJSON import, the recs CLI's catalog file);
//! [`TitleInput::validate`] is the only way to a [`Title`], and it reports every bad field at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::ids::TitleId;
use crate::time::Timestamp;

/// What kind of title this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TitleKind {
    /// A standalone film.
    Movie,
    /// A show: a container of episodes, not playable itself.
    Series,
    /// One episode of a series.
    Episode,
}

impl TitleKind {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TitleKind::Movie => "movie",
            TitleKind::Series => "series",
            TitleKind::Episode => "episode",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "movie" => Some(Self::Movie),
            "series" => Some(Self::Series),
            "episode" => Some(Self::Episode),
            _ => None,
        }
    }
}

/// Longest title name accepted.
pub const NAME_MAX_LEN: usize = 500;
/// Most genres on one title.
pub const GENRES_MAX: usize = 32;
/// Longest genre name.
pub const GENRE_MAX_LEN: usize = 64;
/// Most external ids on one title.
pub const EXTERNAL_IDS_MAX: usize = 16;
/// Highest maturity age accepted (a minimum age in years).
pub const MATURITY_MAX: u8 = 21;

/// A validated catalog title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Title {
    /// The platform's id.
    pub id: TitleId,
    /// Movie, series or episode.
    pub kind: TitleKind,
    /// Display name.
    pub name: String,
    /// Running time; 0 for a series.
    pub duration_ms: i64,
    /// Where the end credits start, when known: the watched point.
    pub credits_start_ms: Option<i64>,
    /// For episodes: the series they belong to.
    pub series_id: Option<TitleId>,
    /// For episodes: season number, 0 = specials; none for shows numbered only by episode.
    pub season: Option<i32>,
    /// For episodes: number within the season.
    pub episode: Option<i32>,
    /// Genre names, as the platform spells them.
    pub genres: Vec<String>,
    /// Minimum age to watch (0 = everyone).
    pub maturity: u8,
    /// Year of first release.
    pub release_year: Option<i32>,
    /// Before this instant the title exists but is not playable (Next up skips it).
    pub available_from: Option<Timestamp>,
    /// Ids in other catalogs (`{"imdb": "tt0111161"}`).
    pub external_ids: BTreeMap<String, String>,
}

impl Title {
    /// What this title counts as in rows and recommendations: an episode's series, otherwise the
    /// title itself (one Continue watching card per series; plays of episodes are taste for the
    /// show). The one definition of that rule.
    pub fn series_or_self(&self) -> &TitleId {
        match (&self.kind, &self.series_id) {
            (TitleKind::Episode, Some(s)) => s,
            _ => &self.id,
        }
    }

    /// Whether the title can be played at `now`.
    pub fn is_available(&self, now: Timestamp) -> bool {
        self.available_from.is_none_or(|t| t <= now)
    }
}

/// The wire shape of a title, before validation. Unknown fields are refused (no mass assignment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TitleInput {
    /// Required in imports; a PUT takes it from the URL (and refuses a different one in the body).
    #[serde(default)]
    pub id: Option<String>,
    /// `movie`, `series` or `episode`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Display name, 1-500 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Running time in ms (0 allowed only for a series).
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Credits start in ms, below `duration_ms`.
    #[serde(default)]
    pub credits_start_ms: Option<i64>,
    /// Series id (episodes only, required there).
    #[serde(default)]
    pub series_id: Option<String>,
    /// Season number (episodes only); 0 = specials.
    #[serde(default)]
    pub season: Option<i32>,
    /// Episode number (episodes only, required there).
    #[serde(default)]
    pub episode: Option<i32>,
    /// Genre names.
    #[serde(default)]
    pub genres: Option<Vec<String>>,
    /// Minimum age (0-21).
    #[serde(default)]
    pub maturity: Option<u8>,
    /// Year of first release.
    #[serde(default)]
    pub release_year: Option<i32>,
    /// When it becomes playable.
    #[serde(default)]
    pub available_from: Option<Timestamp>,
    /// Ids in other catalogs.
    #[serde(default)]
    pub external_ids: Option<BTreeMap<String, String>>,
}

impl TitleInput {
    /// Validate into a [`Title`], reporting every bad field (not just the first).
    pub fn validate(self) -> Result<Title, Vec<FieldError>> {
        let mut errs = Vec::new();
        let id = match self.id.as_deref().map(TitleId::parse) {
            None => {
                errs.push(FieldError::required("id"));
                None
            }
            Some(Err(e)) => {
                errs.push(FieldError::new("id", "invalid", e.to_string()));
                None
            }
            Some(Ok(id)) => Some(id),
        };
        let kind = match self.kind.as_deref() {
            None => {
                errs.push(FieldError::required("kind"));
                None
            }
            Some(k) => TitleKind::parse(k).or_else(|| {
                errs.push(FieldError::new("kind", "invalid", "must be movie, series or episode"));
                None
            }),
        };
        let name = match self.name {
            None => {
                errs.push(FieldError::required("name"));
                String::new()
            }
            Some(n) => {
                let n = n.trim().to_owned();
                if n.is_empty() || n.chars().count() > NAME_MAX_LEN {
                    errs.push(FieldError::new(
                        "name",
                        "length",
                        format!("must be 1-{NAME_MAX_LEN} characters"),
                    ));
                }
                n
            }
        };
        let duration_ms = match self.duration_ms {
            None if kind == Some(TitleKind::Series) => 0,
            None => {
                errs.push(FieldError::required("duration_ms"));
                0
            }
            Some(d) if d < 0 || (d == 0 && kind != Some(TitleKind::Series)) => {
                errs.push(FieldError::new(
                    "duration_ms",
                    "out_of_range",
                    "must be greater than 0 (0 only for a series)",
                ));
                d
            }
            Some(d) => d,
        };
        if let Some(c) = self.credits_start_ms
            && (c <= 0 || c >= duration_ms)
        {
            errs.push(FieldError::new(
                "credits_start_ms",
                "out_of_range",
                "must be greater than 0 and less than duration_ms",
            ));
        }
        let series_id = match self.series_id.as_deref().map(TitleId::parse) {
            Some(Err(e)) => {
                errs.push(FieldError::new("series_id", "invalid", e.to_string()));
                None
            }
            Some(Ok(s)) => Some(s),
            None => None,
        };
        if kind == Some(TitleKind::Episode) {
            if self.series_id.is_none() {
                errs.push(FieldError::new("series_id", "required", "is required for an episode"));
            }
            match self.episode {
                None => errs.push(FieldError::new("episode", "required", "is required for an episode")),
                Some(e) if e < 0 => {
                    errs.push(FieldError::new("episode", "out_of_range", "must be 0 or more"))
                }
                Some(_) => {}
            }
            if matches!(self.season, Some(s) if s < 0) {
                errs.push(FieldError::new("season", "out_of_range", "must be 0 (specials) or more"));
            }
        } else if kind.is_some() {
            for (field, present) in [
                ("series_id", self.series_id.is_some()),
                ("season", self.season.is_some()),
                ("episode", self.episode.is_some()),
            ] {
                if present {
                    errs.push(FieldError::new(field, "not_allowed", "is only allowed on an episode"));
                }
            }
        }
        let genres = self.genres.unwrap_or_default();
        if genres.len() > GENRES_MAX {
            errs.push(FieldError::new("genres", "too_many", format!("at most {GENRES_MAX} genres")));
        }
        if genres.iter().any(|g| g.trim().is_empty() || g.chars().count() > GENRE_MAX_LEN) {
            errs.push(FieldError::new(
                "genres",
                "length",
                format!("each genre must be 1-{GENRE_MAX_LEN} characters"),
            ));
        }
        let maturity = self.maturity.unwrap_or(0);
        if maturity > MATURITY_MAX {
            errs.push(FieldError::new("maturity", "out_of_range", format!("must be 0-{MATURITY_MAX}")));
        }
        if matches!(self.release_year, Some(y) if !(1850..=2200).contains(&y)) {
            errs.push(FieldError::new("release_year", "out_of_range", "must be 1850-2200"));
        }
        let external_ids = self.external_ids.unwrap_or_default();
        if external_ids.len() > EXTERNAL_IDS_MAX
            || external_ids.iter().any(|(k, v)| k.is_empty() || k.len() > 32 || v.is_empty() || v.len() > 128)
        {
            errs.push(FieldError::new(
                "external_ids",
                "invalid",
                format!("at most {EXTERNAL_IDS_MAX} entries, keys 1-32 and values 1-128 characters"),
            ));
        }
        match (id, kind) {
            (Some(id), Some(kind)) if errs.is_empty() => Ok(Title {
                id,
                kind,
                name,
                duration_ms,
                credits_start_ms: self.credits_start_ms,
                series_id,
                season: if kind == TitleKind::Episode { self.season } else { None },
                episode: self.episode,
                genres: genres.into_iter().map(|g| g.trim().to_owned()).collect(),
                maturity,
                release_year: self.release_year,
                available_from: self.available_from,
                external_ids,
            }),
            _ => Err(errs),
        }
    }
}

impl From<&Title> for TitleInput {
    fn from(t: &Title) -> Self {
        Self {
            id: Some(t.id.to_string()),
            kind: Some(t.kind.as_str().to_owned()),
            name: Some(t.name.clone()),
            duration_ms: Some(t.duration_ms),
            credits_start_ms: t.credits_start_ms,
            series_id: t.series_id.as_ref().map(ToString::to_string),
            season: t.season,
            episode: t.episode,
            genres: Some(t.genres.clone()),
            maturity: Some(t.maturity),
            release_year: t.release_year,
            available_from: t.available_from,
            external_ids: (!t.external_ids.is_empty()).then(|| t.external_ids.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode() -> TitleInput {
        TitleInput {
            id: Some("show-1.s01e02".into()),
            kind: Some("episode".into()),
            name: Some(" Pilot, part 2 ".into()),
            duration_ms: Some(2_700_000),
            series_id: Some("show-1".into()),
            season: Some(1),
            episode: Some(2),
            ..TitleInput::default()
        }
    }

    #[test]
    fn a_valid_episode_validates_and_is_trimmed() {
        let t = episode().validate().unwrap();
        assert_eq!(t.name, "Pilot, part 2");
        assert_eq!(t.kind, TitleKind::Episode);
        assert_eq!(t.series_id.unwrap().as_str(), "show-1");
    }

    #[test]
    fn every_bad_field_is_reported() {
        let bad = TitleInput {
            series_id: None,
            episode: None,
            duration_ms: Some(-1),
            maturity: Some(40),
            ..episode()
        };
        let fields: Vec<_> = bad.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["duration_ms", "series_id", "episode", "maturity"]);
    }

    #[test]
    fn a_series_needs_no_duration_but_a_movie_does() {
        let series = TitleInput {
            id: Some("show-1".into()),
            kind: Some("series".into()),
            name: Some("Show".into()),
            ..TitleInput::default()
        };
        assert_eq!(series.validate().unwrap().duration_ms, 0);
        let movie = TitleInput {
            id: Some("m1".into()),
            kind: Some("movie".into()),
            name: Some("M".into()),
            ..TitleInput::default()
        };
        assert_eq!(movie.validate().unwrap_err()[0].field, "duration_ms");
    }

    #[test]
    fn credits_must_lie_inside_the_title() {
        let t = TitleInput { credits_start_ms: Some(2_700_000), ..episode() };
        assert_eq!(t.validate().unwrap_err()[0].field, "credits_start_ms");
    }

    #[test]
    fn episode_fields_are_refused_on_a_movie() {
        let t = TitleInput { kind: Some("movie".into()), ..episode() };
        let errs = t.validate().unwrap_err();
        assert!(errs.iter().all(|e| e.code == "not_allowed"));
        assert_eq!(errs.len(), 3);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<TitleInput, _> = serde_json::from_str(r#"{"id":"a","admin":true}"#);
        assert!(r.unwrap_err().to_string().contains("unknown field `admin`"));
    }

    #[test]
    fn availability_is_inclusive() {
        let mut t = episode().validate().unwrap();
        t.available_from = Some(Timestamp(1000));
        assert!(!t.is_available(Timestamp(999)));
        assert!(t.is_available(Timestamp(1000)));
    }
}
