//! `playhead-bench feed`: the fan-out crossover (issue 14, decision 0061).
//!
//! Two measurements on the real `FeedStore` adapters, with the follow graph and activities
//! simulated as rows (seeded in bulk with SQL, as a migration would, not through the API):
//!
//! 1. **Write cost per activity** of an author with N followers: `push` writes N inbox rows
//!    (in the adapter's bounded fan-out steps, trims included), `pull` writes none; `hybrid` is
//!    whichever the threshold picks. Reported: rows written and wall time.
//! 2. **Read latency** of a reader following K authors (20 activities each): `push` reads its
//!    inbox, `pull` merges the K authors at read time, `hybrid` has 1% of the authors (at least
//!    one) pulled and the rest pushed. Reported: p50 and p99 of a first page of 20.
//!
//! Benchmarks are not tests: nothing here asserts a speed.

use std::time::Instant;

use anyhow::Context;
use playhead_core::feed::{Activity, ActivityKind, FanoutMode};
use playhead_core::ids::{ActivityId, ProfileId};
use playhead_core::ports::FeedStore;
use playhead_core::{Timestamp, TitleId};
use sqlx::Connection;
use uuid::Uuid;

/// Where the rows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeedBackend {
    /// An embedded SQLite file (WAL, synchronous=FULL) in a temp dir.
    Sqlite,
    /// A throwaway schema on PostgreSQL.
    Postgres,
}

/// Options of the run.
pub struct FeedBench {
    pub backend: FeedBackend,
    pub followers: Vec<u64>,
    pub followees: Vec<u64>,
    pub reads: usize,
    pub step_rows: u32,
    pub threshold: u64,
    pub database_url: String,
}

const INBOX_MAX: u32 = 500;
const PER_AUTHOR: u64 = 20;

