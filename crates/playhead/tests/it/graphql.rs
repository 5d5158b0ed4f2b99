//! GraphQL at `/graphql` against the running server: a screen query and the mutations on both
//! backends, GET and the console page, the policy sweep over HTTP, introspection switched off,
//! and `progressChanged` over `graphql-transport-ws`, embedded and across two scale-out replicas.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use playhead_core::auth::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::support::{
    Backend, TestApp, Viewer, episode, movie, on, on_both_backends, pg, series, spawn_app, spawn_replica,
    spawn_with, watching,
};

on_both_backends!(a_screen_query_and_the_mutations_work_over_http);

async fn gql(t: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let r = t
        .http
        .post(t.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn ok(r: &Value) -> &Value {
    assert!(r["errors"].is_null(), "{r}");
    &r["data"]
}

const SCREEN: &str = "query($p: ID!) { profile(id: $p) { name
  continueWatching(first: 10) { edges { cursor node { titleId positionMs percent title { id name kind watched playCount } } } pageInfo { hasNextPage endCursor } }
  nextUp(first: 10) { nodes { titleId title { name season episode watched playCount series { name watched } } } }
  history(first: 10) { nodes { playId titleId manual period { start end } watched { ms percent completed } title { name watched playCount } } }
  recommendations(first: 5) { nodes { titleId } } } }";

async fn a_screen_query_and_the_mutations_work_over_http() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), series("bb"), episode("bb", 1, 1, 20), episode("bb", 1, 2, 20)]).await;
    let v = t.viewer("screen@example.com").await;
    let p = v.profile.to_string();
    // Events through GraphQL: 30 minutes of m1, and all of episode 1.
    let mut events: Vec<Value> = watching("m1", 0, 30, 120).into_iter().map(camel_event).collect();
    events.extend(watching("bb.s1e1", 0, 20, 30).into_iter().map(camel_event));
    let r = gql(
        &t,
        &v.token,
        "mutation($p: ID!, $e: [EventInput!]!) { recordEvents(profileId: $p, events: $e) { accepted rejected } }",
        json!({"p": p, "e": events}),
    )
    .await;
    assert_eq!(ok(&r)["recordEvents"]["rejected"], 0, "{r}");
    t.settle().await;

    let screen = gql(&t, &v.token, SCREEN, json!({"p": p})).await;
    let profile = &ok(&screen)["profile"];
    assert_eq!(profile["name"], "Main");
    let cw = &profile["continueWatching"]["edges"][0]["node"];
    assert_eq!(cw["titleId"], "m1", "{profile}");
    assert_eq!(cw["positionMs"], 30 * 60_000, "{profile}");
    assert_eq!(cw["title"]["kind"], "MOVIE");
    let next = &profile["nextUp"]["nodes"][0];
    assert_eq!(
        (next["titleId"].as_str(), next["title"]["series"]["name"].as_str()),
        (Some("bb.s1e2"), Some("Series bb"))
    );
    assert_eq!(profile["history"]["nodes"].as_array().unwrap().len(), 2, "{profile}");
    // Every title in a profile's rows and history carries its watched state (issue 17); the
    // catalog's view of a title (a series reached through an episode) has none.
    assert_eq!((&cw["title"]["watched"], &cw["title"]["playCount"]), (&json!(false), &json!(1)), "{profile}");
    assert_eq!((&next["title"]["watched"], &next["title"]["playCount"]), (&json!(false), &json!(0)));
    assert!(next["title"]["series"]["watched"].is_null(), "{profile}");
    let e1 =
        profile["history"]["nodes"].as_array().unwrap().iter().find(|n| n["titleId"] == "bb.s1e1").unwrap();
    assert_eq!(
        (&e1["manual"], &e1["title"]["watched"], &e1["title"]["playCount"]),
        (&json!(false), &json!(true), &json!(1))
    );
    // The same rows as REST's.
    let rest = t.get_json(&v.token, &format!("/v1/profiles/{p}/continue-watching")).await;
    assert_eq!(rest["items"][0]["position_ms"], cw["positionMs"]);

    // The phone sets the resume point; the next read has it.
    let r = gql(
        &t,
        &v.token,
        "mutation($p: ID!) { setProgress(profileId: $p, titleId: \"m1\", positionMs: 3600000, deviceId: \"phone\") { positionMs state } }",
        json!({"p": p}),
    )
    .await;
    assert_eq!(ok(&r)["setProgress"]["positionMs"], 3_600_000);
    assert_eq!(ok(&r)["setProgress"]["state"], "IN_PROGRESS");
    let r = gql(
        &t,
        &v.token,
        "query($p: ID!) { profile(id: $p) { progress(titleId: \"m1\") { positionMs } } }",
        json!({"p": p}),
    )
    .await;
    assert_eq!(ok(&r)["profile"]["progress"]["positionMs"], 3_600_000);

    // Hide it, delete a play, feedback, settings.
    let r = gql(
        &t,
        &v.token,
        "mutation($p: ID!) { hideFromContinueWatching(profileId: $p, titleId: \"m1\") }",
        json!({"p": p}),
    )
    .await;
    assert_eq!(ok(&r)["hideFromContinueWatching"], true);
    let play = profile["history"]["nodes"][0]["playId"].as_str().unwrap().to_owned();
    let r = gql(
        &t,
        &v.token,
        "mutation($p: ID!, $id: ID!) { deletePlay(profileId: $p, playId: $id) }",
        json!({"p": p, "id": play}),
    )
    .await;
    assert_eq!(ok(&r)["deletePlay"], true);
    let r = gql(
        &t,
        &v.token,
        "mutation($p: ID!, $id: ID!) { deletePlay(profileId: $p, playId: $id) }",
        json!({"p": p, "id": play}),
    )
    .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "NOT_FOUND", "{r}");
    let r = gql(
        &t,
        &v.token,
        "mutation($p: ID!) { sendFeedback(profileId: $p, titleId: \"m1\", kind: NOT_INTERESTED) }",
        json!({"p": p}),
    )
    .await;
    assert_eq!(ok(&r)["sendFeedback"], true);
    let r = gql(
        &t,
        &v.token,
        "mutation($p: ID!) { sendFeedback(profileId: $p, titleId: \"nope\", kind: UP) }",
        json!({"p": p}),
    )
    .await;
    assert_eq!(r["errors"][0]["extensions"]["field"], "titleId", "{r}");
    let after = gql(&t, &v.token, "query($p: ID!) { profile(id: $p) { version continueWatching { nodes { titleId } } history { nodes { playId } } } }", json!({"p": p})).await;
    let after = &ok(&after)["profile"];
    assert_eq!(after["continueWatching"]["nodes"], json!([]), "hidden: {after}");
    assert_eq!(after["history"]["nodes"].as_array().unwrap().len(), 1, "deleted: {after}");
    let version = after["version"].as_i64().unwrap();
    let update =
        "mutation($p: ID!, $v: Int!) { updateProfile(id: $p, version: $v, name: \"Ann\") { name version } }";
    let r = gql(&t, &v.token, update, json!({"p": p, "v": version})).await;
    assert_eq!(ok(&r)["updateProfile"]["name"], "Ann");
    let r = gql(&t, &v.token, update, json!({"p": p, "v": version})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "PRECONDITION_FAILED", "a stale version: {r}");

    // Another account's profile is not found, never forbidden.
    let other = t.viewer("other@example.com").await;
    let r = gql(&t, &other.token, SCREEN, json!({"p": p})).await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "NOT_FOUND", "{r}");
    t.stop().await;
}

