//! `playhead-bench all`: every Playhead-vs-limit pair (decision 0110), interleaved, N runs,
//! pinned cores, then the tables in docs/benchmarks.md rewritten between their markers.
//!
//! Pinning: every server (Playhead or a bare baseline) and every storage baseline runs on
//! `--server-cpu` with `taskset`; every load generator (wrk, the bulk client) on `--client-cpu`.
//! PostgreSQL, Redis and NATS are the machine's own services and are not pinned.
//! Interleaving: in odd runs the baseline goes first, in even runs Playhead does, so neither side
//! always meets a warmer (or busier) machine. A ratio is Playhead / baseline of the same run; the
//! table shows the median of those ratios with their min-max.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::harness::{self, ChildGuard, Deployment, Mode, Server, Services};
use crate::limits;

/// The pairs, by name.
pub const PARTS: &str = "ingest,read,live,scale-out-ingest,scale-out-read";

/// Options of `all`.
#[derive(Clone, Debug, clap::Args)]
pub struct AllArgs {
    /// Runs per pair (medians and min-max are reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Seconds per wrk run (reads and live ingest).
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Events per bulk ingest run (batches of 500).
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
    /// Concurrent clients of the bulk ingest (and PostgreSQL baseline connections).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Connections (devices) of the live ingest.
    #[arg(long, default_value_t = 256)]
    pub live_connections: usize,
    /// Connections of the Continue watching reads.
    #[arg(long, default_value_t = 32)]
    pub read_connections: usize,
    /// The CPU servers and storage baselines run on.
    #[arg(long, default_value_t = 0)]
    pub server_cpu: usize,
    /// The CPU load generators run on.
    #[arg(long, default_value_t = 1)]
    pub client_cpu: usize,
    /// Which pairs (comma separated).
    #[arg(long, value_delimiter = ',', default_value = PARTS)]
    pub parts: Vec<String>,
    /// Rewrite the tables between the markers in this file (docs/benchmarks.md).
    #[arg(long)]
    pub doc: Option<PathBuf>,
    /// Write every run's numbers here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Seconds of each soak (embedded and scale-out) after the pairs; 0 skips it.
    #[arg(long, default_value_t = 0)]
    pub soak_secs: u64,
    /// Requests per second of the soak; 0 = half the peak of each deployment, measured by a
    /// closed-loop probe of the same mix just before its soak.
    #[arg(long, default_value_t = 0)]
    pub soak_rate: u32,
    #[command(flatten)]
    /// PostgreSQL, Redis and NATS.
    pub services: Services,
}

/// One pair's numbers across runs.
#[derive(Debug, Default)]
pub struct Pair {
    /// What Playhead does.
    pub name: String,
    /// What the baseline does.
    pub baseline: String,
    /// Playhead's unit.
    pub unit: &'static str,
    /// The goal for the ratio, if any.
    pub goal: Option<&'static str>,
    /// Per run.
    pub limit: Vec<f64>,
    /// Per run.
    pub playhead: Vec<f64>,
    /// Latency (p50, p99) of Playhead's runs, where wrk measured it.
    pub latency: Vec<(String, String)>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Pair {
    fn new(name: &str, baseline: &str, unit: &'static str, goal: Option<&'static str>) -> Self {
        Self { name: name.into(), baseline: baseline.into(), unit, goal, ..Default::default() }
    }

    fn ratios(&self) -> Vec<f64> {
        self.playhead.iter().zip(&self.limit).map(|(p, b)| p / b).collect()
    }

    fn json(&self) -> Value {
        json!({"pair": self.name, "baseline": self.baseline, "unit": self.unit, "goal": self.goal,
               "baseline_per_s": self.limit, "playhead_per_s": self.playhead, "ratio": self.ratios(),
               "playhead_latency_p50_p99": self.latency, "error": self.error})
    }
}

/// Median, min and max.
pub fn spread(xs: &[f64]) -> Option<(f64, f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    Some((median, v[0], v[v.len() - 1]))
}

/// `12,345`.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn rate_cell(xs: &[f64]) -> String {
    spread(xs)
        .map_or("-".into(), |(m, lo, hi)| format!("{} ({}-{})", thousands(m), thousands(lo), thousands(hi)))
}

