//! `playhead-bench`: speed goals as measured ratios to same-run baselines (docs/benchmarks.md).
//!
//! - `ingest`: events accepted-to-applied through REST batches of 500 from concurrent clients,
//!   against the same rows inserted raw into SQLite with the same settings in 500-row transactions.
//! - With `PLAYHEAD_DATABASE_URL` (and `PLAYHEAD_REDIS_URL`, `PLAYHEAD_NATS_URL`) in the
//!   environment, `ingest` and `read-seed` run Playhead in scale-out mode (`bench/scale-out.sh`).
//! - `read-seed` / `read-baseline`: set up a profile with a 20-item Continue watching row, and serve
//!   the same JSON from a bare axum handler; `bench/read.sh` drives both with wrk.
//!
//! - `ingest-grpc`: the same events through gRPC `StreamEvents` (one stream per client, every
//!   event its own message) against REST batches of 500 from the same number of clients, each on
//!   a fresh server in the same run.
//!
//! - `relay`: scale-out with NATS: outbox rows relayed to JetStream (and applied by the consumer
//!   running beside it), against the same payloads published raw to a JetStream stream of the
//!   same configuration, 500 in flight at a time.
//!
//! - `feed`: the followers' feed fan-out crossover: write cost of one activity (push, pull,
//!   hybrid) by follower count, and feed read latency by followed count (`feed.rs`).
//!
//! - `all`: every pair of issue 12 against its baseline at the physical limit, interleaved, N
//!   runs, pinned cores, rewriting docs/benchmarks.md (`all.rs`, baselines in `limits.rs`,
//!   deployments in `harness.rs`; decision 0110). `bench/run-all` builds and runs it.
//! - `soak`: mixed traffic (writes:reads 9:1) for a set time, RSS and errors per interval
//!   (`soak.rs`); a 60-second version runs in `scripts/test`.
//!
//! Benchmarks are not tests: nothing here asserts a speed.

mod all;
mod feed;
mod harness;
mod limits;
mod soak;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use playhead::{Settings, open};
use playhead_api_grpc::codec::ProtoCodec;
use playhead_api_grpc::pb;
use playhead_app::accounts::NewProfile;
use playhead_core::Timestamp;
use playhead_core::auth::{Scope, Scopes};
use serde_json::{Value, json};
use sqlx::Connection;

