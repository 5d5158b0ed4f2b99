//! What only the SQLite adapter has: the database file, its pragmas, reopening, and many writers
//! sharing the one writer connection.

use playhead_core::StoreError;
use playhead_core::event::{EventKind, PlaybackEvent};
use playhead_core::ids::{AccountId, EventId, ProfileId, TitleId};
use playhead_core::ports::{AccountStore, AppendOutcome, EventLog, LogEntry, ViewingStore};
use playhead_core::profile::{Account, Email};
use playhead_core::time::Timestamp;
use playhead_store_sqlite::{Durability, SqliteConfig, SqliteStore};
use uuid::Uuid;

fn event(n: u128) -> LogEntry {
    LogEntry {
        event: PlaybackEvent {
            event_id: EventId(Uuid::from_u128(n)),
            profile_id: ProfileId(Uuid::from_u128(1)),
            title_id: TitleId::parse("m").expect("title id"),
            kind: EventKind::Heartbeat,
            position_ms: 1_000,
            duration_ms: None,
            occurred_at: Timestamp(1_800_000_000_000),
            occurred_at_raw: Timestamp(1_800_000_000_000),
            received_at: Timestamp(1_800_000_000_000),
            device_id: None,
            session_id: None,
        },
        hold: false,
        trace: None,
    }
}

#[tokio::test]
async fn a_new_database_is_created_with_wal_and_full_sync() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    let store = SqliteStore::open(&path).await.expect("open");
    assert!(path.exists());
    let want = Durability { journal_mode: "wal".into(), synchronous: "full".into(), foreign_keys: true };
    assert_eq!(store.durability().await.expect("durability"), want);
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn reopening_keeps_the_data_and_the_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("playhead.db");
    let account = Account {
        id: AccountId(Uuid::from_u128(7)),
        email: Email::parse("ann@example.com").expect("email"),
        created_at: Timestamp(1),
    };
    {
        let store = SqliteStore::open(&path).await.expect("open");
        store.create_account(&account).await.expect("create_account");
        store.append(&[event(1), event(2)], 10).await.expect("append");
        store.close().await;
    }
    let store = SqliteStore::open(&path).await.expect("reopen (migrations already applied)");
    assert_eq!(store.account(account.id).await.expect("account"), Some(account));
    assert_eq!(store.backlog().await.expect("backlog"), 2);
    assert_eq!(store.append(&[event(2)], 10).await.expect("append"), [AppendOutcome::Duplicate]);
}

#[tokio::test]
async fn an_unopenable_path_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing-dir").join("playhead.db");
    match SqliteStore::open(&path).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_store_answers_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("playhead.db")).await.expect("open");
    store.close().await;
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.append(&[event(1)], 10).await, Err(StoreError::Unavailable(_))));
}

/// Many tasks writing at once queue for the one writer connection instead of failing with
/// SQLITE_BUSY, and an apply transaction in the middle does not lose or block them for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_the_single_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("playhead.db")).await.expect("open");
    let mut tasks = Vec::new();
    for t in 0..8u128 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u128 {
                let batch: Vec<_> = (0..4).map(|k| event(t * 10_000 + i * 10 + k + 1)).collect();
                store.append(&batch, 1_000_000).await.expect("append");
            }
        }));
    }
    let applier = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                let batch = store.next_batch(50).await.expect("next_batch");
                let seqs: Vec<i64> = batch.iter().map(|q| q.seq).collect();
                let mut tx = store.begin().await.expect("begin");
                tx.claim(&seqs).await.expect("claim");
                tx.commit().await.expect("commit");
            }
        })
    };
    for t in tasks {
        t.await.expect("writer task");
    }
    applier.await.expect("applier task");
    let remaining = store.next_batch(10_000).await.expect("next_batch").len() as u64;
    assert_eq!(store.backlog().await.expect("backlog"), remaining);
    // Every appended event is either still queued or was claimed: 800 in the log in total.
    let dupes = store.append(&(1..=4).map(event).collect::<Vec<_>>(), 1_000_000).await.expect("append");
    assert_eq!(dupes, [AppendOutcome::Duplicate; 4]);
}

/// Appends racing each other share commits (group commit) yet keep their own outcomes: every
/// event id is accepted exactly once across all of them, the rest are duplicates, one append that
/// would overflow the bound is refused alone, and everything accepted is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_share_commits_but_not_outcomes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("p.db")).await.expect("open");
    let mut tasks = Vec::new();
    for t in 0..8u128 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Each request overlaps the next one by half its ids.
            let entries: Vec<LogEntry> = (t * 25..t * 25 + 50).map(event).collect();
            store.append(&entries, 10_000).await
        }));
    }
    let mut accepted = 0;
    let mut duplicates = 0;
    for t in tasks {
        for o in t.await.expect("join").expect("append") {
            match o {
                AppendOutcome::Accepted => accepted += 1,
                AppendOutcome::Duplicate => duplicates += 1,
                AppendOutcome::Held => panic!("nothing is held here"),
            }
        }
    }
    // Ids 0..225 are distinct; 400 were sent.
    assert_eq!((accepted, duplicates), (225, 175));
    assert_eq!(store.backlog().await.expect("backlog"), 225);
    // A request that would overflow the bound is refused on its own; others still land.
    let big_batch: Vec<LogEntry> = (1_000..1_100).map(event).collect();
    let small_batch: Vec<LogEntry> = (2_000..2_010).map(event).collect();
    let (big, small) = tokio::join!(store.append(&big_batch, 250), store.append(&small_batch, 250));
    assert!(matches!(big, Err(StoreError::Full)));
    assert_eq!(small.expect("small append").len(), 10);
    assert_eq!(store.backlog().await.expect("backlog"), 235);
}