/// Raw SQL for seeding, per dialect.
enum Seeder {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

fn uuid_of(n: u64) -> Uuid {
    // A valid UUIDv7-shaped id per number; the same text the SQL seeders generate.
    Uuid::parse_str(&format!("00000000-0000-7000-8000-{n:012x}")).unwrap_or_else(|_| Uuid::nil())
}

impl Seeder {
    async fn exec(&mut self, sqlite: &str, pg: &str) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(c) => {
                sqlx::raw_sql(sqlite).execute(c).await?;
            }
            Self::Postgres(c) => {
                sqlx::raw_sql(pg).execute(c).await?;
            }
        }
        Ok(())
    }

    async fn reset(&mut self) -> anyhow::Result<()> {
        let sql = "DELETE FROM follows; DELETE FROM feed_profiles; DELETE FROM activities; \
                   DELETE FROM feed_inbox; DELETE FROM feed_fanout;";
        self.exec(sql, sql).await
    }

    /// `count` followers numbered from `first`, following `author`.
    async fn followers(&mut self, author: Uuid, first: u64, count: u64) -> anyhow::Result<()> {
        let sqlite = format!(
            "WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO follows (follower, followee, state, since) \
             SELECT printf('00000000-0000-7000-8000-%012x', i), '{author}', 'following', 0 FROM n; \
             INSERT INTO feed_profiles (profile_id, followers) VALUES ('{author}', {count}) \
             ON CONFLICT (profile_id) DO UPDATE SET followers = followers + {count};",
            last = first + count - 1
        );
        let pg = format!(
            "INSERT INTO follows (follower, followee, state, since) \
             SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, '{author}', 'following', 0 \
             FROM generate_series({first}::bigint, {last}::bigint) AS i; \
             INSERT INTO feed_profiles (profile_id, followers) VALUES ('{author}', {count}) \
             ON CONFLICT (profile_id) DO UPDATE SET followers = feed_profiles.followers + {count};",
            last = first + count - 1
        );
        self.exec(&sqlite, &pg).await
    }

    /// `reader` follows authors numbered `first..first+count`, each with `PER_AUTHOR` activities
    /// one second apart (ids numbered so (at, id) order is deterministic); authors whose number
    /// is a multiple of `pull_every` stay unpushed, the rest are pushed into the reader's inbox
    /// (its newest `INBOX_MAX` entries).
    async fn reader(&mut self, reader: Uuid, first: u64, count: u64, pull_every: u64) -> anyhow::Result<()> {
        let last = first + count - 1;
        let sqlite = format!(
            "WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO follows (follower, followee, state, since) \
             SELECT '{reader}', printf('00000000-0000-7000-8000-%012x', i), 'following', 0 FROM n; \
             WITH RECURSIVE n(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}), \
                  k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < {per} - 1) \
             INSERT INTO activities (id, actor, kind, title_id, source_title, play_id, subject_key, maturity, at, pushed) \
             SELECT printf('%08x-0000-7000-8000-%012x', j, i), printf('00000000-0000-7000-8000-%012x', i), \
                    'loved', 't' || j, 't' || j, NULL, 't' || j, 0, 1800000000000 + j * 1000 + i, \
                    CASE WHEN i % {pull_every} = 0 THEN 0 ELSE 1 END \
             FROM n, k; \
             INSERT INTO feed_inbox (reader, at, activity_id, actor) \
             SELECT '{reader}', at, id, actor FROM activities WHERE pushed = 1 \
             ORDER BY at DESC, id DESC LIMIT {INBOX_MAX};",
            per = PER_AUTHOR
        );
        let pg = format!(
            "INSERT INTO follows (follower, followee, state, since) \
             SELECT '{reader}', ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'following', 0 \
             FROM generate_series({first}::bigint, {last}::bigint) AS i; \
             INSERT INTO activities (id, actor, kind, title_id, source_title, play_id, subject_key, maturity, at, pushed) \
             SELECT (lpad(to_hex(j), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, \
                    ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, \
                    'loved', 't' || j, 't' || j, NULL, 't' || j, 0, 1800000000000 + j * 1000 + i, \
                    (i % {pull_every} <> 0) \
             FROM generate_series({first}::bigint, {last}::bigint) AS i, generate_series(0, {per} - 1) AS j; \
             INSERT INTO feed_inbox (reader, at, activity_id, actor) \
             SELECT '{reader}', at, id, actor FROM activities WHERE pushed \
             ORDER BY at DESC, id DESC LIMIT {INBOX_MAX}; \
             ANALYZE follows; ANALYZE activities; ANALYZE feed_inbox;",
            per = PER_AUTHOR
        );
        self.exec(&sqlite, &pg).await
    }
}

