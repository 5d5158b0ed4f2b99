//! Input files: the interactions CSV and the catalog NDJSON.
//!
//! Interactions: header `profile_id,title_id,watched_at,percent` (columns found by name, so their
//! order is free; `percent` may be absent or empty), `watched_at` is RFC 3339 or Unix seconds,
//! `percent` is 0-100. The catalog is one [`TitleInput`] per line, validated with
//! [`TitleInput::validate`] exactly like the REST import.
//!
//! MovieLens is read as it ships: a `ratings.csv` (header `userId,movieId,rating,timestamp`) is
//! an interactions file, a rating at or above [`MOVIELENS_POSITIVE_RATING`] being a positive
//! (percent 100) and any other rating a play that is not (percent 0: watched, so never
//! recommended back, but not liked); a `movies.csv` (header `movieId,title,genres`, genres
//! separated by `|`) is a catalog of movies whose id is the `movieId`.
//!
//! Rule: a bad line is never skipped silently. Parsing collects every bad line (the first
//! [`crate::error::MAX_LINE_ERRORS`] with their messages) and fails as a whole, naming the line.
//! The only leniency is downstream: interactions whose title is not in the catalog are counted and
//! skipped, because real exports often trail the catalog.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use playhead_core::title::{Title, TitleInput};
use playhead_core::{Timestamp, TitleId};
use serde::{Deserialize, Serialize};

use crate::error::{LineError, MAX_LINE_ERRORS, RecsError};

/// A play is a positive (a "liked" signal for EASE and co-watch) at or above this percent.
///
/// 50% and not the 90% watched point: an episode abandoned at 60% was still chosen and mostly
/// watched, which is what the models learn from; a missing percent means the export only lists
/// completed plays, so it is positive too.
pub const POSITIVE_PERCENT: f32 = 50.0;

/// Whether a play with this percent is a positive (see [`POSITIVE_PERCENT`]).
pub fn is_positive(percent: Option<f32>) -> bool {
    percent.is_none_or(|p| p >= POSITIVE_PERCENT)
}

/// MovieLens: a rating at or above this is a positive. 4 of 5 is the convention of the EASE and
/// Mult-VAE papers on ML-20M (ratings ≥ 4 kept as implicit positives), so `recs eval` numbers on
/// MovieLens compare with theirs.
pub const MOVIELENS_POSITIVE_RATING: f32 = 4.0;

/// Duration given to MovieLens movies (the file has none; the catalog requires one).
const MOVIELENS_DURATION_MS: i64 = 6_000_000;

/// One line of the interactions file: a play of a title by a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// The platform's profile id (opaque text).
    pub profile_id: String,
    /// The played title (a movie or an episode, as in the catalog).
    pub title_id: TitleId,
    /// When it was watched.
    pub watched_at: Timestamp,
    /// How much was watched, 0-100, when known.
    pub percent: Option<f32>,
}

impl Interaction {
    /// Whether this play counts as a positive.
    pub fn is_positive(&self) -> bool {
        is_positive(self.percent)
    }
}

/// Read the interactions CSV at `path`.
pub fn load_interactions(path: &Path) -> Result<Vec<Interaction>, RecsError> {
    let f = File::open(path).map_err(|e| RecsError::io(path, e))?;
    parse_interactions(BufReader::new(f), &path.display().to_string())
}

