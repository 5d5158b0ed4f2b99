//! `playhead-bench soak`: mixed traffic at a fixed rate against `playhead serve` (embedded, or
//! scale-out on PostgreSQL + Redis + NATS on loopback) for a set time, reporting per interval the
//! throughput, p50/p99 of writes and reads, the server's RSS and errors (decision 0110).
//!
//! Traffic, writes:reads 9:1 (as published for large streaming services): 8 in 10 requests are a
//! heartbeat (`POST .../events`, one event), 1 a resume point (`PUT .../progress/{title}`), 1 a
//! read, in turn a history page, a Continue watching row or recommendations. Each request comes
//! from a random device (its own account, profile and token). The load is open-loop: requests are
//! started on a clock, not when the previous one answers, so a slow server shows up as latency
//! (and as requests the generator could not start, counted apart) instead of a lower rate.
//!
//! Bar: zero errors (any answer other than the expected status, a transport error or a timeout,
//! or an accepted event never applied) and RSS flat within 10 % after warm-up. The process exits
//! non-zero on errors; timings and RSS are reported, never asserted. It stops by itself and
//! removes what it created (data dir, schema, NATS streams, Redis keys).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::NowMs;
use crate::harness::{self, Deployment, Device, Mode, Server, Services};

/// Options of `soak`.
#[derive(Clone, Debug, clap::Args)]
pub struct SoakArgs {
    /// embedded or scale-out.
    #[arg(long, value_enum, default_value = "embedded")]
    pub mode: Mode,
    /// How long the traffic runs, seconds (1800 for the real run, 60 in the test command).
    #[arg(long, default_value_t = 1800)]
    pub secs: u64,
    /// Seconds per reported interval (RSS is sampled at the end of each).
    #[arg(long, default_value_t = 60)]
    pub interval_secs: u64,
    /// Intervals left out of the RSS flatness check (caches and pools filling).
    #[arg(long, default_value_t = 1)]
    pub warmup_intervals: usize,
    /// Requests started per second; 0 = half the peak of this deployment, measured first by a
    /// closed-loop probe of the same mix (the "50 % of measured peak load").
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Seconds of that probe.
    #[arg(long, default_value_t = 20)]
    pub probe_secs: u64,
    /// Devices (accounts with one profile and one token each).
    #[arg(long, default_value_t = 64)]
    pub devices: usize,
    /// Pin the server to this CPU (default: unpinned).
    #[arg(long)]
    pub server_cpu: Option<usize>,
    /// Write the report (JSON) here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    /// PostgreSQL, Redis and NATS (scale-out).
    pub services: Services,
}

impl SoakArgs {
    /// The soak as `all` runs it: minute intervals and two warm-up minutes (10 s and one for
    /// runs under 5 minutes), the server pinned like the pairs' servers.
    pub fn for_all(mode: Mode, secs: u64, rate: u32, server_cpu: Option<usize>, services: Services) -> Self {
        Self {
            mode,
            secs,
            interval_secs: if secs >= 300 { 60 } else { 10 },
            warmup_intervals: if secs >= 300 { 2 } else { 1 },
            rate,
            probe_secs: 20,
            devices: 64,
            server_cpu,
            report: None,
            services,
        }
    }
}

/// What kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Heartbeat,
    Progress,
    History,
    Row,
    Recommendations,
}

impl Kind {
    /// The 9:1 mix: 8 heartbeats, 1 progress PUT, 1 read (rotating over the three reads).
    fn pick(n: u64) -> Self {
        match n % 10 {
            0..=7 => Kind::Heartbeat,
            8 => Kind::Progress,
            _ => [Kind::History, Kind::Row, Kind::Recommendations][((n / 10) % 3) as usize],
        }
    }

    fn is_read(self) -> bool {
        matches!(self, Kind::History | Kind::Row | Kind::Recommendations)
    }
}

/// One interval's raw numbers.
#[derive(Default)]
struct Bucket {
    ok: u64,
    errors: u64,
    writes_us: Vec<u32>,
    reads_us: Vec<u32>,
}

/// One reported interval.
#[derive(Clone, Debug)]
pub struct Interval {
    /// Seconds since the start, at its end.
    pub at_secs: u64,
    /// Answered as expected, per second.
    pub ok_per_s: f64,
    /// Writes p50, p99 (ms).
    pub writes_ms: (f64, f64),
    /// Reads p50, p99 (ms).
    pub reads_ms: (f64, f64),
    /// The server's RSS (MiB) at its end.
    pub rss_mib: f64,
    /// Errors in it.
    pub errors: u64,
    /// Requests the generator could not start (too many in flight).
    pub not_sent: u64,
}

