#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

//! Integration tests of the real server: started in-process on port 0 with a fresh data dir per
//! test (`support::spawn_app`), or as the real binary for the crash tests. One test binary for
//! the crate keeps link time down (STACK.md).

mod support;

mod api_auth;
mod api_catalog;
mod api_contract;
mod api_feed;
mod api_library;
mod api_playback;
#[cfg(feature = "recs")]
mod api_recs;
mod api_rows;
mod api_validation;
mod durability;
mod erase;
mod export;
mod external_idp;
mod graphql;
mod grpc;
mod multi_process;
mod nats;
mod oauth;
mod ops;
mod pages;
mod pause;
#[cfg(feature = "recs")]
mod recs_cli;
mod replicas;
mod revocation;
mod rollup;
mod scale_out;
mod streams;
mod traces;
