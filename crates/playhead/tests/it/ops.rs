//! Operating Playhead (issue #15): the metrics catalogue against a real scrape (promtool), the
//! alert rules and the dashboard against the catalogue, `/healthz` and `playhead doctor` on the
//! JetStream storage problem, backups taken under load, SIGTERM under load, and a full disk.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_playhead");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap()
}

/// Metric names an expression or document mentions (histogram series reduced to their metric).
fn metric_names(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        let starts =
            ["playhead_", "http_request", "process_"].iter().any(|p| b[i..].starts_with(p.as_bytes()));
        if starts && (i == 0 || !word(b[i - 1])) {
            let mut j = i;
            while j < b.len() && word(b[j]) {
                j += 1;
            }
            let name = &text[i..j];
            let base =
                ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            out.insert(base.to_owned());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn catalogue() -> BTreeSet<String> {
    playhead::ops::CATALOGUE.iter().map(|m| m.name.to_owned()).collect()
}

/// The dashboard's and the alert rules' expressions name only catalogued metrics; every alert
/// names a runbook section that exists; docs/operations.md explains every catalogued metric.
#[test]
fn alerts_dashboard_and_docs_name_only_catalogued_metrics() {
    let known = catalogue();
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/playhead.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 20, "the dashboard lost its panels");
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "panel expression names no metric: {e}");
        for n in names {
            assert!(known.contains(&n), "dashboard expression names {n}, which the catalogue lacks: {e}");
        }
    }
    let alerts = read("deploy/prometheus/alerts.yml");
    let ops = read("docs/operations.md");
    let headings: BTreeSet<String> = ops
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim().to_ascii_lowercase().replace(' ', "-"))
        .collect();
    let mut alert_count = 0;
    for line in alerts.lines() {
        let line = line.trim();
        if let Some(expr) = line.strip_prefix("expr:") {
            for n in metric_names(expr) {
                assert!(known.contains(&n), "alert expression names {n}, which the catalogue lacks");
            }
        }
        if let Some(rb) = line.strip_prefix("runbook: ") {
            alert_count += 1;
            let anchor = rb.trim_matches('"').strip_prefix("docs/operations.md#").unwrap();
            assert!(
                headings.contains(anchor),
                "runbook section #{anchor} is missing from docs/operations.md"
            );
        }
    }
    // Multi-line expressions (`expr: |`) are checked as a whole file too.
    for n in metric_names(&alerts) {
        assert!(known.contains(&n), "alerts.yml names {n}, which the catalogue lacks");
    }
    assert!(alert_count >= 10, "alerts without runbooks");
    for m in playhead::ops::CATALOGUE {
        assert!(ops.contains(&format!("`{}`", m.name)), "docs/operations.md does not explain {}", m.name);
    }
}