fn ratio_cell(xs: &[f64]) -> String {
    spread(xs).map_or("-".into(), |(m, lo, hi)| format!("**{m:.2}** ({lo:.2}-{hi:.2})"))
}

/// Where and when the run happened.
pub struct RunInfo {
    started: String,
    commit: String,
    machine: String,
    load_before: String,
    load_after: String,
    build: &'static str,
    /// The arguments this run was started with.
    command: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
        })
        .map_or("?".into(), |kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0));
    format!("{cpus} vCPUs ({cpu}), {mem}")
}

fn now_utc() -> String {
    let ms = playhead_app::clock::SystemClock.now_ms();
    let s = playhead_core::Timestamp(ms).to_rfc3339();
    // 2026-12-05T00:10:00.000Z -> 2026-12-05 00:10 UTC
    format!("{} {} UTC", &s[..10], &s[11..16])
}

fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

use crate::NowMs;

/// Run every selected pair and write the results.
pub async fn run(a: AllArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.runs > 0, "--runs must be positive");
    which("wrk").context("wrk is needed (apt-get install wrk); bench/run-all installs it")?;
    which("taskset").context("taskset is needed (util-linux)")?;
    let mut ctx = RunInfo {
        started: now_utc(),
        commit: commit(),
        machine: machine(),
        load_before: load_average(),
        load_after: String::new(),
        build: if cfg!(debug_assertions) { "dev" } else { "release" },
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    };
    let mut pairs = Vec::new();
    for part in &a.parts {
        eprintln!("== {part}");
        let result = match part.as_str() {
            "ingest" => bulk_ingest(&a).await,
            "read" => reads(&a, Mode::Embedded).await,
            "live" => live(&a).await,
            "scale-out-ingest" => scale_out_ingest(&a).await,
            "scale-out-read" => reads(&a, Mode::ScaleOut).await,
            other => Err(anyhow::anyhow!("unknown part {other} (parts: {PARTS})")),
        };
        match result {
            Ok(p) => pairs.extend(p),
            Err(e) => {
                eprintln!("{part} failed: {e:#}");
                let mut p = Pair::new(part, "-", "-", None);
                p.error = Some(format!("{e:#}"));
                pairs.push(p);
            }
        }
    }
    let soaks = if a.soak_secs > 0 {
        let mut out = Vec::new();
        for mode in [Mode::Embedded, Mode::ScaleOut] {
            let args = crate::soak::SoakArgs::for_all(
                mode,
                a.soak_secs,
                a.soak_rate,
                Some(a.server_cpu),
                a.services.clone(),
            );
            out.push(crate::soak::run(args).await.unwrap_or_else(|e| crate::soak::Report::failed(mode, &e)));
        }
        out
    } else {
        Vec::new()
    };
    ctx.load_after = load_average();
    let table = render(&a, &ctx, &pairs);
    println!("{table}");
    let doc = json!({"started": ctx.started, "commit": ctx.commit, "machine": ctx.machine, "build": ctx.build,
        "load_before": ctx.load_before, "load_after": ctx.load_after, "runs": a.runs,
        "pairs": pairs.iter().map(Pair::json).collect::<Vec<_>>(),
        "soak": soaks.iter().map(|s| s.json()).collect::<Vec<_>>()});
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)?;
    }
    if let Some(path) = &a.doc {
        rewrite(path, "limits", &table)?;
        if !soaks.is_empty() {
            let soak_md: Vec<String> = soaks.iter().map(|s| s.markdown()).collect();
            rewrite(path, "soak", &soak_md.join("\n"))?;
        }
        eprintln!("rewrote {}", path.display());
    }
    let failed: Vec<&str> = pairs.iter().filter(|p| p.error.is_some()).map(|p| p.name.as_str()).collect();
    anyhow::ensure!(failed.is_empty(), "failed pairs: {}", failed.join(", "));
    anyhow::ensure!(soaks.iter().all(|s| s.errors == 0), "a soak had errors");
    Ok(())
}