#[derive(Parser)]
#[command(about = "Playhead benchmarks (ratios to same-run baselines)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Ingest throughput: REST batches of 500 vs raw SQLite 500-row transactions.
    Ingest {
        /// Events per run.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Runs (median and spread are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The feed's fan-out crossover: push / pull / hybrid write cost by followers, read latency
    /// by followed profiles (docs/benchmarks.md, decision 0061).
    Feed {
        /// sqlite (a temp file) or postgres (a throwaway schema on --database-url).
        #[arg(long, value_enum, default_value = "sqlite")]
        backend: feed::FeedBackend,
        /// Follower counts of the author (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "10,1000,100000,1000000")]
        followers: Vec<u64>,
        /// Followed counts of the reader (comma separated).
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000,5000")]
        followees: Vec<u64>,
        /// Feed reads per configuration.
        #[arg(long, default_value_t = 200)]
        reads: usize,
        /// Inbox rows per fan-out step.
        #[arg(long, default_value_t = 1000)]
        step_rows: u32,
        /// The hybrid's threshold.
        #[arg(long, default_value_t = 10_000)]
        threshold: u64,
        /// PostgreSQL (with --backend postgres).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database_url: String,
    },
    /// Ingest throughput: gRPC StreamEvents vs REST batches of 500 (same events, same clients).
    IngestGrpc {
        /// Events per run.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        /// Concurrent clients (HTTP connections or gRPC streams).
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Runs (median and spread are reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Relay throughput: outbox -> relay -> JetStream (scale-out with NATS) vs raw JetStream
    /// publishing of the same payloads. Needs PostgreSQL and NATS with JetStream.
    Relay {
        /// Events per run.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
        /// Runs (median and spread are reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// PostgreSQL (a throwaway schema is created and dropped).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database_url: String,
        /// NATS with JetStream (throwaway streams are created and deleted).
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
    /// Create a data dir with one profile whose Continue watching row has 20+ items; print JSON
    /// with the profile id and a token.
    ReadSeed {
        /// The data dir to fill.
        #[arg(long)]
        data_dir: std::path::PathBuf,
    },
    /// Every pair against its baseline at the limit (decision 0110); see docs/benchmarks.md.
    All(all::AllArgs),
    /// Mixed traffic for a set time: throughput, p50/p99, RSS and errors per interval.
    Soak(soak::SoakArgs),
    /// One baseline at the limit, printing `{"per_s": ...}` (run pinned by `all`).
    Limit {
        #[command(subcommand)]
        which: LimitCmd,
    },
    /// The bulk ingest's load generator (run pinned by `all`): REST batches of 500 to a running
    /// server, then wait until all are applied; prints `{"per_s": events accepted to applied}`.
    BulkClient {
        /// The API, `http://host:port`.
        #[arg(long)]
        base: String,
        /// The operator listener (`/healthz`).
        #[arg(long)]
        ops: String,
        /// A `profiles:any` API key.
        #[arg(long)]
        token: String,
        /// Profile ids (comma separated); batch `b` goes to profile `b % count`.
        #[arg(long, value_delimiter = ',')]
        profiles: Vec<String>,
        /// Events (batches of 500).
        #[arg(long)]
        events: usize,
        /// Concurrent HTTP clients.
        #[arg(long)]
        clients: usize,
    },
    /// Serve a fixed JSON body on GET /row (the bare-handler baseline).
    ReadBaseline {
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// File with the JSON body.
        #[arg(long)]
        body: std::path::PathBuf,
    },
}

/// A baseline at the limit (limits.rs).
#[derive(Subcommand)]
enum LimitCmd {
    /// Raw rusqlite prepared INSERTs, WAL + synchronous=FULL, 500 rows per transaction.
    Sqlite {
        /// Rows.
        #[arg(long)]
        events: usize,
    },
    /// The same through sqlx (the old baseline, an extra row).
    SqlxSqlite {
        /// Rows.
        #[arg(long)]
        events: usize,
    },
    /// PostgreSQL, one prepared 500-row INSERT per transaction.
    PgInsert {
        /// Rows.
        #[arg(long)]
        events: usize,
        /// Connections.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// PostgreSQL (a throwaway schema).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database_url: String,
    },
    /// PostgreSQL, one 500-row COPY per transaction.
    PgCopy {
        /// Rows.
        #[arg(long)]
        events: usize,
        /// Connections.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// PostgreSQL (a throwaway schema).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        database_url: String,
    },
    /// JetStream async publish of the relay's messages, 500 in flight.
    Jetstream {
        /// Messages.
        #[arg(long)]
        events: usize,
        /// NATS with JetStream (a throwaway stream).
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
    /// Bare axum: GET /row (fixed bytes) and POST /v1/profiles/{id}/events (parse and 202).
    Http {
        /// Listen address.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The bytes GET /row answers.
        #[arg(long)]
        row: std::path::PathBuf,
    },
}

const BATCH: usize = 500;
const PROFILES: usize = 100;

use harness::titles;

/// Backfilled events start 20 days ago (within the backfill window, outside live admission).
fn base_ms() -> i64 {
    playhead_app::clock::SystemClock.now_ms() - 20 * 86_400_000
}

/// One batch: 5 titles x 100 heartbeats 30 s apart, for one profile.
fn batch_events(b: usize, base_ms: i64) -> Vec<Value> {
    let mut out = Vec::with_capacity(BATCH);
    for t in 0..5 {
        let title = format!("bench-{}", (b / PROFILES * 5 + t) % 400);
        let start = base_ms + (b as i64 % 50) * 3_600_000 + t as i64 * 4_000_000;
        for i in 0..100i64 {
            out.push(json!({
                "event_id": uuid::Uuid::new_v4().to_string(), "title_id": title, "kind": "heartbeat",
                "position_ms": i * 30_000, "occurred_at": Timestamp(start + i * 30_000).to_rfc3339(), "device_id": "tv"
            }));
        }
    }
    out
}

/// Playhead: accepted-to-applied rate through REST.
/// How the load generator sends events.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    /// `POST /v1/profiles/{id}/events`, 500 per request.
    Rest,
    /// `PlaybackService/StreamEvents`, one stream per client, one message per event.
    GrpcStream,
}

async fn playhead_ingest(bodies: Arc<Vec<(usize, Vec<Value>)>>, clients: usize) -> anyhow::Result<f64> {
    playhead_ingest_over(bodies, clients, Transport::Rest).await
}

/// One event as a protobuf message (prepared before the clock starts, like the REST bodies).
fn pb_event(profile: &str, e: &Value) -> anyhow::Result<pb::StreamEventsRequest> {
    let at = Timestamp::parse_rfc3339(e["occurred_at"].as_str().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pb::StreamEventsRequest {
        profile_id: profile.to_owned(),
        event: Some(pb::PlaybackEvent {
            event_id: e["event_id"].as_str().unwrap_or_default().to_owned(),
            title_id: e["title_id"].as_str().unwrap_or_default().to_owned(),
            kind: pb::EventKind::Heartbeat as i32,
            position_ms: e["position_ms"].as_i64().unwrap_or_default(),
            duration_ms: None,
            occurred_at: Some(prost_types::Timestamp {
                seconds: at.0.div_euclid(1000),
                nanos: i32::try_from(at.0.rem_euclid(1000) * 1_000_000).unwrap_or(0),
            }),
            device_id: Some("tv".into()),
            session_id: None,
        }),
    })
}

/// Requests encoded before the clock starts (as the REST bodies are serialised before it): the
/// load generator's protobuf work is not Playhead's.
#[derive(Clone, Copy, Default)]
struct PreEncoded;

/// Writes a pre-encoded message as it is.
struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for PreEncoded {
    type Encode = bytes::Bytes;
    type Decode = pb::StreamEventsResponse;
    type Encoder = RawEncoder;
    type Decoder = <ProtoCodec<(), pb::StreamEventsResponse> as tonic::codec::Codec>::Decoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        tonic::codec::Codec::decoder(&mut ProtoCodec::<(), pb::StreamEventsResponse>::default())
    }
}

/// One client's stream: sends its share of the batches' events and checks every result.
async fn grpc_client(
    base: String,
    token: String,
    batches: Arc<Vec<Vec<bytes::Bytes>>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(base)?.connect().await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1024);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let sender = tokio::spawn(async move {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(batch) = batches.get(i) else { return };
            for m in batch {
                if tx.send(m.clone()).await.is_err() {
                    return;
                }
            }
        }
    });
    grpc.ready().await?;
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/playhead.v1.PlaybackService/StreamEvents");
    let mut results = grpc.streaming(req, path, PreEncoded).await?.into_inner();
    while let Some(r) = results.message().await? {
        let status = r.result.map(|r| r.status).unwrap_or_default();
        anyhow::ensure!(status == pb::EventStatus::Accepted as i32, "an event was not accepted: {status}");
    }
    sender.await?;
    Ok(())
}

