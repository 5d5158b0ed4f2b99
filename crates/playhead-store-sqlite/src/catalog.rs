//! The catalog: titles imported by the platform (idempotent upsert).
//!
//! The rule: "unchanged" is decided by the database, comparing every stored column with the
//! incoming one in the upsert's `WHERE`, so a re-import writes nothing and bumps no version. Keep
//! the column list of [`UPSERT`] and its `IS NOT` comparison in step with the `titles` table.

use async_trait::async_trait;
use playhead_core::StoreError;
use playhead_core::ids::TitleId;
use playhead_core::ports::{Catalog, StoredTitle, UpsertSummary};
use playhead_core::time::Timestamp;
use playhead_core::title::Title;

use crate::codec::{self, title_columns};
use crate::{SqliteStore, error};

/// Titles written per transaction: a large import releases the single writer between chunks so
/// event appends are not stalled behind it. (An import is idempotent, so a retry after a failed
/// chunk redoes only what is missing.)
const UPSERT_CHUNK: usize = 500;

/// Insert a title, or update it only when some column differs (`RETURNING` then yields its new
/// version; an unchanged title yields no row).
const UPSERT: &str = "INSERT INTO titles (id, kind, name, duration_ms, credits_start_ms, series_id, season, \
     episode, genres, maturity, release_year, available_from, external_ids, version, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, ?14) \
     ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, \
     duration_ms = excluded.duration_ms, credits_start_ms = excluded.credits_start_ms, \
     series_id = excluded.series_id, season = excluded.season, episode = excluded.episode, \
     genres = excluded.genres, maturity = excluded.maturity, release_year = excluded.release_year, \
     available_from = excluded.available_from, external_ids = excluded.external_ids, \
     version = titles.version + 1, updated_at = excluded.updated_at \
     WHERE (titles.kind, titles.name, titles.duration_ms, titles.credits_start_ms, titles.series_id, \
     titles.season, titles.episode, titles.genres, titles.maturity, titles.release_year, \
     titles.available_from, titles.external_ids) IS NOT (excluded.kind, excluded.name, \
     excluded.duration_ms, excluded.credits_start_ms, excluded.series_id, excluded.season, \
     excluded.episode, excluded.genres, excluded.maturity, excluded.release_year, \
     excluded.available_from, excluded.external_ids) \
     RETURNING version";

#[async_trait]
impl Catalog for SqliteStore {
    async fn upsert_titles(&self, titles: &[Title], now: Timestamp) -> Result<UpsertSummary, StoreError> {
        let mut summary = UpsertSummary::default();
        for chunk in titles.chunks(UPSERT_CHUNK) {
            let mut tx = self.begin_write().await?;
            for t in chunk {
                let version: Option<i64> = sqlx::query_scalar(UPSERT)
                    .bind(t.id.as_str())
                    .bind(t.kind.as_str())
                    .bind(&t.name)
                    .bind(t.duration_ms)
                    .bind(t.credits_start_ms)
                    .bind(t.series_id.as_ref().map(TitleId::as_str))
                    .bind(t.season)
                    .bind(t.episode)
                    .bind(codec::genres_json(t)?)
                    .bind(i64::from(t.maturity))
                    .bind(t.release_year)
                    .bind(t.available_from.map(|a| a.0))
                    .bind(codec::external_ids_json(t)?)
                    .bind(now.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(error::db)?;
                match version {
                    None => summary.unchanged += 1,
                    Some(1) => summary.created += 1,
                    Some(_) => summary.updated += 1,
                }
            }
            tx.commit().await.map_err(error::db)?;
        }
        Ok(summary)
    }

    async fn replace_title_if(
        &self,
        t: &Title,
        expected_version: i64,
        now: Timestamp,
    ) -> Result<StoredTitle, StoreError> {
        let mut tx = self.begin_write().await?;
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE titles SET kind = ?2, name = ?3, duration_ms = ?4, credits_start_ms = ?5, series_id = ?6, \
             season = ?7, episode = ?8, genres = ?9, maturity = ?10, release_year = ?11, available_from = ?12, \
             external_ids = ?13, version = version + 1, updated_at = ?14 WHERE id = ?1 AND version = ?15 \
             RETURNING version",
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
        .bind(i64::from(t.maturity))
        .bind(t.release_year)
        .bind(t.available_from.map(|a| a.0))
        .bind(codec::external_ids_json(t)?)
        .bind(now.0)
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await
        .map_err(error::db)?;
        let Some(version) = version else {
            let exists: Option<i64> = sqlx::query_scalar("SELECT version FROM titles WHERE id = ?1")
                .bind(t.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(error::db)?;
            return Err(if exists.is_some() { StoreError::PreconditionFailed } else { StoreError::NotFound });
        };
        tx.commit().await.map_err(error::db)?;
        Ok(StoredTitle { title: t.clone(), version })
    }

    async fn title(&self, id: &TitleId) -> Result<Option<StoredTitle>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", title_columns!(), ", t.version FROM titles t WHERE t.id = ?1"))
                .bind(id.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(error::db)?;
        row.as_ref().map(codec::decode).transpose()
    }

    async fn titles(&self, ids: &[TitleId]) -> Result<Vec<Title>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            title_columns!(),
            " FROM titles t WHERE t.id IN (SELECT value FROM json_each(?1)) ORDER BY t.id"
        ))
        .bind(codec::json_list(ids)?)
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn list_titles(&self, after: Option<&TitleId>, limit: u32) -> Result<Vec<Title>, StoreError> {
        // Two statement texts rather than `?1 IS NULL OR t.id > ?1`, which would hide the range
        // from the planner and make every page scan from the first id.
        let q = match after {
            Some(after) => sqlx::query(concat!(
                "SELECT ",
                title_columns!(),
                " FROM titles t WHERE t.id > ?2 ORDER BY t.id LIMIT ?1"
            ))
            .bind(i64::from(limit))
            .bind(after.as_str()),
            None => {
                sqlx::query(concat!("SELECT ", title_columns!(), " FROM titles t ORDER BY t.id LIMIT ?1"))
                    .bind(i64::from(limit))
            }
        };
        let rows = q.fetch_all(&self.reader).await.map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }

    async fn episodes_of(&self, series: &[TitleId]) -> Result<Vec<Title>, StoreError> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            title_columns!(),
            " FROM titles t WHERE t.kind = 'episode' AND t.series_id IN (SELECT value FROM json_each(?1)) \
             ORDER BY t.series_id, t.season, t.episode, t.id"
        ))
        .bind(codec::json_list(series)?)
        .fetch_all(&self.reader)
        .await
        .map_err(error::db)?;
        rows.iter().map(codec::decode).collect()
    }
}