/// Parse an interactions CSV; `name` is used in error messages.
pub fn parse_interactions(reader: impl Read, name: &str) -> Result<Vec<Interaction>, RecsError> {
    let mut lines = BufReader::new(reader).lines();
    let header = match lines.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(RecsError::Format { path: name.into(), message: e.to_string() }),
        None => return Err(RecsError::Format { path: name.into(), message: "empty file".into() }),
    };
    let header = header.trim_start_matches('\u{feff}');
    let cols = split_csv_line(header.trim_end_matches('\r'))
        .map_err(|m| RecsError::Format { path: name.into(), message: format!("line 1: {m}") })?;
    let find = |n: &str| cols.iter().position(|c| c.trim() == n);
    let movielens = match (find("userId"), find("movieId"), find("rating"), find("timestamp")) {
        (Some(u), Some(m), Some(r), Some(t)) => Some((u, m, r, t)),
        _ => None,
    };
    let (Some(pi), Some(ti), Some(wi)) = (
        find("profile_id").or(movielens.map(|x| x.0)),
        find("title_id").or(movielens.map(|x| x.1)),
        find("watched_at").or(movielens.map(|x| x.3)),
    ) else {
        return Err(RecsError::Format {
            path: name.into(),
            message: "line 1: header must name profile_id,title_id,watched_at[,percent] (or MovieLens userId,movieId,rating,timestamp)".into(),
        });
    };
    let pct = find("percent");
    let rating = movielens.map(|x| x.2);

    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut count = 0usize;
    for (idx, line) in lines.enumerate() {
        let lineno = idx + 2;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                return Err(RecsError::Format { path: name.into(), message: format!("line {lineno}: {e}") });
            }
        };
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        match parse_row(line, pi, ti, wi, pct, rating) {
            Ok(i) => out.push(i),
            Err(message) => {
                count += 1;
                if errors.len() < MAX_LINE_ERRORS {
                    errors.push(LineError { line: lineno, message });
                }
            }
        }
    }
    if count > 0 {
        return Err(RecsError::BadLines { path: name.into(), count, errors });
    }
    Ok(out)
}

fn parse_row(
    line: &str,
    pi: usize,
    ti: usize,
    wi: usize,
    pct: Option<usize>,
    rating: Option<usize>,
) -> Result<Interaction, String> {
    let f = split_csv_line(line)?;
    let get = |i: usize, n: &str| f.get(i).map(|s| s.trim()).ok_or_else(|| format!("missing column {n}"));
    let profile_id = get(pi, "profile_id")?;
    if profile_id.is_empty() {
        return Err("profile_id is empty".into());
    }
    let title_id = TitleId::parse(get(ti, "title_id")?).map_err(|e| format!("title_id: {e}"))?;
    let watched_at = parse_time(get(wi, "watched_at")?)?;
    if let Some(ri) = rating {
        let r = get(ri, "rating")?;
        let v: f32 = r.parse().map_err(|_| format!("rating: not a number: {r:?}"))?;
        if !(0.0..=5.0).contains(&v) {
            return Err(format!("rating: must be 0-5, got {v}"));
        }
        let percent = if v >= MOVIELENS_POSITIVE_RATING { 100.0 } else { 0.0 };
        return Ok(Interaction {
            profile_id: profile_id.to_owned(),
            title_id,
            watched_at,
            percent: Some(percent),
        });
    }
    let percent = match pct.and_then(|i| f.get(i)).map(|s| s.trim()) {
        None | Some("") => None,
        Some(p) => {
            let v: f32 = p.parse().map_err(|_| format!("percent: not a number: {p:?}"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("percent: must be 0-100, got {v}"));
            }
            Some(v)
        }
    };
    Ok(Interaction { profile_id: profile_id.to_owned(), title_id, watched_at, percent })
}

/// Parse `watched_at`: RFC 3339, or Unix seconds (integer or decimal).
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(secs) = s.parse::<i64>() {
        return secs.checked_mul(1000).map(Timestamp).ok_or_else(|| "watched_at: out of range".to_owned());
    }
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs.abs() < 1e14
    {
        return Ok(Timestamp((secs * 1000.0).round() as i64));
    }
    Timestamp::parse_rfc3339(s).map_err(|_| format!("watched_at: not RFC 3339 or Unix seconds: {s:?}"))
}

