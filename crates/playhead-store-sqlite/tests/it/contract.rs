//! The shared storage contract (`playhead-store-contract`), run against SQLite: one test per
//! check, each on a fresh database file in its own temporary directory.

use playhead_store_contract::Stores;
use playhead_store_sqlite::SqliteStore;

async fn fresh() -> Stores {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("playhead.db")).await.expect("open a fresh store");
    Stores::from_store(store, dir)
}

playhead_store_contract::contract_suite!(fresh);
