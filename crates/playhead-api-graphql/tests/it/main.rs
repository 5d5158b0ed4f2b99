#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

//! The GraphQL schema in process: the committed SDL, the field -> operation table's coverage, and
//! the number of store reads a screen query costs (through store ports that count their calls).
//! Tests of the running server (HTTP, WebSocket, both backends) are in `crates/playhead/tests`.

mod counting;

use std::sync::Arc;

use async_graphql::Request;
use playhead_api_graphql::policy::{DATA_TYPES, FIELDS, FieldRule, GATED_TYPES};
use playhead_api_graphql::{GraphqlConfig, GraphqlState};
use playhead_app::access::{Authenticator, Gate};
use playhead_app::clock::SystemClock;
use playhead_app::{App, AppConfig, Ports};
use playhead_auth::{KeySet, TokenIssuer, Verifier};
use playhead_core::auth::{Scope, Scopes};
use playhead_core::ids::{AccountId, ProfileId};
use playhead_core::ports::Clock as _;
use playhead_store_sqlite::SqliteStore;
use serde_json::{Value, json};

use counting::{Counter, Counting};

const SDL_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");

/// The committed SDL is the schema: regenerate with
/// `UPDATE_SCHEMA=1 cargo nextest run -p playhead-api-graphql sdl` and review the diff.
#[test]
fn the_committed_sdl_matches_the_schema() {
    let sdl = playhead_api_graphql::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(SDL_PATH, &sdl).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(SDL_PATH).unwrap_or_default();
    assert!(
        committed == sdl,
        "the schema drifted from crates/playhead-api-graphql/schema.graphql; if the change is \
         intended, run `UPDATE_SCHEMA=1 cargo nextest run -p playhead-api-graphql sdl` and commit \
         the file.\n--- schema now ---\n{sdl}"
    );
}

/// Every field of a gated type has a rule in the table, every rule names a field that exists,
/// and every object type is either gated or plain data: a new field or type cannot slip in
/// unclassified (at run time it would be refused).
#[test]
fn every_field_and_type_is_classified() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let doc = async_graphql::parser::parse_schema(playhead_api_graphql::sdl()).unwrap();
    let mut seen = Vec::new();
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else { continue };
        let TypeKind::Object(obj) = &t.node.kind else { continue };
        let name = t.node.name.node.as_str();
        let gated = GATED_TYPES.contains(&name);
        assert!(
            gated || DATA_TYPES.contains(&name),
            "object type {name} is in neither GATED_TYPES nor DATA_TYPES"
        );
        if gated {
            for f in &obj.fields {
                let field = f.node.name.node.as_str();
                assert!(
                    playhead_api_graphql::policy::rule(name, field).is_some(),
                    "{name}.{field} has no rule in policy::FIELDS: it would be refused"
                );
                seen.push((name.to_owned(), field.to_owned()));
            }
        }
    }
    for (ty, field, _) in FIELDS {
        assert!(
            seen.iter().any(|(t, f)| t == ty && f == field),
            "policy::FIELDS names {ty}.{field}, which the schema lacks"
        );
    }
    // Each root field runs an operation (a root field "of its parent" would run unchecked).
    for (ty, field, rule) in FIELDS {
        if *ty != "Profile" {
            assert!(matches!(rule, FieldRule::Runs(_)), "{ty}.{field}");
        }
    }
}

/// An application over a fresh SQLite store whose read ports count their calls, a gate, and a
/// token minter.
struct Harness {
    app: App,
    state: GraphqlState,
    reads: Arc<Counter>,
    issuer: TokenIssuer,
    _dir: tempfile::TempDir,
}

async fn harness(row_cache: bool) -> Harness {
    harness_with(row_cache, 32).await
}

async fn harness_with(row_cache: bool, max_in_flight: usize) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("playhead.db")).await.unwrap();
    let reads = Arc::new(Counter::default());
    let counted = |s: &SqliteStore| Arc::new(Counting { inner: s.clone(), n: reads.clone() });
    let ports = Ports {
        accounts: counted(&store),
        catalog: counted(&store),
        log: Arc::new(store.clone()),
        viewing: counted(&store),
        api_keys: Arc::new(store.clone()),
        idempotency: Arc::new(store.clone()),
        limiter: Arc::new(playhead_app::ratelimit::LocalRateLimiter::new(std::time::Duration::from_secs(
            3600,
        ))),
        recs: counted(&store),
        erasure: Arc::new(store.clone()),
        exports: Arc::new(store.clone()),
        feed: Arc::new(store.clone()),
        streams: Arc::new(store.clone()),
    };
    let app = App::new(ports, AppConfig { row_cache, ..AppConfig::default() }, Arc::new(SystemClock));
    let keys = Arc::new(KeySet::ephemeral().unwrap());
    let verifier = Verifier::new(&keys, "https://playhead.test", "playhead-api", 30);
    let auth = Authenticator::new(verifier, app.ports().api_keys.clone(), Arc::new(SystemClock));
    let gate = Arc::new(Gate::new(app.clone(), Arc::new(auth), max_in_flight, Arc::new(store.clone())));
    let state = GraphqlState::new(app.clone(), gate, &GraphqlConfig::default(), Vec::new());
    let issuer = TokenIssuer::new(keys, "https://playhead.test", "playhead-api", 600);
    Harness { app, state, reads, issuer, _dir: dir }
}