async fn playhead_ingest_over(
    bodies: Arc<Vec<(usize, Vec<Value>)>>,
    clients: usize,
    transport: Transport,
) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut settings = bench_settings(dir.path().to_path_buf())?;
    // Scale-out mode: a fresh schema per run (dropped afterwards), like a fresh data dir.
    let schema = match settings.database_url.as_ref().map(|u| u.expose().to_owned()) {
        Some(url) => {
            let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
            let mut c = sqlx::PgConnection::connect(&url).await?;
            sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut c).await?;
            settings.database_schema = Some(name.clone());
            Some((url, name))
        }
        None => None,
    };
    // With NATS: a stream of this run's own (deleted afterwards), so runs neither see each
    // other's messages nor leave a stream reserving `max_bytes` of the server's storage.
    let stream = settings.nats_url.as_ref().map(|u| u.expose().to_owned()).map(|url| {
        settings.nats.stream = format!("BENCH{}", uuid::Uuid::new_v4().simple());
        settings.nats.max_bytes = 1024 * 1024 * 1024;
        (url, settings.nats.stream.clone())
    });
    // The bench measures the ingest pipeline, not the limiter (which still runs on every request).
    settings.rate_limits.ingest.limit = 1_000_000_000;
    let rt = open(settings.clone()).await?;
    let app = rt.app.clone();
    app.upsert_titles_unchecked(&titles(400)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // A platform backend relaying players' events: many households, one service API key.
    let mut profiles = Vec::new();
    for i in 0..PROFILES {
        let account =
            app.create_account(&format!("bench{i}@example.com")).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = app
            .insert_profile(account.id, NewProfile { name: format!("P{i}"), ..Default::default() })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        profiles.push(p.id);
    }
    let (secret, record) = playhead_auth::ApiKey::generate(
        "bench",
        Scopes::empty().with(Scope::HistoryWrite).with(Scope::ProfilesAny),
        app.clock().now(),
    );
    app.ports().api_keys.create_api_key(&record).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = secret.expose().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(playhead::launch(rt, listener, rx));

    // Pre-serialise the bodies: the load generator's JSON work is not Playhead's.
    let prepared: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        bodies
            .iter()
            .map(|(b, evs)| {
                let url = format!("{base}/v1/profiles/{}/events", profiles[b % PROFILES]);
                (url, serde_json::to_vec(&json!({"events": evs})).unwrap_or_default())
            })
            .collect(),
    );
    let grpc_batches: Arc<Vec<Vec<bytes::Bytes>>> = Arc::new(if transport == Transport::GrpcStream {
        bodies
            .iter()
            .map(|(b, evs)| {
                let profile = profiles[b % PROFILES].to_string();
                evs.iter()
                    .map(|e| {
                        pb_event(&profile, e).map(|m| bytes::Bytes::from(prost::Message::encode_to_vec(&m)))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        Vec::new()
    });
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        if transport == Transport::GrpcStream {
            tasks.push(tokio::spawn(grpc_client(
                base.clone(),
                token.clone(),
                grpc_batches.clone(),
                next.clone(),
            )));
            continue;
        }
        tasks.push(tokio::spawn(post_batches(prepared.clone(), next.clone(), http.clone(), token.clone())));
    }
    for t in tasks {
        t.await??;
    }
    let accepted_at = started.elapsed();
    while app.ports().log.backlog().await.map_err(|e| anyhow::anyhow!("{e}"))? > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let applied_at = started.elapsed();
    let n = bodies.len() * BATCH;
    eprintln!(
        "  playhead ({transport:?}): {n} events accepted in {:.2} s, applied in {:.2} s",
        accepted_at.as_secs_f64(),
        applied_at.as_secs_f64()
    );
    let _ = stop.send(true);
    server.await??;
    if let Some((url, name)) = schema {
        let mut c = sqlx::PgConnection::connect(&url).await?;
        sqlx::query(&format!("DROP SCHEMA {name} CASCADE")).execute(&mut c).await?;
    }
    if let Some((url, name)) = stream {
        let js = async_nats::jetstream::new(async_nats::connect(&url).await?);
        let _ = js.delete_stream(&name).await;
        let _ = js.delete_stream(format!("{name}_DLQ")).await;
    }
    Ok(n as f64 / applied_at.as_secs_f64())
}

/// One REST client: posts the next prepared batch until none is left; every event must be accepted.
async fn post_batches(
    prepared: Arc<Vec<(String, Vec<u8>)>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
    token: String,
) -> anyhow::Result<()> {
    loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some((url, body)) = prepared.get(i) else { return Ok(()) };
        let r = http
            .post(url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        // A 503 (backlog full) would make the run meaningless: the default bound is far
        // above what this bench queues, so treat it as a failed run.
        anyhow::ensure!(r.status().as_u16() == 202, "status {}", r.status());
        let v: Value = r.json().await?;
        anyhow::ensure!(v["accepted"].as_u64() == Some(BATCH as u64), "not all accepted: {v}");
    }
}

/// The bulk client of `all`: the same batches as `ingest`, to a server in another process; the
/// clock stops when `/healthz` reports nothing left to apply.
async fn bulk_client(
    base: &str,
    ops: &str,
    token: String,
    profiles: &[String],
    events: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    anyhow::ensure!(!profiles.is_empty(), "--profiles is empty");
    let base_ms = base_ms();
    let prepared: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        (0..events.div_ceil(BATCH))
            .map(|b| {
                let url = format!("{base}/v1/profiles/{}/events", profiles[b % profiles.len()]);
                (url, serde_json::to_vec(&json!({"events": batch_events(b, base_ms)})).unwrap_or_default())
            })
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(post_batches(prepared.clone(), next.clone(), http.clone(), token.clone())))
        .collect();
    for t in tasks {
        t.await??;
    }
    let accepted = started.elapsed();
    harness::drained(&http, ops).await?;
    let applied = started.elapsed();
    let n = prepared.len() * BATCH;
    eprintln!(
        "  playhead: {n} events accepted in {:.2} s, applied in {:.2} s",
        accepted.as_secs_f64(),
        applied.as_secs_f64()
    );
    Ok(n as f64 / applied.as_secs_f64())
}

/// Run one baseline and print its rate.
async fn limit(which: LimitCmd) -> anyhow::Result<()> {
    let rate = match which {
        LimitCmd::Sqlite { events } => limits::sqlite(&limits::rows(events))?,
        LimitCmd::SqlxSqlite { events } => limits::sqlx_sqlite(&limits::rows(events)).await?,
        LimitCmd::PgInsert { events, clients, database_url } => {
            limits::postgres(&database_url, limits::rows(events), clients, limits::PgWrite::Insert).await?
        }
        LimitCmd::PgCopy { events, clients, database_url } => {
            limits::postgres(&database_url, limits::rows(events), clients, limits::PgWrite::Copy).await?
        }
        LimitCmd::Jetstream { events, nats_url } => relay_raw(events, &nats_url).await?,
        LimitCmd::Http { listen, row } => return limits::http(listen, row).await,
    };
    limits::report(rate);
    Ok(())
}

/// Median, min and max of ratios, to two decimals (not rounded to integers like rates).
/// gRPC StreamEvents against REST batches of 500: same events, same clients, fresh servers.
async fn ingest_grpc(events: usize, clients: usize, runs: usize) -> anyhow::Result<()> {
    let batches = events.div_ceil(BATCH);
    let base_ms = base_ms();
    let (mut rest, mut grpc, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let bodies: Arc<Vec<(usize, Vec<Value>)>> =
            Arc::new((0..batches).map(|b| (b, batch_events(b, base_ms))).collect());
        // Alternate the order so neither side always runs on a warmer (or more loaded) machine.
        let (r, g) = if run % 2 == 1 {
            let r = playhead_ingest_over(bodies.clone(), clients, Transport::Rest).await?;
            (r, playhead_ingest_over(bodies, clients, Transport::GrpcStream).await?)
        } else {
            let g = playhead_ingest_over(bodies.clone(), clients, Transport::GrpcStream).await?;
            (playhead_ingest_over(bodies, clients, Transport::Rest).await?, g)
        };
        eprintln!("run {run}: REST {r:.0} events/s, gRPC stream {g:.0} events/s, ratio {:.2}", g / r);
        rest.push(r);
        grpc.push(g);
        ratio.push(g / r);
    }
    println!(
        "{}",
        json!({"bench": "ingest-grpc", "events": batches * BATCH, "clients": clients, "rest_batch": BATCH,
               "rest_events_per_s": summary(&mut rest), "grpc_stream_events_per_s": summary(&mut grpc),
               "ratio_grpc_to_rest": ratio_summary(&mut ratio)})
    );
    Ok(())
}

fn ratio_summary(xs: &mut [f64]) -> Value {
    xs.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 100.0).round() / 100.0;
    json!({"median": r(xs[xs.len() / 2]), "min": r(xs[0]), "max": r(xs[xs.len() - 1]), "runs": xs.len()})
}

