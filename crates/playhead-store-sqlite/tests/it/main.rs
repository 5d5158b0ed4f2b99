//! The SQLite adapter's one integration-test binary: the shared storage contract, then what only
//! SQLite has (files, pragmas, query plans).

mod contract;
mod sqlite;