/// Live players: hundreds of single-event appends at once, committed in a few groups (decision
/// 0111). The bound stays exact across a group (exactly the room is accepted, every other append
/// is `Full` and writes nothing), and an id sent twice in one group is accepted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_event_appends_in_one_group_keep_the_bound_exact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("p.db")).await.expect("open");
    let tasks: Vec<_> = (0..300u128)
        .map(|n| {
            let store = store.clone();
            // Ids 0..250: the last 50 appends repeat ids of the first 50.
            tokio::spawn(async move { store.append(&[event(n % 250)], 100).await })
        })
        .collect();
    let (mut accepted, mut duplicate, mut full) = (0, 0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok(out) => match out[..] {
                [AppendOutcome::Accepted] => accepted += 1,
                [AppendOutcome::Duplicate] => duplicate += 1,
                ref other => panic!("unexpected outcome {other:?}"),
            },
            Err(StoreError::Full) => full += 1,
            Err(e) => panic!("append failed: {e:?}"),
        }
    }
    assert_eq!(accepted, 100, "exactly the room ({accepted} accepted, {duplicate} duplicates, {full} full)");
    assert_eq!(accepted + duplicate + full, 300);
    assert_eq!(store.backlog().await.expect("backlog"), 100);
    // Every accepted id is stored once; a repeat of a refused id is new when there is room.
    let queued = store.next_batch(1_000).await.expect("next_batch");
    let distinct: std::collections::HashSet<_> = queued.iter().map(|q| q.event.event_id).collect();
    assert_eq!(distinct.len(), 100);
}

/// A full disk (here: a database capped with `max_page_count`, which fails with SQLITE_FULL
/// exactly like a full file system): the batch that does not fit is `Unavailable` (503 with
/// Retry-After at the API), nothing of it is written, what was committed before stays, reads go
/// on, and once there is room again the same batch goes in whole.
#[tokio::test]
async fn a_full_disk_refuses_the_batch_whole_and_keeps_what_was_committed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("playhead.db");
    {
        // Create the schema first, then learn its size.
        let store = SqliteStore::open(&path).await.expect("open");
        store.close().await;
    }
    // The schema's pages: the file after close, plus whatever a close under load left in the WAL
    // (an over-estimate is only more headroom). 64 pages more (256 KiB) hold many batches of 50,
    // so the first always fits and the cap still bites within a few hundred batches.
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let pages_now = (size(&path) + size(&dir.path().join("playhead.db-wal"))) / 4096;
    let config = SqliteConfig {
        max_page_count: Some(u32::try_from(pages_now).expect("pages") + 64),
        ..Default::default()
    };
    let store = SqliteStore::open_with(&path, &config).await.expect("open capped");
    let mut accepted = 0u128;
    let refused = loop {
        let batch: Vec<LogEntry> = (0..50).map(|i| event(10_000 + accepted * 50 + i)).collect();
        match store.append(&batch, 1_000_000).await {
            Ok(out) => {
                assert!(out.iter().all(|o| *o == AppendOutcome::Accepted));
                accepted += 1;
                assert!(accepted < 10_000, "the cap never bit");
            }
            Err(e) => break (batch, e),
        }
    };
    let (batch, err) = refused;
    assert!(matches!(err, StoreError::Unavailable(ref m) if m.contains("full")), "{err:?}");
    assert!(accepted > 0, "some batches fit before the disk filled");
    let committed = u64::try_from(accepted * 50).expect("count");
    assert_eq!(store.backlog().await.expect("reads still work"), committed, "nothing of the refused batch");
    let queued = store.next_batch(1_000_000).await.expect("next_batch");
    assert!(queued.iter().all(|q| !batch.iter().any(|b| b.event.event_id == q.event.event_id)));
    store.close().await;

    // Room again: the same batch is new and goes in whole.
    let store = SqliteStore::open(&path).await.expect("open uncapped");
    let out = store.append(&batch, 1_000_000).await.expect("append after space was freed");
    assert!(out.iter().all(|o| *o == AppendOutcome::Accepted), "{out:?}");
    assert_eq!(store.backlog().await.expect("backlog"), committed + 50);
}