fn summary(xs: &mut [f64]) -> Value {
    xs.sort_by(f64::total_cmp);
    let median = xs[xs.len() / 2];
    json!({"median": median.round(), "min": xs[0].round(), "max": xs[xs.len() - 1].round(), "runs": xs.len()})
}

async fn ingest(events: usize, clients: usize, runs: usize) -> anyhow::Result<()> {
    let batches = events.div_ceil(BATCH);
    let base_ms = base_ms();
    let (mut raw, mut ph, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let bodies: Vec<(usize, Vec<Value>)> = (0..batches).map(|b| (b, batch_events(b, base_ms))).collect();
        let r = limits::sqlite(&limits::rows(events))?;
        let p = playhead_ingest(Arc::new(bodies), clients).await?;
        eprintln!("run {run}: raw rusqlite {r:.0} rows/s, playhead {p:.0} events/s, ratio {:.2}", p / r);
        raw.push(r);
        ph.push(p);
        ratio.push(p / r);
    }
    println!(
        "{}",
        json!({"bench": "ingest", "events": batches * BATCH, "clients": clients, "batch": BATCH,
               "raw_rusqlite_rows_per_s": summary(&mut raw), "playhead_events_per_s": summary(&mut ph),
                              "ratio": ratio_summary(&mut ratio)})
    );
    Ok(())
}

