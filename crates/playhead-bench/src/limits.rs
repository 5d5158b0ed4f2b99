//! The baselines at the physical limit (decision 0110): the fastest honest way to do the same
//! work without Playhead, each measured in the same run as the Playhead side it bounds.
//!
//! - `sqlite`: the rows Playhead's ingest stores (the event log's columns, its primary key, a
//!   STRICT table), through one prepared rusqlite statement, WAL + synchronous=FULL, 500 rows per
//!   transaction, one connection (SQLite has one writer).
//! - `sqlx-sqlite`: the same through sqlx (the old baseline; kept as a labelled extra row only).
//! - `pg-insert` / `pg-copy`: the same rows into PostgreSQL (the event log's columns and primary
//!   key): one prepared 500-row INSERT, or one COPY of 500 rows, per transaction, from as many
//!   connections as Playhead's load generator has clients.
//! - `jetstream`: the relay's messages published straight to a stream configured like the
//!   pipeline's, 500 in flight (async publish), then awaited.
//! - `http`: bare axum on the same listener setup: `GET /row` answers pre-serialized bytes (the
//!   Continue watching row); `POST /v1/profiles/{id}/events` parses the same event JSON into typed
//!   structs and answers 202 with a result per event, storing nothing (the HTTP limit for small
//!   requests).
//!
//! Rule: a baseline does the same work as the Playhead side minus Playhead; none may skip work
//! the Playhead side's result depends on (durability, parsing) or it flatters nothing but itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Connection;

/// One stored event, as the event log holds it (columns of the `events` table).
#[derive(Clone, Debug)]
pub struct Row {
    event_id: String,
    profile_id: String,
    title_id: String,
    position_ms: i64,
    occurred_at: i64,
}

/// The bulk ingest's events (the same generator as the Playhead side), as stored rows: batches of
/// 500, batch `b` for profile `b % 100`.
pub fn rows(events: usize) -> Vec<Vec<Row>> {
    let base_ms = crate::base_ms();
    let profiles: Vec<String> = (0..crate::PROFILES).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    (0..events.div_ceil(crate::BATCH))
        .map(|b| {
            crate::batch_events(b, base_ms)
                .iter()
                .map(|e| Row {
                    event_id: e["event_id"].as_str().unwrap_or_default().to_owned(),
                    profile_id: profiles[b % crate::PROFILES].clone(),
                    title_id: e["title_id"].as_str().unwrap_or_default().to_owned(),
                    position_ms: e["position_ms"].as_i64().unwrap_or_default(),
                    occurred_at: playhead_core::Timestamp::parse_rfc3339(
                        e["occurred_at"].as_str().unwrap_or_default(),
                    )
                    .map(|t| t.0)
                    .unwrap_or_default(),
                })
                .collect()
        })
        .collect()
}

/// The event log's table in SQLite, without the secondary indexes: the primary key (the dedupe
/// key) is part of the work, an index chosen by Playhead's read path is not.
const SQLITE_TABLE: &str =
    "CREATE TABLE events (event_id TEXT NOT NULL PRIMARY KEY, profile_id TEXT NOT NULL,
    title_id TEXT NOT NULL, kind TEXT NOT NULL, position_ms INTEGER NOT NULL, duration_ms INTEGER,
    occurred_at INTEGER NOT NULL, occurred_at_raw INTEGER NOT NULL, received_at INTEGER NOT NULL,
    device_id TEXT, session_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('logged', 'held', 'dropped'))) STRICT";

/// Raw rusqlite: rows per second.
pub fn sqlite(batches: &[Vec<Row>]) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut conn = rusqlite::Connection::open(dir.path().join("raw.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute(SQLITE_TABLE, [])?;
    let started = Instant::now();
    let mut n = 0usize;
    for batch in batches {
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at,
                 occurred_at_raw, received_at, device_id, session_id, state)
                 VALUES (?1, ?2, ?3, 'heartbeat', ?4, NULL, ?5, ?5, ?5, 'tv', NULL, 'logged')",
            )?;
            for r in batch {
                st.execute(rusqlite::params![
                    r.event_id,
                    r.profile_id,
                    r.title_id,
                    r.position_ms,
                    r.occurred_at
                ])?;
                n += 1;
            }
        }
        tx.commit()?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The same through sqlx's SQLite driver (a worker thread per connection): rows per second.