/// The REST event shape in GraphQL's names.
fn camel_event(e: Value) -> Value {
    json!({"eventId": e["event_id"], "titleId": e["title_id"], "kind": e["kind"].as_str().unwrap().to_uppercase(),
           "positionMs": e["position_ms"], "occurredAt": e["occurred_at"], "deviceId": e["device_id"]})
}

/// GET runs queries (never mutations: a link must not change anything); a browser gets the
/// console, from the binary, under a policy that allows no inline script.
#[tokio::test]
async fn get_runs_queries_only_and_browsers_get_the_offline_console() {
    let t = spawn_app().await;
    let v = t.viewer("get@example.com").await;
    let r = t
        .http
        .get(t.url("/graphql"))
        .query(&[("query", "{ me { profiles { id } } }")])
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(ok(&body)["me"]["profiles"][0]["id"], v.profile.to_string());
    let q = format!("mutation {{ hideFromContinueWatching(profileId: \"{}\", titleId: \"m1\") }}", v.profile);
    let r = t
        .http
        .get(t.url("/graphql"))
        .query(&[("query", q.as_str())])
        .bearer_auth(&v.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let page = t.http.get(t.url("/graphql")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/graphql/console.js") && !html.contains("https://"), "no external asset: {html}");
    let js = t.http.get(t.url("/graphql/console.js")).send().await.unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().await.unwrap().contains("fetch(\"/graphql\""));
    t.stop().await;
}

/// Generated from the field table: a viewer's token is refused (FORBIDDEN, naming the scope) on
/// every field whose operation needs a scope viewers do not hold, and every field is refused to
/// a token that lacks exactly the scope its operation needs.
#[tokio::test]
async fn the_policy_sweep_covers_every_graphql_field() {
    use playhead_api_graphql::policy::{FIELDS, FieldRule};
    let t = spawn_app().await;
    let v = t.viewer("sweep@example.com").await;
    let mut checked = 0;
    for (ty, field, rule) in FIELDS {
        let FieldRule::Runs(op) = rule else { continue };
        let Some(scope) = op.scope() else { continue };
        if *ty == "Subscription" {
            continue; // below, over the WebSocket
        }
        let tokens: Vec<String> = if Scope::VIEWER.contains(&scope) {
            let others: Vec<&str> = Scope::ALL.iter().filter(|s| **s != scope).map(|s| s.as_str()).collect();
            vec![t.token(v.account, &others.join(" "), 600)]
        } else {
            vec![v.token.clone()]
        };
        for token in tokens {
            let r = gql(&t, &token, &call_of(ty, field, &v), json!({})).await;
            assert_eq!(r["errors"][0]["extensions"]["code"], "FORBIDDEN", "{ty}.{field}: {r}");
            assert_eq!(r["errors"][0]["extensions"]["scope"], scope.as_str(), "{ty}.{field}: {r}");
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked}");
    // The subscription, without history:read.
    let token = t.token(v.account, "history:write recs:read", 600);
    let mut ws = connect(&t, &token).await;
    subscribe(&mut ws, &v.profile.to_string()).await;
    let msg = next_json(&mut ws).await;
    assert_eq!(subscription_error(&msg)["extensions"]["code"], "FORBIDDEN", "{msg}");
    assert_eq!(subscription_error(&msg)["extensions"]["scope"], "history:read", "{msg}");
    t.stop().await;
}

fn call_of(ty: &str, field: &str, v: &Viewer) -> String {
    let p = v.profile;
    let eid = uuid::Uuid::new_v4();
    let at = playhead_core::Timestamp(crate::support::now_ms()).to_rfc3339();
    let (args, sel) = match field {
        "me" => (String::new(), "{ accountId }"),
        "profile" => (format!("(id: \"{p}\")"), "{ id }"),
        "title" => ("(id: \"m1\")".into(), "{ id }"),
        "titles" | "continueWatching" | "nextUp" | "history" | "recommendations" => {
            (String::new(), "{ pageInfo { hasNextPage } }")
        }
        "progress" => ("(titleId: \"m1\")".into(), "{ positionMs }"),
        "recordEvents" => (
            format!(
                "(profileId: \"{p}\", events: [{{eventId: \"{eid}\", titleId: \"m1\", kind: START, positionMs: 0, occurredAt: \"{at}\"}}])"
            ),
            "{ accepted }",
        ),
        "setProgress" => {
            (format!("(profileId: \"{p}\", titleId: \"m1\", positionMs: 1000)"), "{ positionMs }")
        }
        "hideFromContinueWatching" => (format!("(profileId: \"{p}\", titleId: \"m1\")"), ""),
        "deletePlay" => (format!("(profileId: \"{p}\", playId: \"{eid}\")"), ""),
        "sendFeedback" => (format!("(profileId: \"{p}\", titleId: \"m1\", kind: UP)"), ""),
        "updateProfile" => (format!("(id: \"{p}\", version: 1, name: \"x\")"), "{ id }"),
        other => panic!("the sweep does not know how to call {ty}.{other}: add it here"),
    };
    match ty {
        "Query" => format!("{{ {field}{args} {sel} }}"),
        "Mutation" => format!("mutation {{ {field}{args} {sel} }}"),
        _ => format!("{{ profile(id: \"{p}\") {{ {field}{args} {sel} }} }}"),
    }
}

/// `introspection = false` hides the schema (the introspection fields answer null); queries still
/// run.
#[tokio::test]
async fn introspection_can_be_switched_off() {
    let t = spawn_with(|s| s.graphql.introspection = false).await;
    let v = t.viewer("intro@example.com").await;
    // Introspection fields answer null: nothing of the schema is revealed.
    let r =
        gql(&t, &v.token, "{ __schema { types { name } } t: __type(name: \"Query\") { name } }", json!({}))
            .await;
    assert!(r["data"]["__schema"].is_null() && r["data"]["t"].is_null(), "{r}");
    let r = gql(&t, &v.token, "{ me { accountId } }", json!({})).await;
    assert_eq!(ok(&r)["me"]["accountId"], v.account.to_string());
    t.stop().await;
    let on = spawn_app().await;
    let v = on.viewer("intro@example.com").await;
    let r = gql(&on, &v.token, "{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(ok(&r)["__schema"]["queryType"]["name"], "Query");
    on.stop().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `graphql-transport-ws` connection, initialised with `token` in the payload (as a browser
/// must: it cannot set headers on a WebSocket).
async fn connect(t: &TestApp, token: &str) -> Ws {
    let mut req = t.url("/graphql").replace("http://", "ws://").into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    ws.send(Message::text(init.to_string())).await.unwrap();
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws
}

async fn subscribe(ws: &mut Ws, profile: &str) {
    let sub = json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription($p: ID!) { progressChanged(profileId: $p) { profileId titleId positionMs state } }",
        "variables": {"p": profile}}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
}

/// The first error of a refused subscription: a `next` carrying `errors` (a resolver error, then
/// `complete`), or an `error` message (a request refused before it ran).
fn subscription_error(msg: &Value) -> &Value {
    match msg["type"].as_str() {
        Some("next") => &msg["payload"]["errors"][0],
        Some("error") => &msg["payload"][0],
        _ => panic!("not a refusal: {msg}"),
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message within 10 s");
        match msg.expect("the connection is open").unwrap() {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// The TV subscribes on `tv`; the phone sets resume points on `phone` until the TV hears one
/// (the subscription is live only once the server processed it; there is no ack to wait for).
async fn phone_reaches_tv(phone: &TestApp, tv: &TestApp, v: &Viewer) {
    let p = v.profile.to_string();
    let mut ws = connect(tv, &v.token).await;
    subscribe(&mut ws, &p).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut sent = Vec::new();
    loop {
        let position = 600_000 + 1_000 * sent.len() as i64;
        let r = gql(
            phone,
            &v.token,
            "mutation($p: ID!, $pos: Int!) { setProgress(profileId: $p, titleId: \"m1\", positionMs: $pos, deviceId: \"phone\") { positionMs } }",
            json!({"p": p, "pos": position}),
        )
        .await;
        ok(&r);
        sent.push(position);
        let heard = tokio::time::timeout(Duration::from_millis(300), next_json(&mut ws)).await;
        if let Ok(msg) = heard {
            assert_eq!(msg["type"], "next", "{msg}");
            let change = &msg["payload"]["data"]["progressChanged"];
            assert_eq!(change["profileId"], p, "{msg}");
            assert_eq!(change["titleId"], "m1");
            assert!(sent.contains(&change["positionMs"].as_i64().unwrap()), "{msg} not among {sent:?}");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the TV heard nothing of {} changes", sent.len());
    }
}

/// Embedded: a resume point set through GraphQL reaches a subscribed TV, and so does one applied
/// from an event batch by the consumer; another account cannot subscribe to the profile.
#[tokio::test]
async fn progress_changed_reaches_a_subscribed_tv() {
    let t = spawn_app().await;
    let ops = t.catalog_token().await;
    t.import(&ops, &[movie("m1", 100), movie("m2", 100)]).await;
    let v = t.viewer("tv@example.com").await;
    phone_reaches_tv(&t, &t, &v).await;

    // Events through REST, applied by the consumer: the TV (still subscribed) hears m2.
    let mut ws = connect(&t, &v.token).await;
    subscribe(&mut ws, &v.profile.to_string()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.events(&v, watching("m2", 0, 10, 5)).await;
    let msg = next_json(&mut ws).await;
    assert_eq!(msg["payload"]["data"]["progressChanged"]["titleId"], "m2", "{msg}");

    let stranger = t.viewer("stranger@example.com").await;
    let mut ws = connect(&t, &stranger.token).await;
    subscribe(&mut ws, &v.profile.to_string()).await;
    let msg = next_json(&mut ws).await;
    assert_eq!(subscription_error(&msg)["extensions"]["code"], "NOT_FOUND", "{msg}");
    t.stop().await;
}

/// Scale-out: the TV is connected to replica B, the phone writes through replica A; the change
/// crosses replicas through NATS.
#[tokio::test]
async fn progress_changed_crosses_replicas_in_scale_out() {
    if !pg::reachable().await {
        return;
    }
    if crate::nats::shared_nats().is_none() {
        return;
    }
    on(Backend::Postgres, async move {
        let a = spawn_app().await;
        let b = spawn_replica(&a, |_| {}).await;
        let ops = a.catalog_token().await;
        a.import(&ops, &[movie("m1", 100)]).await;
        let v = a.viewer("replicas@example.com").await;
        phone_reaches_tv(&a, &b, &v).await;
        b.stop().await;
        a.stop().await;
    })
    .await;
}