impl Harness {
    fn token(&self, account: AccountId, scopes: &str) -> String {
        let now = SystemClock.now().0 / 1000;
        let claims = self.issuer.account_claims(account, "tests", Scopes::parse(scopes).unwrap(), "sid", now);
        format!("Bearer {}", self.issuer.issue(&claims).unwrap())
    }

    async fn run(&self, token: &str, query: &str, vars: Value) -> Value {
        let req = Request::new(query).variables(async_graphql::Variables::from_json(vars));
        let res = self.state.execute(req, Some(token), "127.0.0.1").await;
        serde_json::to_value(&res).unwrap()
    }
}

fn viewer_scopes() -> String {
    Scope::VIEWER.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

fn ts(mins_ago: i64) -> String {
    playhead_core::Timestamp(SystemClock.now().0 - mins_ago * 60_000).to_rfc3339()
}

/// `n` movies half watched (Continue watching), and `n` series whose first episode was finished
/// (Next up shows the second): history holds 2n plays.
async fn seed(h: &Harness, n: usize) -> (AccountId, ProfileId, String) {
    let account = h.app.create_account(&format!("v{n}@example.com")).await.unwrap().id;
    let profile = h
        .app
        .insert_profile(
            account,
            playhead_app::accounts::NewProfile { name: "Main".into(), ..Default::default() },
        )
        .await
        .unwrap()
        .id;
    let mut titles = Vec::new();
    for i in 0..n {
        titles.push(json!({"id": format!("m{i}"), "kind": "movie", "name": format!("Movie {i}"), "duration_ms": 6_000_000, "maturity": 0}));
        titles.push(
            json!({"id": format!("s{i}"), "kind": "series", "name": format!("Series {i}"), "maturity": 0}),
        );
        for e in 1..=2 {
            titles.push(json!({"id": format!("s{i}e{e}"), "kind": "episode", "name": format!("Episode {e}"), "duration_ms": 1_200_000,
                "series_id": format!("s{i}"), "season": 1, "episode": e, "maturity": 0}));
        }
    }
    let titles: Vec<playhead_core::title::Title> = titles
        .into_iter()
        .map(|t| serde_json::from_value::<playhead_core::title::TitleInput>(t).unwrap().validate().unwrap())
        .collect();
    h.app.upsert_titles_unchecked(&titles).await.unwrap();
    let token = h.token(account, &viewer_scopes());
    let mut events = Vec::new();
    for i in 0..n {
        // 30 minutes into a 100-minute movie, then 20 minutes of an episode to its end.
        for (k, pos) in [(0, 0), (1, 900_000), (2, 1_800_000)] {
            events.push(json!({"eventId": uuid::Uuid::new_v4().to_string(), "titleId": format!("m{i}"),
                "kind": if k == 0 { "START" } else { "HEARTBEAT" }, "positionMs": pos, "occurredAt": ts(200 - 15 * k), "deviceId": "tv"}));
        }
        for k in 0..=4 {
            events.push(json!({"eventId": uuid::Uuid::new_v4().to_string(), "titleId": format!("s{i}e1"),
                "kind": if k == 4 { "COMPLETE" } else if k == 0 { "START" } else { "HEARTBEAT" },
                "positionMs": k * 300_000, "occurredAt": ts(100 - 5 * k), "deviceId": "tv"}));
        }
    }
    let r = h
        .run(
            &token,
            "mutation($p: ID!, $e: [EventInput!]!) { recordEvents(profileId: $p, events: $e) { accepted rejected results { problem { field detail } } } }",
            json!({"p": profile.to_string(), "e": events}),
        )
        .await;
    assert_eq!(r["data"]["recordEvents"]["rejected"], 0, "{r}");
    h.app.drain().await.unwrap();
    (account, profile, token)
}

const SCREEN: &str = "query($p: ID!) { me { accountId profiles { id name } }
  profile(id: $p) {
    name
    continueWatching(first: 50) { nodes { titleId positionMs percent title { id name kind series { id name } } } pageInfo { hasNextPage } }
    nextUp(first: 50) { nodes { titleId title { id name kind season episode series { id name } } } }
    history(first: 100) { edges { cursor node { playId period { start end } watched { ms percent completed } title { id name kind series { name } } } } pageInfo { hasNextPage endCursor } }
    recommendations(first: 20) { nodes { titleId score reason { kind text } title { id name } } }
  } }";

