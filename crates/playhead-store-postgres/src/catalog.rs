//! The catalog: titles imported by the platform (idempotent upsert).
//!
//! The rule: "unchanged" is decided by the database, comparing every stored column with the
//! incoming one in the upsert's `WHERE ... IS DISTINCT FROM`, so a re-import writes nothing and
//! bumps no version. Keep the column lists of [`UPSERT`] in step with the `titles` table.
//!
//! A call is sent as few multi-row statements (arrays through `unnest`), each committing on its
//! own. PostgreSQL refuses to update one row twice in one `INSERT ... ON CONFLICT DO UPDATE`, so a
//! call that repeats an id is cut before the repeat: the statements run in order, which is what
//! "the same id twice in one call is applied in order" asks for.

use std::collections::HashSet;

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::TitleId;
use playhead_core::ports::{Catalog, StoredTitle, UpsertSummary};
use playhead_core::time::Timestamp;
use playhead_core::title::Title;

use crate::codec::{self, title_columns};
use crate::{PgStore, error};

/// Titles per statement: bounds statement size and how long one statement holds row locks.
const UPSERT_CHUNK: usize = 1_000;

/// Insert titles from parallel arrays, or update an existing title only when some column differs
/// (`RETURNING` then yields its new version; an unchanged title yields no row, a new one version 1).
const UPSERT: &str = "INSERT INTO titles AS t (id, kind, name, duration_ms, credits_start_ms, series_id, \
     season, episode, genres, maturity, release_year, available_from, external_ids, version, updated_at) \
     SELECT u.id, u.kind, u.name, u.duration_ms, u.credits_start_ms, u.series_id, u.season, u.episode, \
     u.genres::jsonb, u.maturity, u.release_year, u.available_from, u.external_ids::jsonb, 1, $14 \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::text[], $7::int4[], \
     $8::int4[], $9::text[], $10::int2[], $11::int4[], $12::int8[], $13::text[]) \
     AS u(id, kind, name, duration_ms, credits_start_ms, series_id, season, episode, genres, maturity, \
     release_year, available_from, external_ids) \
     ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, \
     duration_ms = excluded.duration_ms, credits_start_ms = excluded.credits_start_ms, \
     series_id = excluded.series_id, season = excluded.season, episode = excluded.episode, \
     genres = excluded.genres, maturity = excluded.maturity, release_year = excluded.release_year, \
     available_from = excluded.available_from, external_ids = excluded.external_ids, \
     version = t.version + 1, updated_at = excluded.updated_at \
     WHERE (t.kind, t.name, t.duration_ms, t.credits_start_ms, t.series_id, t.season, t.episode, \
     t.genres, t.maturity, t.release_year, t.available_from, t.external_ids) IS DISTINCT FROM \
     (excluded.kind, excluded.name, excluded.duration_ms, excluded.credits_start_ms, excluded.series_id, \
     excluded.season, excluded.episode, excluded.genres, excluded.maturity, excluded.release_year, \
     excluded.available_from, excluded.external_ids) \
     RETURNING t.version";

/// Cut `titles` into consecutive runs of at most `max` titles with no id repeated within a run.
fn runs(titles: &[Title], max: usize) -> Vec<&[Title]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen: HashSet<&str> = HashSet::new();
    for (i, t) in titles.iter().enumerate() {
        if i - start == max || !seen.insert(t.id.as_str()) {
            out.push(&titles[start..i]);
            start = i;
            seen.clear();
            seen.insert(t.id.as_str());
        }
    }
    if start < titles.len() {
        out.push(&titles[start..]);
    }
    out
}

impl PgStore {
    /// One upsert statement for titles with distinct ids; returns the versions written.
    async fn upsert_run(&self, run: &[Title], now: Timestamp) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(run.len());
        let mut kinds = Vec::with_capacity(run.len());
        let mut names = Vec::with_capacity(run.len());
        let mut durations = Vec::with_capacity(run.len());
        let mut credits = Vec::with_capacity(run.len());
        let mut series = Vec::with_capacity(run.len());
        let mut seasons = Vec::with_capacity(run.len());
        let mut episodes = Vec::with_capacity(run.len());
        let mut genres = Vec::with_capacity(run.len());
        let mut maturities = Vec::with_capacity(run.len());
        let mut years = Vec::with_capacity(run.len());
        let mut available = Vec::with_capacity(run.len());
        let mut external = Vec::with_capacity(run.len());
        for t in run {
            ids.push(t.id.as_str());
            kinds.push(t.kind.as_str());
            names.push(t.name.as_str());
            durations.push(t.duration_ms);
            credits.push(t.credits_start_ms);
            series.push(t.series_id.as_ref().map(TitleId::as_str));
            seasons.push(t.season);
            episodes.push(t.episode);
            genres.push(codec::genres_json(t)?);
            maturities.push(i16::from(t.maturity));
            years.push(t.release_year);
            available.push(t.available_from.map(|a| a.0));
            external.push(codec::external_ids_json(t)?);
        }
        sqlx::query_scalar(UPSERT)
            .bind(ids)
            .bind(kinds)
            .bind(names)
            .bind(durations)
            .bind(credits)
            .bind(series)
            .bind(seasons)
            .bind(episodes)
            .bind(genres)
            .bind(maturities)
            .bind(years)
            .bind(available)
            .bind(external)
            .bind(now.0)
            .fetch_all(&self.pool)
            .await
            .map_err(error::db)
    }
}