fn which(program: &str) -> anyhow::Result<()> {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()?
        .success();
    anyhow::ensure!(ok, "{program} not found");
    Ok(())
}

/// Replace what lies between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`.
pub fn rewrite(path: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let (start, end) = (format!("<!-- bench:{name}:start -->"), format!("<!-- bench:{name}:end -->"));
    let (Some(a), Some(b)) = (text.find(&start), text.find(&end)) else {
        anyhow::bail!("{} has no {start} ... {end} markers", path.display());
    };
    anyhow::ensure!(a < b, "markers out of order in {}", path.display());
    let out = format!("{}{start}\n{}\n{}", &text[..a], body.trim_end(), &text[b..]);
    std::fs::write(path, out)?;
    Ok(())
}

fn render(a: &AllArgs, ctx: &RunInfo, pairs: &[Pair]) -> String {
    let mut s = format!(
        "Generated by `playhead-bench {command}` (`bench/run-all` runs it after a release build): \
         {started}, commit {commit}, {build} build; machine: {machine}; load average (1, 5, 15 min) {before} \
         at the start, {after} at the end. {runs} runs per pair, interleaved (baseline first in odd runs, \
         Playhead first in even runs); servers and storage baselines pinned to CPU {sc}, load generators \
         to CPU {cc} (`taskset`); PostgreSQL, Redis and NATS unpinned. Ratio = Playhead / baseline of the \
         same run, median (min-max) over runs.\n\n\
         | pair | Playhead, {u} median (min-max) | baseline | baseline median (min-max) | ratio | goal |\n\
         |---|---|---|---|---|---|\n",
        command = ctx.command,
        runs = a.runs,
        started = ctx.started,
        commit = ctx.commit,
        build = ctx.build,
        machine = ctx.machine,
        before = ctx.load_before,
        after = ctx.load_after,
        sc = a.server_cpu,
        cc = a.client_cpu,
        u = "per s",
    );
    for p in pairs {
        if let Some(e) = &p.error {
            s.push_str(&format!(
                "| {} | failed: {} | | | | |\n",
                p.name,
                e.lines().next().unwrap_or("").replace('|', "/")
            ));
            continue;
        }
        s.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} |\n",
            p.name,
            rate_cell(&p.playhead),
            p.unit,
            p.baseline,
            rate_cell(&p.limit),
            ratio_cell(&p.ratios()),
            p.goal.unwrap_or("-")
        ));
    }
    let lat: Vec<&Pair> = pairs.iter().filter(|p| !p.latency.is_empty()).collect();
    if !lat.is_empty() {
        s.push_str(
            "\nPlayhead's latency under that load (wrk, per run: p50 / p99):\n\n| pair | runs |\n|---|---|\n",
        );
        for p in lat {
            let runs: Vec<String> = p.latency.iter().map(|(a, b)| format!("{a} / {b}")).collect();
            s.push_str(&format!("| {} | {} |\n", p.name, runs.join("; ")));
        }
    }
    s
}

/// Run this benchmark binary as a pinned child and read its `{"per_s": x}`.
fn child_rate(cpu: usize, args: &[String]) -> anyhow::Result<f64> {
    let out = harness::pinned(Some(cpu), &std::env::current_exe()?)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running playhead-bench {}", args.join(" ")))?;
    anyhow::ensure!(out.status.success(), "playhead-bench {} failed: {}", args.join(" "), out.status);
    limits::parse_report(&out.stdout)
}

fn args(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| (*s).to_owned()).collect()
}

