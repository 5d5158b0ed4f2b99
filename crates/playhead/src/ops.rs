//! What an operator sees of a running server: the metrics catalogue (every metric the process
//! exports, with its meaning), the sampler that keeps gauges fresh whether or not traffic flows,
//! and the `/healthz` document on the metrics listener.
//!
//! The rule here: a metric exists in [`CATALOGUE`] before any code records it. The catalogue is
//! what docs/operations.md, the alert rules and the Grafana dashboard are checked against
//! (`tests/it/ops.rs`), so a renamed metric breaks a test rather than an alert.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::Store;

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (rate() it).
    Counter,
    /// A current value.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

/// Where a metric is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Both deployment modes.
    Both,
    /// Scale-out with `nats_url` only.
    Nats,
    /// With the recommender (the `recs` feature), once a model is loaded.
    Recs,
}

/// One exported metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The Prometheus name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// Where it is exported.
    pub mode: Mode,
    /// The HELP text.
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    mode: Mode,
    help: &'static str,
) -> Metric {
    Metric { name, kind, labels, mode, help }
}

use Kind::{Counter, Gauge, Histogram};
use Mode::{Both, Nats, Recs};

/// Every metric the server exports (docs/operations.md, "Metrics catalogue", explains each).
pub const CATALOGUE: &[Metric] = &[
    // RED per route template.
    m(
        "http_requests_total",
        Counter,
        &["method", "route", "status"],
        Both,
        "HTTP requests answered, by route template and status.",
    ),
    m(
        "http_request_duration_seconds",
        Histogram,
        &["method", "route", "status"],
        Both,
        "HTTP request latency by route template.",
    ),
    // RED per gRPC method (same listener; `status` is the gRPC code, 0 = OK).
    m(
        "grpc_server_handled_total",
        Counter,
        &["method", "status"],
        Both,
        "gRPC calls answered, by method and status code.",
    ),
    m(
        "grpc_server_handling_seconds",
        Histogram,
        &["method", "status"],
        Both,
        "gRPC call latency by method (to the response head; a stream's whole life is not timed).",
    ),
    // Ingestion and the event pipeline (both modes).
    m(
        "playhead_events_total",
        Counter,
        &["status"],
        Both,
        "Events received, by outcome (accepted, duplicate, held, rejected, paused, too_many_streams, stream_stopped).",
    ),
    m("playhead_append_seconds", Histogram, &[], Both, "Time to commit an accepted batch to the event log."),
    m(
        "playhead_ingest_backpressure_total",
        Counter,
        &[],
        Both,
        "Batches refused with 503 because the backlog was full.",
    ),
    m("playhead_event_backlog", Gauge, &[], Both, "Events accepted and not applied yet."),
    m("playhead_pipeline_lag_seconds", Gauge, &[], Both, "Age of the oldest accepted-but-unapplied event."),
    m("playhead_events_applied_total", Counter, &[], Both, "Events applied to progress and history."),
    m(
        "playhead_apply_groups_total",
        Counter,
        &["path"],
        Both,
        "Viewing groups applied, by path: extended (the new events followed the session) or recomputed.",
    ),
    m(
        "playhead_progress_changes_total",
        Counter,
        &[],
        Both,
        "Resume-point changes announced to subscribers (GraphQL progressChanged).",
    ),
    m(
        "playhead_events_redelivered_total",
        Counter,
        &[],
        Both,
        "Deliveries of events already applied (no effect).",
    ),
    m(
        "playhead_events_dropped_total",
        Counter,
        &["reason"],
        Both,
        "Events dropped: held past held_ttl, or invalid at apply.",
    ),
    m("playhead_apply_batch_seconds", Histogram, &[], Both, "Time to apply one batch of events."),
    m("playhead_apply_failures_total", Counter, &[], Both, "Apply attempts that failed and will be retried."),
    m("playhead_held_events", Gauge, &[], Both, "Events waiting for their title to be imported."),
    m(
        "playhead_held_events_released_total",
        Counter,
        &[],
        Both,
        "Held events queued because their title arrived.",
    ),
    // Erasure sagas (issue 16).
    m("playhead_erasures_open", Gauge, &[], Both, "Erasure sagas not finished yet."),
    m(
        "playhead_erasures_failing",
        Gauge,
        &[],
        Both,
        "Erasure sagas with a step that failed 5 times or more (still retried).",
    ),
    m("playhead_erasure_steps_done_total", Counter, &[], Both, "Erasure saga steps completed."),
    m(
        "playhead_erasure_step_failures_total",
        Counter,
        &["step"],
        Both,
        "Erasure saga step attempts that failed and will be retried.",
    ),
    // The JetStream pipeline.
    m("playhead_outbox_unpublished", Gauge, &[], Nats, "Outbox rows not handed to NATS yet."),
    m("playhead_outbox_unapplied", Gauge, &[], Nats, "Outbox rows whose event is not applied yet."),
    m("playhead_outbox_dead", Gauge, &[], Nats, "Outbox rows parked by the dead-letter stream."),
    m("playhead_consumer_pending", Gauge, &[], Nats, "Messages the durable consumer has not delivered yet."),
    m("playhead_consumer_ack_pending", Gauge, &[], Nats, "Messages delivered and not acknowledged yet."),
    m("playhead_relay_published_total", Counter, &[], Nats, "Outbox rows published to NATS."),
    m(
        "playhead_relay_publish_errors_total",
        Counter,
        &[],
        Nats,
        "Publishes (or stream creations) NATS did not acknowledge.",
    ),
    m(
        "playhead_sweeper_republished_total",
        Counter,
        &[],
        Nats,
        "Rows published again after the sweeper's horizon.",
    ),
    m("playhead_consumer_naks_total", Counter, &[], Nats, "Messages negatively acknowledged for redelivery."),
    m(
        "playhead_consumer_foreign_total",
        Counter,
        &[],
        Nats,
        "Messages naming another event's outbox row (ignored).",
    ),
    m("playhead_dlq_messages", Gauge, &[], Nats, "Dead letters waiting for an operator."),
    m("playhead_dlq_dead_lettered_total", Counter, &[], Nats, "Messages moved to the dead-letter stream."),
    // Caches and limits.
    m(
        "playhead_cache_requests_total",
        Counter,
        &["cache", "result"],
        Both,
        "Row and profile cache lookups by result (hit, miss, unavailable).",
    ),
    m(
        "playhead_cache_invalidation_failures_total",
        Counter,
        &[],
        Both,
        "Writes whose shared-cache invalidation did not reach Redis.",
    ),
    m(
        "playhead_rate_limited_total",
        Counter,
        &["class"],
        Both,
        "Requests refused by a rate limit, by route class.",
    ),
    m(
        "playhead_ratelimit_fallback_total",
        Counter,
        &[],
        Both,
        "Rate-limit decisions taken per replica because Redis did not answer.",
    ),
    // Identity.
    m(
        "playhead_jwks_fetch_failures_total",
        Counter,
        &[],
        Both,
        "Failed fetches of an external issuer's keys.",
    ),
    m(
        "playhead_revocations_polled_timestamp_seconds",
        Gauge,
        &[],
        Both,
        "When the revoked-session list and token deny list were last read successfully.",
    ),
    // Retention.
    m("playhead_pruned_rows_total", Counter, &["table"], Both, "Rows deleted by the pruning job, by table."),
    m(
        "playhead_rolled_up_rows_total",
        Counter,
        &["table"],
        Both,
        "Rows the retention roll-up deleted after adding their plays to the monthly roll-ups, by table.",
    ),
    m("playhead_rolled_up_plays_total", Counter, &[], Both, "Plays added to the monthly roll-ups."),
    // Recommendations.
    m("playhead_recs_plays_counted_total", Counter, &[], Both, "Plays counted into trending and co-watch."),
    m(
        "playhead_recs_model_trained_timestamp_seconds",
        Gauge,
        &[],
        Recs,
        "When the served recommendation model was trained.",
    ),
    m(
        "playhead_recs_model_info",
        Gauge,
        &["version"],
        Recs,
        "The served recommendation model's version (value 1).",
    ),
    // The followers' feed.
    m(
        "playhead_feed_activities_total",
        Counter,
        &["kind"],
        Both,
        "Activities published, by kind (finished, started_series, finished_season, finished_series, loved).",
    ),
    m(
        "playhead_feed_publish_failures_total",
        Counter,
        &[],
        Both,
        "Activities (or feedback retractions) not published because a store read or write failed.",
    ),
    m("playhead_feed_fanout_rows_total", Counter, &[], Both, "Inbox rows written by the feed fan-out."),
    m(
        "playhead_feed_fanout_total",
        Counter,
        &["mode"],
        Both,
        "Activities whose fan-out finished, by mode (push: into inboxes; pull: merged at read time).",
    ),
    m("playhead_feed_fanout_backlog", Gauge, &[], Both, "Activities waiting for their fan-out."),
    // Health and resources.
    m("playhead_ready", Gauge, &[], Both, "1 while /readyz would answer 200."),
    m(
        "playhead_db_pool_connections",
        Gauge,
        &["pool", "state"],
        Both,
        "Database pool connections by state (in_use, idle).",
    ),
    m(
        "playhead_data_dir_free_bytes",
        Gauge,
        &[],
        Both,
        "Free bytes (for unprivileged users) on the data dir's filesystem.",
    ),
    m("playhead_data_dir_size_bytes", Gauge, &[], Both, "Size of the data dir's filesystem."),
    m("process_resident_memory_bytes", Gauge, &[], Both, "Resident memory."),
    m("process_cpu_seconds_total", Counter, &[], Both, "User and system CPU time."),
    m("process_open_fds", Gauge, &[], Both, "Open file descriptors."),
    m("process_max_fds", Gauge, &[], Both, "The open file descriptor limit."),
    m("process_start_time_seconds", Gauge, &[], Both, "Process start, seconds since the epoch."),
];

