//! The catalog: the platform imports titles (idempotent upsert); every client reads them.
//!
//! After every write, held events whose title now exists are queued: premieres often reach
//! players before the catalog feed, and those plays must not be lost.

use std::collections::HashMap;

use playhead_core::auth::Principal;
use playhead_core::ids::TitleId;
use playhead_core::ports::{StoredTitle, UpsertSummary};
use playhead_core::profile::Profile;
use playhead_core::title::{Title, TitleInput};
use playhead_core::{FieldError, StoreError};

use crate::access::Operation;
use crate::policy;
use crate::{App, AppError};

/// What title-listing cursors are bound to.
const TITLES_CURSOR_SCOPE: &str = "titles";

/// Titles per upsert transaction during an import.
pub const IMPORT_CHUNK: usize = 1_000;
/// Line errors reported in an import summary (the count is always exact).
pub const IMPORT_ERRORS_SHOWN: usize = 100;

/// One bad line of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// What is wrong (every field named).
    pub problems: Vec<FieldError>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Lines read (blank lines excluded).
    pub lines: u64,
    /// Upsert counts.
    pub created: u64,
    /// Existing titles changed.
    pub updated: u64,
    /// Existing titles sent unchanged.
    pub unchanged: u64,
    /// Lines refused.
    pub rejected: u64,
    /// The first refused lines.
    pub errors: Vec<LineError>,
    /// Held events queued because their title arrived.
    pub released_held: u64,
}

/// Streams an NDJSON import into the catalog in chunks, so a 256 MiB file never sits in memory.
pub struct Importer<'a> {
    app: &'a App,
    pending: Vec<Title>,
    summary: ImportSummary,
}

impl std::fmt::Debug for Importer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Importer").field("summary", &self.summary).finish_non_exhaustive()
    }
}

