//! `playhead recs synth`: synthetic watch histories with planted structure, and their oracle.
//!
//! The generator: items (movies and series) live in a 16-dimensional taste space (each item has a
//! primary and a secondary dimension; genres are derived from them), with Zipf popularity and
//! release dates spread over the period (some series release weekly). Each profile has a taste
//! mixture that drifts toward a second mixture over its lifetime, and plays at a Poisson rate.
//! At each play it continues its most recent series in progress with probability
//! [`P_CONTINUE`] (series are watched in order), else starts a new item drawn from
//! `Σ_d u_d(t) · pop_i · v_id · novelty_i(t) / Z_d(t)` over released, unstarted items.
//!
//! Because the generator knows that distribution, it writes it (`oracle.jsonl`) for every profile
//! the evaluation protocols query, at the exact instant and history length the split uses
//! ([`crate::split`] is called on the generated data). Eval scores that ranking as "oracle": the
//! best any model can do knowing the true tastes, the physical ceiling of the data.
//!
//! Shapes ([`SynthShape`], `--profile`): the same latent model with different structure, so CI
//! measures robustness across data shapes rather than tuning to one. `classic` is the original
//! generator (draw for draw); `stable` has fixed, concentrated tastes over a year; `drifting`
//! replaces each taste completely over the profile's life; `binge` is series-heavy over two
//! years with series paused for months and resumed; `films` is film-heavy with three genres
//! unrelated to taste (a genre cap only costs there); `sparse` has a few plays per profile over
//! a large catalog (mostly leave-last-out territory).
//!
//! Rule: every random draw comes from a seeded ChaCha stream (one for the world, one per profile),
//! so a seed always produces byte-identical files, and replaying a profile for the oracle consumes
//! exactly the draws of the first pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use playhead_core::title::TitleInput;
use playhead_core::{Timestamp, TitleId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::data::{Interaction, write_interactions};
use crate::dataset::Dataset;
use crate::error::RecsError;
use crate::eval::OracleLine;
use crate::split::{DEFAULT_TEST_FRACTION, Protocol, split};

/// Latent taste dimensions.
pub const DIMS: usize = 16;
/// Probability of continuing the most recent series in progress (classic shape).
pub const P_CONTINUE: f64 = 0.6;
const GENRES: [&str; 8] =
    ["Drama", "Comedy", "Thriller", "Documentary", "Animation", "Sci-Fi", "Romance", "Crime"];
const NOVELTY: f64 = 3.0;
const NOVELTY_DAYS: f64 = 14.0;
const P_POSITIVE: f64 = 0.85;

/// The data shape the generator produces (`recs synth --profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynthShape {
    /// The original generator: drifting mixed tastes, 8 genres following taste, 120 days.
    #[default]
    Classic,
    /// Fixed, concentrated tastes over a year.
    Stable,
    /// Tastes replaced completely over each profile's life.
    Drifting,
    /// Series-heavy, two years, series paused for months and resumed.
    Binge,
    /// Film-heavy, three genres unrelated to taste.
    Films,
    /// A few plays per profile over a large catalog.
    Sparse,
}

impl SynthShape {
    /// Every shape, in CLI order.
    pub const ALL: [SynthShape; 6] =
        [Self::Classic, Self::Stable, Self::Drifting, Self::Binge, Self::Films, Self::Sparse];

    /// Parse the CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Stable => "stable",
            Self::Drifting => "drifting",
            Self::Binge => "binge",
            Self::Films => "films",
            Self::Sparse => "sparse",
        }
    }

    fn params(self) -> ShapeParams {
        let classic = ShapeParams {
            drift: 0.6,
            genres: 8,
            genres_follow_taste: true,
            p_continue: P_CONTINUE,
            p_drop: 0.04,
            p_pause: 0.0,
            pause_days: 0.0,
            rate: 0.5,
            mixture: &[0.6, 0.3, 0.1],
        };
        match self {
            Self::Classic => classic,
            Self::Stable => ShapeParams { drift: 0.0, rate: 0.25, mixture: &[0.8, 0.2], ..classic },
            Self::Drifting => ShapeParams { drift: 1.0, rate: 0.4, mixture: &[0.7, 0.3], ..classic },
            Self::Binge => ShapeParams {
                p_continue: 0.8,
                p_drop: 0.02,
                p_pause: 0.12,
                pause_days: 120.0,
                rate: 0.35,
                drift: 0.3,
                ..classic
            },
            Self::Films => {
                ShapeParams { genres: 3, genres_follow_taste: false, drift: 0.3, rate: 0.3, ..classic }
            }
            Self::Sparse => ShapeParams { rate: 0.05, drift: 0.0, mixture: &[0.7, 0.3], ..classic },
        }
    }
}

