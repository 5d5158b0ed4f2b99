//! Erasure as a saga (issue 16, decisions 0085-0087): asking for one, reading its status, and
//! the background runner that drives every saga to its end.
//!
//! Rules kept here:
//! - Asking only records the saga (202); every store change happens in a step run by the runner,
//!   so a request never half-erases anything and a crash only delays the saga.
//! - The runner leases a saga before running it (`ErasureStore::claim_erasure`) and saves after
//!   every step; a runner that dies (SIGKILL, lost replica) leaves a lease that expires, and any
//!   replica's runner resumes at the first step not done. Steps are idempotent, so resuming a
//!   step that ran half-way is safe.
//! - A failing step is retried with backoff forever and shown as `retrying`, then `failing`; it
//!   is never skipped (a later step would then erase less than promised).
//! - Who may ask: the account itself with a recent sign-in (not a profile-bound token), or an
//!   operator (`admin`); the last admin account is never erased (nobody could operate the
//!   server). Another account's ids are "not found".

use std::time::Duration;

use playhead_core::auth::{Principal, Scope as AuthScope, Subject};
use playhead_core::erasure::{Erasure, Scope, Step};
use playhead_core::identity::AuditEntry;
use playhead_core::ids::{AccountId, ErasureId, ProfileId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::access::Operation;
use crate::{App, AppError, policy};

/// How long a runner's lease on a saga lasts without a save (each step saves and extends it).
pub const DEFAULT_LEASE_MS: i64 = 30_000;
/// How often an idle runner looks for due sagas (a new request wakes it at once).
const POLL_EVERY: Duration = Duration::from_secs(1);

fn requested_by(p: &Principal) -> String {
    match &p.subject {
        Subject::Account(a) => a.to_string(),
        Subject::Service { id } => format!("service:{id}"),
    }
}

/// Test hook for the crash test: the runner stalls for good after saving this step done, still
/// holding its lease, so the test can SIGKILL the process between two steps. Never set in
/// production (`PLAYHEAD_TEST_*` is not a settings key).
fn stall_after() -> Option<&'static str> {
    static STALL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    STALL.get_or_init(|| std::env::var("PLAYHEAD_TEST_ERASURE_STALL_AFTER").ok()).as_deref()
}

fn new_id() -> ErasureId {
    ErasureId(Uuid::now_v7())
}

impl App {
    /// Ask for an account's erasure: 202 with the saga. Asking again while it runs returns the
    /// same saga.
    pub async fn erase_account(&self, p: &Principal, account: AccountId) -> Result<Erasure, AppError> {
        policy::require(p, Operation::EraseAccount)?;
        if !policy::may_manage_account(p, account) {
            return Err(AppError::NotFound("account"));
        }
        policy::may_erase(p, self.clock.now().0 / 1000)?;
        self.start_account_erasure(account, requested_by(p)).await
    }

    /// Ask for an account's erasure as an operator at the console (`playhead admin erase`).
    pub async fn start_account_erasure(&self, account: AccountId, by: String) -> Result<Erasure, AppError> {
        if self.ports.accounts.account(account).await?.is_none() {
            return Err(AppError::NotFound("account"));
        }
        let admins = self.ports.erasure.admin_accounts().await?;
        if admins == [account] {
            return Err(AppError::Conflict(
                "this is the last account with an admin sign-in; erasing it would leave nobody to operate \
                 the server: give another account admin first"
                    .into(),
            ));
        }
        let profiles = self.ports.accounts.profiles_of(account).await?.into_iter().map(|p| p.id).collect();
        let saga = Erasure::new(new_id(), Scope::Account(account), profiles, by, self.clock.now());
        let saga = self.ports.erasure.start_erasure(&saga).await?;
        self.stop_accepting_now(&saga).await;
        tracing::info!(audit.action = "erasure.requested", erasure.id = %saga.id, erasure.scope = "account", "erasure requested");
        Ok(saga)
    }

