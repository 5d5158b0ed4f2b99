//! Nothing accepted is lost, and replaying the log changes nothing.
//!
//! The crash test runs the real binary, SIGKILLs it in the middle of ingestion, restarts it and
//! checks every event that was answered `accepted` made it into state.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use playhead_core::ids::{DeviceId, ProfileId};
use playhead_core::rules::viewing::SessionKey;
use playhead_core::{Timestamp, TitleId};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_playhead");

fn cli(dir: &std::path::Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run playhead");
    assert!(out.status.success(), "playhead {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json on stdout")
}

/// Start `playhead serve` on a free port; returns the child and its base URL.
fn serve(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read");
    let v: Value = serde_json::from_str(&line).expect("listening line");
    (child, format!("http://{}", v["addr"].as_str().expect("addr")))
}

#[tokio::test]
async fn every_accepted_event_survives_a_sigkill_during_ingestion() {
    let dir = tempfile::tempdir().unwrap();
    let account = cli(dir.path(), &["admin", "create-account", "--email", "crash@example.com"])["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let profile =
        cli(dir.path(), &["admin", "create-profile", "--account", &account, "--name", "P"])["profile_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let token = cli(dir.path(), &["admin", "token", "--account", &account, "--admin"])["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut child, base) = serve(dir.path());
    let http = reqwest::Client::new();
    const CLIENTS: usize = 4;
    for c in 0..CLIENTS {
        let r = http
            .put(format!("{base}/v1/titles/crash-{c}"))
            .bearer_auth(&token)
            .json(&movie(&format!("crash-{c}"), 100))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    // Each client sends batches of 100 events for its own title with rising positions.
    let accepted: Arc<Mutex<HashMap<String, (usize, i64)>>> = Arc::default();
    let base_ms = now_ms() - 3_600_000;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (http, base, token, profile, accepted) =
            (http.clone(), base.clone(), token.clone(), profile.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let mut k: i64 = 0;
            loop {
                let events: Vec<Value> = (0..100)
                    .map(|i| {
                        let n = k + i;
                        json!({"event_id": uuid::Uuid::new_v4().to_string(), "title_id": format!("crash-{c}"), "kind": "heartbeat",
                               "position_ms": n * 100, "occurred_at": Timestamp(base_ms + n * 10).to_rfc3339(), "device_id": "tv"})
                    })
                    .collect();
                k += 100;
                let Ok(r) = http.post(format!("{base}/v1/profiles/{profile}/events")).bearer_auth(&token).json(&json!({"events": events})).send().await else {
                    return; // the server died under us: this batch's fate is unknown, so it is not counted
                };
                let Ok(body) = r.json::<Value>().await else { return };
                let mut acc = accepted.lock().unwrap();
                for (e, res) in events.iter().zip(body["results"].as_array().unwrap()) {
                    if res["status"] == "accepted" {
                        acc.insert(e["event_id"].as_str().unwrap().to_owned(), (c, e["position_ms"].as_i64().unwrap()));
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 1000, "the load reached the server ({} accepted)", accepted.len());

    // Restart: the consumer drains what was logged before the kill.
    let (mut child, base) = serve(dir.path());
    let mut max_pos = [0i64; CLIENTS];
    for (c, pos) in accepted.values() {
        max_pos[*c] = max_pos[*c].max(*pos);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (c, want) in max_pos.iter().enumerate() {
        loop {
            let r = http
                .get(format!("{base}/v1/profiles/{profile}/progress/crash-{c}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let p: Value = r.json().await.unwrap();
            // Positions rise with time, so the register can only be at or past the newest accepted one.
            if p["position_ms"].as_i64().unwrap() >= *want {
                break;
            }
            assert!(Instant::now() < deadline, "title crash-{c} stuck at {p} < {want}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Every accepted event is in the log, applied (the queue is empty).
    let rt = playhead::open(settings_for(dir.path())).await.unwrap();
    rt.app.drain().await.unwrap();
    assert_eq!(rt.app.ports().log.backlog().await.unwrap(), 0);
    let profile = ProfileId::parse(&profile).unwrap();
    let mut tx = rt.app.ports().viewing.begin().await.unwrap();
    let key = SessionKey::Implicit(DeviceId::parse("tv").ok());
    let mut stored = std::collections::HashSet::new();
    for c in 0..CLIENTS {
        let title = TitleId::parse(&format!("crash-{c}")).unwrap();
        for e in tx.events(profile, &title, &key, Timestamp(i64::MIN), Timestamp(i64::MAX)).await.unwrap() {
            stored.insert(e.event.event_id.to_string());
        }
    }
    let missing: Vec<_> = accepted.keys().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "{} accepted events lost, e.g. {:?}", missing.len(), missing.first());
}

/// Everything a viewer can see of one profile.
async fn snapshot(t: &TestApp, v: &Viewer, titles: &[&str]) -> Value {
    let p = v.profile;
    let mut progress = Vec::new();
    for id in titles {
        progress.push(t.get_json(&v.token, &format!("/v1/profiles/{p}/progress/{id}")).await);
    }
    json!({
        "history": t.get_json(&v.token, &format!("/v1/profiles/{p}/history?limit=100")).await,
        "continue": t.get_json(&v.token, &format!("/v1/profiles/{p}/continue-watching?limit=100")).await,
        "next_up": t.get_json(&v.token, &format!("/v1/profiles/{p}/next-up?limit=100")).await,
        "progress": progress,
    })
}

#[tokio::test]
async fn replaying_the_whole_log_after_deletions_and_hides_changes_nothing() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    let mut catalog = vec![movie("m1", 100), movie("m2", 100), movie("m3", 100), series("s")];
    for e in 1..=4 {
        catalog.push(episode("s", 1, e, 30));
    }
    t.import(&ops, &catalog).await;
    let v = t.viewer("ann@example.com").await;
    let mut evs = watching("m1", 0, 30, 600);
    evs.extend(watching("m2", 0, 20, 500));
    evs.extend(watching("m3", 0, 25, 400));
    evs.extend(watching("s.s1e1", 0, 30, 300));
    evs.extend(watching("s.s1e2", 0, 30, 200));
    evs.extend(watching("s.s1e3", 0, 10, 100));
    t.events(&v, evs).await;
    t.settle().await;
    // Deletions and hides.
    let h = t.get_json(&v.token, &format!("/v1/profiles/{}/history?limit=100", v.profile)).await;
    let m1_play = h["items"].as_array().unwrap().iter().find(|p| p["title_id"] == "m1").unwrap()["play_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let e2_play =
        h["items"].as_array().unwrap().iter().find(|p| p["title_id"] == "s.s1e2").unwrap()["play_id"]
            .as_str()
            .unwrap()
            .to_owned();
    for play in [&m1_play, &e2_play] {
        let r = t
            .http
            .delete(t.url(&format!("/v1/profiles/{}/history/{play}", v.profile)))
            .bearer_auth(&v.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    t.http
        .delete(t.url(&format!("/v1/profiles/{}/continue-watching/m2", v.profile)))
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    t.http
        .put(t.url(&format!("/v1/profiles/{}/progress/m3", v.profile)))
        .bearer_auth(&v.token)
        .json(&json!({"position_ms": 3_000_000}))
        .send()
        .await
        .unwrap();
    let titles = ["m1", "m2", "m3", "s.s1e1", "s.s1e2", "s.s1e3"];
    let before = snapshot(&t, &v, &titles).await;
    assert_eq!(before["history"]["items"].as_array().unwrap().len(), 4, "{before}");
    assert_eq!(
        before["next_up"]["items"][0]["title_id"], "s.s1e2",
        "the deleted play no longer counts as completed"
    );

    let requeued = t.app.ports().log.requeue_all().await.unwrap();
    assert!(requeued >= 296, "every logged event is requeued ({requeued})");
    t.app.drain().await.unwrap();
    t.settle().await;
    let after = snapshot(&t, &v, &titles).await;
    assert_eq!(before, after);
    t.stop().await;
}