/// The knobs a shape sets (see the module docs).
#[derive(Debug, Clone, Copy)]
struct ShapeParams {
    /// Share of the taste replaced by the second mixture at the end of the period.
    drift: f64,
    /// Distinct genres.
    genres: usize,
    /// Whether genres derive from the taste dimensions (else drawn independently).
    genres_follow_taste: bool,
    /// Probability of continuing the most recent series that can be continued.
    p_continue: f64,
    /// Probability of dropping a series after an episode.
    p_drop: f64,
    /// Probability of pausing a series after an episode.
    p_pause: f64,
    /// Mean pause length in days.
    pause_days: f64,
    /// Median plays per day.
    rate: f64,
    /// Weights of the taste dimensions a profile mixes.
    mixture: &'static [f64],
}
/// 2026-01-01T00:00:00Z: day 0 of the generated period.
const BASE_SECS: i64 = 1_767_225_600;
const DAY_SECS: f64 = 86_400.0;

/// Size of the generated data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthScale {
    /// The data shape.
    pub shape: SynthShape,
    /// Profiles.
    pub profiles: usize,
    /// Movies.
    pub movies: usize,
    /// Series.
    pub series: usize,
    /// Fewest episodes of a series.
    pub min_episodes: usize,
    /// Most episodes of a series.
    pub max_episodes: usize,
    /// Length of the period in days.
    pub days: u32,
    /// Most plays of one profile.
    pub max_plays: usize,
    /// Write the oracle (two replays per queried profile; skip for very large benchmarks).
    pub oracle: bool,
    /// Titles per oracle ranking.
    pub oracle_top: usize,
}

impl Default for SynthScale {
    /// The default: ~1,400 titles, 2,000 profiles (within the CI evaluation size).
    fn default() -> Self {
        Self {
            shape: SynthShape::Classic,
            profiles: 2000,
            movies: 700,
            series: 70,
            min_episodes: 4,
            max_episodes: 12,
            days: 120,
            max_plays: 300,
            oracle: true,
            oracle_top: 200,
        }
    }
}

impl SynthScale {
    /// The default size of a shape (each about CI's evaluation size).
    pub fn for_shape(shape: SynthShape) -> Self {
        let d = Self::default();
        match shape {
            SynthShape::Classic => d,
            SynthShape::Stable => Self { shape, movies: 600, series: 120, days: 365, ..d },
            SynthShape::Drifting => Self { shape, days: 180, ..d },
            SynthShape::Binge => {
                Self { shape, movies: 150, series: 250, min_episodes: 6, max_episodes: 20, days: 730, ..d }
            }
            SynthShape::Films => Self { shape, movies: 1200, series: 30, days: 365, ..d },
            SynthShape::Sparse => {
                Self { shape, profiles: 4000, movies: 1500, series: 60, days: 365, max_plays: 8, ..d }
            }
        }
    }
}