    /// Ask for a profile's erasure. Asking again while it runs, or after it finished, returns
    /// the same saga (the watermark remembers it) to the account that owned the profile.
    pub async fn erase_profile(&self, p: &Principal, id: ProfileId) -> Result<Erasure, AppError> {
        policy::require(p, Operation::EraseProfile)?;
        let load = async { Ok(self.ports.accounts.profile(id).await?) };
        let Some(profile) = self.cache.profile(id, load).await? else {
            // Erased already (or being erased): the same saga, for its owner only.
            if let Some((account, saga)) = self.ports.erasure.erased_profile(id).await?
                && self.owns_erased(p, id, account)
                && let Some(e) = self.ports.erasure.erasure(saga).await?
            {
                return Ok(e);
            }
            return Err(AppError::NotFound("profile"));
        };
        if !policy::may_reach_profile(p, &profile) {
            return Err(AppError::NotFound("profile"));
        }
        policy::may_change_settings(p, id)?;
        policy::may_erase(p, self.clock.now().0 / 1000)?;
        let scope = Scope::Profile { account: profile.account_id, profile: id };
        let saga = Erasure::new(new_id(), scope, vec![id], requested_by(p), self.clock.now());
        let saga = self.ports.erasure.start_erasure(&saga).await?;
        self.stop_accepting_now(&saga).await;
        tracing::info!(audit.action = "erasure.requested", erasure.id = %saga.id, erasure.scope = "profile", "erasure requested");
        Ok(saga)
    }

    /// Run `stop_accepting` in the request itself, so the profiles are gone and the sessions
    /// revoked when the 202 is sent (a GET right after must not find them). The step is
    /// idempotent: the runner runs it again under its lease and records it done; if it fails
    /// here, the runner's retries take over.
    async fn stop_accepting_now(&self, saga: &Erasure) {
        if saga.next_step() == Some(Step::StopAccepting)
            && let Err(e) = self.run_step(saga, Step::StopAccepting).await
        {
            tracing::warn!(erasure.id = %saga.id, error = %e, "stop_accepting failed in the request; the runner retries it");
        }
        self.erasures_wake.notify_one();
    }

    /// A saga's status: to the account it erases, or an operator.
    pub async fn erasure_status(&self, p: &Principal, id: ErasureId) -> Result<Erasure, AppError> {
        policy::require(p, Operation::GetErasure)?;
        let saga = self.ports.erasure.erasure(id).await?.ok_or(AppError::NotFound("erasure"))?;
        let own = p.bound_profile.is_none() && p.account() == Some(saga.scope.account());
        if own || p.scopes.contains(AuthScope::Admin) { Ok(saga) } else { Err(AppError::NotFound("erasure")) }
    }

    /// A saga by id, for operators at the console.
    pub async fn erasure_by_id(&self, id: ErasureId) -> Result<Option<Erasure>, AppError> {
        Ok(self.ports.erasure.erasure(id).await?)
    }

    /// Whether `p` may learn that `profile` (of `account`) was erased: its owner, the token
    /// bound to it, or a service acting on any profile. Anyone else gets "not found".
    pub(crate) fn owns_erased(&self, p: &Principal, profile: ProfileId, account: AccountId) -> bool {
        match p.bound_profile {
            Some(bound) => bound == profile,
            None => {
                p.account() == Some(account)
                    || p.scopes.contains(AuthScope::ProfilesAny)
                    || p.scopes.contains(AuthScope::Admin)
            }
        }
    }

    /// The answer for a profile that is not in the store: to a player still sending events or
    /// resume points for an erased profile, `Gone` (stop retrying) when `p` may know; else (and
    /// for every read) "not found", as for an id that never existed.
    pub(crate) async fn missing_profile(&self, p: &Principal, id: ProfileId, op: Operation) -> AppError {
        if !matches!(op, Operation::RecordEvents | Operation::SetProgress) {
            return AppError::NotFound("profile");
        }
        match self.ports.erasure.erased_profile(id).await {
            Ok(Some((account, saga))) if self.owns_erased(p, id, account) => AppError::Gone(format!(
                "this profile was erased at its owner's request (erasure {saga}); nothing is recorded for it \
                 any more"
            )),
            _ => AppError::NotFound("profile"),
        }
    }

    /// Run due sagas until none is left; returns how many steps ran. `owner` names this runner
    /// in leases (one per process).
    pub async fn run_erasures(&self, owner: &str) -> Result<u64, AppError> {
        let mut steps = 0;
        loop {
            let now = self.clock.now();
            let lease = self.config.erasure_lease_ms;
            let Some(saga) = self.ports.erasure.claim_erasure(owner, now, now.plus_ms(lease)).await? else {
                return Ok(steps);
            };
            steps += self.run_saga(saga, owner).await?;
        }
    }