pub(crate) trait NowMs {
    fn now_ms(&self) -> i64;
}
impl NowMs for playhead_app::clock::SystemClock {
    fn now_ms(&self) -> i64 {
        use playhead_core::ports::Clock;
        self.now().0
    }
}

/// Scale-out with NATS: rows already in the outbox, then the pipeline started; returns (relayed
/// events/s, applied events/s). The consumer applies beside the relay, as in production.
async fn relay_playhead(events: usize, database_url: &str, nats_url: &str) -> anyhow::Result<(f64, f64)> {
    use playhead_core::event::{EventKind, PlaybackEvent};
    use playhead_core::ports::LogEntry;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let schema = format!("bench_{tag}");
    let mut admin = sqlx::PgConnection::connect(database_url).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await?;
    let dir = tempfile::tempdir()?;
    let mut settings =
        Settings { data_dir: dir.path().to_path_buf(), metrics_listen: None, ..Settings::default() };
    settings.database_url = Some(database_url.into());
    settings.database_schema = Some(schema.clone());
    settings.nats_url = Some(nats_url.into());
    settings.nats.stream = format!("BENCH_{tag}");
    let stream = settings.nats.stream.clone();
    let rt = open(settings).await?;
    let app = rt.app.clone();
    app.upsert_titles_unchecked(&titles(400)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut profiles = Vec::new();
    for i in 0..PROFILES {
        let account =
            app.create_account(&format!("relay{i}@example.com")).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = app
            .insert_profile(account.id, NewProfile { name: format!("P{i}"), ..Default::default() })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        profiles.push(p.id);
    }
    let base = playhead_app::clock::SystemClock.now_ms() - 10 * 86_400_000;
    let entries: Vec<LogEntry> = (0..events)
        .map(|i| {
            let (p, k) = (i % PROFILES, (i / PROFILES) as i64);
            let at = Timestamp(base + k * 30_000);
            LogEntry {
                event: PlaybackEvent {
                    event_id: playhead_core::EventId(uuid::Uuid::new_v4()),
                    profile_id: profiles[p],
                    title_id: playhead_core::TitleId::parse(&format!("bench-{p}")).expect("id"),
                    kind: EventKind::Heartbeat,
                    position_ms: (k * 30_000) % 7_200_000,
                    duration_ms: None,
                    occurred_at: at,
                    occurred_at_raw: at,
                    received_at: at,
                    device_id: None,
                    session_id: None,
                },
                hold: false,
                trace: None,
            }
        })
        .collect();
    for chunk in entries.chunks(BATCH) {
        app.ports().log.append(chunk, u64::MAX).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let outbox = rt.store.outbox().context("the relay bench needs PostgreSQL")?;
    let pipeline = rt.pipeline.clone().context("the relay bench needs nats_url")?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = pipeline.spawn(rx);
    let mut relayed_at = None;
    let applied_at = loop {
        let d = outbox.depth().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if d.unpublished == 0 && relayed_at.is_none() {
            relayed_at = Some(started.elapsed());
        }
        if d.unapplied == 0 {
            break started.elapsed();
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "not applied within 10 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let relayed_at = relayed_at.unwrap_or(applied_at);
    let _ = stop.send(true);
    task.await?;
    rt.store.close().await;
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await?);
    let _ = js.delete_stream(&stream).await;
    let _ = js.delete_stream(format!("{stream}_DLQ")).await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut admin).await?;
    eprintln!(
        "  playhead: {events} events relayed in {:.2} s, applied in {:.2} s",
        relayed_at.as_secs_f64(),
        applied_at.as_secs_f64()
    );
    Ok((events as f64 / relayed_at.as_secs_f64(), events as f64 / applied_at.as_secs_f64()))
}

/// Baseline: the same kind of payloads published straight to a stream configured like the
/// pipeline's (file storage, discard=new, duplicate window, Nats-Msg-Id), 500 in flight at once.
async fn relay_raw(events: usize, nats_url: &str) -> anyhow::Result<f64> {
    use async_nats::jetstream::stream;
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await?);
    let name = format!("BENCH_RAW_{}", uuid::Uuid::new_v4().simple());
    let defaults = Settings::default().nats;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.events")],
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        max_bytes: defaults.max_bytes,
        max_messages: defaults.max_msgs,
        max_age: Duration::from_secs(defaults.max_age_secs),
        duplicate_window: Duration::from_secs(defaults.duplicate_window_secs),
        ..Default::default()
    })
    .await?;
    let base = Timestamp(playhead_app::clock::SystemClock.now_ms()).to_rfc3339();
    let payloads: Vec<(String, Vec<u8>)> = (0..events)
        .map(|i| {
            let id = uuid::Uuid::new_v4();
            let body = json!({"v": 1, "seq": i, "event": {
                "event_id": id, "profile_id": uuid::Uuid::new_v4(), "title_id": format!("bench-{}", i % 400),
                "kind": "heartbeat", "position_ms": 30_000, "duration_ms": null, "occurred_at": base,
                "occurred_at_raw": base, "received_at": base, "device_id": null, "session_id": null}});
            (format!("{id}:{i}"), serde_json::to_vec(&body).unwrap_or_default())
        })
        .collect();
    let subject = format!("{name}.events");
    let started = Instant::now();
    for chunk in payloads.chunks(BATCH) {
        let mut acks = Vec::with_capacity(chunk.len());
        for (id, body) in chunk {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", id.as_str());
            acks.push(js.publish_with_headers(subject.clone(), h, body.clone().into()).await?);
        }
        for r in futures::future::join_all(acks.into_iter().map(IntoFuture::into_future)).await {
            r?;
        }
    }
    let elapsed = started.elapsed();
    let _ = js.delete_stream(&name).await;
    Ok(events as f64 / elapsed.as_secs_f64())
}

