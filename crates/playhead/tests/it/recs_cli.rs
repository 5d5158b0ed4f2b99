//! `playhead recs ...` through the real binary: synth -> batch and eval on a CI-sized data set
//! (at most 2,000 titles), bad flags and files refused with a message naming them, and `train`
//! from the service's own store into a versioned model in the data dir.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_playhead");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run playhead")
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args);
    assert!(out.status.success(), "playhead {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json on stdout")
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(!out.status.success(), "playhead {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A small synthetic set: ~330 titles, 300 profiles.
fn synth(dir: &Path, seed: &str) -> Value {
    let out = dir.join("set");
    ok(
        dir,
        &[
            "recs",
            "synth",
            "--out",
            s(&out),
            "--seed",
            seed,
            "--profiles",
            "300",
            "--movies",
            "200",
            "--series",
            "20",
            "--days",
            "60",
        ],
    )
}

#[test]
fn synth_then_batch_writes_unwatched_playable_titles_for_every_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let report = synth(d, "5");
    let titles = report["titles"].as_u64().unwrap();
    assert!(titles > 0 && titles <= 2000, "CI-sized: {report}");
    let set = d.join("set");
    let (interactions, catalog, out) =
        (set.join("interactions.csv"), set.join("catalog.ndjson"), d.join("recs.jsonl"));
    let r = ok(
        d,
        &[
            "recs",
            "batch",
            "--interactions",
            s(&interactions),
            "--catalog",
            s(&catalog),
            "--k",
            "20",
            "--out",
            s(&out),
        ],
    );

    // What each profile watched, and what the catalog can play.
    let mut watched: HashMap<String, HashSet<String>> = HashMap::new();
    let csv = std::fs::read_to_string(&interactions).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let (pi, ti) = (
        header.iter().position(|c| *c == "profile_id").unwrap(),
        header.iter().position(|c| *c == "title_id").unwrap(),
    );
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        watched.entry(cols[pi].to_owned()).or_default().insert(cols[ti].to_owned());
    }
    let mut kinds: HashMap<String, (String, Option<String>)> = HashMap::new();
    for line in std::fs::read_to_string(&catalog).unwrap().lines() {
        let t: Value = serde_json::from_str(line).unwrap();
        kinds.insert(
            t["id"].as_str().unwrap().to_owned(),
            (t["kind"].as_str().unwrap().to_owned(), t["series_id"].as_str().map(str::to_owned)),
        );
    }

    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), watched.len(), "one line per profile in the file");
    assert_eq!(r["report"]["profiles"].as_u64().unwrap() as usize, lines.len());
    let mut profiles = HashSet::new();
    let mut empty = 0;
    for l in &lines {
        let p = l["profile_id"].as_str().unwrap();
        assert!(profiles.insert(p.to_owned()), "{p} twice");
        let titles: Vec<&str> = l["titles"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert!(titles.len() <= 20, "{p}: more than k");
        if titles.is_empty() {
            empty += 1;
        }
        let mut shows = HashSet::new();
        for t in &titles {
            let (kind, series) = kinds.get(*t).unwrap_or_else(|| panic!("{t} is not in the catalog"));
            assert_ne!(kind, "series", "{p}: {t} is a series, not a playable title");
            assert!(!watched[p].contains(*t), "{p} already watched {t}");
            assert!(
                shows.insert(series.clone().unwrap_or_else(|| (*t).to_owned())),
                "{p}: one title per show"
            );
        }
    }
    assert_eq!(empty, 0, "every profile gets recommendations");
}

