//! The shared storage contract (`playhead-store-contract`), run against PostgreSQL: one test per
//! check, each in a fresh schema that is dropped afterwards.

use playhead_store_contract::Stores;

use crate::support;

async fn fresh() -> Stores {
    let (store, schema) = support::fresh_store_or_skip().await;
    Stores::from_store(store, schema)
}

playhead_store_contract::contract_suite!(fresh);
