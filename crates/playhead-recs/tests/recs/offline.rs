//! synth -> eval, batch and train, end to end through files.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use playhead_core::Timestamp;
use playhead_recs::catalog::Catalog;
use playhead_recs::eval::read_recs_file;
use playhead_recs::{
    BatchArgs, EvalArgs, Protocol, SynthArgs, SynthScale, TrainArgs, TrainConfig, load_catalog_titles,
    load_interactions, read_model,
};

/// A fresh directory per test (no tempfile dependency; the process id keeps runs apart).
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("playhead-recs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create test directory");
    d
}

fn small() -> SynthScale {
    SynthScale { profiles: 700, movies: 300, series: 30, days: 90, ..SynthScale::default() }
}

#[test]
fn synth_then_eval_the_blend_beats_popularity_and_stays_under_the_oracle() {
    let d = dir("e2e");
    let report = playhead_recs::synth(&SynthArgs { out: d.clone(), seed: 7, scale: small() }).unwrap();
    assert!(report.titles <= 2000, "CI-sized");
    assert!(report.oracle_lines > 0);
    let mut args = EvalArgs::new(d.join("interactions.csv"), d.join("catalog.ndjson"), Protocol::Temporal);
    args.bootstrap = 200;
    args.ks = vec![10, 20];
    let v = playhead_recs::eval(&args).unwrap();
    let m = |model: &str, metric: &str, f: &str| v["models"][model][metric][f].as_f64().unwrap();
    assert_eq!(v["oracle"]["available"], true, "{}", v["oracle"]);
    for metric in ["recall@20", "ndcg@10"] {
        assert!(
            m("blend", metric, "lo") > m("popularity", metric, "hi"),
            "{metric}: blend {} vs popularity {}",
            m("blend", metric, "mean"),
            m("popularity", metric, "mean")
        );
        assert!(m("oracle", metric, "mean") > m("blend", metric, "mean"), "the oracle is the ceiling");
        for model in ["popularity", "cowatch", "ease", "blend", "oracle"] {
            let (lo, mean, hi) = (m(model, metric, "lo"), m(model, metric, "mean"), m(model, metric, "hi"));
            assert!(lo <= mean && mean <= hi, "{model} {metric}: {lo} {mean} {hi}");
        }
    }
    let share = v["share_of_oracle"]["blend"]["recall@20"].as_f64().unwrap();
    assert!(share > 0.5 && share < 1.0, "{share}");
    assert!(m("blend", "coverage@20", "mean") > m("popularity", "coverage@20", "mean"));
    assert!(m("popularity", "avg_popularity@20", "mean") > m("blend", "avg_popularity@20", "mean"));
}

#[test]
fn leave_last_out_scores_one_title_per_profile_and_exports_its_split() {
    let d = dir("loo");
    playhead_recs::synth(&SynthArgs {
        out: d.clone(),
        seed: 8,
        scale: SynthScale { profiles: 200, ..small() },
    })
    .unwrap();
    let mut args =
        EvalArgs::new(d.join("interactions.csv"), d.join("catalog.ndjson"), Protocol::LeaveLastOut);
    args.bootstrap = 50;
    args.export_split = Some(d.join("split"));
    let v = playhead_recs::eval(&args).unwrap();
    assert_eq!(v["profiles_evaluated"], v["heldout_titles"]);
    assert_eq!(v["oracle"]["available"], true);
    let queries = std::fs::read_to_string(d.join("split/queries.csv")).unwrap();
    assert_eq!(queries.lines().count() as u64 - 1, v["profiles_evaluated"].as_u64().unwrap());
    // The exported training file is valid input and lacks exactly the held-out plays and later.
    let train = load_interactions(&d.join("split/train.csv")).unwrap();
    let all = load_interactions(&d.join("interactions.csv")).unwrap();
    assert!(train.len() < all.len());
    // An external model file in the batch format is scored like any model.
    let rec_file = d.join("ext.jsonl");
    let lines: Vec<String> = queries
        .lines()
        .skip(1)
        .map(|l| format!("{{\"profile_id\":\"{}\",\"titles\":[]}}", l.split(',').next().unwrap()))
        .collect();
    std::fs::write(&rec_file, lines.join("\n")).unwrap();
    args.external = vec![("empty".into(), rec_file)];
    args.export_split = None;
    let v = playhead_recs::eval(&args).unwrap();
    assert_eq!(v["models"]["empty"]["recall@20"]["mean"], 0.0);
}

#[test]
fn batch_writes_unwatched_playable_titles_for_every_profile() {
    let d = dir("batch");
    playhead_recs::synth(&SynthArgs {
        out: d.clone(),
        seed: 9,
        scale: SynthScale { profiles: 150, oracle: false, ..small() },
    })
    .unwrap();
    let out = d.join("recs.jsonl");
    let report = playhead_recs::batch(&BatchArgs {
        interactions: d.join("interactions.csv"),
        catalog: d.join("catalog.ndjson"),
        k: 20,
        out: out.clone(),
        config: TrainConfig::default(),
    })
    .unwrap();
    let recs = read_recs_file(&out).unwrap();
    assert_eq!(recs.len(), report.profiles);
    let catalog = Catalog::new(load_catalog_titles(&d.join("catalog.ndjson")).unwrap());
    let mut watched: HashMap<String, HashSet<String>> = HashMap::new();
    for i in load_interactions(&d.join("interactions.csv")).unwrap() {
        watched.entry(i.profile_id).or_default().insert(i.title_id.to_string());
    }
    for (p, titles) in &recs {
        assert!(titles.len() <= 20);
        assert!(!titles.is_empty(), "{p} got nothing");
        let items: HashSet<_> = titles.iter().map(|t| catalog.item_id_of(t).unwrap()).collect();
        assert_eq!(items.len(), titles.len(), "one title per show");
        for t in titles {
            let title = catalog.title(t).unwrap();
            assert_ne!(title.kind, playhead_core::title::TitleKind::Series, "playable ids only");
            assert!(!watched[p].contains(t), "{p} already watched {t}");
            assert!(title.is_available(report.as_of));
        }
    }
}

#[test]
fn train_writes_a_versioned_model_that_reads_back() {
    let d = dir("train");
    playhead_recs::synth(&SynthArgs {
        out: d.clone(),
        seed: 10,
        scale: SynthScale { profiles: 100, oracle: false, ..small() },
    })
    .unwrap();
    let path = d.join("model.json");
    let args = TrainArgs {
        interactions: d.join("interactions.csv"),
        catalog: d.join("catalog.ndjson"),
        out: path.clone(),
        config: TrainConfig { max_dense_items: 50, ..TrainConfig::default() },
        now: Timestamp(1_800_000_000_000),
    };
    let m = playhead_recs::train_files(&args).unwrap();
    assert!(m.version.starts_with("recs-1800000000000-"));
    assert!(m.meta.fallback, "more items than max_dense_items: EASE on the head only");
    assert_eq!(m.meta.dense_items, 50);
    assert!(m.ease[50..].iter().all(Vec::is_empty), "the tail has no EASE row");
    assert!(m.cowatch[50..].iter().any(|r| !r.is_empty()), "the tail is reached through co-watch");
    assert_eq!(read_model(&path).unwrap(), m);
    assert!(!d.join("model.json.tmp").exists());
}

#[test]
fn bad_input_files_name_the_line() {
    let d = dir("bad");
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
    let args = EvalArgs::new(d.join("i.csv"), d.join("c.ndjson"), Protocol::Temporal);
    let err = playhead_recs::eval(&args).unwrap_err().to_string();
    assert!(err.contains("i.csv") && err.contains("line 3"), "{err}");
}