/// A screen query (profile, Continue watching, Next up, history, recommendations, each item's
/// title and its series) costs about the same number of store reads with 6 items per list as
/// with 12: lists load in one read each, and the series of every episode come from one batched
/// load. Recommendations add a few reads that depend on the data, not the list length (live
/// co-watch counters for at most the profile's 5 latest items), hence a tolerance of 5; one read
/// per item (the N+1 this guards against) adds 6 or more.
#[tokio::test]
async fn a_screen_query_costs_a_bounded_number_of_store_reads() {
    let mut costs = Vec::new();
    for n in [6, 12] {
        // The row cache off: every list is really loaded, not served from memory.
        let h = harness(false).await;
        let (_, profile, token) = seed(&h, n).await;
        let before = h.reads.get();
        let r = h.run(&token, SCREEN, json!({"p": profile.to_string()})).await;
        let reads = h.reads.get() - before;
        assert!(r["errors"].is_null(), "{r}");
        let p = &r["data"]["profile"];
        assert_eq!(p["continueWatching"]["nodes"].as_array().unwrap().len(), n, "{p}");
        assert_eq!(p["nextUp"]["nodes"].as_array().unwrap().len(), n, "{p}");
        assert_eq!(p["history"]["edges"].as_array().unwrap().len(), 2 * n, "{p}");
        let next = &p["nextUp"]["nodes"][0]["title"];
        assert_eq!(next["episode"], 2, "{next}");
        assert!(next["series"]["name"].as_str().unwrap().starts_with("Series "), "{next}");
        costs.push(reads);
    }
    assert!(costs[0].abs_diff(costs[1]) <= 5, "store reads for 6 vs 12 items per list: {costs:?}");
    // profile (x6: each field re-checks reachability), rows, history + titles, recs inputs,
    // one batched series load: a couple of dozen at most. Issue 17 added one read per list (the
    // watched state of its titles) and two recs inputs (every watched title, My list).
    assert!(costs[0] <= 36, "a screen query made {} store reads", costs[0]);
}

/// One request counts once against the per-principal concurrency cap, however many of its
/// fields run use cases at the same time (`profile` stays open while its lists resolve): with a
/// cap of 1 the whole screen query still answers.
#[tokio::test]
async fn a_request_takes_one_in_flight_slot_whatever_its_fields() {
    let h = harness_with(true, 1).await;
    let (_, profile, token) = seed(&h, 2).await;
    let r = h.run(&token, SCREEN, json!({"p": profile.to_string()})).await;
    assert!(r["errors"].is_null(), "{r}");
    assert_eq!(r["data"]["profile"]["nextUp"]["nodes"].as_array().unwrap().len(), 2, "{r}");
}