/// Latency buckets (seconds) of every histogram: 1 ms to 10 s. Real histograms rather than the
/// exporter's default summaries, so p99 can be computed across replicas.
pub const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How often the sampler refreshes gauges.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Lag past which `/healthz` calls the pipeline degraded (the alert waits longer).
pub const DEGRADED_LAG_MS: i64 = 60_000;

/// Counters whose label values are known in advance, created at zero like the label-free ones.
const KNOWN_LABELS: &[(&str, &str, &[&str])] = &[
    ("playhead_events_dropped_total", "reason", &["held_expired", "invalid_at_apply"]),
    ("playhead_rate_limited_total", "class", &["read", "write", "ingest", "import", "auth", "follow"]),
    (
        "playhead_erasure_step_failures_total",
        "step",
        &["stop_accepting", "drop_queued", "recs_signals", "delete_rows", "evict_cache", "audit"],
    ),
    ("playhead_feed_fanout_total", "mode", &["push", "pull"]),
    (
        "playhead_feed_activities_total",
        "kind",
        &["finished", "started_series", "finished_season", "finished_series", "loved"],
    ),
];

/// Register every metric's HELP text, and create the label-free counters and gauges at zero, so
/// a scrape lists them before anything happened (an alert on a missing series never fires).
pub fn describe() {
    for (name, label, values) in KNOWN_LABELS {
        for value in *values {
            metrics::counter!(*name, *label => *value).increment(0);
        }
    }
    for metric in CATALOGUE {
        match metric.kind {
            Counter => metrics::describe_counter!(metric.name, metric.help),
            Gauge => metrics::describe_gauge!(metric.name, metric.help),
            Histogram => metrics::describe_histogram!(metric.name, metric.help),
        }
        // Timestamps and NATS/recs values are set when known: a zero would read as "very old".
        if !metric.labels.is_empty() || metric.mode != Both || metric.name.ends_with("_timestamp_seconds") {
            continue;
        }
        match metric.kind {
            Counter => metrics::counter!(metric.name).increment(0),
            Gauge => metrics::gauge!(metric.name).increment(0.0),
            Histogram => {
                let _ = metrics::histogram!(metric.name);
            }
        }
    }
}