/// Split one CSV line (RFC 4180 quoting: `"a,b"` and `""` inside quotes).
fn split_csv_line(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (in_quotes, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => in_quotes = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                in_quotes = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, c) => cur.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// Read the catalog NDJSON at `path`.
pub fn load_catalog_titles(path: &Path) -> Result<Vec<Title>, RecsError> {
    let f = File::open(path).map_err(|e| RecsError::io(path, e))?;
    parse_catalog(BufReader::new(f), &path.display().to_string())
}

/// Parse catalog NDJSON (one title import object per line; blank lines are ignored), or a
/// MovieLens `movies.csv` (recognised by its header).
pub fn parse_catalog(reader: impl Read, name: &str) -> Result<Vec<Title>, RecsError> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut count = 0usize;
    let mut movielens: Option<(usize, usize, usize)> = None;
    for (idx, line) in BufReader::new(reader).lines().enumerate() {
        let lineno = idx + 1;
        let line = line
            .map_err(|e| RecsError::Format { path: name.into(), message: format!("line {lineno}: {e}") })?;
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() {
            continue;
        }
        if lineno == 1 && line.starts_with("movieId,") {
            let cols = split_csv_line(line)
                .map_err(|m| RecsError::Format { path: name.into(), message: format!("line 1: {m}") })?;
            let find = |n: &str| cols.iter().position(|c| c.trim() == n);
            let (Some(m), Some(t), Some(g)) = (find("movieId"), find("title"), find("genres")) else {
                return Err(RecsError::Format {
                    path: name.into(),
                    message: "line 1: a MovieLens movies.csv header is movieId,title,genres".into(),
                });
            };
            movielens = Some((m, t, g));
            continue;
        }
        let res = match movielens {
            Some(cols) => movielens_title(line, cols),
            None => serde_json::from_str::<TitleInput>(line).map_err(|e| e.to_string()),
        }
        .and_then(|t| {
            t.validate().map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        });
        match res {
            Ok(t) => out.push(t),
            Err(message) => {
                count += 1;
                if errors.len() < MAX_LINE_ERRORS {
                    errors.push(LineError { line: lineno, message });
                }
            }
        }
    }
    if count > 0 {
        return Err(RecsError::BadLines { path: name.into(), count, errors });
    }
    Ok(out)
}

/// One `movies.csv` line as a movie of the catalog.
fn movielens_title(line: &str, (m, t, g): (usize, usize, usize)) -> Result<TitleInput, String> {
    let f = split_csv_line(line)?;
    let get = |i: usize, n: &str| f.get(i).map(|s| s.trim()).ok_or_else(|| format!("missing column {n}"));
    let genres: Vec<String> = get(g, "genres")?
        .split('|')
        .map(str::trim)
        .filter(|x| !x.is_empty() && *x != "(no genres listed)")
        .map(str::to_owned)
        .collect();
    Ok(TitleInput {
        id: Some(get(m, "movieId")?.to_owned()),
        kind: Some("movie".into()),
        name: Some(get(t, "title")?.to_owned()),
        duration_ms: Some(MOVIELENS_DURATION_MS),
        genres: Some(genres),
        ..TitleInput::default()
    })
}