#[test]
fn eval_reports_every_model_with_intervals_for_both_protocols() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    synth(d, "6");
    let set = d.join("set");
    let (interactions, catalog) = (set.join("interactions.csv"), set.join("catalog.ndjson"));
    for protocol in ["temporal", "leave-last-out"] {
        let v = ok(
            d,
            &[
                "recs",
                "eval",
                "--interactions",
                s(&interactions),
                "--catalog",
                s(&catalog),
                "--protocol",
                protocol,
                "--k",
                "10,20,50",
                "--bootstrap",
                "100",
            ],
        );
        assert_eq!(v["oracle"]["available"], true, "{protocol}: synth wrote the oracle: {}", v["oracle"]);
        assert!(v["profiles_evaluated"].as_u64().unwrap() > 0);
        for model in ["popularity", "cowatch", "ease", "blend", "oracle"] {
            for k in [10, 20, 50] {
                for metric in ["recall", "ndcg", "coverage", "avg_popularity"] {
                    let m = &v["models"][model][format!("{metric}@{k}")];
                    let (lo, mean, hi) = (m["lo"].as_f64(), m["mean"].as_f64(), m["hi"].as_f64());
                    let (Some(lo), Some(mean), Some(hi)) = (lo, mean, hi) else {
                        panic!("{protocol} {model} {metric}@{k}: missing interval: {m}");
                    };
                    assert!(lo <= hi && mean.is_finite(), "{protocol} {model} {metric}@{k}: {m}");
                    // Recall and NDCG are means over profiles: the full-sample mean lies inside its
                    // bootstrap interval. (Coverage is a set size: resamples with repeats cover less.)
                    if metric == "recall" || metric == "ndcg" {
                        assert!(
                            lo <= mean && mean <= hi,
                            "{protocol} {model} {metric}@{k}: {lo} {mean} {hi}"
                        );
                    }
                    if metric != "avg_popularity" {
                        assert!(
                            (0.0..=1.0).contains(&lo) && hi <= 1.0,
                            "{protocol} {model} {metric}@{k}: {m}"
                        );
                    }
                }
            }
        }
        let r = |model: &str| v["models"][model]["recall@20"]["mean"].as_f64().unwrap();
        assert!(r("blend") > r("popularity"), "{protocol}: the blend beats popularity");
        assert!(r("oracle") >= r("blend"), "{protocol}: the oracle is the ceiling");
        assert!(v["share_of_oracle"]["blend"]["recall@20"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bad_flags_and_files_are_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("i.csv"),
        "profile_id,title_id,watched_at,percent\np,m1,2026-01-01T00:00:00Z,\np,m2,never,\n",
    )
    .unwrap();
    std::fs::write(
        d.join("c.ndjson"),
        "{\"id\":\"m1\",\"kind\":\"movie\",\"name\":\"M\",\"duration_ms\":1}\n",
    )
    .unwrap();
    let (i, c) = (d.join("i.csv"), d.join("c.ndjson"));
    let e =
        fails(d, &["recs", "eval", "--interactions", s(&i), "--catalog", s(&c), "--protocol", "sideways"]);
    assert!(e.contains("--protocol"), "{e}");
    let e =
        fails(d, &["recs", "eval", "--interactions", s(&i), "--catalog", s(&c), "--protocol", "temporal"]);
    assert!(e.contains("i.csv") && e.contains("line 3"), "{e}");
    let out = d.join("o.jsonl");
    let e = fails(
        d,
        &["recs", "batch", "--interactions", s(&i), "--catalog", s(&c), "--k", "0", "--out", s(&out)],
    );
    assert!(e.contains("--k"), "{e}");
    let missing = d.join("missing.csv");
    let e = fails(d, &["recs", "batch", "--interactions", s(&missing), "--catalog", s(&c), "--out", s(&out)]);
    assert!(e.contains("missing.csv"), "{e}");
    assert!(!out.exists(), "nothing written on failure");
}

/// `recs train` reads the plays and catalog the service stored (through the ports) and stores a
/// versioned model there; a second run adds a version, which the running server switches to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_reads_the_store_and_writes_a_versioned_model() {
    // The server looks for a newer stored model every second.
    let t = spawn_with(|s| s.recs.reload_interval_secs = 1).await;
    let ops = t.catalog_token().await;
    let mut catalog = vec![series("show")];
    catalog.extend((1..=3).map(|e| episode("show", 1, e, 10)));
    catalog.extend(["m1", "m2", "m3"].map(|m| movie(m, 10)));
    t.import(&ops, &catalog).await;
    // Three viewers with overlapping tastes; every watch runs to the end (a completed play).
    let watches: [&[&str]; 3] =
        [&["m1", "m2", "show.s1e1"], &["m1", "m2"], &["m2", "show.s1e1", "show.s1e2"]];
    let mut plays = 0;
    for (n, titles) in watches.iter().enumerate() {
        let v = t.viewer(&format!("v{n}@example.com")).await;
        for (i, title) in titles.iter().enumerate() {
            let ends = 200 - 20 * i as i64;
            t.events(&v, watching(title, 0, 10, ends)).await;
            plays += 1;
        }
    }
    t.settle().await;
    let dir = t.settings.data_dir.clone();

    // The consumer counted co-watch pairs and trending votes as it applied the plays.
    let recs = &t.app.ports().recs;
    let m2 = recs.cowatch(&playhead_core::TitleId::parse("m2").unwrap(), 10).await.unwrap();
    let got: Vec<(&str, u32, u32)> = m2.neighbours.iter().map(|(i, n, o)| (i.as_str(), *n, *o)).collect();
    assert_eq!(m2.count, 3);
    assert_eq!(got, vec![("m1", 2, 2), ("show", 2, 2)], "a binge of one show pairs once");
    let trending = recs.trending(10).await.unwrap();
    let items: Vec<&str> = trending.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0], "m2", "three votes");

    // `recs train` runs beside the server (SQLite readers do not block on it).
    let train = |dir: &Path| -> Value {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["recs", "train"])
            .env("RUST_LOG", "error")
            .output()
            .expect("run playhead");
        assert!(out.status.success(), "recs train: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let first = train(&dir);
    assert_eq!(first["plays"], json!(plays), "{first}");
    assert_eq!(first["titles"], json!(7));
    assert_eq!(first["meta"]["profiles"], json!(3));
    let version = first["version"].as_str().unwrap().to_owned();
    // Stored in the service's database, where every replica loads it from.
    let stored = recs.latest_model().await.unwrap().expect("a stored model");
    assert_eq!(stored.version, version);
    let model: Value = serde_json::from_slice(&recs.model_body(&version).await.unwrap().unwrap()).unwrap();
    let items: HashSet<&str> =
        model["items"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert!(items.contains("show"), "episodes count toward their series: {items:?}");
    assert!(!items.contains("show.s1e1"));
    assert!(items.contains("m1") && items.contains("m2"));

    // Versions are kept; the newest serves, and the running server switches to it.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let second = train(&dir);
    let v2 = second["version"].as_str().unwrap();
    assert_ne!(v2, version);
    assert_eq!(recs.latest_model().await.unwrap().unwrap().version, v2);
    assert!(recs.model_body(&version).await.unwrap().is_some(), "older versions stay for rollback");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while t.app.recs_engine().version().as_deref() != Some(v2) {
        assert!(std::time::Instant::now() < deadline, "the server did not switch to {v2}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    t.stop().await;
}