/// Refresh the gauges nobody else sets (pipeline lag, readiness, pools, disk, process) every
/// [`SAMPLE_EVERY`] until `stop`.
pub async fn sample(
    store: Store,
    app: playhead_app::App,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        // The lag query fails when the database is down; readiness says so.
        if let Err(e) = app.pipeline_lag().await {
            tracing::debug!(error = %e, "pipeline lag not sampled");
        }
        let ready = store.ping().await.is_ok() && !*stop.borrow();
        metrics::gauge!("playhead_ready").set(if ready { 1.0 } else { 0.0 });
        for (pool, open, idle) in store.pool_usage() {
            let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(open);
            metrics::gauge!("playhead_db_pool_connections", "pool" => pool, "state" => "idle")
                .set(f64::from(idle));
            metrics::gauge!("playhead_db_pool_connections", "pool" => pool, "state" => "in_use")
                .set(f64::from(open - idle));
        }
        if let Some((free, size)) = disk(&data_dir) {
            #[expect(clippy::cast_precision_loss, reason = "gauges")]
            {
                metrics::gauge!("playhead_data_dir_free_bytes").set(free as f64);
                metrics::gauge!("playhead_data_dir_size_bytes").set(size as f64);
            }
        }
        process();
        tokio::select! {
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
            () = async { let _ = stop.wait_for(|v| *v).await; } => return,
        }
    }
}

/// Free (for unprivileged users) and total bytes of the filesystem holding `dir`.
pub fn disk(dir: &std::path::Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some((s.f_bavail.saturating_mul(s.f_frsize), s.f_blocks.saturating_mul(s.f_frsize)))
}