pub async fn sqlx_sqlite(batches: &[Vec<Row>]) -> anyhow::Result<f64> {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let dir = tempfile::tempdir()?;
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.path().join("raw.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    sqlx::query(SQLITE_TABLE).execute(&mut conn).await?;
    let started = Instant::now();
    let mut n = 0usize;
    for batch in batches {
        let mut tx = conn.begin().await?;
        for r in batch {
            sqlx::query(
                "INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at,
                 occurred_at_raw, received_at, device_id, session_id, state)
                 VALUES (?1, ?2, ?3, 'heartbeat', ?4, NULL, ?5, ?5, ?5, 'tv', NULL, 'logged')",
            )
            .bind(&r.event_id)
            .bind(&r.profile_id)
            .bind(&r.title_id)
            .bind(r.position_ms)
            .bind(r.occurred_at)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// How the PostgreSQL baseline writes a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgWrite {
    /// One prepared multi-row INSERT of the whole batch.
    Insert,
    /// One `COPY ... FROM STDIN` (text format) of the whole batch.
    Copy,
}

/// PostgreSQL: rows per second from `clients` connections, a throwaway schema dropped afterwards.
pub async fn postgres(
    url: &str,
    batches: Vec<Vec<Row>>,
    clients: usize,
    how: PgWrite,
) -> anyhow::Result<f64> {
    let schema = format!("bench_limit_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await?;
    let result = postgres_in(url, &schema, batches, clients, how).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut admin).await?;
    result
}

async fn postgres_in(
    url: &str,
    schema: &str,
    batches: Vec<Vec<Row>>,
    clients: usize,
    how: PgWrite,
) -> anyhow::Result<f64> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!(
        "CREATE TABLE {schema}.events (event_id uuid NOT NULL PRIMARY KEY, profile_id uuid NOT NULL,
         title_id text COLLATE \"C\" NOT NULL, kind text NOT NULL, position_ms bigint NOT NULL, duration_ms bigint,
         occurred_at bigint NOT NULL, occurred_at_raw bigint NOT NULL, received_at bigint NOT NULL,
         device_id text COLLATE \"C\", session_id text COLLATE \"C\",
         state text NOT NULL CHECK (state IN ('logged', 'held', 'dropped')))"
    ))
    .execute(&mut c)
    .await?;
    let n: usize = batches.iter().map(Vec::len).sum();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await?;
        conns.push(conn);
    }
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (batches, next) = (batches.clone(), next.clone());
            tokio::spawn(async move {
                while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match how {
                        PgWrite::Insert => pg_insert(&mut conn, batch).await?,
                        PgWrite::Copy => pg_copy(&mut conn, batch).await?,
                    }
                }
                Ok::<(), anyhow::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// One statement, so one transaction; prepared once per connection (sqlx caches it).
async fn pg_insert(conn: &mut sqlx::PgConnection, batch: &[Row]) -> anyhow::Result<()> {
    let mut sql = String::from(
        "INSERT INTO events (event_id, profile_id, title_id, kind, position_ms, duration_ms, occurred_at, \
         occurred_at_raw, received_at, device_id, session_id, state) VALUES ",
    );
    for i in 0..batch.len() {
        let p = i * 5;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}::uuid, ${}::uuid, ${}, 'heartbeat', ${}, NULL, ${}, ${}, ${}, 'tv', NULL, 'logged')",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 5,
            p + 5
        ));
    }
    let mut q = sqlx::query(&sql);
    for r in batch {
        q = q.bind(&r.event_id).bind(&r.profile_id).bind(&r.title_id).bind(r.position_ms).bind(r.occurred_at);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// One COPY of the batch in text format (one transaction).
async fn pg_copy(conn: &mut sqlx::PgConnection, batch: &[Row]) -> anyhow::Result<()> {
    use std::fmt::Write;
    let mut text = String::with_capacity(batch.len() * 160);
    for r in batch {
        writeln!(
            text,
            "{}\t{}\t{}\theartbeat\t{}\t\\N\t{}\t{}\t{}\ttv\t\\N\tlogged",
            r.event_id, r.profile_id, r.title_id, r.position_ms, r.occurred_at, r.occurred_at, r.occurred_at
        )?;
    }
    let mut copy = conn.copy_in_raw("COPY events FROM STDIN").await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// An event as the REST API receives it (the same fields Playhead's parser reads).
#[derive(Deserialize)]
#[expect(dead_code, reason = "parsed like Playhead's DTO; the baseline stores nothing")]
struct EventIn {
    event_id: String,
    title_id: String,
    kind: String,
    position_ms: i64,
    #[serde(default)]
    duration_ms: Option<i64>,
    occurred_at: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

/// A batch as the REST API receives it.
#[derive(Deserialize)]
#[expect(dead_code, reason = "parsed like Playhead's DTO; the baseline stores nothing")]
struct BatchIn {
    #[serde(default)]
    sent_at: Option<String>,
    #[serde(default)]
    backfill: bool,
    events: Vec<EventIn>,
}

/// One result, shaped like Playhead's.
#[derive(Serialize)]
struct ResultOut<'a> {
    event_id: &'a str,
    status: &'static str,
}

/// The answer, shaped like Playhead's.
#[derive(Serialize)]
struct BatchOut<'a> {
    results: Vec<ResultOut<'a>>,
    accepted: usize,
    duplicate: usize,
    held: usize,
    rejected: usize,
    paused: usize,
}

/// Parse and answer 202 (or 400 for a body that does not parse), storing nothing.
async fn parse_and_202(body: axum::body::Bytes) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match serde_json::from_slice::<BatchIn>(&body) {
        Ok(batch) => {
            let out = BatchOut {
                results: batch
                    .events
                    .iter()
                    .map(|e| ResultOut { event_id: &e.event_id, status: "accepted" })
                    .collect(),
                accepted: batch.events.len(),
                duplicate: 0,
                held: 0,
                rejected: 0,
                paused: 0,
            };
            let bytes = serde_json::to_vec(&out).unwrap_or_default();
            (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The bare axum server: `GET /row` (the same bytes as a cached Continue watching row) and
/// `POST /v1/profiles/{id}/events` (parse and 202).
pub async fn http(listen: std::net::SocketAddr, row: std::path::PathBuf) -> anyhow::Result<()> {
    let bytes = axum::body::Bytes::from(std::fs::read(&row)?);
    let app = axum::Router::new()
        .route(
            "/row",
            axum::routing::get(move || {
                let b = bytes.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], b) }
            }),
        )
        .route("/v1/profiles/{id}/events", axum::routing::post(parse_and_202));
    let l = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(l, app).await?;
    Ok(())
}

/// What a baseline child process prints: its rate.
pub fn report(per_s: f64) {
    println!("{}", serde_json::json!({"per_s": per_s}));
}

/// Read a child's report.
pub fn parse_report(stdout: &[u8]) -> anyhow::Result<f64> {
    let v: Value = serde_json::from_slice(stdout.trim_ascii())
        .map_err(|e| anyhow::anyhow!("bad report {:?}: {e}", String::from_utf8_lossy(stdout)))?;
    v["per_s"].as_f64().ok_or_else(|| anyhow::anyhow!("no per_s in {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_parse_baseline_answers_like_playhead_and_refuses_what_does_not_parse() {
        let body = r#"{"events":[{"event_id":"0192f0c4-0000-4000-8000-000000000001","title_id":"bench-1",
            "kind":"heartbeat","position_ms":30000,"occurred_at":"2026-12-04T20:00:00Z","device_id":"tv"}]}"#;
        let r = parse_and_202(axum::body::Bytes::from(body)).await;
        assert_eq!(r.status(), axum::http::StatusCode::ACCEPTED);
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.expect("body");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["accepted"], 1);
        assert_eq!(v["results"][0]["status"], "accepted");
        let bad = parse_and_202(axum::body::Bytes::from(r#"{"events":[{"event_id":1}]}"#)).await;
        assert_eq!(bad.status(), axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn rows_are_the_bulk_batches_with_unique_ids() {
        let batches = rows(1000);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![500, 500]);
        let ids: std::collections::HashSet<&str> =
            batches.iter().flatten().map(|r| r.event_id.as_str()).collect();
        assert_eq!(ids.len(), 1000);
        assert_ne!(batches[0][0].profile_id, batches[1][0].profile_id, "batch b goes to profile b % 100");
    }

    #[test]
    fn raw_sqlite_stores_every_row() {
        let batches = rows(1000);
        assert!(sqlite(&batches).expect("stored") > 0.0);
        // A duplicate event id is refused by the primary key, as in the event log.
        let dup = vec![vec![batches[0][0].clone(), batches[0][0].clone()]];
        assert!(sqlite(&dup).is_err());
    }
}