/// The soak's outcome.
#[derive(Debug)]
pub struct Report {
    /// Which deployment.
    pub mode: Mode,
    /// Options.
    pub secs: u64,
    /// Requests per second asked for.
    pub rate: u32,
    /// The probe's peak (answered req/s) and its unexpected answers, when the rate came from it.
    pub peak: Option<(f64, u64)>,
    /// Per interval.
    pub intervals: Vec<Interval>,
    /// All errors.
    pub errors: u64,
    /// The first few.
    pub error_samples: Vec<String>,
    /// RSS growth after warm-up, (max - min) / min.
    pub rss_growth: Option<f64>,
    /// Warm-up intervals left out.
    pub warmup: usize,
    /// When the harness itself failed.
    pub failure: Option<String>,
}

impl Report {
    /// A soak that could not run.
    pub fn failed(mode: Mode, e: &anyhow::Error) -> Self {
        Self {
            mode,
            secs: 0,
            rate: 0,
            peak: None,
            intervals: Vec::new(),
            errors: 1,
            error_samples: vec![format!("{e:#}")],
            rss_growth: None,
            warmup: 0,
            failure: Some(format!("{e:#}")),
        }
    }

    fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Embedded => "embedded (SQLite)",
            Mode::ScaleOut => "scale-out (PostgreSQL + Redis + NATS, loopback)",
        }
    }

    /// As JSON.
    pub fn json(&self) -> Value {
        json!({"mode": self.mode_name(), "secs": self.secs, "rate": self.rate,
            "probe_peak_per_s": self.peak.map(|p| p.0), "probe_unexpected": self.peak.map(|p| p.1), "errors": self.errors,
            "error_samples": self.error_samples, "rss_growth_after_warmup": self.rss_growth,
            "warmup_intervals": self.warmup, "failure": self.failure,
            "intervals": self.intervals.iter().map(|i| json!({"at_secs": i.at_secs, "ok_per_s": i.ok_per_s,
                "writes_p50_ms": i.writes_ms.0, "writes_p99_ms": i.writes_ms.1, "reads_p50_ms": i.reads_ms.0,
                "reads_p99_ms": i.reads_ms.1, "rss_mib": i.rss_mib, "errors": i.errors, "not_sent": i.not_sent}))
                .collect::<Vec<_>>()})
    }

    /// As a markdown table with the verdict.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Soak, {}: {} s at {} req/s (writes:reads 9:1), started on the clock (open loop)",
            self.mode_name(),
            self.secs,
            self.rate
        );
        if let Some((peak, unexpected)) = self.peak {
            s.push_str(&format!(
                "; the rate is half the peak of {peak:.0} answered req/s that a closed-loop probe of the \
                 same mix ({PROBE_WORKERS} workers) measured first ({unexpected} unexpected answers \
                 during the probe, not counted below)"
            ));
        }
        s.push_str(".\n\n");
        if let Some(f) = &self.failure {
            return format!("{s}**Failed to run:** {}\n", f.lines().next().unwrap_or(""));
        }
        s.push_str("| at (s) | answered req/s | writes p50 / p99 ms | reads p50 / p99 ms | server RSS MiB | errors | not sent (generator behind) |\n|---|---|---|---|---|---|---|\n");
        for i in &self.intervals {
            s.push_str(&format!(
                "| {} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} | {} | {} |\n",
                i.at_secs,
                i.ok_per_s,
                i.writes_ms.0,
                i.writes_ms.1,
                i.reads_ms.0,
                i.reads_ms.1,
                i.rss_mib,
                i.errors,
                i.not_sent
            ));
        }
        let rss = match self.rss_growth {
            Some(g) => format!(
                "RSS after {} warm-up interval(s) varied by {:.1} % (bar: 10 %): **{}**",
                self.warmup,
                g * 100.0,
                if g <= 0.10 { "flat" } else { "not flat" }
            ),
            None => "RSS: too few intervals after warm-up to judge".into(),
        };
        s.push_str(&format!(
            "\nErrors: **{}** (bar: 0){}. {rss}.\n",
            self.errors,
            if self.error_samples.is_empty() {
                String::new()
            } else {
                format!("; first: {}", self.error_samples.join("; "))
            }
        ));
        s
    }
}

/// Shared by the request tasks.
struct Shared {
    http: reqwest::Client,
    base: String,
    devices: Vec<Device>,
    bucket: Mutex<Bucket>,
    samples: Mutex<Vec<String>>,
    started_ms: i64,
}

impl Shared {
    fn record(&self, kind: Kind, took: Duration, outcome: Result<(), String>) {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(()) => {
                b.ok += 1;
                let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                if kind.is_read() { b.reads_us.push(us) } else { b.writes_us.push(us) }
            }
            Err(e) => {
                b.errors += 1;
                drop(b);
                let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
                if s.len() < 5 {
                    s.push(format!("{kind:?}: {e}"));
                }
            }
        }
    }
}