/// Without the dataloader each episode's `series` would be one catalog read: the batched load
/// makes it one read for the whole list (here: 12 episodes of 12 series).
#[tokio::test]
async fn series_of_every_episode_load_in_one_read() {
    let h = harness(false).await;
    let (_, profile, token) = seed(&h, 12).await;
    let q =
        "query($p: ID!) { profile(id: $p) { history(first: 100) { nodes { title { series { name } } } } } }";
    let without = "query($p: ID!) { profile(id: $p) { history(first: 100) { nodes { title { name } } } } }";
    let before = h.reads.get();
    let r = h.run(&token, without, json!({"p": profile.to_string()})).await;
    assert!(r["errors"].is_null(), "{r}");
    let base = h.reads.get() - before;
    let before = h.reads.get();
    let r = h.run(&token, q, json!({"p": profile.to_string()})).await;
    assert!(r["errors"].is_null(), "{r}");
    let names: Vec<&str> = r["data"]["profile"]["history"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["title"]["series"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 12, "{r}");
    assert_eq!(h.reads.get() - before, base + 1, "series added exactly one read");
}

/// Generated from the field table: for every field that runs an operation needing a scope, a
/// token holding every scope but that one gets FORBIDDEN naming the scope, and the use case
/// never runs (no data for that field).
#[tokio::test]
async fn a_token_without_the_fields_scope_gets_forbidden_on_every_field() {
    let h = harness(true).await;
    let (account, profile, _) = seed(&h, 1).await;
    let mut checked = 0;
    for (ty, field, rule) in FIELDS {
        let FieldRule::Runs(op) = rule else { continue };
        let Some(scope) = op.scope() else { continue };
        if *ty == "Subscription" {
            continue; // over the WebSocket: covered by the server tests
        }
        let others: Vec<&str> = Scope::ALL.iter().filter(|s| **s != scope).map(|s| s.as_str()).collect();
        let token = h.token(account, &others.join(" "));
        let query = call_of(ty, field, &profile.to_string());
        let r = h.run(&token, &query, json!({})).await;
        let err = &r["errors"][0];
        assert_eq!(err["extensions"]["code"], "FORBIDDEN", "{ty}.{field} without {}: {r}", scope.as_str());
        assert_eq!(err["extensions"]["scope"], scope.as_str(), "{ty}.{field}: {r}");
        checked += 1;
    }
    // Every field whose operation needs a scope: profile, its five fields, six mutations.
    assert!(checked >= 12, "only {checked} fields checked");
}

/// A minimal operation calling `ty.field` (arguments valid enough to reach the gate).
fn call_of(ty: &str, field: &str, profile: &str) -> String {
    let eid = uuid::Uuid::new_v4();
    let args = match field {
        "profile" => format!("(id: \"{profile}\")"),
        "title" => "(id: \"m0\")".into(),
        "progress" => "(titleId: \"m0\")".into(),
        "recordEvents" => format!(
            "(profileId: \"{profile}\", events: [{{eventId: \"{eid}\", titleId: \"m0\", kind: START, positionMs: 0, occurredAt: \"{}\"}}])",
            ts(1)
        ),
        "setProgress" => format!("(profileId: \"{profile}\", titleId: \"m0\", positionMs: 1000)"),
        "hideFromContinueWatching" => format!("(profileId: \"{profile}\", titleId: \"m0\")"),
        "deletePlay" => format!("(profileId: \"{profile}\", playId: \"{eid}\")"),
        "sendFeedback" => format!("(profileId: \"{profile}\", titleId: \"m0\", kind: UP)"),
        "updateProfile" => format!("(id: \"{profile}\", version: 1, name: \"x\")"),
        _ => String::new(),
    };
    let selection = match field {
        "me" => "{ accountId }",
        "profile" | "updateProfile" => "{ id }",
        "title" => "{ id }",
        "titles" | "continueWatching" | "nextUp" | "history" | "recommendations" => {
            "{ pageInfo { hasNextPage } }"
        }
        "progress" | "setProgress" => "{ positionMs }",
        "recordEvents" => "{ accepted }",
        _ => "",
    };
    match ty {
        "Query" => format!("{{ {field}{args} {selection} }}"),
        "Mutation" => format!("mutation {{ {field}{args} {selection} }}"),
        // A Profile field is reached through `profile`, which needs history:read: a token
        // missing another scope still gets there.
        _ => format!("{{ profile(id: \"{profile}\") {{ {field}{args} {selection} }} }}"),
    }
}

/// Arguments are checked with GraphQL's names; an unknown field or a query over the limits is
/// refused whole with a code, and nothing runs.
#[tokio::test]
async fn bad_queries_get_specific_codes() {
    let h = harness(true).await;
    let (_, profile, token) = seed(&h, 1).await;
    let p = profile.to_string();
    let r = h
        .run(
            &token,
            &format!(
                "{{ profile(id: \"{p}\") {{ continueWatching(first: 500) {{ nodes {{ titleId }} }} }} }}"
            ),
            json!({}),
        )
        .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{r}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "first", "{r}");
    let r = h.run(&token, "{ profile(id: \"nope\") { id } }", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["field"], "id", "{r}");
    let r =
        h.run(&token, &format!("{{ profile(id: \"{}\") {{ id }} }}", uuid::Uuid::new_v4()), json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "NOT_FOUND", "{r}");
    let r = h.run(&token, "{ me { shoeSize } }", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED", "{r}");
    assert!(r["data"].is_null(), "{r}");
    let deep = "{ me { profiles { continueWatching { nodes { title { series { series { series { series { series { name } } } } } } } } } } }";
    let r = h.run(&token, deep, json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "QUERY_TOO_DEEP", "{r}");
    assert_eq!(r["errors"][0]["extensions"]["limit"], 10, "{r}");
    let page = "titles(first: 100) { nodes { id name genres series { name } } }";
    let costly = format!("{{ {} }}", (0..10).map(|i| format!("a{i}: {page}")).collect::<Vec<_>>().join(" "));
    let r = h.run(&token, &costly, json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "QUERY_TOO_COMPLEX", "{r}");
    let r = h.run(&token, "{ me { ", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "GRAPHQL_PARSE_FAILED", "{r}");
    let r = h.run("Bearer not-a-token", "{ me { accountId } }", json!({})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{r}");
}