/// A real scrape of a server that took traffic lists every metric of the embedded mode and
/// passes `promtool check metrics`.
#[tokio::test]
async fn a_real_scrape_lists_the_catalogue_and_passes_promtool() {
    let port = free_port();
    let t = spawn_with(|s| s.metrics_listen = Some(([127, 0, 0, 1], port).into())).await;
    let v = t.viewer("scrape@example.com").await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    t.events(&v, watching("m1", 0, 5, 10)).await;
    t.settle().await;
    let _ = t.get_json(&v.token, &format!("/v1/profiles/{}/continue-watching", v.profile)).await;
    // One gRPC call (the same listener): its RED metrics are in the catalogue too.
    let channel = tonic::transport::Endpoint::from_shared(t.base.clone()).unwrap().connect().await.unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let mut scrape;
    // The sampler and the revocation poller run at start; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let wanted: Vec<&str> = playhead::ops::CATALOGUE
        .iter()
        .filter(|m| m.mode == playhead::ops::Mode::Both)
        .map(|m| m.name)
        .collect();
    loop {
        scrape = t.http.get(&metrics).send().await.unwrap().text().await.unwrap();
        let have: BTreeSet<String> = scrape
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        let missing: Vec<&&str> = wanted.iter().filter(|n| !have.contains(**n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "catalogued metrics missing from the scrape: {missing:?}\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(scrape.contains("http_request_duration_seconds_bucket{"), "latency must be a histogram");

    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert!(!under_ci(), "promtool is needed under CI (scripts/ci-services installs it)");
        eprintln!("SKIPPED promtool check: not installed");
    } else {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), scrape.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let health = t.http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let doc: Value = health.json().await.unwrap();
    assert_eq!(doc["status"], "ok", "{doc}");
    assert_eq!(doc["checks"]["database"]["status"], "ok");
    assert_eq!(doc["checks"]["pipeline"]["backlog"], 0);
    t.stop().await;
}

/// A nats-server of this test's own whose JetStream store is smaller than a stream wants.
struct SmallNats {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for SmallNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn small_nats(max_file_store: &str) -> Option<SmallNats> {
    let bin = Path::new("/usr/sbin/nats-server");
    if !bin.exists() {
        assert!(!under_ci(), "nats-server is needed under CI (scripts/ci-services installs it)");
        eprintln!("SKIPPED: nats-server not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n  max_file_store: {max_file_store}\n}}\n",
            dir.path().join("js").display()
        ),
    )
    .unwrap();
    let child =
        Command::new(bin).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(SmallNats { child, port, _dir: dir })
}

/// The operator story: a NATS whose JetStream store cannot hold the configured stream.
/// Writes are still accepted (into the outbox), `/healthz` says the pipeline is degraded and why
/// in one line, the lag shows, and `playhead doctor` fails naming nats.max_bytes as the fix.
#[tokio::test]
async fn a_stream_that_cannot_be_created_shows_in_healthz_and_doctor() {
    on(Backend::Postgres, stream_cannot_be_created()).await;
}

async fn stream_cannot_be_created() {
    let Some(nats) = small_nats("16MB") else { return };
    let nats_url = format!("nats://127.0.0.1:{}", nats.port);
    let port = free_port();
    let t = spawn_with(|s| {
        s.nats_url = Some(nats_url.as_str().into());
        // The shipped default (1 GiB) on a 16 MB store: the same error as 32 GiB on a full disk.
        s.nats = playhead_nats::NatsSettings { stream: s.nats.stream.clone(), ..Default::default() };
        s.metrics_listen = Some(([127, 0, 0, 1], port).into());
    })
    .await;
    let v = t.viewer("stuck@example.com").await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    t.events(&v, watching("m1", 0, 3, 10)).await;

    let deadline = Instant::now() + Duration::from_secs(15);
    let doc = loop {
        let doc: Value = t
            .http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // "not connected" while the client connects, then the stream error.
        if doc["checks"]["nats"]["reason"].as_str().is_some_and(|r| r.contains("nats.max_bytes")) {
            break doc;
        }
        assert!(Instant::now() < deadline, "healthz never reported the stream problem: {doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(doc["status"], "degraded", "{doc}");
    let reason = doc["checks"]["nats"]["reason"].as_str().unwrap();
    assert!(reason.contains("nats.max_bytes") && reason.contains("reserve"), "{reason}");
    assert!(doc["checks"]["pipeline"]["backlog"].as_u64().unwrap() >= 7, "accepted events wait: {doc}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("playhead.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\ndatabase_schema = \"{}\"\nnats_url = \"{nats_url}\"\n[nats]\nstream = \"{}\"\n",
            pg::url(),
            t.settings.database_schema.as_deref().unwrap(),
            t.settings.nats.stream,
        ),
    )
    .unwrap();
    let (code, out) = doctor(dir.path(), &config);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out["ok"], false);
    let finding = out["findings"].as_array().unwrap().iter().find(|f| f["check"] == "nats").unwrap();
    assert_eq!(finding["level"], "fail", "{finding}");
    assert!(finding["fix"].as_str().unwrap().contains("lower nats.max_bytes"), "{finding}");
    assert!(finding["detail"].as_str().unwrap().contains("10047"), "{finding}");
    // The database part of the same run is fine.
    let db = out["findings"].as_array().unwrap().iter().find(|f| f["check"] == "schema").unwrap();
    assert_eq!(db["level"], "ok", "{db}");

    // With a stream that fits, the same doctor passes.
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\ndatabase_schema = \"{}\"\nnats_url = \"{nats_url}\"\n[nats]\nstream = \"{}\"\nmax_bytes = 4194304\n",
            pg::url(),
            t.settings.database_schema.as_deref().unwrap(),
            t.settings.nats.stream,
        ),
    )
    .unwrap();
    let (code, out) = doctor(dir.path(), &config);
    assert_eq!(code, Some(0), "{out}");
    t.stop().await;
}

fn doctor(dir: &Path, config: &Path) -> (Option<i32>, Value) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .arg("--config")
        .arg(config)
        .arg("doctor")
        .env_remove("PLAYHEAD_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("doctor printed no JSON ({e}): {stdout} {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), doc)
}

/// Doctor on an embedded deployment: a fresh dir passes (with notes); a wrong config key fails
/// naming the key; a data dir others can read is a warning with the chmod to run.
#[test]
fn doctor_checks_an_embedded_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("playhead.toml");
    std::fs::write(&config, "").unwrap();
    let (code, out) = doctor(&data, &config);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["ok"], true);

    // After a migrate the schema is current and keys exist.
    let status = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(status.status.success());
    let (code, out) = doctor(&data, &config);
    assert_eq!(code, Some(0), "{out}");
    let find = |out: &Value, check: &str| -> Value {
        out["findings"].as_array().unwrap().iter().find(|f| f["check"] == check).cloned().unwrap()
    };
    assert_eq!(find(&out, "schema")["level"], "ok", "{out}");
    assert_eq!(find(&out, "data_dir")["level"], "ok", "{out}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (code, out) = doctor(&data, &config);
        assert_eq!(code, Some(0), "a warning is not a failure: {out}");
        let f = find(&out, "data_dir");
        assert_eq!(f["level"], "warn");
        assert!(f["fix"].as_str().unwrap().starts_with("chmod 700"), "{f}");
    }

    std::fs::write(&config, "[limits]\nmax_backlogg = 5\n").unwrap();
    let (code, out) = doctor(&data, &config);
    assert_eq!(code, Some(1), "{out}");
    let f = find(&out, "config");
    assert_eq!(f["level"], "fail");
    assert!(f["detail"].as_str().unwrap().contains("max_backlogg"), "{f}");
}

