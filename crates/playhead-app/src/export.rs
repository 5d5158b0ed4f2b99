//! Data export (issue 16, decision 0088): an account's archive as one JSON document, described by
//! `docs/export.schema.json` (format [`EXPORT_FORMAT`]), the same in both deployment modes.
//!
//! Rules kept here:
//! - The archive is written in chunks to a bounded channel, plays read [`PLAY_PAGE`] at a time by
//!   keyset: memory stays bounded whatever the history's size, and a slow reader slows the
//!   writer instead of piling chunks up. The REST route and `playhead admin export` both drain
//!   the channel.
//! - Plays rolled up by the retention job are exported as the monthly figures that are left.
//! - Follow edges are exported per profile from both sides, as the feed routes list them.
//! - Only the account itself (a token not bound to a profile) or an operator may ask; another
//!   account's ids are "not found".

use playhead_core::StoreError;
use playhead_core::auth::{Principal, Subject};
use playhead_core::feed::FollowState;
use playhead_core::ids::{AccountId, ExportId, ProfileId};
use playhead_core::ports::{FollowSide, ListQuery, PlayQuery, RollupQuery};
use playhead_core::time::Timestamp;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::access::Operation;
use crate::{App, AppError, policy};

/// The archive's format name (its `format` field); a change to the document's shape is a new
/// version with a new schema.
pub const EXPORT_FORMAT: &str = "playhead.export.v2";
/// Plays read per page (one chunk each).
pub const PLAY_PAGE: u32 = 500;
/// Follow edges read per page.
const EDGE_PAGE: u32 = 500;

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
                "created_at": ts(profile.created_at), "history_paused": profile.history_paused,
                "keep_resume_points_while_paused": profile.keep_resume_points_while_paused,
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
                                "watched_ms": v.watched_ms, "completed": v.completed, "manual": v.manual})
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
            let follows = self.export_follows(profile.id).await?;
            let rollups = self.export_rollups(profile.id).await?;
            let my_list = self.export_list(profile.id).await?;
            let tail = json!({"rollups": rollups, "resume_points": resume, "hidden_titles": hidden,
                              "feedback": feedback, "follows": follows, "my_list": my_list})
            .to_string();
            if !send(format!("],{}", &tail[1..])).await {
                return Ok(());
            }
        }
        send("]}".to_owned()).await;
        Ok(())
    }

    /// A profile's list (My list), newest first, with its "leave when finished" setting. Every
    /// entry, whatever the catalog says now: the archive is the person's data, not a screen.
    async fn export_list(&self, profile: ProfileId) -> Result<serde_json::Value, AppError> {
        let mut items = Vec::new();
        let mut before = None;
        loop {
            let query = ListQuery { before, limit: PLAY_PAGE, ..ListQuery::default() };
            let page = self.ports.viewing.list_page(profile, &query).await?;
            for e in &page {
                items.push(json!({"title_id": e.title_id.as_str(), "added_at": ts(e.added_at)}));
            }
            match page.last() {
                Some(last) if page.len() == PLAY_PAGE as usize => {
                    before = Some((last.added_at, last.title_id.clone()))
                }
                _ => break,
            }
        }
        let leaves = self.ports.viewing.list_leaves_when_finished(profile).await?;
        Ok(json!({"leave_when_finished": leaves, "items": items}))
    }

    /// A profile's rolled-up months (decision 0083), newest first, as history shows them.
    async fn export_rollups(&self, profile: ProfileId) -> Result<Vec<serde_json::Value>, AppError> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let query = RollupQuery { before, limit: PLAY_PAGE, ..RollupQuery::default() };
            let page = self.ports.viewing.rollups(profile, &query).await?;
            for r in &page {
                out.push(json!({"month": r.month_label(), "title_id": r.title_id.as_str(), "plays": r.plays,
                                "watched_ms": r.watched_ms, "completed_plays": r.completed_plays}));
            }
            match page.last() {
                Some(last) if page.len() == PLAY_PAGE as usize => {
                    before = Some((last.month, Some(last.title_id.clone())))
                }
                _ => return Ok(out),
            }
        }
    }

    /// A profile's side of the follow graph as the feed routes show it (following, followers,
    /// requests it received), plus what only its owner knows: requests it sent that wait for
    /// approval, the profiles it blocks, and whether it shares its activity. Edges of other
    /// profiles' blocks are theirs, not this person's, and stay out.
    async fn export_follows(&self, profile: ProfileId) -> Result<serde_json::Value, AppError> {
        let lists = [
            ("following", FollowSide::Following, FollowState::Following),
            ("requests_sent", FollowSide::Following, FollowState::Requested),
            ("followers", FollowSide::Followers, FollowState::Following),
            ("requests_received", FollowSide::Followers, FollowState::Requested),
        ];
        let mut out = serde_json::Map::new();
        out.insert("share_activity".into(), self.ports.feed.share_activity(profile).await?.into());
        for (name, side, state) in lists {
            let mut items = Vec::new();
            let mut after = None;
            loop {
                let page = self.ports.feed.follows(profile, side, state, after, EDGE_PAGE).await?;
                for e in &page {
                    let other = if side == FollowSide::Following { e.followee } else { e.follower };
                    items.push(json!({"profile_id": other.to_string(), "since": ts(e.since)}));
                    after = Some(other);
                }
                if page.len() < EDGE_PAGE as usize {
                    break;
                }
            }
            out.insert(name.into(), items.into());
        }
        let blocked: Vec<serde_json::Value> = self
            .ports
            .feed
            .blocked_by(profile)
            .await?
            .into_iter()
            .map(|(p, at)| json!({"profile_id": p.to_string(), "at": ts(at)}))
            .collect();
        out.insert("blocked".into(), blocked.into());
        Ok(out.into())
    }
}
