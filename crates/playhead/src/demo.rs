//! `playhead demo`: a demo catalog and a few households with a month of realistic viewing, sent
//! through the same use cases as real traffic (so the demo also exercises the write path).

use std::collections::BTreeMap;

use playhead_app::App;
use playhead_app::accounts::NewProfile;
use playhead_app::ingest::IngestBatch;
use playhead_core::auth::{Principal, Scope, Scopes, Subject};
use playhead_core::event::RawEvent;
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::profile::Profile;
use playhead_core::time::{DAY_MS, MINUTE_MS};
use playhead_core::title::{Title, TitleKind};
use playhead_core::{Timestamp, TitleId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const GENRES: [&str; 10] = [
    "Drama",
    "Comedy",
    "Thriller",
    "Sci-Fi",
    "Documentary",
    "Animation",
    "Crime",
    "Romance",
    "Horror",
    "Family",
];
const ADJ: [&str; 16] = [
    "Silent", "Crimson", "Last", "Hidden", "Golden", "Broken", "Northern", "Electric", "Quiet", "Wild",
    "Lost", "Midnight", "Paper", "Iron", "Glass", "Distant",
];
const NOUN: [&str; 16] = [
    "Harbor",
    "Signal",
    "Garden",
    "Empire",
    "River",
    "Machine",
    "Summer",
    "Witness",
    "Orchard",
    "Frontier",
    "Echo",
    "Lighthouse",
    "Kingdom",
    "Letters",
    "Station",
    "Tide",
];

/// What the demo created.
#[derive(Debug)]
pub struct DemoOutcome {
    /// The demo account.
    pub account: AccountId,
    /// Its profiles.
    pub profiles: Vec<Profile>,
    /// Titles in the catalog.
    pub titles: usize,
    /// Events sent.
    pub events: usize,
}

fn name(rng: &mut StdRng) -> String {
    format!("The {} {}", ADJ[rng.gen_range(0..ADJ.len())], NOUN[rng.gen_range(0..NOUN.len())])
}

fn title(id: String, kind: TitleKind, name: String, duration_min: i64, rng: &mut StdRng) -> Title {
    let g1 = GENRES[rng.gen_range(0..GENRES.len())].to_owned();
    let g2 = GENRES[rng.gen_range(0..GENRES.len())].to_owned();
    let mut genres = vec![g1];
    if genres[0] != g2 {
        genres.push(g2);
    }
    let duration_ms = duration_min * MINUTE_MS;
    Title {
        id: TitleId::parse(&id).unwrap_or_else(|_| unreachable!("generated ids are valid")),
        kind,
        name,
        duration_ms,
        credits_start_ms: (kind != TitleKind::Series && rng.gen_bool(0.4))
            .then(|| duration_ms - rng.gen_range(2..6) * MINUTE_MS),
        series_id: None,
        season: None,
        episode: None,
        genres,
        maturity: [0, 7, 12, 16, 18][rng.gen_range(0..5)],
        release_year: Some(rng.gen_range(1970..=2026)),
        available_from: None,
        external_ids: BTreeMap::new(),
    }
}

/// The demo catalog: 150 movies and 18 series (about 350 episodes, some with specials, one with
/// an episode premiering in three days).
pub fn catalog(now: Timestamp) -> Vec<Title> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::new();
    for n in 1..=150 {
        let d = rng.gen_range(80..=150);
        let nm = name(&mut rng);
        out.push(title(format!("movie-{n:03}"), TitleKind::Movie, nm, d, &mut rng));
    }
    for s in 1..=18 {
        let sid = format!("series-{s:02}");
        let mut series = title(sid.clone(), TitleKind::Series, name(&mut rng), 0, &mut rng);
        series.duration_ms = 0;
        series.credits_start_ms = None;
        let maturity = series.maturity;
        let ep_len = rng.gen_range(22..=60);
        let seasons = rng.gen_range(1..=4);
        out.push(series);
        let specials = if s % 5 == 0 { 2 } else { 0 };
        for season in (if specials > 0 { 0 } else { 1 })..=seasons {
            let episodes = if season == 0 { specials } else { rng.gen_range(6..=10) };
            for e in 1..=episodes {
                let mut ep = title(
                    format!("{sid}.s{season:02}e{e:02}"),
                    TitleKind::Episode,
                    format!("Episode {e}"),
                    ep_len,
                    &mut rng,
                );
                ep.series_id = TitleId::parse(&sid).ok();
                ep.season = Some(season);
                ep.episode = Some(e);
                ep.maturity = maturity;
                out.push(ep);
            }
        }
    }
    // A premiere: the next episode of series-01 arrives in three days.
    if let Some(last) =
        out.iter().rev().find(|t| t.series_id.as_ref().is_some_and(|s| s.as_str() == "series-01")).cloned()
    {
        let mut next = last.clone();
        let e = last.episode.unwrap_or(0) + 1;
        next.id = TitleId::parse(&format!("series-01.s{:02}e{e:02}", last.season.unwrap_or(1)))
            .unwrap_or(last.id.clone());
        next.episode = Some(e);
        next.name = format!("Episode {e}");
        next.available_from = Some(now.plus_ms(3 * DAY_MS));
        out.push(next);
    }
    out
}