/// Arguments of `playhead recs synth`.
#[derive(Debug, Clone)]
pub struct SynthArgs {
    /// Output directory (created).
    pub out: PathBuf,
    /// Seed.
    pub seed: u64,
    /// Size.
    pub scale: SynthScale,
}

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct SynthReport {
    /// Catalog titles (movies, series, episodes).
    pub titles: usize,
    /// Profiles with at least one play.
    pub profiles: usize,
    /// Interaction rows.
    pub interactions: usize,
    /// Oracle lines.
    pub oracle_lines: usize,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Generated data, in memory.
#[derive(Debug, Clone)]
pub struct Synth {
    /// The catalog, in the import format.
    pub catalog: Vec<TitleInput>,
    /// The plays.
    pub interactions: Vec<Interaction>,
    /// The oracle, for both protocols (empty when disabled).
    pub oracle: Vec<OracleLine>,
}

/// Generate and write `interactions.csv`, `catalog.ndjson` and `oracle.jsonl` into `args.out`.
pub fn synth(args: &SynthArgs) -> Result<SynthReport, RecsError> {
    let s = generate(args.seed, &args.scale)?;
    std::fs::create_dir_all(&args.out).map_err(|e| RecsError::io(&args.out, e))?;
    let mut files = Vec::new();
    let path = args.out.join("catalog.ndjson");
    write_lines(&path, s.catalog.iter())?;
    files.push(path);
    let path = args.out.join("interactions.csv");
    let f = File::create(&path).map_err(|e| RecsError::io(&path, e))?;
    let mut w = BufWriter::new(f);
    write_interactions(&mut w, &s.interactions)
        .and_then(|()| w.flush())
        .map_err(|e| RecsError::io(&path, e))?;
    files.push(path);
    if args.scale.oracle {
        let path = args.out.join(crate::eval::ORACLE_FILE);
        write_lines(&path, s.oracle.iter())?;
        files.push(path);
    }
    let profiles = s.interactions.iter().map(|i| i.profile_id.as_str()).collect::<HashSet<_>>().len();
    Ok(SynthReport {
        titles: s.catalog.len(),
        profiles,
        interactions: s.interactions.len(),
        oracle_lines: s.oracle.len(),
        files,
    })
}

fn write_lines<T: Serialize>(path: &Path, items: impl Iterator<Item = T>) -> Result<(), RecsError> {
    let f = File::create(path).map_err(|e| RecsError::io(path, e))?;
    let mut w = BufWriter::new(f);
    for it in items {
        serde_json::to_writer(&mut w, &it)
            .map_err(|e| RecsError::Json { what: path.display().to_string(), source: e })?;
        w.write_all(b"\n").map_err(|e| RecsError::io(path, e))?;
    }
    w.flush().map_err(|e| RecsError::io(path, e))
}

/// One generated item.
#[derive(Debug, Clone)]
struct GenItem {
    id: String,
    /// Index of the movie title or of the series' first episode in `World::titles`.
    episodes: Vec<usize>,
    /// Day each episode becomes available (movies: one entry).
    available: Vec<f64>,
    dims: [(usize, f64); 2],
    pop: f64,
}

/// `(index, weight)` pairs.
type Weighted = Vec<(usize, f64)>;

/// The items of one taste dimension, for proposals.
#[derive(Debug, Clone, Default)]
struct DimList {
    /// `(item, static weight pop·v·(1+NOVELTY))`.
    items: Weighted,
    /// Cumulative static weights.
    cum: Vec<f64>,
}

struct World {
    params: ShapeParams,
    items: Vec<GenItem>,
    titles: Vec<TitleInput>,
    /// Per dimension: its items with their static (proposal) weights.
    by_dim: Vec<DimList>,
    days: f64,
}

fn title_input(id: &str, kind: &str, name: String, genres: Vec<String>, maturity: u8) -> TitleInput {
    TitleInput {
        id: Some(id.to_owned()),
        kind: Some(kind.to_owned()),
        name: Some(name),
        duration_ms: if kind == "series" {
            None
        } else {
            Some(if kind == "movie" { 6_000_000 } else { 2_700_000 })
        },
        genres: Some(genres),
        maturity: Some(maturity),
        ..TitleInput::default()
    }
}

fn at_day(day: f64) -> Option<Timestamp> {
    (day > 0.0).then(|| Timestamp((BASE_SECS + (day * DAY_SECS).ceil() as i64) * 1000))
}

impl World {
    fn new(seed: u64, scale: &SynthScale) -> Self {
        let params = scale.shape.params();
        let genre_names = &GENRES[..params.genres.clamp(1, GENRES.len())];
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0000_0000_0001);
        let n = scale.movies + scale.series;
        let days = f64::from(scale.days.max(1));
        // Zipf popularity over a random permutation of the items.
        let mut ranks: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            ranks.swap(i, rng.gen_range(0..=i));
        }
        let mut items = Vec::with_capacity(n);
        let mut titles = Vec::new();
        for (i, rank) in ranks.iter().enumerate() {
            let d1 = rng.gen_range(0..DIMS);
            let d2 = (d1 + rng.gen_range(1..DIMS)) % DIMS;
            let mut genres = if params.genres_follow_taste {
                vec![genre_names[d1 % genre_names.len()].to_owned()]
            } else {
                vec![genre_names[rng.gen_range(0..genre_names.len())].to_owned()]
            };
            if params.genres_follow_taste
                && genre_names[d2 % genre_names.len()] != genres[0]
                && rng.gen_bool(0.5)
            {
                genres.push(genre_names[d2 % genre_names.len()].to_owned());
            }
            let maturity = [0u8, 0, 0, 7, 12, 16, 18][rng.gen_range(0..7)];
            let release =
                if rng.gen_bool(0.6) { -rng.gen_range(0.0..365.0) } else { rng.gen_range(0.0..days) };
            let pop = 1.0 / ((rank + 1) as f64).powf(0.9);
            let dims = [(d1, 1.0), (d2, 0.35)];
            if i < scale.movies {
                let id = format!("m{i:06}");
                let mut t = title_input(&id, "movie", format!("Movie {i}"), genres, maturity);
                t.available_from = at_day(release);
                t.release_year = Some(2025 + i32::from(release > 0.0));
                items.push(GenItem { id, episodes: vec![titles.len()], available: vec![release], dims, pop });
                titles.push(t);
            } else {
                let s = i - scale.movies;
                let id = format!("s{s:05}");
                let mut t = title_input(&id, "series", format!("Show {s}"), genres.clone(), maturity);
                t.available_from = at_day(release);
                titles.push(t);
                let n_eps = rng.gen_range(scale.min_episodes..=scale.max_episodes.max(scale.min_episodes));
                let weekly = rng.gen_bool(0.3);
                let two_seasons = n_eps > 8;
                let (mut episodes, mut available) = (Vec::new(), Vec::new());
                for e in 0..n_eps {
                    let (season, num): (i32, usize) =
                        if two_seasons && e >= n_eps / 2 { (2, e - n_eps / 2 + 1) } else { (1, e + 1) };
                    let eid = format!("{id}.s{season:02}e{num:02}");
                    let day = if weekly { release + 7.0 * e as f64 } else { release };
                    let mut et = title_input(
                        &eid,
                        "episode",
                        format!("Show {s} S{season:02}E{num:02}"),
                        genres.clone(),
                        maturity,
                    );
                    et.series_id = Some(id.clone());
                    et.season = Some(season);
                    et.episode = Some(num as i32);
                    et.available_from = at_day(day);
                    episodes.push(titles.len());
                    available.push(day);
                    titles.push(et);
                }
                items.push(GenItem { id, episodes, available, dims, pop });
            }
        }
        let mut by_dim: Vec<DimList> = vec![DimList::default(); DIMS];
        for (i, it) in items.iter().enumerate() {
            for (d, v) in it.dims {
                let dl = &mut by_dim[d];
                let w = it.pop * v * (1.0 + NOVELTY);
                dl.items.push((i, w));
                dl.cum.push(dl.cum.last().copied().unwrap_or(0.0) + w);
            }
        }
        World { params, items, titles, by_dim, days }
    }

    /// The new-item weight of item `i` in dimension `d` at day `t` (0 when unreleased or started).
    fn target(&self, i: usize, v: f64, t: f64, started: &HashSet<usize>) -> f64 {
        let it = &self.items[i];
        if started.contains(&i) || it.available[0] > t {
            return 0.0;
        }
        it.pop * v * (1.0 + NOVELTY * (-(t - it.available[0]) / NOVELTY_DAYS).exp())
    }
}