impl Importer<'_> {
    /// Feed one line (without its newline).
    pub async fn push_line(&mut self, line_no: u64, line: &[u8]) -> Result<(), AppError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let parsed = serde_json::from_slice::<TitleInput>(line)
            .map_err(|e| vec![FieldError::new("line", "malformed_json", e.to_string())]);
        self.push(line_no, parsed).await
    }

    /// Feed one title a transport parsed itself (gRPC), or the problems that stopped it;
    /// `item_no` is its 1-based position in the import (reported with its problems).
    pub async fn push(
        &mut self,
        item_no: u64,
        parsed: Result<TitleInput, Vec<FieldError>>,
    ) -> Result<(), AppError> {
        self.summary.lines += 1;
        match parsed.and_then(TitleInput::validate) {
            Ok(t) => {
                self.pending.push(t);
                if self.pending.len() >= IMPORT_CHUNK {
                    self.flush().await?;
                }
            }
            Err(problems) => {
                self.summary.rejected += 1;
                if self.summary.errors.len() < IMPORT_ERRORS_SHOWN {
                    self.summary.errors.push(LineError { line: item_no, problems });
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), AppError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // A file may list a title twice; the last line wins, as if the lines were PUTs.
        let mut seen = std::collections::HashSet::new();
        let mut chunk: Vec<Title> = std::mem::take(&mut self.pending);
        chunk.reverse();
        chunk.retain(|t| seen.insert(t.id.clone()));
        chunk.reverse();
        let s = self.app.ports.catalog.upsert_titles(&chunk, self.app.clock.now()).await?;
        self.app.cache.invalidate_all_rows().await;
        self.summary.created += s.created;
        self.summary.updated += s.updated;
        self.summary.unchanged += s.unchanged;
        Ok(())
    }

    /// Flush the rest and queue held events whose titles arrived.
    pub async fn finish(mut self) -> Result<ImportSummary, AppError> {
        self.flush().await?;
        self.summary.released_held = self.app.release_held().await?;
        Ok(self.summary)
    }
}

impl App {
    /// Start an import (requires `catalog:write`).
    pub fn importer(&self, p: &Principal) -> Result<Importer<'_>, AppError> {
        policy::require(p, Operation::ImportTitles)?;
        Ok(Importer { app: self, pending: Vec::new(), summary: ImportSummary::default() })
    }

    /// Import titles without a principal (operator CLI, demo).
    pub async fn upsert_titles_unchecked(&self, titles: &[Title]) -> Result<UpsertSummary, AppError> {
        let s = self.ports.catalog.upsert_titles(titles, self.clock.now()).await?;
        self.cache.invalidate_all_rows().await;
        self.release_held().await?;
        Ok(s)
    }

    /// Create or replace one title. `if_version` is the client's If-Match.
    pub async fn put_title(
        &self,
        p: &Principal,
        id: &TitleId,
        mut input: TitleInput,
        if_version: Option<i64>,
    ) -> Result<(StoredTitle, bool), AppError> {
        policy::require(p, Operation::PutTitle)?;
        match input.id.as_deref() {
            None => input.id = Some(id.to_string()),
            Some(body_id) if body_id == id.as_str() => {}
            Some(_) => {
                return Err(AppError::invalid(FieldError::new(
                    "id",
                    "mismatch",
                    "must match the title id in the URL (or be omitted)",
                )));
            }
        }
        let title = input.validate().map_err(AppError::Invalid)?;
        let before = self.ports.catalog.title(id).await?;
        if let Some(v) = if_version
            && before.as_ref().map(|b| b.version) != Some(v)
        {
            return Err(AppError::PreconditionFailed);
        }
        self.ports.catalog.upsert_titles(std::slice::from_ref(&title), self.clock.now()).await?;
        self.cache.invalidate_all_rows().await;
        self.release_held().await?;
        let stored =
            self.ports.catalog.title(id).await?.ok_or(AppError::Internal("title vanished".into()))?;
        Ok((stored, before.is_none()))
    }

    /// Change a title with a JSON merge patch (RFC 7396: members replace, `null` removes).
    /// `if_version` (the client's If-Match) is required.
    pub async fn patch_title(
        &self,
        p: &Principal,
        id: &TitleId,
        patch: serde_json::Value,
        if_version: Option<i64>,
    ) -> Result<StoredTitle, AppError> {
        policy::require(p, Operation::PatchTitle)?;
        let current = self.ports.catalog.title(id).await?.ok_or(AppError::NotFound("title"))?;
        let Some(expected) = if_version else { return Err(AppError::PreconditionRequired) };
        if expected != current.version {
            return Err(AppError::PreconditionFailed);
        }
        let serde_json::Value::Object(_) = patch else {
            return Err(AppError::invalid(FieldError::new(
                "body",
                "invalid",
                "must be a JSON object (a merge patch)",
            )));
        };
        let mut doc = serde_json::to_value(TitleInput::from(&current.title))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        merge_patch(&mut doc, &patch);
        let input: TitleInput = serde_json::from_value(doc).map_err(|e| {
            let msg = e.to_string();
            let field = msg.split('`').nth(1).unwrap_or("body").to_owned();
            AppError::invalid(FieldError::new(field, "invalid", msg))
        })?;
        if input.id.as_deref() != Some(id.as_str()) {
            return Err(AppError::invalid(FieldError::new(
                "id",
                "immutable",
                "a title's id cannot be changed",
            )));
        }
        let title = input.validate().map_err(AppError::Invalid)?;
        let stored = self.ports.catalog.replace_title_if(&title, expected, self.clock.now()).await.map_err(
            |e| match e {
                StoreError::NotFound => AppError::NotFound("title"),
                other => other.into(),
            },
        )?;
        self.cache.invalidate_all_rows().await;
        Ok(stored)
    }

    /// The profile a profile-bound token speaks for (a kids TV): catalog reads apply its
    /// maturity limit, as every other route that returns titles does (issue 17). `None` for
    /// account and service tokens, which read the catalog as the platform wrote it.
    async fn bound_viewer(&self, p: &Principal, op: Operation) -> Result<Option<Profile>, AppError> {
        match p.bound_profile {
            Some(id) => Ok(Some(self.reachable_profile(p, id, op).await?)),
            None => Ok(None),
        }
    }

    /// Read one title (any authenticated caller; a title above a bound profile's limit does not
    /// exist for its token).
    pub async fn get_title(&self, p: &Principal, id: &TitleId) -> Result<StoredTitle, AppError> {
        let viewer = self.bound_viewer(p, Operation::GetTitle).await?;
        let stored = self.ports.catalog.title(id).await?.ok_or(AppError::NotFound("title"))?;
        if viewer.is_some_and(|v| !v.may_see(stored.title.maturity)) {
            return Err(AppError::NotFound("title"));
        }
        Ok(stored)
    }

    /// Titles by id, in one catalog read (ids the catalog does not have are absent). For
    /// batched loads of titles a transport embeds (a GraphQL data loader).
    pub async fn titles_by_id(&self, ids: &[TitleId]) -> Result<HashMap<TitleId, Title>, AppError> {
        self.title_map(ids.iter().cloned()).await
    }

    /// The cursor that continues a title listing after `title`.
    pub fn title_cursor(&self, title: &TitleId) -> String {
        self.cursors.encode(TITLES_CURSOR_SCOPE, &title.as_str())
    }

    /// A page of titles ordered by id (for a bound profile's token, without the titles above its
    /// limit: the cursor is taken from the unfiltered page, so a page may be short).
    pub async fn list_titles(
        &self,
        p: &Principal,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Title>, Option<String>), AppError> {
        let viewer = self.bound_viewer(p, Operation::ListTitles).await?;
        const SCOPE: &str = TITLES_CURSOR_SCOPE;
        let after: Option<TitleId> = cursor
            .map(|c| {
                self.cursors.decode::<String>(SCOPE, c).and_then(|s| {
                    TitleId::parse(&s).map_err(|_| {
                        FieldError::new("cursor", "invalid", "is not a cursor returned by this query")
                    })
                })
            })
            .transpose()
            .map_err(AppError::invalid)?;
        let mut page = self.ports.catalog.list_titles(after.as_ref(), limit + 1).await?;
        let next = if page.len() > limit as usize {
            page.truncate(limit as usize);
            page.last().map(|t| self.title_cursor(&t.id))
        } else {
            None
        };
        if let Some(v) = viewer {
            page.retain(|t| v.may_see(t.maturity));
        }
        Ok((page, next))
    }

    /// Queue held events whose titles now exist, and wake the consumer.
    pub async fn release_held(&self) -> Result<u64, AppError> {
        let n = self.ports.log.release_held().await?;
        if n > 0 {
            tracing::info!(event.count = n, "held events released by catalog import");
            metrics::counter!("playhead_held_events_released_total").increment(n);
            self.wake.notify_one();
        }
        Ok(n)
    }
}

/// RFC 7396 JSON merge patch.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // The RFC's own example (section 3).
        let mut doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "This will be unchanged"});
        let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]});
        merge_patch(&mut doc, &patch);
        assert_eq!(
            doc,
            json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"], "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
        );
    }
}