/// One request, checked: the expected status (and for events, the event accepted).
async fn one(shared: &Shared, kind: Kind, device: &Device) -> Result<(), String> {
    let now = playhead_app::clock::SystemClock.now_ms();
    let title = format!("bench-{}", rand::random::<u32>() as usize % harness::TITLES);
    let p = &device.profile;
    let position = (now - shared.started_ms).rem_euclid(7_000_000);
    let (req, expect) = match kind {
        Kind::Heartbeat => {
            let body = json!({"events": [{"event_id": uuid::Uuid::new_v4(), "title_id": title, "kind": "heartbeat",
                "position_ms": position, "occurred_at": playhead_core::Timestamp(now).to_rfc3339(), "device_id": "tv"}]});
            (shared.http.post(format!("{}/v1/profiles/{p}/events", shared.base)).json(&body), 202)
        }
        Kind::Progress => (
            shared
                .http
                .put(format!("{}/v1/profiles/{p}/progress/{title}", shared.base))
                .json(&json!({"position_ms": position, "device_id": "phone"})),
            200,
        ),
        Kind::History => (shared.http.get(format!("{}/v1/profiles/{p}/history?limit=20", shared.base)), 200),
        Kind::Row => {
            (shared.http.get(format!("{}/v1/profiles/{p}/continue-watching?limit=20", shared.base)), 200)
        }
        Kind::Recommendations => {
            (shared.http.get(format!("{}/v1/profiles/{p}/recommendations?limit=20", shared.base)), 200)
        }
    };
    let r = req.bearer_auth(&device.token).send().await.map_err(|e| format!("{e}"))?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| format!("{e}"))?;
    if status != expect {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
        ));
    }
    if kind == Kind::Heartbeat {
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("{e}"))?;
        if v["accepted"].as_u64() != Some(1) {
            return Err(format!("event not accepted: {v}"));
        }
    }
    Ok(())
}