/// Write interactions as CSV in the input format (RFC 3339 times, percent when known).
pub fn write_interactions(w: &mut impl std::io::Write, rows: &[Interaction]) -> std::io::Result<()> {
    writeln!(w, "profile_id,title_id,watched_at,percent")?;
    for r in rows {
        let pct = r.percent.map(|p| format!("{p}")).unwrap_or_default();
        writeln!(w, "{},{},{},{}", csv_field(&r.profile_id), r.title_id, r.watched_at.to_rfc3339(), pct)?;
    }
    Ok(())
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_time_formats_and_optional_percent_parse() {
        let csv = "profile_id,title_id,watched_at,percent\n\
                   p1,m1,2026-01-01T00:00:00Z,80\n\
                   p1,m2,1767225600,\n\
                   \"p,2\",m3,1767225600.5,100\n";
        let rows = parse_interactions(csv.as_bytes(), "t").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].watched_at, rows[1].watched_at);
        assert_eq!(rows[1].percent, None);
        assert!(rows[1].is_positive());
        assert_eq!(rows[2].profile_id, "p,2");
        assert_eq!(rows[2].watched_at.0, 1_767_225_600_500);
    }

    #[test]
    fn movielens_ratings_and_movies_read_as_interactions_and_a_catalog() {
        let ratings =
            "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n1,20,3.5,964981247\n2,10,5,964982224\n";
        let rows = parse_interactions(ratings.as_bytes(), "ratings.csv").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].profile_id.as_str(), rows[0].title_id.as_str()), ("1", "10"));
        assert_eq!(rows[0].watched_at.0, 964_982_703_000);
        assert!(rows[0].is_positive() && !rows[1].is_positive() && rows[2].is_positive());
        let bad = "userId,movieId,rating,timestamp\n1,10,9,964982703\n";
        assert!(matches!(parse_interactions(bad.as_bytes(), "r"), Err(RecsError::BadLines { count: 1, .. })));
        let movies = "movieId,title,genres\n10,\"Heat, The (1995)\",Action|Crime\n20,Nothing (2000),(no genres listed)\n";
        let titles = parse_catalog(movies.as_bytes(), "movies.csv").unwrap();
        assert_eq!(titles.len(), 2);
        assert_eq!(titles[0].name, "Heat, The (1995)");
        assert_eq!(titles[0].genres, vec!["Action".to_owned(), "Crime".to_owned()]);
        assert!(titles[1].genres.is_empty());
    }

    #[test]
    fn columns_are_found_by_name_and_percent_may_be_absent() {
        let csv = "watched_at,title_id,profile_id\n1767225600,m1,p1\n";
        let rows = parse_interactions(csv.as_bytes(), "t").unwrap();
        assert_eq!(rows[0].profile_id, "p1");
        assert_eq!(rows[0].percent, None);
    }

    #[test]
    fn csv_errors_name_every_bad_line() {
        let csv = "profile_id,title_id,watched_at,percent\n\
                   p1,m1,2026-01-01T00:00:00Z,80\n\
                   p1,m/2,2026-01-01T00:00:00Z,80\n\
                   \n\
                   p1,m3,yesterday,80\n\
                   p1,m4,2026-01-01T00:00:00Z,180\n";
        let err = parse_interactions(csv.as_bytes(), "x.csv").unwrap_err();
        let RecsError::BadLines { count, errors, .. } = &err else { panic!("{err}") };
        assert_eq!(*count, 3);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 5, 6]);
        assert!(errors[0].message.contains("title_id"));
        assert!(errors[1].message.contains("watched_at"));
        assert!(errors[2].message.contains("percent"));
        assert!(err.to_string().contains("x.csv: 3 bad line(s): line 3:"));
    }

    #[test]
    fn a_header_without_required_columns_is_refused() {
        let err = parse_interactions("profile,title\n".as_bytes(), "x.csv").unwrap_err();
        assert!(err.to_string().contains("line 1"));
    }

    #[test]
    fn catalog_errors_name_the_line_and_the_field() {
        let nd = r#"{"id":"m1","kind":"movie","name":"M","duration_ms":100}

{"id":"e1","kind":"episode","name":"E","duration_ms":100}
{"id":"m2","kind":"movie","name":"M2","duration_ms":100,"admin":true}
not json
"#;
        let err = parse_catalog(nd.as_bytes(), "c.ndjson").unwrap_err();
        let RecsError::BadLines { count, errors, .. } = err else { panic!() };
        assert_eq!(count, 3);
        assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(errors[0].message.contains("series_id"));
        assert!(errors[1].message.contains("admin"));
    }

    #[test]
    fn written_interactions_parse_back() {
        let rows = vec![Interaction {
            profile_id: "a,\"b\"".into(),
            title_id: TitleId::parse("m1").unwrap(),
            watched_at: Timestamp(1_767_225_600_000),
            percent: Some(42.5),
        }];
        let mut buf = Vec::new();
        write_interactions(&mut buf, &rows).unwrap();
        assert_eq!(parse_interactions(buf.as_slice(), "t").unwrap(), rows);
    }
}
