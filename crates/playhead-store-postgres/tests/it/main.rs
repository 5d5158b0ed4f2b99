//! The PostgreSQL adapter's one integration-test binary: the shared storage contract, then what
//! only PostgreSQL has (partitions, advisory locks, concurrent claims and appends from several
//! connections, connection failures).
//!
//! Every test gets a fresh schema on the server named by `PLAYHEAD_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When that server cannot be reached the tests fail
//! under `CI=true`; elsewhere the binary prints a notice and exits successfully without running
//! them (see `support`).

mod contract;
mod postgres;
mod support;