/// A profile's fixed parameters.
struct Persona {
    u0: [f64; DIMS],
    u1: [f64; DIMS],
    join: f64,
    rate: f64,
}

/// A profile's mutable state during simulation.
#[derive(Default)]
struct State {
    started: HashSet<usize>,
    /// Series in progress: (item, next episode position, last play day).
    in_progress: Vec<(usize, usize, f64)>,
    /// Per series in progress (same index): the day before which it is paused.
    paused_until: Vec<f64>,
}

fn mixture(rng: &mut ChaCha8Rng, weights: &[f64]) -> [f64; DIMS] {
    let mut u = [0.0; DIMS];
    for w in weights {
        u[rng.gen_range(0..DIMS)] += w;
    }
    u
}

impl Persona {
    fn taste(&self, t: f64, days: f64, drift: f64) -> [f64; DIMS] {
        let f = drift * ((t - self.join) / (days - self.join).max(1e-9)).clamp(0.0, 1.0);
        let mut u = [0.0; DIMS];
        for (d, x) in u.iter_mut().enumerate() {
            *x = (1.0 - f) * self.u0[d] + f * self.u1[d];
        }
        u
    }
}

/// The series to continue at day `t`: the most recently played one whose next episode is out
/// and that is not paused.
fn continuation(world: &World, st: &State, t: f64) -> Option<usize> {
    st.in_progress
        .iter()
        .enumerate()
        .filter(|(k, (i, e, _))| {
            world.items[*i].available[*e] <= t && st.paused_until.get(*k).is_none_or(|&p| p <= t)
        })
        .max_by(|a, b| a.1.2.total_cmp(&b.1.2))
        .map(|(k, _)| k)
}

