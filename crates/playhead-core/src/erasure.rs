//! Erasure as a saga (issue 16, decision 0085): a person's data taken out of every store in
//! idempotent steps, persisted so that a crash or the loss of a replica only delays it.
//!
//! Rules kept here:
//! - The steps run in [`Step::ORDER`]; a step runs only after every step before it is done, and
//!   each step is idempotent (running it twice, or after a crash half-way, changes nothing more).
//! - A failed step is retried with [`backoff_ms`] forever: an erasure is never given up. After
//!   [`FAILING_AFTER`] attempts its state reads `failing` (an operator alert), still retried.
//! - What is kept is the audit minimum: who asked, when, the scope (account or profile ids) and
//!   each step's state. Never a title, an event or a name.

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, ErasureId, ProfileId};
use crate::time::Timestamp;

/// One step of the saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Write the erase watermark, delete the profile rows (so every profile route and every new
    /// event answers at once), revoke the sessions that reach the data.
    StopAccepting,
    /// Drop held events and queue (outbox) rows: nothing is left to apply.
    DropQueued,
    /// Take the profiles' plays out of co-watch and trending counters; delete feedback,
    /// impressions and counted plays.
    RecsSignals,
    /// Delete every remaining row: events, progress, hides, plays, tombstones, sign-in state,
    /// idempotency records, and (account scope) the account itself.
    DeleteRows,
    /// Delete the profiles' keys from the shared cache (Redis) and this process's cache.
    EvictCache,
    /// Record the minimal audit entry.
    Audit,
}

impl Step {
    /// Every step, in the order they run.
    pub const ORDER: [Step; 6] = [
        Step::StopAccepting,
        Step::DropQueued,
        Step::RecsSignals,
        Step::DeleteRows,
        Step::EvictCache,
        Step::Audit,
    ];

    /// The wire and stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::StopAccepting => "stop_accepting",
            Step::DropQueued => "drop_queued",
            Step::RecsSignals => "recs_signals",
            Step::DeleteRows => "delete_rows",
            Step::EvictCache => "evict_cache",
            Step::Audit => "audit",
        }
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not run yet.
    Pending,
    /// Failed at least once; retried.
    Retrying,
    /// Failed [`FAILING_AFTER`] times or more; still retried, and operators are alerted.
    Failing,
    /// Done.
    Done,
}

/// Attempts after which a step is reported as `failing`.
pub const FAILING_AFTER: u32 = 5;
/// Longest wait between two attempts of a failing step.
pub const MAX_BACKOFF_MS: i64 = 5 * 60_000;

/// Wait before the next attempt after `attempts` failures: 1 s, 2 s, 4 s... capped at 5 minutes.
pub fn backoff_ms(attempts: u32) -> i64 {
    let exp = attempts.saturating_sub(1).min(20);
    (1_000_i64 << exp).min(MAX_BACKOFF_MS)
}

/// One step's status, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    /// Which step.
    pub step: Step,
    /// Its state.
    pub state: StepState,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last failure, in words (never data of the person: store errors name tables, not rows).
    pub last_error: Option<String>,
    /// When it finished.
    pub done_at: Option<Timestamp>,
}

/// What is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// An account: its profiles, sign-in state and the account row.
    Account(AccountId),
    /// One profile of `account`.
    Profile {
        /// The owning account (kept for the watermark: only its owner learns it was erased).
        account: AccountId,
        /// The profile.
        profile: ProfileId,
    },
}

impl Scope {
    /// The account concerned.
    pub const fn account(self) -> AccountId {
        match self {
            Scope::Account(a) | Scope::Profile { account: a, .. } => a,
        }
    }

    /// `account` or `profile`.
    pub const fn kind(self) -> &'static str {
        match self {
            Scope::Account(_) => "account",
            Scope::Profile { .. } => "profile",
        }
    }
}

/// One erasure saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// Its id (UUIDv7).
    pub id: ErasureId,
    /// What is erased.
    pub scope: Scope,
    /// The profiles erased (account scope: every profile the account had when asked).
    pub profiles: Vec<ProfileId>,
    /// Who asked: an account id, or `client:<id>` / `key:<prefix>` for a service, or `cli`.
    pub requested_by: String,
    /// When.
    pub requested_at: Timestamp,
    /// Each step, in [`Step::ORDER`].
    pub steps: Vec<StepStatus>,
    /// Earliest time the runner takes it again (after a failure: the backoff).
    pub next_attempt_at: Timestamp,
    /// When the last step finished.
    pub completed_at: Option<Timestamp>,
}