struct Sim<'a> {
    rng: StdRng,
    events: Vec<RawEvent>,
    titles: &'a [Title],
}

impl Sim<'_> {
    /// Watch `title` from `from_ms` for `minutes` starting at `at`; heartbeats every minute.
    fn watch(
        &mut self,
        t: &Title,
        at: Timestamp,
        from_ms: i64,
        minutes: i64,
        device: &str,
        finish: bool,
    ) -> Timestamp {
        let session = Uuid::new_v4().to_string();
        let mut pos = from_ms;
        let mut now = at;
        let mut push = |kind: &str, pos: i64, now: Timestamp| {
            self.events.push(RawEvent {
                event_id: Some(Uuid::new_v4().to_string()),
                title_id: Some(t.id.to_string()),
                kind: Some(kind.into()),
                position_ms: Some(pos.min(t.duration_ms)),
                duration_ms: Some(t.duration_ms),
                occurred_at: Some(now.to_rfc3339()),
                device_id: Some(device.into()),
                session_id: Some(session.clone()),
            });
        };
        push("start", pos, now);
        for _ in 0..minutes {
            now = now.plus_ms(MINUTE_MS);
            pos += MINUTE_MS;
            if pos >= t.duration_ms {
                break;
            }
            push("heartbeat", pos, now);
        }
        if finish {
            push("complete", t.duration_ms, now);
        } else {
            push("stop", pos.min(t.duration_ms), now);
        }
        now
    }

    fn simulate(&mut self, kids: bool, now: Timestamp) {
        let pool: Vec<&Title> = self.titles.iter().filter(|t| !kids || t.maturity <= 7).collect();
        let movies: Vec<&Title> = pool.iter().copied().filter(|t| t.kind == TitleKind::Movie).collect();
        let mut followed: Vec<Vec<&Title>> = Vec::new();
        let series: Vec<&Title> = pool.iter().copied().filter(|t| t.kind == TitleKind::Series).collect();
        for _ in 0..3 {
            if series.is_empty() {
                break;
            }
            let s = series[self.rng.gen_range(0..series.len())];
            let mut eps: Vec<&Title> = self
                .titles
                .iter()
                .filter(|e| {
                    e.series_id.as_ref() == Some(&s.id) && e.season != Some(0) && e.available_from.is_none()
                })
                .collect();
            eps.sort_by_key(|e| (e.season, e.episode));
            followed.push(eps);
        }
        let mut cursor = vec![0usize; followed.len()];
        for day in (0..28).rev() {
            if !self.rng.gen_bool(0.6) {
                continue;
            }
            let evening = now.plus_ms(-day * DAY_MS - self.rng.gen_range(3..6) * 60 * MINUTE_MS);
            let device = if self.rng.gen_bool(0.7) { "tv-livingroom" } else { "phone" };
            let roll: f64 = self.rng.r#gen();
            if roll < 0.5 && !followed.is_empty() {
                let k = self.rng.gen_range(0..followed.len());
                let n = self.rng.gen_range(1..=3);
                let mut at = evening;
                for _ in 0..n {
                    let Some(ep) = followed[k].get(cursor[k]).copied() else { break };
                    cursor[k] += 1;
                    // The last episode of the evening is sometimes left half-way.
                    let finish = self.rng.gen_bool(0.8);
                    let mins =
                        if finish { ep.duration_ms / MINUTE_MS } else { ep.duration_ms / MINUTE_MS / 2 };
                    at = self.watch(ep, at, 0, mins, device, finish).plus_ms(2 * MINUTE_MS);
                    if !finish {
                        cursor[k] -= 1;
                        break;
                    }
                }
            } else if roll < 0.85 && !movies.is_empty() {
                let m = movies[self.rng.gen_range(0..movies.len())];
                let finish = self.rng.gen_bool(0.65);
                let total = m.duration_ms / MINUTE_MS;
                let mins = if finish { total } else { self.rng.gen_range(total / 5..total * 7 / 10) };
                self.watch(m, evening, 0, mins, device, finish);
            } else if !movies.is_empty() {
                // An autoplay preview or an accidental start: leaves no play.
                let m = movies[self.rng.gen_range(0..movies.len())];
                self.watch(m, evening, 0, 1, device, false);
            }
        }
    }
}