async fn relay(events: usize, runs: usize, database_url: &str, nats_url: &str) -> anyhow::Result<()> {
    let (mut raw, mut relayed, mut applied, mut ratio) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let r = relay_raw(events, nats_url).await?;
        let (p, a) = relay_playhead(events, database_url, nats_url).await?;
        eprintln!(
            "run {run}: raw jetstream {r:.0} msgs/s, relay {p:.0} events/s (applied {a:.0}/s), ratio {:.2}",
            p / r
        );
        raw.push(r);
        relayed.push(p);
        applied.push(a);
        ratio.push(p / r);
    }
    println!(
        "{}",
        json!({"bench": "relay", "events": events, "in_flight": BATCH,
               "raw_jetstream_msgs_per_s": summary(&mut raw), "relay_events_per_s": summary(&mut relayed),
               "applied_events_per_s": summary(&mut applied), "ratio": ratio_summary(&mut ratio)})
    );
    Ok(())
}

/// Settings as the binary reads them from the environment (so `PLAYHEAD_DATABASE_URL`,
/// `PLAYHEAD_REDIS_URL`... select scale-out mode for a run), with this run's data dir.
fn bench_settings(data_dir: std::path::PathBuf) -> anyhow::Result<Settings> {
    Ok(Settings { data_dir, metrics_listen: None, ..Settings::load(None)? })
}