/// The exact next-play distribution over titles at day `t`.
fn distribution(world: &World, p: &Persona, st: &State, t: f64) -> HashMap<usize, f64> {
    let mut out: HashMap<usize, f64> = HashMap::new();
    let mut new_mass = 1.0;
    if let Some(k) = continuation(world, st, t) {
        let (i, e, _) = st.in_progress[k];
        out.insert(world.items[i].episodes[e], world.params.p_continue);
        new_mass = 1.0 - world.params.p_continue;
    }
    let u = p.taste(t, world.days, world.params.drift);
    let mut per_dim: Vec<(f64, Weighted, f64)> = Vec::new();
    for (d, &ud) in u.iter().enumerate() {
        if ud <= 0.0 {
            continue;
        }
        let w: Weighted = world.by_dim[d]
            .items
            .iter()
            .map(|&(i, _)| (i, world.target(i, dim_weight(world, i, d), t, &st.started)))
            .filter(|x| x.1 > 0.0)
            .collect();
        let z: f64 = w.iter().map(|x| x.1).sum();
        if z > 0.0 {
            per_dim.push((ud, w, z));
        }
    }
    let usum: f64 = per_dim.iter().map(|x| x.0).sum();
    if usum <= 0.0 {
        // Nothing new to start: the whole mass is on the continuation, if any.
        if let Some(v) = out.values_mut().next() {
            *v = 1.0;
        }
        return out;
    }
    for (ud, w, z) in per_dim {
        for (i, x) in w {
            *out.entry(world.items[i].episodes[0]).or_default() += new_mass * ud / usum * x / z;
        }
    }
    out
}

fn dim_weight(world: &World, i: usize, d: usize) -> f64 {
    world.items[i].dims.iter().filter(|x| x.0 == d).map(|x| x.1).sum()
}

/// Draw a new item at day `t` from the same distribution [`distribution`] describes.
fn draw_new(world: &World, p: &Persona, st: &State, t: f64, rng: &mut ChaCha8Rng) -> Option<usize> {
    let u = p.taste(t, world.days, world.params.drift);
    let mut exhausted = [false; DIMS];
    loop {
        let total: f64 = (0..DIMS).filter(|&d| !exhausted[d]).map(|d| u[d]).sum();
        if total <= 0.0 {
            return None;
        }
        let mut x = rng.gen_range(0.0..total);
        let mut d = 0;
        for dd in 0..DIMS {
            if exhausted[dd] || u[dd] <= 0.0 {
                continue;
            }
            d = dd;
            if x < u[dd] {
                break;
            }
            x -= u[dd];
        }
        let (list, cum) = (&world.by_dim[d].items, &world.by_dim[d].cum);
        let Some(&ctotal) = cum.last() else {
            exhausted[d] = true;
            continue;
        };
        // Rejection sampling from the static bound pop·v·(1+NOVELTY): exact for the target.
        for _ in 0..200 {
            let y = rng.gen_range(0.0..ctotal);
            let k = cum.partition_point(|&c| c <= y).min(list.len() - 1);
            let (i, bound) = list[k];
            let target = world.target(i, dim_weight(world, i, d), t, &st.started);
            if target > 0.0 && rng.gen_range(0.0..bound) < target {
                return Some(i);
            }
        }
        // Mostly started or unreleased: draw exactly by a scan, or mark the dimension empty.
        let w: Weighted = list
            .iter()
            .map(|&(i, _)| (i, world.target(i, dim_weight(world, i, d), t, &st.started)))
            .filter(|x| x.1 > 0.0)
            .collect();
        let z: f64 = w.iter().map(|x| x.1).sum();
        if z <= 0.0 {
            exhausted[d] = true;
            continue;
        }
        let mut y = rng.gen_range(0.0..z);
        for (i, x) in &w {
            if y < *x {
                return Some(*i);
            }
            y -= x;
        }
        return w.last().map(|x| x.0);
    }
}