/// Process metrics from /proc (Linux); elsewhere nothing is reported.
fn process() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command name (which may hold spaces) are space-separated; `state` is
    // field 3, so index i here is field i + 3.
    let Some((_, rest)) = stat.rsplit_once(')') else { return };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| fields.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    #[expect(clippy::cast_precision_loss, reason = "gauges")]
    {
        if let (Some(utime), Some(stime)) = (num(14), num(15)) {
            metrics::counter!("process_cpu_seconds_total").absolute((utime + stime) / ticks);
        }
        if let Some(rss) = num(24) {
            metrics::gauge!("process_resident_memory_bytes")
                .set((rss * rustix::param::page_size() as u64) as f64);
        }
        if let (Some(start), Some(boot)) = (num(22), boot_time()) {
            metrics::gauge!("process_start_time_seconds").set((boot + start / ticks) as f64);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            metrics::gauge!("process_open_fds").set(fds.count() as f64);
        }
        if let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current {
            metrics::gauge!("process_max_fds").set(limit as f64);
        }
    }
}

fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// Everything `/healthz` looks at.
#[derive(Clone)]
pub struct Health {
    /// The database.
    pub store: Store,
    /// The use cases (pipeline lag).
    pub app: playhead_app::App,
    /// The JetStream pipeline, in scale-out with `nats_url`.
    pub pipeline: Option<playhead_nats::Pipeline>,
    /// The Redis rate limiter, with `redis_url`.
    pub redis: Option<std::sync::Arc<playhead_redis::RedisRateLimiter>>,
    /// Whether the process is shutting down.
    pub stopping: watch::Receiver<bool>,
}

fn check(status: &str, reason: Option<String>, extra: Value) -> Value {
    let mut v = json!({"status": status});
    if let Some(r) = reason {
        v["reason"] = json!(r);
    }
    if let (Value::Object(o), Value::Object(e)) = (&mut v, extra) {
        o.extend(e);
    }
    v
}

impl Health {
    /// The `/healthz` document: per dependency `ok`, `degraded` (serving, but something an
    /// operator must look at) or `down` (cannot serve), with the reason. 503 when any part is
    /// down, else 200: `/readyz` stays the load balancer's check.
    pub async fn report(&self) -> (StatusCode, Value) {
        let mut checks = serde_json::Map::new();
        let db = match self.store.ping().await {
            Ok(()) => check("ok", None, json!({"backend": self.store.backend()})),
            Err(e) => check("down", Some(format!("{e}")), json!({"backend": self.store.backend()})),
        };
        checks.insert("database".into(), db);
        let lag = match self.app.pipeline_lag().await {
            Ok(l) if l.lag_ms > DEGRADED_LAG_MS => check(
                "degraded",
                Some(format!(
                    "the oldest unapplied event is {} s old: events are not being applied",
                    l.lag_ms / 1000
                )),
                json!({"backlog": l.backlog, "lag_seconds": l.lag_ms / 1000}),
            ),
            Ok(l) => check("ok", None, json!({"backlog": l.backlog, "lag_seconds": l.lag_ms / 1000})),
            Err(e) => check("down", Some(format!("cannot read the event log: {e}")), json!({})),
        };
        checks.insert("pipeline".into(), lag);
        if let Some(p) = &self.pipeline {
            let h = p.health();
            let nats = match (h.connected, h.problem) {
                (_, Some(problem)) => check("degraded", Some(problem), json!({"connected": h.connected})),
                (false, None) => check(
                    "degraded",
                    Some("not connected to NATS: events wait in the outbox".into()),
                    json!({"connected": false}),
                ),
                (true, None) => check("ok", None, json!({"connected": true})),
            };
            checks.insert("nats".into(), nats);
        }
        if let Some(r) = &self.redis {
            let redis = if r.falling_back() {
                check("degraded", Some("Redis not answering: rate limits are per replica".into()), json!({}))
            } else {
                check("ok", None, json!({}))
            };
            checks.insert("redis".into(), redis);
        }
        if *self.stopping.borrow() {
            checks.insert("process".into(), check("down", Some("shutting down".into()), json!({})));
        }
        let worst = checks
            .values()
            .map(|c| match c["status"].as_str() {
                Some("down") => 2,
                Some("degraded") => 1,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        let (code, status) = match worst {
            2 => (StatusCode::SERVICE_UNAVAILABLE, "down"),
            1 => (StatusCode::OK, "degraded"),
            _ => (StatusCode::OK, "ok"),
        };
        (code, json!({"status": status, "checks": checks}))
    }
}