fn percentiles(v: &mut [u32]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

/// Run the soak; the report also goes to `--report` and stdout.
pub async fn run(a: SoakArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        a.interval_secs > 0 && a.secs >= a.interval_secs,
        "--secs must be at least --interval-secs (and that positive)"
    );
    let d = Deployment::create(a.mode, &a.services).await?;
    let result = soak_in(&a, &d).await;
    let cleanup = d.cleanup().await;
    let report = result?;
    cleanup.context("cleaning up the soak's schema, streams and keys")?;
    let md = report.markdown();
    println!("{md}");
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// Closed-loop workers of the peak probe.
const PROBE_WORKERS: usize = 64;

/// The same mix, closed loop: answered-as-expected requests per second, and the rest.
async fn probe(shared: &Arc<Shared>, secs: u64) -> (f64, u64) {
    let (ok, bad, n) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..PROBE_WORKERS)
        .map(|_| {
            let (shared, ok, bad, n) = (shared.clone(), ok.clone(), bad.clone(), n.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let kind = Kind::pick(n.fetch_add(1, Ordering::Relaxed));
                    let device = &shared.devices[rand::random::<u32>() as usize % shared.devices.len()];
                    match one(&shared, kind, device).await {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => bad.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    (ok.load(Ordering::Relaxed) as f64 / secs as f64, bad.load(Ordering::Relaxed))
}

async fn soak_in(a: &SoakArgs, d: &Deployment) -> anyhow::Result<Report> {
    let seeded = harness::seed(d, a.devices, 20).await?;
    let server = Server::start(d, a.server_cpu).await?;
    let http =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(1024).build()?;
    let shared = Arc::new(Shared {
        http: http.clone(),
        base: server.base.clone(),
        devices: seeded.devices,
        bucket: Mutex::new(Bucket::default()),
        samples: Mutex::new(Vec::new()),
        started_ms: playhead_app::clock::SystemClock.now_ms(),
    });
    let (rate, peak) = match a.rate {
        0 => {
            let (peak, unexpected) = probe(&shared, a.probe_secs.max(1)).await;
            eprintln!("  probe: peak {peak:.0} req/s ({unexpected} unexpected answers); soaking at half");
            // Let the probe's backlog drain so the soak starts from a steady state.
            server.drained(&http).await?;
            (((peak / 2.0) as u32).max(1), Some((peak, unexpected)))
        }
        r => (r, None),
    };
    // At most this many requests in flight: beyond it the server is not keeping up, and the
    // generator counts what it could not start instead of queueing without bound.
    let permits = Arc::new(tokio::sync::Semaphore::new(512));
    let not_sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut intervals = Vec::new();
    let mut next_report = Duration::from_secs(a.interval_secs);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut due, mut sent_n, mut owed) = (0u64, 0u64, 0.0f64);
    let mut last = Instant::now();
    while started.elapsed() < Duration::from_secs(a.secs) {
        tick.tick().await;
        owed += last.elapsed().as_secs_f64() * f64::from(rate);
        last = Instant::now();
        while owed >= 1.0 {
            owed -= 1.0;
            due += 1;
            let kind = Kind::pick(due);
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                not_sent.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            sent_n += 1;
            let shared = shared.clone();
            let device = shared.devices[rand::random::<u32>() as usize % shared.devices.len()].clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let outcome = one(&shared, kind, &device).await;
                shared.record(kind, t.elapsed(), outcome);
                drop(permit);
            });
        }
        if started.elapsed() >= next_report {
            let mut b = std::mem::take(&mut *shared.bucket.lock().unwrap_or_else(|e| e.into_inner()));
            let i = Interval {
                at_secs: next_report.as_secs(),
                ok_per_s: b.ok as f64 / a.interval_secs as f64,
                writes_ms: percentiles(&mut b.writes_us),
                reads_ms: percentiles(&mut b.reads_us),
                rss_mib: server.rss_kib().unwrap_or(0) as f64 / 1024.0,
                errors: b.errors,
                not_sent: not_sent.swap(0, Ordering::Relaxed),
            };
            eprintln!(
                "  {} s: {:.0} req/s, writes p99 {:.2} ms, reads p99 {:.2} ms, RSS {:.1} MiB, errors {}",
                i.at_secs, i.ok_per_s, i.writes_ms.1, i.reads_ms.1, i.rss_mib, i.errors
            );
            intervals.push(i);
            next_report += Duration::from_secs(a.interval_secs);
        }
    }
    // Let the last requests answer, then check that every accepted event was applied.
    let _all = tokio::time::timeout(Duration::from_secs(30), permits.acquire_many(512))
        .await
        .context("requests still in flight 30 s after the end")?;
    let late = std::mem::take(&mut *shared.bucket.lock().unwrap_or_else(|e| e.into_inner()));
    let mut samples = shared.samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut errors = intervals.iter().map(|i| i.errors).sum::<u64>() + late.errors;
    if let Err(e) = server.drained(&http).await {
        errors += 1;
        samples.push(format!("accepted events not applied: {e:#}"));
    }
    server.stop().await?;
    if errors > 0 {
        // The server logs at error level only: its last lines name the cause (kept, because
        // the data dir and its log are removed with the deployment).
        let log = std::fs::read_to_string(d.scratch().join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(3).collect();
        samples.extend(
            tail.into_iter()
                .rev()
                .map(|l| format!("server log: {}", l.chars().take(500).collect::<String>())),
        );
    }
    let warm: Vec<f64> = intervals.iter().skip(a.warmup_intervals).map(|i| i.rss_mib).collect();
    let rss_growth = (warm.len() >= 2).then(|| {
        let (lo, hi) = warm.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        (hi - lo) / lo
    });
    eprintln!("  {sent_n} requests started");
    Ok(Report {
        mode: a.mode,
        secs: a.secs,
        rate,
        peak,
        intervals,
        errors,
        error_samples: samples,
        rss_growth,
        warmup: a.warmup_intervals,
        failure: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_nine_writes_to_one_read_over_all_three_reads() {
        let kinds: Vec<Kind> = (0..3000).map(Kind::pick).collect();
        let reads = kinds.iter().filter(|k| k.is_read()).count();
        assert_eq!(reads, 300);
        assert_eq!(kinds.iter().filter(|k| **k == Kind::Progress).count(), 300);
        for read in [Kind::History, Kind::Row, Kind::Recommendations] {
            assert_eq!(kinds.iter().filter(|k| **k == read).count(), 100, "{read:?}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank_in_ms() {
        let mut v: Vec<u32> = (1..=100).rev().map(|x| x * 1000).collect();
        assert_eq!(percentiles(&mut v), (50.0, 99.0));
        assert_eq!(percentiles(&mut []), (0.0, 0.0));
    }

    #[test]
    fn the_verdict_names_errors_and_rss_growth() {
        let mut r = Report::failed(Mode::Embedded, &anyhow::anyhow!("boom"));
        assert!(r.markdown().contains("Failed to run:** boom"));
        r.failure = None;
        r.errors = 2;
        r.rss_growth = Some(0.25);
        let md = r.markdown();
        assert!(md.contains("Errors: **2**"), "{md}");
        assert!(md.contains("25.0 %") && md.contains("not flat"), "{md}");
    }
}
