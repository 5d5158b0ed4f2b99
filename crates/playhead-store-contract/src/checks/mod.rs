//! The checks, one module per port. Each is `pub async fn name(s: &Stores)` on a fresh store and
//! panics (through `assert!`/`expect`) when the adapter breaks the port's documented behaviour.
//!
//! The rule: every `pub async fn` here is a check and must appear in `contract_suite!`
//! ([`declared`] reads these sources to enforce it); helpers are private.

mod accounts;
mod api_keys;
mod catalog;
mod erasure;
mod feed;
mod idempotency;
mod identity;
mod library;
mod log;
mod prune;
mod recs;
mod revocation;
mod rollup;
mod sessions;
mod streams;
mod viewing;

pub use accounts::*;
pub use api_keys::*;
pub use catalog::*;
pub use erasure::*;
pub use feed::*;
pub use idempotency::*;
pub use identity::*;
pub use library::*;
pub use log::*;
pub use prune::*;
pub use recs::*;
pub use revocation::*;
pub use rollup::*;
pub use sessions::*;
pub use streams::*;
pub use viewing::*;

const SOURCES: [&str; 16] = [
    include_str!("accounts.rs"),
    include_str!("api_keys.rs"),
    include_str!("catalog.rs"),
    include_str!("erasure.rs"),
    include_str!("feed.rs"),
    include_str!("idempotency.rs"),
    include_str!("identity.rs"),
    include_str!("library.rs"),
    include_str!("log.rs"),
    include_str!("prune.rs"),
    include_str!("recs.rs"),
    include_str!("revocation.rs"),
    include_str!("rollup.rs"),
    include_str!("sessions.rs"),
    include_str!("streams.rs"),
    include_str!("viewing.rs"),
];

/// Names of every check declared in this module's sources.
pub fn declared() -> Vec<&'static str> {
    SOURCES
        .iter()
        .flat_map(|src| src.lines())
        .filter_map(|line| line.strip_prefix("pub async fn "))
        .filter_map(|rest| rest.split('(').next())
        .collect()
}
