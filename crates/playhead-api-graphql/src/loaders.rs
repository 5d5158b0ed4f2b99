//! Batched loads: fields that each need a catalog object (an episode's `series`) ask a per-request
//! [`DataLoader`](async_graphql::dataloader::DataLoader), which collects the keys of one execution
//! step and loads them with one use-case call. A screen query therefore does a bounded number of
//! store reads whatever the length of its lists (a test counts them).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use playhead_app::App;
use playhead_core::ids::TitleId;
use playhead_core::title::Title;

/// Titles by id: one catalog read per batch.
pub struct TitleLoader(pub App);

impl Loader<TitleId> for TitleLoader {
    type Value = Title;
    type Error = Arc<async_graphql::Error>;

    async fn load(&self, keys: &[TitleId]) -> Result<HashMap<TitleId, Title>, Self::Error> {
        self.0.titles_by_id(keys).await.map_err(|e| Arc::new(crate::error::map(e)))
    }
}
