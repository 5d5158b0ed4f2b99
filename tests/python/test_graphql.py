"""Playhead's GraphQL endpoint driven by a third-party client: `gql` over HTTP (requests) for a
screen query and a mutation, and over `graphql-transport-ws` (websockets) for the
`progressChanged` subscription: the resume point a phone sets reaches a subscribed TV.

Nothing here skips: when the server cannot be built or started the tests fail.
"""

import asyncio
import json
import os
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from gql import Client, gql
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

from test_oauth import binary, free_port, serve

SCREEN = gql("""
query Screen($id: ID!) {
  me { accountId profiles { id name } }
  profile(id: $id) {
    name
    continueWatching(first: 10) { edges { cursor node { titleId positionMs percent title { id name kind } } } pageInfo { hasNextPage } }
    nextUp(first: 10) { nodes { titleId title { name season episode series { name } } } }
    recommendations(first: 10) { nodes { titleId reason { text } } }
  }
}
""")

RECORD = gql("""
mutation Record($p: ID!, $events: [EventInput!]!) {
  recordEvents(profileId: $p, events: $events) { accepted rejected results { status problem { field detail } } }
}
""")

SET_PROGRESS = gql("""
mutation Set($p: ID!, $t: ID!, $pos: Int!) {
  setProgress(profileId: $p, titleId: $t, positionMs: $pos, deviceId: "phone") { titleId positionMs state }
}
""")

CHANGED = gql("""
subscription Changed($p: ID!) { progressChanged(profileId: $p) { profileId titleId positionMs state } }
""")


@pytest.fixture(scope="module")
def server():
    bin_ = binary()
    data = tempfile.mkdtemp(prefix="playhead-gql-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYHEAD_")}
    env.update(PLAYHEAD_DATA_DIR=data, PLAYHEAD_ISSUER=base, RUST_LOG="error")

    def admin(*args):
        out = subprocess.run([bin_, "admin", *args], env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"playhead admin {args[0]}: {out.stderr}"
        return json.loads(out.stdout)

    account = admin("create-account", "--email", "gql@example.com")["account_id"]
    profile = admin("create-profile", "--account", account, "--name", "Living room")["profile_id"]
    token = admin("token", "--account", account, "--admin")["access_token"]
    proc = serve(bin_, [], port, env)
    catalog = "\n".join(json.dumps(t) for t in [
        {"id": "heat-1995", "kind": "movie", "name": "Heat", "duration_ms": 10_200_000, "maturity": 16},
        {"id": "bb", "kind": "series", "name": "Breaking Bad", "maturity": 16},
        {"id": "bb.s01e01", "kind": "episode", "name": "Pilot", "duration_ms": 3_480_000, "series_id": "bb",
         "season": 1, "episode": 1, "maturity": 16},
        {"id": "bb.s01e02", "kind": "episode", "name": "Cat's in the Bag...", "duration_ms": 2_880_000,
         "series_id": "bb", "season": 1, "episode": 2, "maturity": 16},
    ])
    r = requests.post(base + "/v1/titles/import", data=catalog, timeout=10,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    yield {"base": base, "token": token, "profile": profile}
    proc.terminate()
    proc.wait(timeout=30)


def http_client(server):
    transport = RequestsHTTPTransport(url=server["base"] + "/graphql", timeout=10,
                                      headers={"Authorization": "Bearer " + server["token"]})
    return Client(transport=transport, fetch_schema_from_transport=True)


def at(seconds_ago):
    t = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def event(title, kind, position_ms, seconds_ago):
    return {"eventId": str(uuid.uuid4()), "titleId": title, "kind": kind, "positionMs": position_ms,
            "occurredAt": at(seconds_ago), "deviceId": "tv"}


def test_a_mutation_then_the_screen_query(server):
    client = http_client(server)
    events = [event("heat-1995", "START", 0, 1600), event("heat-1995", "HEARTBEAT", 750_000, 850),
              event("heat-1995", "PAUSE", 1_500_000, 100)]
    events += [event("bb.s01e01", "START", 0, 4000)]
    events += [event("bb.s01e01", "HEARTBEAT", 60_000 * m, 4000 - 60 * m) for m in range(1, 58)]
    events += [event("bb.s01e01", "COMPLETE", 3_480_000, 4000 - 60 * 58)]
    out = client.execute(RECORD, variable_values={"p": server["profile"], "events": events})
    assert out["recordEvents"]["rejected"] == 0, out
    assert out["recordEvents"]["accepted"] == len(events)
    # The consumer applies within milliseconds; give it a moment.
    for _ in range(50):
        screen = client.execute(SCREEN, variable_values={"id": server["profile"]})
        if screen["profile"]["continueWatching"]["edges"] and screen["profile"]["nextUp"]["nodes"]:
            break
        time.sleep(0.1)
    assert screen["me"]["profiles"][0]["id"] == server["profile"]
    cw = screen["profile"]["continueWatching"]["edges"][0]["node"]
    assert cw["titleId"] == "heat-1995" and cw["positionMs"] == 1_500_000, screen
    assert cw["title"] == {"id": "heat-1995", "name": "Heat", "kind": "MOVIE"}
    nxt = screen["profile"]["nextUp"]["nodes"][0]
    assert nxt["titleId"] == "bb.s01e02" and nxt["title"]["series"]["name"] == "Breaking Bad", screen


def test_bad_input_is_a_graphql_error_with_a_code(server):
    client = http_client(server)
    with pytest.raises(Exception) as e:
        client.execute(SET_PROGRESS, variable_values={"p": server["profile"], "t": "heat-1995", "pos": -5})
    assert "position" in str(e.value).lower()
    r = requests.post(server["base"] + "/graphql", timeout=10,
                      headers={"Authorization": "Bearer " + server["token"]},
                      json={"query": "{ me { shoeSize } }"})
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def _phone_reaches_tv(server):
    ws_url = server["base"].replace("http://", "ws://") + "/graphql"
    transport = WebsocketsTransport(url=ws_url, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                                    init_payload={"Authorization": "Bearer " + server["token"]})
    phone = http_client(server)
    async with Client(transport=transport) as tv:
        received = []

        async def listen():
            async for change in tv.subscribe(CHANGED, variable_values={"p": server["profile"]}):
                received.append(change["progressChanged"])
                return

        task = asyncio.ensure_future(listen())
        sent = []
        # The subscription is live once the server processed it (the protocol has no ack for a
        # subscribe): set positions until the TV hears one.
        for i in range(50):
            pos = 3_600_000 + 1_000 * i
            await asyncio.to_thread(phone.execute, SET_PROGRESS,
                                    variable_values={"p": server["profile"], "t": "heat-1995", "pos": pos})
            sent.append(pos)
            done, _ = await asyncio.wait({task}, timeout=0.3)
            if done:
                break
        assert received, f"the TV heard none of {len(sent)} changes"
        change = received[0]
        assert change["profileId"] == server["profile"] and change["titleId"] == "heat-1995"
        assert change["positionMs"] in sent and change["state"] == "IN_PROGRESS"


def test_progress_changed_reaches_a_subscribed_tv(server):
    asyncio.run(_phone_reaches_tv(server))