fn activity(author: ProfileId, n: u64) -> Activity {
    let title = TitleId::parse(&format!("t{n}")).unwrap_or_else(|_| unreachable!("a valid title id"));
    Activity {
        id: ActivityId(Uuid::now_v7()),
        actor: author,
        kind: ActivityKind::Loved,
        title_id: title.clone(),
        source_title: title,
        play_id: None,
        subject_key: format!("bench-{n}-{}", Uuid::now_v7().simple()),
        maturity: 0,
        at: Timestamp(1_900_000_000_000 + i64::try_from(n).unwrap_or(0)),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Publish one activity of `author` and run the fan-out to the end with `threshold`.
async fn write_once(
    store: &dyn FeedStore,
    author: ProfileId,
    n: u64,
    threshold: u64,
    step_rows: u32,
) -> anyhow::Result<(u64, f64, FanoutMode)> {
    let started = Instant::now();
    store.add_activities(&[activity(author, n)]).await?;
    let mut rows = 0;
    let mut mode = FanoutMode::Push;
    while let Some(step) = store.fanout_step(threshold, INBOX_MAX, step_rows).await? {
        rows += step.rows;
        mode = step.mode;
    }
    Ok((rows, started.elapsed().as_secs_f64() * 1000.0, mode))
}

/// Run the benchmark and print the two tables (Markdown).
pub async fn run(opts: FeedBench) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut schema_to_drop = None;
    let (store, mut seeder): (Box<dyn FeedStore>, Seeder) = match opts.backend {
        FeedBackend::Sqlite => {
            let path = dir.path().join("feed.db");
            let store = playhead_store_sqlite::SqliteStore::open(&path).await?;
            let mut conn = sqlx::SqliteConnection::connect_with(
                &sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .busy_timeout(std::time::Duration::from_secs(60)),
            )
            .await?;
            sqlx::raw_sql("PRAGMA synchronous = FULL").execute(&mut conn).await?;
            (Box::new(store), Seeder::Sqlite(conn))
        }
        FeedBackend::Postgres => {
            let name = format!("bench_feed_{}", Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&opts.database_url).await.context("connect")?;
            sqlx::raw_sql(&format!("CREATE SCHEMA {name}")).execute(&mut admin).await?;
            let config =
                playhead_store_postgres::PgConfig { schema: Some(name.clone()), ..Default::default() };
            let store = playhead_store_postgres::PgStore::connect_with(&opts.database_url, &config).await?;
            let mut conn = sqlx::PgConnection::connect(&opts.database_url).await?;
            sqlx::raw_sql(&format!("SET search_path = {name}")).execute(&mut conn).await?;
            schema_to_drop = Some((admin, name));
            (Box::new(store), Seeder::Postgres(conn))
        }
    };
    let result = measure(store.as_ref(), &mut seeder, &opts).await;
    if let Some((mut admin, name)) = schema_to_drop {
        drop(store);
        let _ = sqlx::raw_sql(&format!("DROP SCHEMA {name} CASCADE")).execute(&mut admin).await;
    }
    result
}

async fn measure(store: &dyn FeedStore, seeder: &mut Seeder, opts: &FeedBench) -> anyhow::Result<()> {
    println!("## Write cost of one activity (fan-out step {} rows, inbox {INBOX_MAX})", opts.step_rows);
    println!();
    println!(
        "| followers | push rows | push ms | pull rows | pull ms | hybrid (threshold {}) | hybrid ms |",
        opts.threshold
    );
    println!("|---:|---:|---:|---:|---:|---|---:|");
    let author = uuid_of(0xA0_0000_0000);
    for &n in &opts.followers {
        seeder.reset().await?;
        let seeding = Instant::now();
        seeder.followers(author, 1, n).await?;
        eprintln!("seeded {n} followers in {:.1} s", seeding.elapsed().as_secs_f64());
        let a = ProfileId(author);
        let (push_rows, push_ms, _) = write_once(store, a, 1, u64::MAX, opts.step_rows).await?;
        let (pull_rows, pull_ms, _) = write_once(store, a, 2, 0, opts.step_rows).await?;
        let (_, hybrid_ms, mode) = write_once(store, a, 3, opts.threshold, opts.step_rows).await?;
        let mode = if mode == FanoutMode::Push { "push" } else { "pull" };
        println!(
            "| {n} | {push_rows} | {push_ms:.1} | {pull_rows} | {pull_ms:.1} | {mode} | {hybrid_ms:.1} |"
        );
    }
    println!();
    println!(
        "## Read latency: first page of 20, reader following K authors ({PER_AUTHOR} activities each), {} reads",
        opts.reads
    );
    println!();
    println!(
        "| K followed | push p50 ms | push p99 ms | pull p50 ms | pull p99 ms | hybrid (1% pulled) p50 ms | hybrid p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let reader = uuid_of(0xB0_0000_0000);
    for &k in &opts.followees {
        let mut cells = Vec::new();
        // push: nothing pulled (pull_every beyond K); pull: everyone; hybrid: every 100th.
        for pull_every in [u64::MAX / 2, 1, k.min(100)] {
            seeder.reset().await?;
            seeder.reader(reader, 1, k, pull_every).await?;
            let mut times = Vec::with_capacity(opts.reads);
            for _ in 0..opts.reads {
                let started = Instant::now();
                let page = store.feed(ProfileId(reader), None, None, 20).await?;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(
                    page.len() == 20.min(usize::try_from(k * PER_AUTHOR).unwrap_or(20)),
                    "short page"
                );
            }
            times.sort_by(f64::total_cmp);
            cells.push(format!("{:.2} | {:.2}", percentile(&times, 0.5), percentile(&times, 0.99)));
        }
        println!("| {k} | {} |", cells.join(" | "));
    }
    Ok(())
}