/// Simulate one profile; `hook(n, day, state)` runs before play `n` (and once at the end with
/// `n` = number of plays) without drawing from the stream.
fn simulate(
    world: &World,
    seed: u64,
    idx: usize,
    max_plays: usize,
    mut hook: impl FnMut(usize, f64, &Persona, &State),
) -> Vec<(usize, f64, f32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (idx as u64 + 1));
    let days = world.days;
    let persona = Persona {
        u0: mixture(&mut rng, world.params.mixture),
        u1: mixture(&mut rng, world.params.mixture),
        join: rng.gen_range(0.0..days * 0.6),
        rate: (rng.gen_range(-0.7f64..0.7) + world.params.rate.ln()).exp().min(4.0),
    };
    let mut st = State::default();
    let mut plays: Vec<(usize, f64, f32)> = Vec::new();
    let mut t = persona.join;
    let mut last_sec = i64::MIN;
    loop {
        t += -rng.gen_range(f64::EPSILON..1.0).ln() / persona.rate;
        if t >= days || plays.len() >= max_plays {
            break;
        }
        // Whole seconds, strictly increasing: the file format's resolution and a total order.
        let mut sec = (t * DAY_SECS).floor() as i64;
        if sec <= last_sec {
            sec = last_sec + 1;
        }
        let t_eff = sec as f64 / DAY_SECS;
        let cont = continuation(world, &st, t_eff);
        let continue_series = cont.is_some() && rng.gen_bool(world.params.p_continue);
        let choice = match (continue_series, cont) {
            (true, Some(k)) => Some((k, true)),
            _ => draw_new(world, &persona, &st, t_eff, &mut rng).map(|i| (i, false)),
        };
        let Some((choice, is_cont)) = choice else { continue };
        hook(plays.len(), t_eff, &persona, &st);
        last_sec = sec;
        let positive = rng.gen_bool(P_POSITIVE);
        let percent: f32 = if positive {
            if rng.gen_bool(0.5) { 100.0 } else { rng.gen_range(50..100) as f32 }
        } else {
            rng.gen_range(5..50) as f32
        };
        let (item, ep) = if is_cont {
            let (i, e, _) = st.in_progress[choice];
            (i, e)
        } else {
            st.started.insert(choice);
            (choice, 0)
        };
        plays.push((world.items[item].episodes[ep], t_eff, percent));
        let n_eps = world.items[item].episodes.len();
        let is_series = world.items[item].id.starts_with('s');
        if is_series {
            let keep = positive && ep + 1 < n_eps && !rng.gen_bool(world.params.p_drop);
            // A pause (binge shape only, so the classic stream is unchanged): the series stays
            // in progress but is not continued for an exponential number of days.
            let pause = if keep && world.params.p_pause > 0.0 && rng.gen_bool(world.params.p_pause) {
                t_eff - world.params.pause_days * rng.gen_range(f64::EPSILON..1.0).ln()
            } else {
                0.0
            };
            if is_cont {
                if keep {
                    st.in_progress[choice] = (item, ep + 1, t_eff);
                    st.paused_until[choice] = pause;
                } else {
                    st.in_progress.swap_remove(choice);
                    st.paused_until.swap_remove(choice);
                }
            } else if keep {
                st.in_progress.push((item, ep + 1, t_eff));
                st.paused_until.push(pause);
            }
        }
    }
    hook(plays.len(), f64::INFINITY, &persona, &st);
    plays
}