#[async_trait]
impl Catalog for PgStore {
    async fn upsert_titles(&self, titles: &[Title], now: Timestamp) -> Result<UpsertSummary, StoreError> {
        let mut summary = UpsertSummary::default();
        for run in runs(titles, UPSERT_CHUNK) {
            let versions = self.upsert_run(run, now).await?;
            for v in &versions {
                if *v == 1 {
                    summary.created += 1;
                } else {
                    summary.updated += 1;
                }
            }
            summary.unchanged += (run.len() - versions.len()) as u64;
        }
        Ok(summary)
    }

    async fn replace_title_if(
        &self,
        t: &Title,
        expected_version: i64,
        now: Timestamp,
    ) -> Result<StoredTitle, StoreError> {
        // One statement: the version check and the write cannot be split by a concurrent patch.
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE titles SET kind = $2, name = $3, duration_ms = $4, credits_start_ms = $5, series_id = $6, \
             season = $7, episode = $8, genres = $9::jsonb, maturity = $10, release_year = $11, \
             available_from = $12, external_ids = $13::jsonb, version = version + 1, updated_at = $14 \
             WHERE id = $1 AND version = $15 RETURNING version",
        )
        .bind(t.id.as_str())
        .bind(t.kind.as_str())
        .bind(&t.name)
        .bind(t.duration_ms)
        .bind(t.credits_start_ms)
        .bind(t.series_id.as_ref().map(TitleId::as_str))
        .bind(t.season)
        .bind(t.episode)
        .bind(codec::genres_json(t)?)
        .bind(i16::from(t.maturity))
        .bind(t.release_year)
        .bind(t.available_from.map(|a| a.0))
        .bind(codec::external_ids_json(t)?)
        .bind(now.0)
        .bind(expected_version)
        .fetch_optional(&self.pool)
        .await
        .map_err(error::db)?;
        match version {
            Some(version) => Ok(StoredTitle { title: t.clone(), version }),
            None => {
                let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM titles WHERE id = $1")
                    .bind(t.id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(error::db)?;
                Err(if exists.is_some() { StoreError::PreconditionFailed } else { StoreError::NotFound })
            }
        }
    }

    async fn title(&self, id: &TitleId) -> Result<Option<StoredTitle>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", title_columns!(), ", t.version FROM titles t WHERE t.id = $1"))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn titles(&self, ids: &[TitleId]) -> Result<Vec<Title>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = ids.iter().map(TitleId::as_str).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            title_columns!(),
            " FROM titles t WHERE t.id = ANY($1::text[]) ORDER BY t.id"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn list_titles(&self, after: Option<&TitleId>, limit: u32) -> Result<Vec<Title>, StoreError> {
        // Two statement texts rather than `$2 IS NULL OR t.id > $2`, which would hide the range
        // from the planner. `t.id` is `COLLATE "C"`: byte order, as the port asks.
        let q = match after {
            Some(after) => sqlx::query(concat!(
                "SELECT ",
                title_columns!(),
                " FROM titles t WHERE t.id > $2 ORDER BY t.id LIMIT $1"
            ))
            .bind(i64::from(limit))
            .bind(after.as_str()),
            None => {
                sqlx::query(concat!("SELECT ", title_columns!(), " FROM titles t ORDER BY t.id LIMIT $1"))
                    .bind(i64::from(limit))
            }
        };
        let rows = q.fetch_all(&self.pool).await.map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn episodes_of(&self, series: &[TitleId]) -> Result<Vec<Title>, StoreError> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let series: Vec<&str> = series.iter().map(TitleId::as_str).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            title_columns!(),
            " FROM titles t WHERE t.kind = 'episode' AND t.series_id = ANY($1::text[]) \
             ORDER BY t.series_id, t.season, t.episode, t.id"
        ))
        .bind(series)
        .fetch_all(&self.pool)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use playhead_core::title::TitleKind;

    fn t(id: &str) -> Title {
        Title {
            id: TitleId::parse(id).expect("id"),
            kind: TitleKind::Movie,
            name: id.to_owned(),
            duration_ms: 1,
            credits_start_ms: None,
            series_id: None,
            season: None,
            episode: None,
            genres: Vec::new(),
            maturity: 0,
            release_year: None,
            available_from: None,
            external_ids: Default::default(),
        }
    }

    fn ids(runs: Vec<&[Title]>) -> Vec<Vec<&str>> {
        runs.into_iter().map(|r| r.iter().map(|t| t.id.as_str()).collect()).collect()
    }

    #[test]
    fn runs_cut_before_a_repeated_id_and_at_the_size_limit() {
        let titles = [t("a"), t("b"), t("a"), t("c"), t("d"), t("e")];
        assert_eq!(ids(runs(&titles, 10)), [vec!["a", "b"], vec!["a", "c", "d", "e"]]);
        assert_eq!(ids(runs(&titles, 2)), [vec!["a", "b"], vec!["a", "c"], vec!["d", "e"]]);
        assert!(runs(&[], 3).is_empty());
        let same = [t("x"), t("x"), t("x")];
        assert_eq!(ids(runs(&same, 10)), [vec!["x"], vec!["x"], vec!["x"]]);
    }
}
