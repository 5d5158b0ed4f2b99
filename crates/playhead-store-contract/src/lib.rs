//! The one contract suite every storage adapter passes (SQLite now, PostgreSQL later): the port
//! docs of `playhead_core::ports`, written as executable checks.
//!
//! An adapter runs it from its (single) integration-test binary, with a factory that makes a
//! fresh, empty store for every check:
//!
//! ```ignore
//! async fn fresh() -> playhead_store_contract::Stores {
//!     let dir = tempfile::tempdir().expect("a temp dir");
//!     let store = MyStore::open(&dir.path().join("db")).await.expect("open");
//!     playhead_store_contract::Stores::from_store(store, dir)
//! }
//! playhead_store_contract::contract_suite!(fresh);
//! ```
//!
//! The macro expands to one `#[test]` per check (so a failure names the behaviour that broke),
//! each on its own Tokio runtime with its own store.
//!
//! Rules for contributors:
//! - A check talks to the ports only: no SQL, no adapter type, no sleeping, no timing
//!   assertions (speed belongs in benchmarks). It asserts what a caller would observe, and it must
//!   be able to fail: make it fail once by breaking the adapter before trusting it.
//! - A behaviour the port docs do not state is not a contract: fix the doc in `ports.rs` first.
//! - A new check is a `pub async fn name(s: &Stores)` in a `checks` module and a line in
//!   [`contract_suite!`]; a generated test fails if the two lists differ.
//! - Keep the whole suite at a few seconds: every adapter runs it on every CI run.

pub mod checks;
mod fixtures;
pub mod shared_cache;

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use playhead_core::ports::{
    AccountStore, ApiKeyStore, Catalog, ErasureStore, EventLog, FeedStore, IdempotencyStore, IdentityStore,
    Pruner, RecsStore, StreamStore, ViewingStore,
};

/// One store under test, seen through every port, plus whatever keeps it alive.
pub struct Stores {
    /// Accounts and profiles.
    pub accounts: Arc<dyn AccountStore>,
    /// The catalog.
    pub catalog: Arc<dyn Catalog>,
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// Progress, plays and apply transactions.
    pub viewing: Arc<dyn ViewingStore>,
    /// API keys.
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Idempotency keys.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Recommendation state.
    pub recs: Arc<dyn RecsStore>,
    /// The authorization server's state.
    pub identity: Arc<dyn IdentityStore>,
    /// The pruning job's deletes.
    pub pruner: Arc<dyn Pruner>,
    /// Erasure sagas and steps.
    pub erasure: Arc<dyn ErasureStore>,
    /// The follow graph, activities and inboxes.
    pub feed: Arc<dyn FeedStore>,
    /// Concurrent streams.
    pub streams: Arc<dyn StreamStore>,
    /// Keeps a temporary directory or test database alive until the check ends (dropped last).
    pub guard: Box<dyn Any + Send + Sync>,
}

impl Stores {
    /// All ports from one adapter value that implements every one of them.
    pub fn from_store<S>(store: S, guard: impl Any + Send + Sync) -> Self
    where
        S: AccountStore
            + Catalog
            + EventLog
            + ViewingStore
            + ApiKeyStore
            + IdempotencyStore
            + RecsStore
            + IdentityStore
            + Pruner
            + ErasureStore
            + FeedStore
            + StreamStore
            + 'static,
    {
        let store = Arc::new(store);
        Self {
            accounts: store.clone(),
            catalog: store.clone(),
            log: store.clone(),
            viewing: store.clone(),
            api_keys: store.clone(),
            idempotency: store.clone(),
            recs: store.clone(),
            pruner: store.clone(),
            identity: store.clone(),
            erasure: store.clone(),
            streams: store.clone(),
            feed: store,
            guard: Box::new(guard),
        }
    }
}

/// Run one check against a fresh store from `factory`, on a new current-thread Tokio runtime.
/// Called by the tests [`contract_suite!`] generates.
pub fn run_check<F, Fut>(factory: F, check: impl AsyncFnOnce(&Stores))
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Stores>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime for the check");
    runtime.block_on(async move {
        let stores = factory().await;
        check(&stores).await;
    });
}

/// Fails unless `listed` (the checks [`contract_suite!`] runs) names every check declared in
/// [`checks`], so a new check cannot be silently skipped.
#[doc(hidden)]
pub fn assert_runs_every_check(listed: &[&str]) {
    let mut declared = checks::declared();
    let mut listed = listed.to_vec();
    declared.sort_unstable();
    listed.sort_unstable();
    assert_eq!(listed, declared, "contract_suite! and the checks modules list different checks");
}