/// One load generator: batches of fresh events from `workers` tasks until `stop`; returns every
/// event id acknowledged `accepted`, with the instant its response arrived.
fn load(
    base: String,
    token: String,
    profile: String,
    workers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<LoadResult>> {
    (0..workers)
        .map(|_| {
            let (base, token, profile, stop) = (base.clone(), token.clone(), profile.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut r = LoadResult::default();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let batch: Vec<Value> =
                        (0..10).map(|i| ev("m1", "heartbeat", 60_000 + i * 1000, 5)).collect();
                    let sent = http
                        .post(format!("{base}/v1/profiles/{profile}/events"))
                        .bearer_auth(&token)
                        .json(&json!({"events": batch}))
                        .send()
                        .await;
                    let resp = match sent {
                        Ok(resp) => resp,
                        Err(e) if e.is_connect() => {
                            r.refused += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        Err(e) => {
                            // Sent, and the connection closed before any response: the client
                            // got no answer (a keep-alive race with the server closing idle
                            // connections), so nothing was promised.
                            r.unanswered.push(e.to_string());
                            continue;
                        }
                    };
                    let status = resp.status();
                    match resp.json::<Value>().await {
                        Ok(body) if status == StatusCode::ACCEPTED => {
                            let at = Instant::now();
                            for item in body["results"].as_array().unwrap() {
                                if item["status"] == "accepted" {
                                    r.accepted.push((item["event_id"].as_str().unwrap().to_owned(), at));
                                }
                            }
                        }
                        Ok(body) => r.other.push(format!("{status}: {body}")),
                        // A response started and did not finish: what a drain must never do.
                        Err(e) => r.torn.push(format!("{status}: {e}")),
                    }
                }
                r
            })
        })
        .collect()
}

#[derive(Debug, Default)]
struct LoadResult {
    accepted: Vec<(String, Instant)>,
    refused: u64,
    unanswered: Vec<String>,
    other: Vec<String>,
    torn: Vec<String>,
}

