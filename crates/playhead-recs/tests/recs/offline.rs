//! synth -> eval, batch and train, end to end through files.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use playhead_core::Timestamp;
use playhead_recs::catalog::Catalog;
use playhead_recs::eval::read_recs_file;
use playhead_recs::{
    BatchArgs, EvalArgs, Protocol, SynthArgs, SynthScale, SynthShape, TrainArgs, TrainConfig, TuneConfig,
    load_catalog_titles, load_interactions, read_model,
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
    args.config = quick_tuning();
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
        now: None,
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

/// Tuning bounded for tests (the defaults search more; see docs/benchmarks.md for their cost).
fn quick_tuning() -> TrainConfig {
    TrainConfig {
        tune: TuneConfig {
            search_size: 14,
            lambdas: vec![100.0, 400.0],
            max_queries: 600,
            bootstrap: 100,
            ..TuneConfig::default()
        },
        ..TrainConfig::default()
    }
}

#[test]
fn self_tuning_never_serves_below_a_single_source_explains_itself_and_is_deterministic() {
    let d = dir("tune");
    let scale = SynthScale { profiles: 500, ..SynthScale::for_shape(SynthShape::Binge) };
    playhead_recs::synth(&SynthArgs { out: d.clone(), seed: 3, scale }).unwrap();
    let mut args = EvalArgs::new(d.join("interactions.csv"), d.join("catalog.ndjson"), Protocol::Temporal);
    args.bootstrap = 100;
    args.ks = vec![10, 20];
    args.config = quick_tuning();
    let v = playhead_recs::eval(&args).unwrap();
    let t = &v["tuning"];
    let served = &t["served"];
    for s in t["single_sources"].as_array().unwrap() {
        for metric in ["recall_at_20", "ndcg_at_10"] {
            let (a, b) = (served[metric]["mean"].as_f64().unwrap(), s[metric]["mean"].as_f64().unwrap());
            assert!(a + 1e-12 >= b, "served {metric} {a} below {} {b}", s["name"]);
        }
    }
    let n = t["candidates"].as_array().unwrap().len();
    assert!((3..=14 + 3).contains(&n), "bounded by the search size (+ the measured caps): {n}");
    assert!(t["why"].as_str().unwrap().contains("Recall@20"), "{}", t["why"]);
    assert!(t["validation"]["scored_profiles"].as_u64().unwrap() > 50, "{}", t["validation"]);
    assert_eq!(v["served_config"]["blend"], served["blend"], "the model serves what tuning chose");
    // A binge-heavy catalog with paused series: the next episode must be part of what is served.
    assert!(served["blend"]["w_next"].as_f64().unwrap() > 0.0, "{}", served["blend"]);
    // Deterministic: the same input and seed choose the same settings with the same scores.
    let again = playhead_recs::eval(&args).unwrap();
    assert_eq!(again["tuning"]["candidates"], t["candidates"]);
    assert_eq!(again["tuning"]["served"], t["served"]);
    assert_eq!(again["models"], v["models"]);
}

#[test]
fn a_catalog_without_genres_turns_the_diversity_cap_off_and_says_so() {
    let d = dir("nogenres");
    let scale = SynthScale { profiles: 200, oracle: false, ..small() };
    playhead_recs::synth(&SynthArgs { out: d.clone(), seed: 4, scale }).unwrap();
    let text = std::fs::read_to_string(d.join("catalog.ndjson")).unwrap();
    let stripped: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["genres"] = serde_json::json!([]);
            v.to_string()
        })
        .collect();
    std::fs::write(d.join("catalog.ndjson"), stripped.join("\n")).unwrap();
    let mut args = EvalArgs::new(d.join("interactions.csv"), d.join("catalog.ndjson"), Protocol::Temporal);
    args.bootstrap = 10;
    args.config = quick_tuning();
    let v = playhead_recs::eval(&args).unwrap();
    let div = &v["tuning"]["diversity"];
    assert_eq!(div["available"], false, "{div}");
    assert_eq!(div["max_per_genre_pct"], 100.0);
    assert!(div["note"].as_str().unwrap().contains("no genres"), "{div}");
    // Without genres there is nothing to cap: no cap candidate was scored either.
    assert!(
        v["tuning"]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["blend"]["max_per_genre_pct"] == 100.0)
    );
}

#[test]
fn movielens_files_with_bad_rows_are_counted_never_dropped_silently() {
    let d = dir("movielens");
    // Six users over five movies; then the bad rows: an unknown movie, a duplicate row, a rating
    // stamped in the future, and a user with a single rating.
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    let day = 86_400;
    for u in 1..=6 {
        for (k, m) in [1, 2, 3, 4, 5].iter().enumerate() {
            if (u + k) % 4 != 0 {
                let rating = if (u + k) % 3 == 0 { "2.5" } else { "4.5" };
                ratings.push_str(&format!("{u},{m},{rating},{}\n", 1_000_000_000 + (u * 10 + k) * day));
            }
        }
    }
    ratings.push_str("1,999,5,1000000000\n");
    ratings.push_str(&format!("1,1,4.5,{}\n", 1_000_000_000 + 10 * day));
    ratings.push_str("2,3,4,4102444800\n");
    ratings.push_str("7,2,5,1000000000\n");
    std::fs::write(d.join("ratings.csv"), ratings).unwrap();
    let movies = "movieId,title,genres\n1,Alpha (1990),Drama\n2,\"Beta, The (1991)\",Drama|Crime\n\
                  3,Gamma (1992),Comedy\n4,Delta (1993),Comedy\n5,Epsilon (1994),(no genres listed)\n";
    std::fs::write(d.join("movies.csv"), movies).unwrap();
    let mut args = EvalArgs::new(d.join("ratings.csv"), d.join("movies.csv"), Protocol::LeaveLastOut);
    args.bootstrap = 10;
    args.now = Some(Timestamp(2_000_000_000_000));
    args.config = TrainConfig { lambda: 1.0, ..quick_tuning() };
    let v = playhead_recs::eval(&args).unwrap();
    let input = &v["input"];
    assert_eq!(input["unknown_titles"], 1, "{input}");
    assert_eq!(input["duplicates"], 1, "{input}");
    assert_eq!(input["future_timestamps"], 1, "{input}");
    assert_eq!(input["single_play_profiles"], 1, "{input}");
    let rows = input["rows"].as_u64().unwrap();
    assert_eq!(rows, input["kept"].as_u64().unwrap() + 3, "every row accounted for: {input}");
    assert!(v["profiles_evaluated"].as_u64().unwrap() > 0, "{v}");
}