/// Embedded bulk ingest (accepted to applied, batches of 500) vs raw rusqlite, plus sqlx.
async fn bulk_ingest(a: &AllArgs) -> anyhow::Result<Vec<Pair>> {
    let mut pair = Pair::new(
        &format!(
            "embedded bulk ingest, accepted to applied ({} events, batches of 500, {} clients)",
            a.events, a.clients
        ),
        "raw rusqlite, one prepared INSERT, WAL + synchronous=FULL, 500 rows/tx",
        "events/s",
        Some(">= 0.30"),
    );
    let mut extra = Pair::new(
        "(extra row) the same Playhead runs",
        "sqlx-sqlite, same rows and settings (the old baseline)",
        "events/s",
        None,
    );
    let events = a.events.to_string();
    for run in 1..=a.runs {
        let limit = || child_rate(a.server_cpu, &args(&["limit", "sqlite", "--events", &events]));
        let sqlx = || child_rate(a.server_cpu, &args(&["limit", "sqlx-sqlite", "--events", &events]));
        let (b, p) = if run % 2 == 1 {
            let b = limit()?;
            (b, playhead_bulk(a, Mode::Embedded).await?)
        } else {
            let p = playhead_bulk(a, Mode::Embedded).await?;
            (limit()?, p)
        };
        let x = sqlx()?;
        eprintln!(
            "run {run}: rusqlite {b:.0} rows/s, sqlx {x:.0} rows/s, playhead {p:.0} events/s, ratio {:.3}",
            p / b
        );
        pair.limit.push(b);
        pair.playhead.push(p);
        extra.limit.push(x);
        extra.playhead.push(p);
    }
    Ok(vec![pair, extra])
}

/// Playhead accepted-to-applied: a fresh deployment, the server pinned, the bulk client pinned.
async fn playhead_bulk(a: &AllArgs, mode: Mode) -> anyhow::Result<f64> {
    let d = Deployment::create(mode, &a.services).await?;
    let result = async {
        let seeded = harness::seed(&d, crate::PROFILES, 0).await?;
        let server = Server::start(&d, Some(a.server_cpu)).await?;
        let profiles: Vec<String> = seeded.devices.iter().map(|d| d.profile.to_string()).collect();
        let rate = child_rate(
            a.client_cpu,
            &args(&[
                "bulk-client",
                "--base",
                &server.base,
                "--ops",
                &server.ops,
                "--token",
                &seeded.api_key,
                "--profiles",
                &profiles.join(","),
                "--events",
                &a.events.to_string(),
                "--clients",
                &a.clients.to_string(),
            ]),
        );
        server.stop().await?;
        rate
    }
    .await;
    d.cleanup().await?;
    result
}

/// What one wrk run measured.
#[derive(Debug)]
struct Wrk {
    requests: f64,
    elapsed: Duration,
    per_s: f64,
    p50: String,
    p99: String,
    non_2xx: u64,
    socket_errors: u64,
}

