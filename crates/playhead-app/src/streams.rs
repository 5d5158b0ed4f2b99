//! Concurrent streams (issue 17, decision 0092): the limit on the ingest path, the account's list
//! of streams, "stop one", and the operator's per-account limit.
//!
//! Rules: the rule itself is `playhead_core::streams::plan`, run by the store under the
//! account's lock (one store call per batch, never per event). Only a person's own player
//! events count: a service's token (platform bulk ingestion) and backfills play nothing. Another
//! account's stream is 404, never 403.

use playhead_core::auth::Principal;
use playhead_core::ids::{AccountId, StreamId};
use playhead_core::ports::LogEntry;
use playhead_core::streams::{MAX_STREAM_LIMIT, Stream, StreamTouch, StreamVerdict, stream_key};
use playhead_core::{FieldError, StoreError};

use crate::access::{Operation, partition_of};
use crate::ingest::{EventResult, EventStatus};
use crate::{App, AppError, policy};

/// An account's streams as its players see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStreams {
    /// Live streams, oldest first.
    pub streams: Vec<Stream>,
    /// How many may play at once.
    pub limit: u32,
}

/// An account's limit as an operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimit {
    /// The account's own limit, if set.
    pub own: Option<u32>,
    /// What applies: its own, else the configured default.
    pub effective: u32,
}

impl App {
    /// Decide the batch's admitted events against the account's stream limit (one store call)
    /// and take the refused ones out of `entries`: they are answered `too_many_streams` or
    /// `stream_stopped` and never logged.
    pub(crate) async fn enforce_streams(
        &self,
        p: &Principal,
        backfill: bool,
        entries: &mut Vec<LogEntry>,
        slots: &mut Vec<usize>,
        results: &mut [EventResult],
    ) -> Result<(), AppError> {
        let Some(account) = p.account() else { return Ok(()) };
        if backfill || entries.is_empty() {
            return Ok(());
        }
        let signin = p.session_id.as_deref();
        let mut touched: Vec<usize> = Vec::new();
        let touches: Vec<StreamTouch> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                let ev = &e.event;
                let device = ev.device_id.as_ref().map(|d| d.as_str());
                let key = stream_key(ev.session_id.as_ref().map(|s| s.as_str()), device, signin)?;
                touched.push(i);
                Some(StreamTouch {
                    profile: ev.profile_id,
                    key,
                    title: ev.title_id.clone(),
                    kind: ev.kind,
                    occurred_at: ev.occurred_at,
                    device_id: device.map(str::to_owned),
                    signin_session: signin.map(str::to_owned),
                })
            })
            .collect();
        if touches.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let outcome = self.ports.streams.touch_streams(account, &touches, &self.config.streams, now).await?;
        let mut keep = vec![true; entries.len()];
        for (i, verdict) in touched.into_iter().zip(&outcome.verdicts) {
            let r = &mut results[slots[i]];
            match verdict {
                StreamVerdict::Allowed => continue,
                StreamVerdict::OverLimit => {
                    r.status = EventStatus::TooManyStreams;
                    r.problem = Some(over_limit_problem(outcome.limit));
                    r.streams = Some(AccountStreams { streams: outcome.live.clone(), limit: outcome.limit });
                }
                StreamVerdict::Stopped => {
                    r.status = EventStatus::StreamStopped;
                    r.problem = Some(FieldError::new(
                        "session_id",
                        "stream_stopped",
                        "this stream was stopped from another device: stop playback (pressing play again starts a new stream)",
                    ));
                }
            }
            keep[i] = false;
        }
        let mut k = keep.iter();
        entries.retain(|_| *k.next().unwrap_or(&true));
        let mut k = keep.iter();
        slots.retain(|_| *k.next().unwrap_or(&true));
        Ok(())
    }

    /// The account's live streams and its limit.
    pub async fn list_streams(&self, p: &Principal) -> Result<AccountStreams, AppError> {
        let account = stream_owner(p, Operation::ListStreams)?;
        let rules = &self.config.streams;
        let streams = self.ports.streams.live_streams(account, self.clock.now(), rules.timeout_ms).await?;
        let limit = self.ports.streams.stream_limit(account).await?.unwrap_or(rules.max_per_account);
        Ok(AccountStreams { streams, limit })
    }

    /// Stop one of the account's live streams: its slot is free at once, its player is refused
    /// (`stream_stopped`) from its next event.
    pub async fn stop_stream(&self, p: &Principal, id: StreamId) -> Result<(), AppError> {
        let account = stream_owner(p, Operation::StopStream)?;
        let timeout = self.config.streams.timeout_ms;
        match self.ports.streams.stop_stream(account, id, self.clock.now(), timeout).await {
            Err(StoreError::NotFound) => Err(AppError::NotFound("stream")),
            other => Ok(other?),
        }
    }

    /// An account's limit (operators).
    pub async fn stream_limit(&self, p: &Principal, account: AccountId) -> Result<StreamLimit, AppError> {
        policy::require(p, Operation::SetStreamLimit)?;
        self.existing_account(account).await?;
        let own = self.ports.streams.stream_limit(account).await?;
        Ok(StreamLimit { own, effective: own.unwrap_or(self.config.streams.max_per_account) })
    }

    /// Set (`Some`) or clear (`None`) an account's own limit (operators; audited). Streams
    /// already playing beyond a lowered limit play on; new starts wait until the account is
    /// under it.
    pub async fn set_stream_limit(
        &self,
        p: &Principal,
        account: AccountId,
        limit: Option<u32>,
    ) -> Result<StreamLimit, AppError> {
        policy::require(p, Operation::SetStreamLimit)?;
        if limit.is_some_and(|n| n > MAX_STREAM_LIMIT) {
            return Err(AppError::invalid(FieldError::new(
                "max_streams",
                "out_of_range",
                format!("must be 0-{MAX_STREAM_LIMIT}, or null for the default"),
            )));
        }
        self.existing_account(account).await?;
        self.ports.streams.set_stream_limit(account, limit).await?;
        self.audit(playhead_core::identity::AuditEntry {
            at: self.clock.now(),
            actor: partition_of(p),
            action: "streams.limit_set".into(),
            detail: serde_json::json!({"account_id": account.to_string(), "max_streams": limit}).to_string(),
            client_addr: None,
        })
        .await;
        Ok(StreamLimit { own: limit, effective: limit.unwrap_or(self.config.streams.max_per_account) })
    }

    async fn existing_account(&self, account: AccountId) -> Result<(), AppError> {
        match self.ports.accounts.account(account).await? {
            Some(_) => Ok(()),
            None => Err(AppError::NotFound("account")),
        }
    }
}

/// The account whose streams a person's token manages (a service has no streams).
fn stream_owner(p: &Principal, op: Operation) -> Result<AccountId, AppError> {
    policy::require(p, op)?;
    p.account().ok_or(AppError::NotFound("account"))
}

/// The problem of a start beyond the limit (the transport adds the live streams beside it).
fn over_limit_problem(limit: u32) -> FieldError {
    FieldError::new(
        "session_id",
        "too_many_streams",
        format!(
            "this account already has {limit} streams playing (its limit): stop one (DELETE /v1/me/streams/{{stream_id}}) or wait for one to end"
        ),
    )
}