/// Generate a data set in memory.
pub fn generate(seed: u64, scale: &SynthScale) -> Result<Synth, RecsError> {
    if scale.movies + scale.series == 0 || scale.min_episodes == 0 {
        return Err(RecsError::InvalidArgument(
            "synth needs at least one item and one episode per series".into(),
        ));
    }
    let world = World::new(seed, scale);
    let mut interactions = Vec::new();
    let ids: Vec<TitleId> = world
        .titles
        .iter()
        .map(|t| TitleId::parse(t.id.as_deref().unwrap_or_default()))
        .collect::<Result<_, _>>()
        .map_err(|e| RecsError::InvalidArgument(format!("generated id: {e}")))?;
    for p in 0..scale.profiles {
        let pid = format!("u{p:06}");
        for (title, day, percent) in simulate(&world, seed, p, scale.max_plays, |_, _, _, _| {}) {
            interactions.push(Interaction {
                profile_id: pid.clone(),
                title_id: ids[title].clone(),
                watched_at: Timestamp((day * DAY_SECS).round() as i64 * 1000 + BASE_SECS * 1000),
                percent: Some(percent),
            });
        }
    }
    let mut oracle = Vec::new();
    if scale.oracle {
        oracle = oracle_lines(&world, seed, scale, &interactions, &ids)?;
    }
    Ok(Synth { catalog: world.titles, interactions, oracle })
}

/// One profile's query the oracle must answer.
struct Want {
    protocol: Protocol,
    len: usize,
    now: Timestamp,
    truth: Vec<usize>,
}