fn wrk(a: &AllArgs, connections: usize, url: &str, extra: &[String]) -> anyhow::Result<Wrk> {
    let started = Instant::now();
    let out = harness::pinned(Some(a.client_cpu), Path::new("wrk"))
        .arg("-t1")
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", a.secs))
        .arg("--latency")
        .args(extra.iter().take_while(|x| x.as_str() != "--"))
        .arg(url)
        .args(extra.iter().skip_while(|x| x.as_str() != "--"))
        .output()?;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(out.status.success(), "wrk failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    parse_wrk(&text, elapsed)
}

fn parse_wrk(text: &str, elapsed: Duration) -> anyhow::Result<Wrk> {
    let mut w = Wrk {
        requests: 0.0,
        elapsed,
        per_s: 0.0,
        p50: "-".into(),
        p99: "-".into(),
        non_2xx: 0,
        socket_errors: 0,
    };
    for line in text.lines() {
        let l = line.trim();
        let words: Vec<&str> = l.split_whitespace().collect();
        if l.contains(" requests in ") {
            w.requests = words.first().and_then(|n| n.parse().ok()).unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("Requests/sec:") {
            w.per_s = v.trim().parse().unwrap_or(0.0);
        } else if l.starts_with("50%") {
            w.p50 = words.get(1).unwrap_or(&"-").to_string();
        } else if l.starts_with("99%") {
            w.p99 = words.get(1).unwrap_or(&"-").to_string();
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            w.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            w.socket_errors =
                v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum();
        }
    }
    anyhow::ensure!(w.requests > 0.0, "wrk reported no requests:\n{text}");
    Ok(w)
}

/// The bare axum server (both baselines) on the server CPU.
fn bare_http(cpu: usize, row: &Path) -> anyhow::Result<(ChildGuard, String)> {
    let port = harness::free_port()?;
    let child = harness::pinned(Some(cpu), &std::env::current_exe()?)
        .args(["limit", "http", "--listen", &format!("127.0.0.1:{port}"), "--row"])
        .arg(row)
        .stdout(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(10), "the bare axum server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((ChildGuard(child), base))
}

/// Cached Continue watching (JWT check, quota, cache) vs bare axum serving the same bytes.
async fn reads(a: &AllArgs, mode: Mode) -> anyhow::Result<Vec<Pair>> {
    let (name, goal) = match mode {
        Mode::Embedded => ("Continue watching, embedded, cached, with the JWT check", ">= 0.50"),
        Mode::ScaleOut => {
            ("Continue watching, scale-out (PostgreSQL + Redis row cache), with the JWT check", ">= 0.30")
        }
    };
    let mut pair = Pair::new(
        &format!("{name} ({} connections)", a.read_connections),
        "bare axum serving the same bytes, pre-serialized",
        "req/s",
        Some(goal),
    );
    let d = Deployment::create(mode, &a.services).await?;
    let result = async {
        let seeded = harness::seed(&d, 1, 40).await?;
        let device = seeded.devices.first().context("no device")?.clone();
        let server = Server::start(&d, Some(a.server_cpu)).await?;
        let url = format!("{}/v1/profiles/{}/continue-watching", server.base, device.profile);
        let http = reqwest::Client::new();
        let row = http.get(&url).bearer_auth(&device.token).send().await?.error_for_status()?.bytes().await?;
        let items = serde_json::from_slice::<Value>(&row)?["items"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(items == 20, "the row has {items} items, not 20");
        let row_file = d.scratch().join("row.json");
        std::fs::write(&row_file, &row)?;
        let (_bare, bare) = bare_http(a.server_cpu, &row_file)?;
        let same = http.get(format!("{bare}/row")).send().await?.bytes().await?;
        anyhow::ensure!(same == row, "the baseline does not serve the same bytes");
        pair.name = format!("{} ({} bytes)", pair.name, row.len());
        let auth = vec!["-H".to_owned(), format!("Authorization: Bearer {}", device.token)];
        for run in 1..=a.runs {
            let limit = || wrk(a, a.read_connections, &format!("{bare}/row"), &[]);
            let ph = || wrk(a, a.read_connections, &url, &auth);
            let (b, p) = if run % 2 == 1 {
                let b = limit()?;
                (b, ph()?)
            } else {
                let p = ph()?;
                (limit()?, p)
            };
            for (who, w) in [("baseline", &b), ("playhead", &p)] {
                anyhow::ensure!(
                    w.non_2xx == 0 && w.socket_errors == 0,
                    "{who}: {} non-2xx, {} socket errors",
                    w.non_2xx,
                    w.socket_errors
                );
            }
            eprintln!(
                "run {run}: bare {:.0} req/s, playhead {:.0} req/s (p50 {}, p99 {}), ratio {:.3}",
                b.per_s,
                p.per_s,
                p.p50,
                p.p99,
                p.per_s / b.per_s
            );
            pair.limit.push(b.per_s);
            pair.playhead.push(p.per_s);
            pair.latency.push((p.p50.clone(), p.p99.clone()));
        }
        server.stop().await?;
        Ok(())
    }
    .await;
    d.cleanup().await?;
    result.map(|()| vec![pair])
}

/// Live ingest: 1 heartbeat per POST from many devices vs bare axum parse-and-202.
async fn live(a: &AllArgs) -> anyhow::Result<Vec<Pair>> {
    let mut pair = Pair::new(
        &format!(
            "live ingest, embedded: 1 heartbeat per POST, {} devices = connections, accepted to applied",
            a.live_connections
        ),
        "bare axum parsing the same JSON, answering 202, storing nothing",
        "events/s",
        Some(">= 0.30"),
    );
    for run in 1..=a.runs {
        let (b, p) = if run % 2 == 1 {
            let b = live_bare(a).await?;
            (b, live_playhead(a, &mut pair).await?)
        } else {
            let p = live_playhead(a, &mut pair).await?;
            (live_bare(a).await?, p)
        };
        eprintln!("run {run}: bare {b:.0} req/s, playhead {p:.0} events/s, ratio {:.3}", p / b);
        pair.limit.push(b);
        pair.playhead.push(p);
    }
    Ok(vec![pair])
}

fn live_script(dir: &Path, devices: &[harness::Device]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let script = dir.join("live.lua");
    std::fs::write(&script, include_str!("../../../bench/live.lua"))?;
    let file = dir.join("devices.txt");
    let lines: Vec<String> = devices.iter().map(|d| format!("{} {}", d.profile, d.token)).collect();
    std::fs::write(&file, lines.join("\n") + "\n")?;
    Ok((script, file))
}

fn live_args(script: &Path, devices: &Path) -> Vec<String> {
    let salt = format!("{:08x}", uuid::Uuid::new_v4().as_u128() as u32);
    vec!["-s".into(), script.display().to_string(), "--".into(), devices.display().to_string(), salt]
}

async fn live_bare(a: &AllArgs) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let row = dir.path().join("row.json");
    std::fs::write(&row, b"{}")?;
    // The same device list shape (the bare server checks no token).
    let devices: Vec<harness::Device> = (0..a.live_connections)
        .map(|_| harness::Device {
            profile: playhead_core::ProfileId(uuid::Uuid::now_v7()),
            token: "x".into(),
        })
        .collect();
    let (script, file) = live_script(dir.path(), &devices)?;
    let (_bare, base) = bare_http(a.server_cpu, &row)?;
    let w = wrk(a, a.live_connections, &base, &live_args(&script, &file))?;
    anyhow::ensure!(
        w.non_2xx == 0 && w.socket_errors == 0,
        "baseline: {} non-2xx, {} socket errors",
        w.non_2xx,
        w.socket_errors
    );
    Ok(w.per_s)
}

async fn live_playhead(a: &AllArgs, pair: &mut Pair) -> anyhow::Result<f64> {
    let d = Deployment::create(Mode::Embedded, &a.services).await?;
    let result = async {
        let seeded = harness::seed(&d, a.live_connections, 0).await?;
        let server = Server::start(&d, Some(a.server_cpu)).await?;
        let (script, file) = live_script(d.scratch(), &seeded.devices)?;
        let started = Instant::now();
        let w = wrk(a, a.live_connections, &server.base, &live_args(&script, &file))?;
        let http = reqwest::Client::new();
        server.drained(&http).await?;
        let applied = started.elapsed();
        anyhow::ensure!(
            w.non_2xx == 0 && w.socket_errors == 0,
            "playhead: {} non-2xx, {} socket errors (see {})",
            w.non_2xx,
            w.socket_errors,
            d.scratch().join("server.log").display()
        );
        eprintln!(
            "  playhead: {} events accepted at {:.0}/s in {:.1} s, all applied after {:.1} s",
            w.requests,
            w.per_s,
            w.elapsed.as_secs_f64(),
            applied.as_secs_f64()
        );
        pair.latency.push((w.p50.clone(), w.p99.clone()));
        server.stop().await?;
        Ok(w.requests / applied.as_secs_f64())
    }
    .await;
    d.cleanup().await?;
    result
}

/// Scale-out ingest (outbox -> JetStream -> applied) vs PostgreSQL INSERT, COPY and JetStream.
async fn scale_out_ingest(a: &AllArgs) -> anyhow::Result<Vec<Pair>> {
    let name = format!(
        "scale-out bulk ingest, accepted to applied (PostgreSQL outbox -> JetStream -> applied; {} events, batches of 500, {} clients)",
        a.events, a.clients
    );
    let mut insert = Pair::new(
        &name,
        &format!("PostgreSQL, one prepared 500-row INSERT per tx, {} connections", a.clients),
        "events/s",
        None,
    );
    // The same Playhead runs against the other two baselines.
    let same = "(the same scale-out runs)";
    let mut copy = Pair::new(
        same,
        &format!("PostgreSQL, one 500-row COPY per tx, {} connections", a.clients),
        "events/s",
        None,
    );
    let mut js =
        Pair::new(same, "JetStream async publish of the relay's messages, 500 in flight", "events/s", None);
    let events = a.events.to_string();
    let clients = a.clients.to_string();
    let s = &a.services;
    let limits = || -> anyhow::Result<(f64, f64, f64)> {
        let pg = |how: &str| {
            child_rate(
                a.server_cpu,
                &args(&[
                    "limit",
                    how,
                    "--events",
                    &events,
                    "--clients",
                    &clients,
                    "--database-url",
                    &s.database_url,
                ]),
            )
        };
        let j = child_rate(
            a.server_cpu,
            &args(&["limit", "jetstream", "--events", &events, "--nats-url", &s.nats_url]),
        )?;
        Ok((pg("pg-insert")?, pg("pg-copy")?, j))
    };
    for run in 1..=a.runs {
        let ((i, c, j), p) = if run % 2 == 1 {
            let l = limits()?;
            (l, playhead_bulk(a, Mode::ScaleOut).await?)
        } else {
            let p = playhead_bulk(a, Mode::ScaleOut).await?;
            (limits()?, p)
        };
        eprintln!("run {run}: pg insert {i:.0}, pg copy {c:.0}, jetstream {j:.0}, playhead {p:.0} events/s");
        for (pair, b) in [(&mut insert, i), (&mut copy, c), (&mut js, j)] {
            pair.limit.push(b);
            pair.playhead.push(p);
        }
    }
    Ok(vec![insert, copy, js])
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 3s test @ http://127.0.0.1:1234/row
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.10ms    1.00ms  20.00ms   90.00%
  Latency Distribution
     50%    4.00ms
     75%    4.50ms
     90%    5.00ms
     99%    9.00ms
  22500 requests in 3.00s, 120.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   7500.00
Transfer/sec:     40.00MB
";

    #[test]
    fn wrk_output_gives_rate_latency_and_every_failure() {
        let w = parse_wrk(WRK, Duration::from_secs(3)).expect("parsed");
        assert_eq!(w.requests, 22_500.0);
        assert_eq!(w.per_s, 7_500.0);
        assert_eq!((w.p50.as_str(), w.p99.as_str()), ("4.00ms", "9.00ms"));
        assert_eq!(w.non_2xx, 5);
        assert_eq!(w.socket_errors, 3);
        assert!(parse_wrk("unable to connect", Duration::ZERO).is_err(), "no requests is a failed run");
    }

    #[test]
    fn spread_is_median_min_max() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(&[]), None);
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }

    #[test]
    fn ratios_pair_runs_of_the_same_index() {
        let mut p = Pair::new("p", "b", "x/s", None);
        p.limit = vec![100.0, 200.0];
        p.playhead = vec![50.0, 20.0];
        assert_eq!(p.ratios(), vec![0.5, 0.1]);
    }

    #[test]
    fn rewrite_replaces_only_between_the_markers() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("b.md");
        let doc = "# B\nprose before\n<!-- bench:limits:start -->\nold table\n<!-- bench:limits:end -->\nprose after\n";
        std::fs::write(&path, doc).expect("write");
        rewrite(&path, "limits", "| new |\n").expect("rewritten");
        let out = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            out,
            "# B\nprose before\n<!-- bench:limits:start -->\n| new |\n<!-- bench:limits:end -->\nprose after\n"
        );
        assert!(rewrite(&path, "soak", "x").is_err(), "a missing marker is an error, not an append");
    }
}