async fn read_seed(data_dir: std::path::PathBuf) -> anyhow::Result<()> {
    let settings = bench_settings(data_dir)?;
    let rt = open(settings.clone()).await?;
    let app = rt.app.clone();
    app.upsert_titles_unchecked(&titles(400)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = app.create_account("reader@example.com").await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let profile = app
        .insert_profile(account.id, NewProfile { name: "R".into(), ..Default::default() })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let now = app.clock().now().0;
    // 40 titles in progress (the row shows 20).
    harness::in_progress(&app, profile.id, 40, now).await?;
    let issuer = playhead_auth::TokenIssuer::new(
        rt.identity.keys(),
        settings.issuer.clone(),
        settings.audience.clone(),
        86_400,
    );
    let scopes: Scopes = Scope::VIEWER.into_iter().collect();
    let token = issuer.issue(&issuer.account_claims(account.id, "bench", scopes, "sid", now / 1000))?;
    println!("{}", json!({"profile_id": profile.id.to_string(), "token": token}));
    Ok(())
}

async fn read_baseline(listen: std::net::SocketAddr, body: std::path::PathBuf) -> anyhow::Result<()> {
    let bytes =
        axum::body::Bytes::from(std::fs::read(&body).with_context(|| format!("reading {}", body.display()))?);
    // A bare handler: no auth, no storage, the same bytes with the same content type.
    let app = axum::Router::new().route(
        "/row",
        axum::routing::get(move || {
            let b = bytes.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], b) }
        }),
    );
    let l = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(l, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=playhead_app=debug shows per-append and per-apply timings on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .json()
            .init();
    }
    match Cli::parse().cmd {
        Cmd::Ingest { events, clients, runs } => ingest(events, clients, runs).await,
        Cmd::IngestGrpc { events, clients, runs } => ingest_grpc(events, clients, runs).await,
        Cmd::Relay { events, runs, database_url, nats_url } => {
            relay(events, runs, &database_url, &nats_url).await
        }
        Cmd::ReadSeed { data_dir } => read_seed(data_dir).await,
        Cmd::Feed { backend, followers, followees, reads, step_rows, threshold, database_url } => {
            feed::run(feed::FeedBench {
                backend,
                followers,
                followees,
                reads,
                step_rows,
                threshold,
                database_url,
            })
            .await
        }
        Cmd::ReadBaseline { listen, body } => read_baseline(listen, body).await,
        Cmd::All(a) => all::run(a).await,
        Cmd::Soak(a) => {
            let report = soak::run(a).await?;
            anyhow::ensure!(report.errors == 0, "the soak had {} errors", report.errors);
            Ok(())
        }
        Cmd::Limit { which } => limit(which).await,
        Cmd::BulkClient { base, ops, token, profiles, events, clients } => {
            let rate = bulk_client(&base, &ops, token, &profiles, events, clients).await?;
            limits::report(rate);
            Ok(())
        }
    }
}