/// Expand to one `#[test]` per contract check, each calling `$factory().await` for a fresh
/// [`Stores`]. Invoke it once, in the adapter's integration-test binary.
#[macro_export]
macro_rules! contract_suite {
    ($factory:path) => {
        $crate::__contract_tests! { $factory;
            // accounts
            account_round_trips_and_email_is_unique,
            profiles_round_trip_oldest_first,
            profile_limit_is_a_conflict,
            update_profile_checks_the_version,
            // catalog
            titles_round_trip_every_field,
            upsert_is_idempotent_and_versions_follow_content,
            upsert_takes_large_imports,
            upsert_of_one_id_twice_keeps_the_last_copy,
            conditional_title_replace_checks_the_version,
            list_titles_pages_in_id_order,
            episodes_of_lists_only_those_series,
            // event log
            appended_events_round_trip_every_field,
            trace_contexts_ride_with_queued_events,
            append_dedupes_within_and_across_batches,
            a_full_log_writes_nothing,
            held_events_wait_for_their_title,
            expired_held_events_are_dropped_for_good,
            next_batch_is_oldest_first_and_bounded,
            backlog_is_the_exact_queue_depth,
            oldest_unapplied_is_the_queue_head,
            claims_acknowledge_each_event_once,
            requeue_all_replays_every_logged_event,
            // devices (session activity, sign out everywhere)
            session_activity_lists_live_devices_latest_first,
            revoking_all_sessions_spares_only_the_kept_one,
            // concurrent streams
            streams_count_to_the_limit_per_account,
            stopped_streams_are_refused_and_free_their_slot,
            streams_expire_after_the_timeout,
            streams_past_the_horizon_are_pruned,
            concurrent_starts_never_pass_the_limit,
            // watched marks and My list
            marks_are_one_manual_play_and_unmarks_leave_real_plays,
            the_list_pages_newest_first_and_filters,
            // apply transactions, progress and plays
            an_uncommitted_apply_changes_nothing,
            appliers_do_not_interleave,
            reads_do_not_wait_for_an_open_apply,
            progress_of_reads_many_titles_at_once,
            record_applied_stores_each_event_once,
            explicit_session_events_ignore_the_window,
            implicit_events_match_device_and_window,
            dropped_events_are_never_returned,
            deleted_plays_tombstone_their_events,
            last_event_is_the_groups_newest_other_event,
            viewings_are_selected_by_key_and_overlap,
            replace_viewings_removes_and_upserts,
            progress_round_trips_and_commits_atomically,
            recent_progress_is_newest_first,
            a_later_hide_wins,
            plays_page_without_gaps_or_repeats,
            plays_filter_by_title_and_completion,
            episode_plays_name_their_series,
            delete_play_is_scoped_to_its_profile,
            delete_play_if_checks_the_entity_tag,
            backfill_dedupes_and_respects_deletes,
            // API keys
            api_keys_are_found_by_prefix_and_revocable,
            // idempotency keys
            a_key_is_held_by_one_request_at_a_time,
            completed_keys_replay_until_they_expire,
            released_and_abandoned_keys_can_be_retried,
            // recommendation state
            training_plays_page_over_every_profile,
            the_latest_feedback_wins,
            impressions_count_each_showing,
            plays_count_once_for_cowatch_and_trending,
            deleting_a_play_takes_it_out_of_the_counters,
            the_window_is_the_most_recent_counted_plays,
            models_are_served_newest_first_and_pruned,
            the_training_lease_has_one_holder,
            // identity
            passwords_and_clients_round_trip,
            sessions_revoke_once_and_are_polled,
            auth_codes_are_consumed_once,
            device_codes_update_conditionally,
            refresh_tokens_rotate_once,
            signing_keys_rotate_and_audit_appends,
            external_identities_link_once_per_issuer_and_subject,
            shared_secrets_are_decided_once,
            // token deny list and client deletion
            denied_tokens_are_polled_until_they_expire,
            deleting_a_client_revokes_its_sessions_and_denies_its_tokens,
            // pruning
            expired_codes_are_pruned_in_batches,
            refresh_families_and_sessions_go_after_their_lifetime,
            expired_browser_sessions_are_pruned,
            idempotency_records_past_the_horizon_are_pruned,
            audit_entries_before_the_horizon_are_pruned,
            ended_token_denials_are_pruned,
            // retention roll-up
            old_plays_roll_up_into_months_once,
            // erasure
            sagas_are_leased_to_one_runner,
            erase_steps_leave_nothing_and_run_twice,
            // feed
            follows_count_once_and_list_in_id_order,
            blocks_end_follows_both_ways,
            activities_are_stored_once_and_only_for_existing_plays,
            the_feed_merges_inbox_and_pulled_authors_newest_first,
            a_threshold_change_keeps_feeds_whole,
            fan_out_is_bounded_and_inboxes_keep_the_newest,
            removed_activities_leave_every_feed,
            profile_pins_round_trip,
        }
    };
}

/// The expansion of [`contract_suite!`] (kept apart so the list of checks is written once).
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($factory:path; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::run_check($factory, $crate::checks::$check);
            }
        )+

        #[test]
        fn contract_suite_runs_every_check() {
            $crate::assert_runs_every_check(&[$(stringify!($check)),+]);
        }
    };
}