/// Seed the demo into an empty store and apply everything.
pub async fn seed(app: &App) -> anyhow::Result<DemoOutcome> {
    let now = app.clock().now();
    let titles = catalog(now);
    app.upsert_titles_unchecked(&titles)
        .await
        .map_err(|e| anyhow::anyhow!("importing the demo catalog: {e}"))?;
    let service = Principal {
        subject: Subject::Service { id: "demo-seeder".into() },
        scopes: Scopes::empty().with(Scope::HistoryWrite).with(Scope::ProfilesAny),
        bound_profile: None,
        session_id: None,
        auth_time: None,
    };
    let households: [(&str, &[(&str, bool)]); 3] = [
        ("demo@example.com", &[("Alex", false), ("Sam", false), ("Kids", true)]),
        ("rivera@example.com", &[("Maria", false), ("Leo", true)]),
        ("chen@example.com", &[("Wei", false), ("Lin", false)]),
    ];
    let mut first: Option<(AccountId, Vec<Profile>)> = None;
    let mut sent = 0;
    for (h, (email, members)) in households.iter().enumerate() {
        let account = match app.create_account(email).await {
            Ok(a) => a,
            Err(playhead_app::AppError::Conflict(_)) => {
                anyhow::bail!("the data dir already holds demo data; use an empty --data-dir")
            }
            Err(e) => anyhow::bail!("creating {email}: {e}"),
        };
        let mut profiles = Vec::new();
        for (p, (pname, kids)) in members.iter().enumerate() {
            let profile = app
                .insert_profile(
                    account.id,
                    NewProfile {
                        name: (*pname).into(),
                        kids: *kids,
                        maturity_limit: kids.then_some(7),
                        private: false,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("creating profile: {e}"))?;
            let mut sim =
                Sim { rng: StdRng::seed_from_u64((h * 10 + p) as u64), events: Vec::new(), titles: &titles };
            sim.simulate(*kids, now);
            sent += sim.events.len();
            send(app, &service, profile.id, sim.events).await?;
            profiles.push(profile);
        }
        if first.is_none() {
            first = Some((account.id, profiles));
        }
    }
    app.drain().await.map_err(|e| anyhow::anyhow!("applying demo events: {e}"))?;
    let (account, profiles) = first.ok_or_else(|| anyhow::anyhow!("no households"))?;
    Ok(DemoOutcome { account, profiles, titles: titles.len(), events: sent })
}

async fn send(app: &App, p: &Principal, profile: ProfileId, events: Vec<RawEvent>) -> anyhow::Result<()> {
    for chunk in events.chunks(500) {
        let batch = IngestBatch {
            sent_at: None,
            backfill: false,
            events: chunk.iter().cloned().map(Ok).collect(),
            trace: None,
        };
        let results = app
            .record_events(p, profile, batch)
            .await
            .map_err(|e| anyhow::anyhow!("sending demo events: {e}"))?;
        if let Some(bad) = results.iter().find(|r| r.problem.is_some()) {
            anyhow::bail!("demo event rejected: {:?}", bad.problem);
        }
    }
    Ok(())
}