async fn collect(handles: Vec<tokio::task::JoinHandle<LoadResult>>) -> LoadResult {
    let mut all = LoadResult::default();
    for h in handles {
        let r = h.await.unwrap();
        all.accepted.extend(r.accepted);
        all.refused += r.refused;
        all.unanswered.extend(r.unanswered);
        all.other.extend(r.other);
        all.torn.extend(r.torn);
    }
    all
}

async fn sqlite_ids(db: &Path, sql: &str) -> BTreeSet<String> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
    let _ = conn.close().await;
    rows.into_iter().collect()
}

fn cli(data: &Path, args: &[&str]) -> Value {
    let out = Command::new(BIN).arg("--data-dir").arg(data).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

/// A backup taken while events pour in holds every event acknowledged before it began; restored
/// into an empty data dir, the server starts on it, applies what was still queued, and answers
/// each of those events `duplicate`. Restoring over an existing database is refused.
#[tokio::test]
async fn a_backup_under_load_restores_every_event_acknowledged_before_it() {
    let t = spawn_with(|s| s.rate_limits.ingest.limit = 1_000_000).await;
    let v = t.viewer("backup@example.com").await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles = load(t.base.clone(), v.token.clone(), v.profile.to_string(), 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let began = Instant::now();
    let out_file = tempfile::tempdir().unwrap();
    let backup = out_file.path().join("playhead.backup");
    let data = t.settings.data_dir.clone();
    let file = backup.clone();
    let report = tokio::task::spawn_blocking(move || {
        cli(&data, &["admin", "backup", "--out", file.to_str().unwrap()])
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load = collect(handles).await;
    assert!(load.torn.is_empty() && load.other.is_empty(), "{:?} {:?}", load.torn, load.other);
    let before: BTreeSet<String> =
        load.accepted.iter().filter(|(_, at)| *at < began).map(|(id, _)| id.clone()).collect();
    let after = load.accepted.len() - before.len();
    assert!(
        before.len() >= 100 && after > 0,
        "load too light to prove anything: {} before, {after} after",
        before.len()
    );
    assert_eq!(report["status"], "backed_up");
    t.stop().await;

    // Restore into an empty data dir.
    let restored = tempfile::tempdir().unwrap();
    let restored_data = restored.path().join("data");
    let r = cli(&restored_data, &["admin", "restore", "--from", backup.to_str().unwrap()]);
    assert_eq!(r["status"], "restored", "{r}");
    let in_backup = sqlite_ids(&restored_data.join("playhead.db"), "SELECT event_id FROM events").await;
    let missing: Vec<&String> = before.iter().filter(|id| !in_backup.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing from the backup: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // Refused over an existing database.
    let again = Command::new(BIN)
        .arg("--data-dir")
        .arg(&restored_data)
        .args(["admin", "restore", "--from", backup.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty data dir"));

    // The restored deployment serves: queued events get applied, and re-sent ones are duplicates.
    let dir = restored_data.clone();
    let t2 = spawn_with(move |s| {
        s.data_dir = dir;
        s.rate_limits.ingest.limit = 1_000_000;
    })
    .await;
    t2.settle().await;
    let sample: Vec<Value> = before
        .iter()
        .take(200)
        .map(|id| {
            let mut e = ev("m1", "heartbeat", 60_000, 5);
            e["event_id"] = json!(id);
            e
        })
        .collect();
    let token = t2.token(v.account, &TestApp::viewer_scopes(), 600);
    for chunk in sample.chunks(100) {
        let r =
            t2.post(&token, &format!("/v1/profiles/{}/events", v.profile), &json!({"events": chunk})).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let body: Value = r.json().await.unwrap();
        for item in body["results"].as_array().unwrap() {
            assert_eq!(item["status"], "duplicate", "{item}");
        }
    }
    t2.stop().await;
}

/// A `playhead serve` process on `port` over `data`; returns once it prints its listening line.
fn serve(data: &Path, config: &Path, port: u16) -> Child {
    spawn_serve(data, config, port)
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

/// SIGTERM under load: the server stops accepting, answers what it took, applies, and exits 0
/// within its deadline; no response is torn; after a restart every event acknowledged
/// `accepted` is stored and nothing is left unapplied.
#[tokio::test]
async fn sigterm_under_load_drains_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("playhead.toml");
    std::fs::write(
        &config,
        "[limits]\nshutdown_grace_secs = 5\n[rate_limits]\ningest = { limit = 1000000, window_secs = 60 }\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let account = cli(&data, &["--config", cfg, "admin", "create-account", "--email", "term@example.com"])["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let profile = cli(
        &data,
        &["--config", cfg, "admin", "create-profile", "--account", &account, "--name", "P"],
    )["profile_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token =
        cli(&data, &["--config", cfg, "admin", "token", "--account", &account, "--admin"])["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve(&data, &config, port);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/titles/import"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(movie("m1", 100).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles = load(base.clone(), token.clone(), profile.clone(), 8, stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    sigterm(&server);
    let status = tokio::task::spawn_blocking(move || server.wait().unwrap()).await.unwrap();
    let took = signalled.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load = collect(handles).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(took < Duration::from_secs(8), "took {took:?} to stop (deadline 5 s + the batch in hand)");
    assert!(load.torn.is_empty(), "responses cut mid-way: {:?}", load.torn);
    assert!(load.other.is_empty(), "unexpected answers: {:?}", load.other);
    assert!(load.accepted.len() >= 100, "load too light: {}", load.accepted.len());
    assert!(load.unanswered.len() <= 8, "at most one race per connection: {:?}", load.unanswered);

    // Restart on the same data dir: whatever was still queued gets applied.
    let mut server = serve(&data, &config, port);
    let db = data.join("playhead.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sqlite_ids(&db, "SELECT event_id FROM event_queue").await.is_empty() {
        assert!(Instant::now() < deadline, "queued events were not applied after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&server);
    assert!(server.wait().unwrap().success());
    let stored = sqlite_ids(&db, "SELECT event_id FROM events").await;
    let lost: Vec<&String> =
        load.accepted.iter().map(|(id, _)| id).filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost", lost.len());
    assert!(sqlite_ids(&db, "SELECT event_id FROM event_queue").await.is_empty());
}

const HAPROXY: &str = "/usr/sbin/haproxy";

/// Kills the child (SIGKILL) when dropped, so a failing test leaves nothing running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(http: &reqwest::Client, url: &str) {
    let t0 = Instant::now();
    while !http.get(url).send().await.is_ok_and(|r| r.status() == StatusCode::OK) {
        assert!(t0.elapsed() < Duration::from_secs(30), "{url} never answered 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A rolling restart of two replicas behind the shipped haproxy config, under load: each replica
/// in turn gets SIGTERM (not ready, still serving for `drain_delay_secs`, then drained) and is
/// started again; not one request fails, and every accepted event is stored.
#[tokio::test]
async fn a_rolling_restart_behind_haproxy_fails_no_request() {
    if !Path::new(HAPROXY).exists() {
        assert!(!under_ci(), "haproxy is needed under CI (scripts/ci-services installs it)");
        eprintln!("SKIPPED: {HAPROXY} not installed");
        return;
    }
    if !pg::reachable().await {
        return;
    }
    let schema = pg::Schema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let (front, port_a, port_b) = (free_port(), free_port(), free_port());
    let base = format!("http://127.0.0.1:{front}");
    let config = dir.path().join("scale-out.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\ndatabase_schema = \"{}\"\ndatabase_max_connections = 4\nissuer = \"{base}\"\n\
             [limits]\ndrain_delay_secs = 3\nshutdown_grace_secs = 10\n\
             [rate_limits]\ningest = {{ limit = 1000000, window_secs = 60 }}\n\
             [identity]\ntrusted_proxies = [\"127.0.0.1\"]\n",
            pg::url(),
            schema.name,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| crate::scale_out::run(dir.path(), &config, args);
    run(&["migrate"]);
    let account = run(&["admin", "create-account", "--email", "roll@example.com"])["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let profile = run(&["admin", "create-profile", "--account", &account, "--name", "P"])["profile_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = run(&["admin", "token", "--account", &account, "--admin"])["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Killed(serve(dir_a.path(), &config, port_a));
    let mut b = Killed(serve(dir_b.path(), &config, port_b));
    let lb_cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &lb_cfg,
        read("deploy/haproxy.cfg")
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{front}"))
            .replace("127.0.0.1:8081", &format!("127.0.0.1:{port_a}"))
            .replace("127.0.0.1:8082", &format!("127.0.0.1:{port_b}")),
    )
    .unwrap();
    let _lb = Killed(
        Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(&lb_cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    wait_ready(&http, &format!("{base}/readyz")).await;
    // haproxy marks a server up after `rise 2` checks `inter 1s` apart.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = http
        .post(format!("{base}/v1/titles/import"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(movie("m1", 100).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles = load(base.clone(), token.clone(), profile.clone(), 4, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (replica, port, data) in [(&mut a, port_a, dir_a.path()), (&mut b, port_b, dir_b.path())] {
        sigterm(&replica.0);
        let t0 = Instant::now();
        let status = replica.0.wait().unwrap();
        assert!(status.success(), "{status}");
        assert!(t0.elapsed() < Duration::from_secs(15), "drain took {:?}", t0.elapsed());
        // The upgraded binary would start here.
        replica.0 = serve(data, &config, port);
        wait_ready(&http, &format!("http://127.0.0.1:{port}/readyz")).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let load = collect(handles).await;
    assert!(load.torn.is_empty(), "responses cut mid-way: {:?}", load.torn);
    assert!(load.other.is_empty(), "failed requests: {:?}", load.other);
    assert!(load.unanswered.is_empty(), "requests without an answer: {:?}", load.unanswered);
    assert_eq!(load.refused, 0, "haproxy refused connections");
    assert!(load.accepted.len() >= 200, "load too light: {}", load.accepted.len());

    let mut conn = sqlx::PgConnection::connect(&pg::url()).await.unwrap();
    let ids: Vec<String> = load.accepted.iter().map(|(id, _)| id.clone()).collect();
    let stored: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {}.events WHERE event_id::text = ANY($1)",
        schema.name
    ))
    .bind(&ids)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(stored, i64::try_from(ids.len()).unwrap(), "accepted events missing");
}

/// A full disk, end to end (the database capped with `limits.max_database_mib`, which fails with
/// SQLITE_FULL exactly as a full file system does): the batch that does not fit answers 503 with
/// Retry-After and a problem document, nothing of it is stored, every batch answered 202 before
/// is, and reads keep working.
#[tokio::test]
async fn a_full_disk_answers_503_with_retry_after_and_writes_nothing_half() {
    let t = spawn_with(|s| {
        s.limits.max_database_mib = 1;
        s.rate_limits.ingest.limit = 1_000_000;
    })
    .await;
    let v = t.viewer("full@example.com").await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100)]).await;
    let url = t.url(&format!("/v1/profiles/{}/events", v.profile));
    let mut stored = Vec::new();
    let refused = loop {
        let batch: Vec<Value> = (0..100).map(|i| ev("m1", "heartbeat", 60_000 + i * 1000, 5)).collect();
        let r = t.http.post(&url).bearer_auth(&v.token).json(&json!({"events": batch})).send().await.unwrap();
        if r.status() == StatusCode::ACCEPTED {
            stored.extend(batch.iter().map(|e| e["event_id"].as_str().unwrap().to_owned()));
            assert!(stored.len() < 100_000, "the cap never bit");
            continue;
        }
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.headers().contains_key("retry-after"), "{:?}", r.headers());
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["status"], 503, "{problem}");
        break batch;
    };
    assert!(!stored.is_empty(), "some batches fit before the disk filled");
    // Reads still answer.
    let _ = t.get_json(&v.token, &format!("/v1/profiles/{}/history", v.profile)).await;
    let dir = t.stop_keep_dir().await;
    let in_log = sqlite_ids(&dir.path().join("playhead.db"), "SELECT event_id FROM events").await;
    assert!(stored.iter().all(|id| in_log.contains(id)), "a batch answered 202 is missing");
    let half: Vec<&str> =
        refused.iter().map(|e| e["event_id"].as_str().unwrap()).filter(|id| in_log.contains(*id)).collect();
    assert!(half.is_empty(), "{} events of the refused batch were written", half.len());
}
