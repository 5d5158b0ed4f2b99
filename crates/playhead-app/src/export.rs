//! Data export (issue 16, decision 0088): an account's archive as one JSON document, described by
//! `docs/export.schema.json` (format [`EXPORT_FORMAT`]), the same in both deployment modes.
//!
//! Rules kept here:
//! - The archive is written in chunks to a bounded channel, plays read [`PLAY_PAGE`] at a time by
//!   keyset: memory stays bounded whatever the history's size, and a slow reader slows the
//!   writer instead of piling chunks up. The REST route and `playhead admin export` both drain
//!   the channel.
//! - Only the account itself (a token not bound to a profile) or an operator may ask; another
//!   account's ids are "not found".

use playhead_core::StoreError;
use playhead_core::auth::{Principal, Subject};
use playhead_core::ids::{AccountId, ExportId};
use playhead_core::ports::PlayQuery;
use playhead_core::time::Timestamp;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::access::Operation;
use crate::{App, AppError, policy};

/// The archive's format name (its `format` field); a change to the document's shape is a new
/// version with a new schema.
pub const EXPORT_FORMAT: &str = "playhead.export.v1";
/// Plays read per page (one chunk each).
pub const PLAY_PAGE: u32 = 500;

fn ts(t: Timestamp) -> String {
    t.to_rfc3339()
}

impl App {
    /// Ask for an account's export; the archive is then fetched by id.
    pub async fn request_export(&self, p: &Principal, account: AccountId) -> Result<ExportId, AppError> {
        policy::require(p, Operation::RequestExport)?;
        if !policy::may_manage_account(p, account) {
            return Err(AppError::NotFound("account"));
        }
        let by = match &p.subject {
            Subject::Account(a) => a.to_string(),
            Subject::Service { id } => format!("service:{id}"),
        };
        let id = ExportId(Uuid::now_v7());
        match self.ports.exports.create_export(id, account, &by, self.clock.now()).await {
            Ok(()) => Ok(id),
            Err(StoreError::NotFound) => Err(AppError::NotFound("account")),
            Err(e) => Err(e.into()),
        }
    }

    /// Check that `p` may fetch export `id` of `account` (it exists and is that account's).
    pub async fn export_access(
        &self,
        p: &Principal,
        account: AccountId,
        id: ExportId,
    ) -> Result<(), AppError> {
        policy::require(p, Operation::GetExport)?;
        if !policy::may_manage_account(p, account) {
            return Err(AppError::NotFound("export"));
        }
        match self.ports.exports.export(id).await? {
            Some((owner, _)) if owner == account => Ok(()),
            _ => Err(AppError::NotFound("export")),
        }
    }

    /// Write `account`'s archive to `out` in chunks that concatenate to one JSON document. Stops
    /// quietly when the reader goes away. `NotFound` when the account does not exist (erased).
    pub async fn write_export(
        &self,
        account: AccountId,
        out: &mpsc::Sender<Vec<u8>>,
    ) -> Result<(), AppError> {
        let Some(acc) = self.ports.accounts.account(account).await? else {
            return Err(AppError::NotFound("account"));
        };
        let send = |v: String| async move { out.send(v.into_bytes()).await.is_ok() };
        let clients: Vec<serde_json::Value> = self
            .ports
            .exports
            .authorised_clients(account)
            .await?
            .into_iter()
            .map(|c| {
                json!({"client_id": c.client_id, "scopes": c.scopes, "authorised_at": ts(c.created_at),
                       "revoked_at": c.revoked_at.map(ts)})
            })
            .collect();
        let head = json!({
            "format": EXPORT_FORMAT,
            "exported_at": ts(self.clock.now()),
            "account": {"account_id": acc.id.to_string(), "email": acc.email.as_str(), "created_at": ts(acc.created_at)},
            "clients_authorised": clients,
            // The followers' feed is not built yet: when it lands, its follows and followers go here.
            "follows": null,
        })
        .to_string();
        // The head object without its closing brace, then the profiles array.
        if !send(format!("{},\"profiles\":[", &head[..head.len() - 1])).await {
            return Ok(());
        }
        for (i, profile) in self.ports.accounts.profiles_of(account).await?.into_iter().enumerate() {
            let head = json!({
                "profile_id": profile.id.to_string(), "name": profile.name.as_str(), "kids": profile.kids,
                "maturity_limit": profile.maturity_limit, "private": profile.private,
                "created_at": ts(profile.created_at),
            })
            .to_string();
            let sep = if i == 0 { "" } else { "," };
            if !send(format!("{sep}{},\"plays\":[", &head[..head.len() - 1])).await {
                return Ok(());
            }
            let mut before = None;
            let mut first = true;
            loop {
                let query = PlayQuery { before, limit: PLAY_PAGE, ..PlayQuery::default() };
                let page = self.ports.viewing.plays(profile.id, &query).await?;
                let Some(last) = page.last() else { break };
                before = Some((last.started_at, last.id));
                let mut chunk = String::new();
                for v in &page {
                    if !first {
                        chunk.push(',');
                    }
                    first = false;
                    chunk.push_str(
                        &json!({"play_id": v.id.to_string(), "title_id": v.title_id.as_str(),
                                "started_at": ts(v.started_at), "ended_at": ts(v.ended_at),
                                "watched_ms": v.watched_ms, "completed": v.completed})
                        .to_string(),
                    );
                }
                if !send(chunk).await {
                    return Ok(());
                }
                if page.len() < PLAY_PAGE as usize {
                    break;
                }
            }
            let resume: Vec<serde_json::Value> = self
                .ports
                .viewing
                .recent_progress(profile.id, Timestamp(i64::MIN), u32::MAX)
                .await?
                .into_iter()
                .map(|r| {
                    json!({"title_id": r.progress.title_id.as_str(), "position_ms": r.progress.position_ms,
                           "duration_ms": r.progress.duration_ms, "finished": r.progress.finished,
                           "updated_at": ts(r.progress.occurred_at)})
                })
                .collect();
            let hidden: Vec<serde_json::Value> = self
                .ports
                .exports
                .hidden_titles(profile.id)
                .await?
                .into_iter()
                .map(|(t, at)| json!({"title_id": t.as_str(), "hidden_at": ts(at)}))
                .collect();
            let feedback: Vec<serde_json::Value> = self
                .ports
                .recs
                .feedback(profile.id)
                .await?
                .into_iter()
                .map(|f| json!({"title_id": f.title_id.as_str(), "kind": f.kind.as_str(), "at": ts(f.at)}))
                .collect();
            let tail =
                json!({"resume_points": resume, "hidden_titles": hidden, "feedback": feedback}).to_string();
            if !send(format!("],{}", &tail[1..])).await {
                return Ok(());
            }
        }
        send("]}".to_owned()).await;
        Ok(())
    }
}