    /// Run a leased saga's remaining steps in order; stop at the first failure (the backoff then
    /// decides when it is taken again) or when the lease was lost.
    async fn run_saga(&self, mut saga: Erasure, owner: &str) -> Result<u64, AppError> {
        let mut ran = 0;
        while let Some(step) = saga.next_step() {
            let result = self.run_step(&saga, step).await;
            let now = self.clock.now();
            ran += 1;
            let failed = match result {
                Ok(()) => {
                    saga.step_done(step, now);
                    metrics::counter!("playhead_erasure_steps_done_total").increment(1);
                    if step == Step::StopAccepting
                        && let Some(fresh) = self.ports.erasure.erasure(saga.id).await?
                    {
                        // The account's profile list as the step wrote it (profiles made since).
                        saga.profiles = fresh.profiles;
                    }
                    false
                }
                Err(e) => {
                    saga.step_failed(step, &e.to_string(), now);
                    metrics::counter!("playhead_erasure_step_failures_total", "step" => step.as_str())
                        .increment(1);
                    tracing::warn!(erasure.id = %saga.id, erasure.step = step.as_str(), error = %e,
                        "erasure step failed; retried with backoff");
                    true
                }
            };
            let keep = (!failed && !saga.is_done()).then(|| now.plus_ms(self.config.erasure_lease_ms));
            if !self.ports.erasure.save_erasure(&saga, owner, keep).await? {
                tracing::warn!(erasure.id = %saga.id, "erasure lease lost to another runner; leaving it");
                return Ok(ran);
            }
            if failed {
                return Ok(ran);
            }
            if stall_after() == Some(step.as_str()) {
                tracing::warn!(
                    erasure.step = step.as_str(),
                    "PLAYHEAD_TEST_ERASURE_STALL_AFTER: stalling (tests only)"
                );
                std::future::pending::<()>().await;
            }
        }
        tracing::info!(erasure.id = %saga.id, erasure.scope = saga.scope.kind(), "erasure done");
        Ok(ran)
    }

    async fn run_step(&self, saga: &Erasure, step: Step) -> Result<(), AppError> {
        let store = &self.ports.erasure;
        match step {
            Step::StopAccepting => {
                store.erase_stop(saga, self.clock.now()).await?;
                // This process forgets the profiles at once; other replicas read through Redis
                // (evicted below) or nothing (in-process caches are off in scale-out).
                let fresh =
                    store.erasure(saga.id).await?.map_or_else(|| saga.profiles.clone(), |e| e.profiles);
                for p in fresh {
                    self.cache.invalidate(p).await;
                }
            }
            Step::DropQueued => store.erase_queued(saga).await?,
            Step::RecsSignals => store.erase_recs_signals(saga).await?,
            Step::DeleteRows => store.erase_rows(saga).await?,
            Step::EvictCache => {
                for p in &saga.profiles {
                    self.cache.evict(*p).await?;
                }
                if let Scope::Account(a) = saga.scope {
                    // The account's rate-limit state (same Redis, same prefix; see `App::charge`).
                    let keys: Vec<String> = ["read", "write", "ingest", "import", "auth"]
                        .iter()
                        .map(|class| format!("rl:{class}:acct:{a}"))
                        .collect();
                    self.cache.delete_shared(&keys).await?;
                }
            }
            Step::Audit => {
                let detail = serde_json::json!({
                    "erasure_id": saga.id.to_string(),
                    "scope": saga.scope.kind(),
                    "account_id": saga.scope.account().to_string(),
                    "profiles": saga.profiles.len(),
                    "requested_at": saga.requested_at.to_rfc3339(),
                });
                let entry = AuditEntry {
                    at: self.clock.now(),
                    actor: saga.requested_by.clone(),
                    action: "erasure.completed".into(),
                    detail: detail.to_string(),
                    client_addr: None,
                };
                store.erase_audit(saga.id, &entry).await?;
            }
        }
        Ok(())
    }

    /// The background runner: runs due sagas, woken by new requests, polling once a second
    /// (a saga's backoff and an expired lease are noticed by the poll). Stops on shutdown; a saga
    /// in hand finishes its current step first (each step is one transaction).
    pub fn spawn_erasure_runner(&self, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let app = self.clone();
        // One owner per process: a restarted process is a new runner and waits for the old lease.
        let owner = format!("runner:{}", Uuid::new_v4());
        tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    break;
                }
                if let Err(e) = app.run_erasures(&owner).await {
                    tracing::warn!(error = %e, "erasure runner: store unavailable; retrying");
                }
                match app.ports.erasure.erasure_backlog().await {
                    Ok((open, failing)) => {
                        metrics::gauge!("playhead_erasures_open").set(open as f64);
                        metrics::gauge!("playhead_erasures_failing").set(failing as f64);
                    }
                    Err(e) => tracing::debug!(error = %e, "erasure backlog unavailable"),
                }
                tokio::select! {
                    _ = app.erasures_wake.notified() => {}
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }
}
