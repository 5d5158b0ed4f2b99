//! Erasure saga rows (decision 0085), decoded once for both SQL adapters.
//!
//! The steps and the profile list are JSON text in both databases: they are read and written
//! whole, never queried inside.

use playhead_core::StoreError;
use playhead_core::erasure::{Erasure, Scope, StepStatus};
use playhead_core::ids::{AccountId, ErasureId, ProfileId};

use crate::columns::{Columns, FromColumns};
use crate::error::corrupt;

/// The columns [`Erasure`]'s decoder reads, from `erasures`.
pub const ERASURE_COLS: &str = "id, scope, account_id, profile_id, profiles, requested_by, requested_at, steps, next_attempt_at, completed_at";

/// The unique key of an unfinished saga: one per account or profile at a time.
pub fn target(scope: Scope) -> String {
    match scope {
        Scope::Account(a) => format!("account:{a}"),
        Scope::Profile { profile, .. } => format!("profile:{profile}"),
    }
}

/// The JSON text of the steps.
pub fn steps_json(e: &Erasure) -> Result<String, StoreError> {
    serde_json::to_string(&e.steps)
        .map_err(|err| StoreError::Internal(format!("encoding erasure steps: {err}")))
}

/// The JSON text of the profile list.
pub fn profiles_json(e: &Erasure) -> Result<String, StoreError> {
    let ids: Vec<String> = e.profiles.iter().map(ToString::to_string).collect();
    crate::json_list(&ids)
}

/// The profile ids as strings, for `json_each` / `unnest` parameters.
pub fn profile_strings(e: &Erasure) -> Vec<String> {
    e.profiles.iter().map(ToString::to_string).collect()
}

impl FromColumns for Erasure {
    fn from_columns(c: &impl Columns) -> Result<Self, StoreError> {
        let account = AccountId(c.uuid("account_id")?);
        let scope = match c.text("scope")? {
            "account" => Scope::Account(account),
            "profile" => Scope::Profile { account, profile: ProfileId(c.uuid("profile_id")?) },
            other => return Err(corrupt("scope", other)),
        };
        let profiles: Vec<String> = c.json("profiles")?;
        let profiles = profiles
            .iter()
            .map(|p| ProfileId::parse(p).map_err(|e| corrupt("profiles", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let steps: Vec<StepStatus> = c.json("steps")?;
        Ok(Self {
            id: ErasureId(c.uuid("id")?),
            scope,
            profiles,
            requested_by: c.string("requested_by")?,
            requested_at: c.timestamp("requested_at")?,
            steps,
            next_attempt_at: c.timestamp("next_attempt_at")?,
            completed_at: c.opt_timestamp("completed_at")?,
        })
    }
}