impl Erasure {
    /// A new saga with every step pending.
    pub fn new(
        id: ErasureId,
        scope: Scope,
        profiles: Vec<ProfileId>,
        requested_by: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            scope,
            profiles,
            requested_by,
            requested_at: now,
            steps: Step::ORDER
                .iter()
                .map(|&step| StepStatus {
                    step,
                    state: StepState::Pending,
                    attempts: 0,
                    last_error: None,
                    done_at: None,
                })
                .collect(),
            next_attempt_at: now,
            completed_at: None,
        }
    }

    /// The first step not done, if any.
    pub fn next_step(&self) -> Option<Step> {
        self.steps.iter().find(|s| s.state != StepState::Done).map(|s| s.step)
    }

    /// Whether every step is done.
    pub fn is_done(&self) -> bool {
        self.next_step().is_none()
    }

    /// `running`, `failing` (some step failed [`FAILING_AFTER`] times) or `done`.
    pub fn state(&self) -> &'static str {
        if self.is_done() {
            "done"
        } else if self.steps.iter().any(|s| s.state == StepState::Failing) {
            "failing"
        } else {
            "running"
        }
    }

    /// Record that `step` finished at `now`.
    pub fn step_done(&mut self, step: Step, now: Timestamp) {
        if let Some(s) = self.steps.iter_mut().find(|s| s.step == step) {
            s.state = StepState::Done;
            s.done_at = Some(now);
        }
        if self.is_done() {
            self.completed_at = Some(now);
        }
    }

    /// Record that `step` failed at `now` with `why`; the next attempt waits [`backoff_ms`].
    pub fn step_failed(&mut self, step: Step, why: &str, now: Timestamp) {
        if let Some(s) = self.steps.iter_mut().find(|s| s.step == step) {
            s.attempts = s.attempts.saturating_add(1);
            s.state = if s.attempts >= FAILING_AFTER { StepState::Failing } else { StepState::Retrying };
            // Bounded: a status page is not a log.
            s.last_error = Some(why.chars().take(300).collect());
            self.next_attempt_at = now.plus_ms(backoff_ms(s.attempts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn saga() -> Erasure {
        let a = AccountId(Uuid::from_u128(1));
        Erasure::new(ErasureId(Uuid::from_u128(2)), Scope::Account(a), vec![], "cli".into(), Timestamp(0))
    }

    #[test]
    fn steps_run_in_order_and_the_saga_completes_after_the_last() {
        let mut e = saga();
        for (i, step) in Step::ORDER.iter().enumerate() {
            assert_eq!(e.next_step(), Some(*step));
            assert_eq!(e.state(), "running");
            e.step_done(*step, Timestamp(i as i64 + 1));
        }
        assert!(e.is_done());
        assert_eq!(e.state(), "done");
        assert_eq!(e.completed_at, Some(Timestamp(6)));
    }

    #[test]
    fn a_step_failing_repeatedly_is_reported_failing_and_still_retried() {
        let mut e = saga();
        for n in 1..=FAILING_AFTER {
            e.step_failed(Step::StopAccepting, "database down", Timestamp(0));
            let s = &e.steps[0];
            assert_eq!(s.attempts, n);
            let expected = if n >= FAILING_AFTER { StepState::Failing } else { StepState::Retrying };
            assert_eq!(s.state, expected);
        }
        assert_eq!(e.state(), "failing");
        assert_eq!(e.next_step(), Some(Step::StopAccepting), "never given up");
        assert_eq!(e.next_attempt_at, Timestamp(backoff_ms(FAILING_AFTER)));
        e.step_done(Step::StopAccepting, Timestamp(1));
        assert_eq!(e.state(), "running");
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff_ms(1), 1_000);
        assert_eq!(backoff_ms(2), 2_000);
        assert_eq!(backoff_ms(4), 8_000);
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
    }
}