fn oracle_lines(
    world: &World,
    seed: u64,
    scale: &SynthScale,
    interactions: &[Interaction],
    ids: &[TitleId],
) -> Result<Vec<OracleLine>, RecsError> {
    let titles = world
        .titles
        .iter()
        .cloned()
        .map(TitleInput::validate)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RecsError::InvalidArgument(format!("generated title invalid: {e:?}")))?;
    let catalog = Catalog::new(titles);
    let ds = Dataset::new(interactions, &catalog);
    // Which (history length, instant) each profile is queried at, per protocol.
    let mut wanted: BTreeMap<usize, Vec<Want>> = BTreeMap::new();
    for protocol in [Protocol::Temporal, Protocol::LeaveLastOut] {
        let sp = split(&ds, protocol, DEFAULT_TEST_FRACTION);
        for q in sp.queries {
            let gen_idx: usize = ds.profiles[q.profile][1..]
                .parse()
                .map_err(|_| RecsError::InvalidArgument("profile id".into()))?;
            let truth = q.truth.iter().map(|&t| t as usize).collect();
            wanted.entry(gen_idx).or_default().push(Want { protocol, len: q.train_len, now: q.now, truth });
        }
    }
    // Catalog title index -> generator title index (same ids, maybe another order).
    let gen_of: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut out = Vec::new();
    for (p, wants) in wanted {
        let mut captured: Vec<Option<OracleLine>> = vec![None; wants.len()];
        simulate(world, seed, p, scale.max_plays, |n, _, persona, st| {
            for (w, Want { protocol, len, now, truth }) in wants.iter().enumerate() {
                if *len != n || captured[w].is_some() {
                    continue;
                }
                let day = (now.0 / 1000 - BASE_SECS) as f64 / DAY_SECS;
                let dist = distribution(world, persona, st, day);
                let mut ranking: Vec<(usize, f64)> = dist.iter().map(|(k, v)| (*k, *v)).collect();
                ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                ranking.truncate(scale.oracle_top);
                let heldout = truth
                    .iter()
                    .map(|&t| {
                        let id = catalog.titles()[t].id.as_str();
                        let g = gen_of.get(id).copied().unwrap_or(usize::MAX);
                        (id.to_owned(), dist.get(&g).copied().unwrap_or(0.0))
                    })
                    .collect();
                captured[w] = Some(OracleLine {
                    protocol: *protocol,
                    profile_id: format!("u{p:06}"),
                    now_ms: now.0,
                    train_len: *len,
                    ranking: ranking.into_iter().map(|(t, v)| (ids[t].to_string(), v)).collect(),
                    heldout,
                });
            }
        });
        out.extend(captured.into_iter().flatten());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> SynthScale {
        SynthScale { profiles: 60, movies: 40, series: 6, days: 60, ..SynthScale::default() }
    }

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a = generate(5, &tiny()).unwrap();
        let b = generate(5, &tiny()).unwrap();
        assert_eq!(a.interactions, b.interactions);
        assert_eq!(a.catalog, b.catalog);
        assert_eq!(a.oracle, b.oracle);
        let c = generate(6, &tiny()).unwrap();
        assert_ne!(a.interactions, c.interactions);
    }

    #[test]
    fn generated_catalog_validates_and_series_are_watched_in_order() {
        let s = generate(3, &tiny()).unwrap();
        let titles: Vec<_> = s.catalog.iter().cloned().map(|t| t.validate().unwrap()).collect();
        let catalog = Catalog::new(titles);
        let ds = Dataset::new(&s.interactions, &catalog);
        assert_eq!(ds.unknown_titles, 0);
        for plays in &ds.plays {
            let mut last: HashMap<u32, (bool, i32, i32)> = HashMap::new();
            for pl in plays {
                let t = &catalog.titles()[pl.title as usize];
                if t.series_id.is_some() {
                    let key = (false, t.season.unwrap_or(1), t.episode.unwrap_or(0));
                    if let Some(prev) = last.insert(pl.item, key) {
                        assert!(key > prev, "episodes out of order");
                    }
                }
            }
        }
    }

    #[test]
    fn oracle_distributions_sum_to_one_and_contain_the_heldout_support() {
        let s = generate(4, &SynthScale { oracle_top: 100_000, ..tiny() }).unwrap();
        assert!(!s.oracle.is_empty());
        for l in &s.oracle {
            let total: f64 = l.ranking.iter().map(|x| x.1).sum();
            assert!((total - 1.0).abs() < 1e-9, "{total}");
        }
        // The generator drew each held-out first play from the distribution: it has mass there.
        let loo: Vec<_> = s.oracle.iter().filter(|l| l.protocol == Protocol::LeaveLastOut).collect();
        assert!(loo.iter().all(|l| l.heldout.iter().all(|h| h.1 > 0.0)));
    }

    fn tiny_shape(shape: SynthShape) -> SynthScale {
        let d = SynthScale::for_shape(shape);
        SynthScale { profiles: 80, movies: d.movies / 10, series: d.series / 10 + 2, ..d }
    }

    #[test]
    fn every_shape_generates_valid_data_with_an_exact_oracle() {
        for shape in SynthShape::ALL {
            let s = generate(2, &SynthScale { oracle_top: 100_000, ..tiny_shape(shape) }).unwrap();
            let titles: Vec<_> = s.catalog.iter().cloned().map(|t| t.validate().unwrap()).collect();
            let ds = Dataset::new(&s.interactions, &Catalog::new(titles));
            assert_eq!(ds.unknown_titles, 0, "{shape:?}");
            assert!(!s.oracle.is_empty(), "{shape:?}");
            for l in &s.oracle {
                // Empty only when the profile has started every released item (tiny catalogs).
                let total: f64 = l.ranking.iter().map(|x| x.1).sum();
                assert!(l.ranking.is_empty() || (total - 1.0).abs() < 1e-9, "{shape:?}: {total}");
            }
            assert!(s.oracle.iter().filter(|l| !l.ranking.is_empty()).count() > s.oracle.len() / 2);
        }
    }

    #[test]
    fn shapes_differ_in_the_way_they_claim() {
        let genres = |shape| {
            let s = generate(1, &tiny_shape(shape)).unwrap();
            s.catalog.iter().flat_map(|t| t.genres.clone().unwrap_or_default()).collect::<HashSet<_>>().len()
        };
        assert_eq!(genres(SynthShape::Films), 3);
        assert_eq!(genres(SynthShape::Classic), 8);
        // Binge: some series resumed after a pause of two months or more.
        let s = generate(1, &tiny_shape(SynthShape::Binge)).unwrap();
        let mut last: HashMap<(&str, &str), i64> = HashMap::new();
        let mut long_gaps = 0;
        for i in &s.interactions {
            let Some((series, _)) = i.title_id.as_str().split_once('.') else { continue };
            if let Some(prev) = last.insert((i.profile_id.as_str(), series), i.watched_at.0) {
                long_gaps += usize::from(i.watched_at.0 - prev > 60 * 86_400_000);
            }
        }
        assert!(long_gaps > 10, "{long_gaps}");
        // Sparse: at most 8 plays per profile.
        let s = generate(1, &tiny_shape(SynthShape::Sparse)).unwrap();
        let mut per: HashMap<&str, usize> = HashMap::new();
        for i in &s.interactions {
            *per.entry(i.profile_id.as_str()).or_default() += 1;
        }
        assert!(per.values().all(|&n| n <= 8));
    }
}
