//! Property: the state after applying a set of events does not depend on how they arrive.
//! The same events, shuffled, duplicated and split into random batches (some of them applied
//! twice, as a redelivery would), through the real SQLite store, give the same resume points and
//! the same plays (play ids aside: they are made when a viewing is first seen).

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::sync::Arc;

use playhead_app::clock::ManualClock;
use playhead_app::ingest::IngestBatch;
use playhead_app::{App, AppConfig, Ports};
use playhead_core::Timestamp;
use playhead_core::auth::{Principal, Scope, Scopes, Subject};
use playhead_core::event::RawEvent;
use playhead_core::ids::{ProfileId, TitleId};
use playhead_core::ports::{PlayQuery, QueuedEvent};
use playhead_core::title::{Title, TitleKind};
use playhead_store_sqlite::SqliteStore;
use proptest::prelude::*;

const NOW: i64 = 1_800_000_000_000;

fn title(id: &str) -> Title {
    Title {
        id: TitleId::parse(id).unwrap(),
        kind: TitleKind::Movie,
        name: id.into(),
        duration_ms: 3_600_000,
        credits_start_ms: None,
        series_id: None,
        season: None,
        episode: None,
        genres: vec![],
        maturity: 0,
        release_year: None,
        available_from: None,
        external_ids: Default::default(),
    }
}

async fn app(dir: &std::path::Path) -> App {
    let store = SqliteStore::open(&dir.join("p.db")).await.unwrap();
    let ports = Ports {
        accounts: Arc::new(store.clone()),
        catalog: Arc::new(store.clone()),
        log: Arc::new(store.clone()),
        viewing: Arc::new(store.clone()),
        api_keys: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        limiter: Arc::new(playhead_app::ratelimit::LocalRateLimiter::new(std::time::Duration::from_secs(60))),
        recs: Arc::new(store.clone()),
        erasure: Arc::new(store.clone()),
        exports: Arc::new(store.clone()),
        feed: Arc::new(store.clone()),
        streams: Arc::new(store),
    };
    App::new(ports, AppConfig::default(), Arc::new(ManualClock::at(Timestamp(NOW))))
}

fn service() -> Principal {
    Principal {
        subject: Subject::Service { id: "prop".into() },
        scopes: Scopes::empty().with(Scope::HistoryWrite).with(Scope::ProfilesAny),
        bound_profile: None,
        session_id: None,
        auth_time: None,
    }
}

/// Everything observable about a profile, play ids removed.
async fn state(app: &App, profile: ProfileId) -> String {
    let mut out = String::new();
    for t in ["a", "b"] {
        let p = app.ports().viewing.progress(profile, &TitleId::parse(t).unwrap()).await.unwrap();
        out += &format!(
            "{t}: {:?}\n",
            p.map(|r| (r.progress.position_ms, r.progress.occurred_at, r.progress.finished))
        );
    }
    let plays =
        app.ports().viewing.plays(profile, &PlayQuery { limit: 1000, ..Default::default() }).await.unwrap();
    // History is newest first; plays that start at the same instant have no defined order (their
    // ids, made at apply time, break the tie), so compare them as a sorted list.
    let mut lines: Vec<String> = plays
        .iter()
        .map(|v| {
            format!(
                "play {} {:?} {:?}-{:?} {} {}\n",
                v.title_id, v.key, v.started_at, v.ended_at, v.watched_ms, v.completed
            )
        })
        .collect();
    lines.sort();
    out.extend(lines);
    out
}

/// Apply the events in `order`, split after the indices in `cuts`, re-applying batches listed in `again`.
async fn run(events: &[RawEvent], order: &[usize], cuts: &[usize], again: &[usize]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path()).await;
    app.upsert_titles_unchecked(&[title("a"), title("b")]).await.unwrap();
    let account = app.create_account("p@example.com").await.unwrap();
    let profile = app
        .insert_profile(
            account.id,
            playhead_app::accounts::NewProfile { name: "P".into(), ..Default::default() },
        )
        .await
        .unwrap()
        .id;
    let ordered: Vec<RawEvent> = order.iter().map(|i| events[*i].clone()).collect();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().copied().filter(|c| *c > 0 && *c < ordered.len()).collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds.push(ordered.len());
    for (b, end) in bounds.into_iter().enumerate() {
        let chunk = &ordered[start..end];
        start = end;
        let batch = IngestBatch {
            sent_at: None,
            backfill: true,
            events: chunk.iter().cloned().map(Ok).collect(),
            trace: None,
        };
        app.record_events(&service(), profile, batch).await.unwrap();
        let queued: Vec<QueuedEvent> = app.ports().log.next_batch(10_000).await.unwrap();
        app.apply_queued(&queued).await.unwrap();
        if again.contains(&b) {
            // A redelivery of the same queue entries: claimed by nobody, changes nothing.
            app.apply_queued(&queued).await.unwrap();
        }
    }
    state(&app, profile).await
}

fn events_strategy() -> impl Strategy<Value = Vec<RawEvent>> {
    // Up to 40 events over two titles, two devices and sometimes a session id; times within a few
    // hours so gaps both over and under 30 minutes occur.
    proptest::collection::vec((0usize..2, 0usize..3, 0i64..240, 0i64..3_700_000, 0usize..5), 1..40).prop_map(
        |raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (t, dev, minute, pos, kind))| RawEvent {
                    event_id: Some(uuid::Uuid::from_u128(i as u128 + 1).to_string()),
                    title_id: Some(["a", "b"][t].into()),
                    kind: Some(["start", "heartbeat", "pause", "stop", "complete"][kind].into()),
                    position_ms: Some(pos.min(3_600_000)),
                    duration_ms: None,
                    occurred_at: Some(Timestamp(NOW - 86_400_000 + minute * 60_000).to_rfc3339()),
                    device_id: if dev == 2 { None } else { Some(["tv", "phone"][dev].into()) },
                    session_id: (dev == 2 && i % 2 == 0).then(|| "s1".into()),
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn arrival_order_batching_and_redelivery_do_not_change_the_result(
        events in events_strategy(),
        seed in any::<u64>(),
        cuts in proptest::collection::vec(0usize..40, 0..6),
        again in proptest::collection::vec(0usize..7, 0..3),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let n = events.len();
        let in_order: Vec<usize> = (0..n).collect();
        // A seeded shuffle with duplicates: every event at least once, some twice.
        let mut shuffled: Vec<usize> = (0..n).chain((0..n).filter(|i| (seed >> (i % 64)) & 1 == 1)).collect();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let expected = rt.block_on(run(&events, &in_order, &[], &[]));
        let got = rt.block_on(run(&events, &shuffled, &cuts, &again));
        prop_assert_eq!(expected, got);
    }
}
