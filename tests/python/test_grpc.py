"""Playhead's gRPC API driven by grpcio, with stubs generated from the committed protos.

grpcio-tools compiles proto/playhead/v1/*.proto into a temporary directory (nothing generated is
committed), and the stubs talk to a real `playhead serve` on the same port as REST. Covers a
client-streamed import, unary and bidirectional event ingestion, the rows, the policy (a viewer is
refused admin methods), errors in gRPC's convention and the standard health service.

Nothing here skips: when the server cannot be built or started the tests fail.
"""

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import grpc
import pytest
from grpc_tools import protoc

from test_oauth import ROOT, binary, free_port, serve

PROTO = os.path.join(ROOT, "proto")


@pytest.fixture(scope="module")
def pb():
    """Generate the playhead.v1 stubs and import them."""
    out = tempfile.mkdtemp(prefix="playhead-pb-")
    files = [os.path.join("playhead", "v1", f"{n}.proto") for n in ("common", "playback", "catalog", "profile", "recs")]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["grpc_tools.protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *files])
    assert rc == 0, "grpcio-tools could not compile the committed protos"
    sys.path.insert(0, out)
    mods = {n: importlib.import_module(f"playhead.v1.{n}_pb2") for n in ("common", "playback", "catalog", "profile", "recs")}
    mods.update({f"{n}_grpc": importlib.import_module(f"playhead.v1.{n}_pb2_grpc") for n in ("playback", "catalog", "profile", "recs")})
    return type("Pb", (), mods)


@pytest.fixture(scope="module")
def server():
    bin_ = binary()
    data = tempfile.mkdtemp(prefix="playhead-grpc-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYHEAD_")}
    env.update(PLAYHEAD_DATA_DIR=data, PLAYHEAD_ISSUER=f"http://127.0.0.1:{port}", RUST_LOG="error")

    def admin(*args):
        out = subprocess.run([bin_, "admin", *args], env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"playhead admin {args[0]}: {out.stderr}"
        return json.loads(out.stdout)

    account = admin("create-account", "--email", "grpcio@example.com")["account_id"]
    profile = admin("create-profile", "--account", account, "--name", "Living room")["profile_id"]
    viewer = admin("token", "--account", account)["access_token"]
    ops = admin("token", "--account", account, "--admin")["access_token"]
    proc = serve(bin_, [], port, env)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield {"channel": channel, "profile": profile, "account": account, "viewer": viewer, "ops": ops}
    channel.close()
    proc.terminate()
    proc.wait(timeout=30)


def auth(token):
    return [("authorization", f"Bearer {token}")]


def ts(pb_common, ms):
    from google.protobuf.timestamp_pb2 import Timestamp
    t = Timestamp()
    t.FromMilliseconds(ms)
    return t


def watching(pb, title, minutes, ends_mins_ago):
    start = int(time.time() * 1000) - (ends_mins_ago + minutes) * 60_000
    kinds = pb.playback.EventKind
    return [pb.playback.PlaybackEvent(
        event_id=str(uuid.uuid4()), title_id=title,
        kind=kinds.Value("EVENT_KIND_START") if i == 0 else kinds.Value("EVENT_KIND_HEARTBEAT"),
        position_ms=i * 30_000, occurred_at=ts(pb, start + i * 30_000), device_id="tv")
        for i in range(minutes * 2 + 1)]


def movie(pb, id_, minutes):
    return pb.common.Title(title_id=id_, kind=pb.common.TitleKind.Value("TITLE_KIND_MOVIE"), name=f"Movie {id_}",
                           duration_ms=minutes * 60_000, genres=["Drama"], maturity=12)


def test_import_record_stream_and_rows(pb, server):
    ch = server["channel"]
    catalog = pb.catalog_grpc.CatalogServiceStub(ch)
    batches = iter([pb.catalog.ImportTitlesRequest(titles=[movie(pb, "py1", 100), movie(pb, "py2", 100)])])
    summary = catalog.ImportTitles(batches, metadata=auth(server["ops"]))
    assert (summary.received, summary.rejected) == (2, 0)

    playback = pb.playback_grpc.PlaybackServiceStub(ch)
    res = playback.RecordEvents(pb.playback.RecordEventsRequest(
        profile_id=server["profile"], events=watching(pb, "py1", 20, 10)), metadata=auth(server["viewer"]))
    assert res.accepted == 41 and res.rejected == 0

    sent = [pb.playback.StreamEventsRequest(profile_id=server["profile"], event=e) for e in watching(pb, "py2", 30, 2)]
    results = list(playback.StreamEvents(iter(sent), metadata=auth(server["viewer"])))
    assert [r.result.event_id for r in results] == [m.event.event_id for m in sent]
    accepted = pb.playback.EventStatus.Value("EVENT_STATUS_ACCEPTED")
    assert all(r.result.status == accepted for r in results)

    # Applied asynchronously after the durable ack: poll the row.
    deadline = time.time() + 10
    while True:
        row = playback.GetContinueWatching(pb.playback.GetContinueWatchingRequest(profile_id=server["profile"]),
                                           metadata=auth(server["viewer"]))
        if [i.title_id for i in row.items] == ["py2", "py1"]:
            break
        assert time.time() < deadline, row
        time.sleep(0.1)
    assert row.items[0].title.name == "Movie py2"


def test_a_viewer_is_refused_catalog_writes(pb, server):
    catalog = pb.catalog_grpc.CatalogServiceStub(server["channel"])
    with pytest.raises(grpc.RpcError) as e:
        catalog.PutTitle(pb.catalog.PutTitleRequest(title=movie(pb, "nope", 10)), metadata=auth(server["viewer"]))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "catalog:write" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        catalog.GetTitle(pb.catalog.GetTitleRequest(title_id="py1"))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_bad_input_is_invalid_argument(pb, server):
    playback = pb.playback_grpc.PlaybackServiceStub(server["channel"])
    with pytest.raises(grpc.RpcError) as e:
        playback.GetProgress(pb.playback.GetProgressRequest(profile_id="not-a-uuid", title_id="py1"),
                             metadata=auth(server["viewer"]))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "profile_id" in e.value.details()
    # The BadRequest details travel in grpc-status-details-bin.
    details = dict(e.value.trailing_metadata() or ())
    assert "grpc-status-details-bin" in details


def test_health_follows_readiness(server):
    check = server["channel"].unary_unary("/grpc.health.v1.Health/Check",
                                         request_serializer=lambda b: b, response_deserializer=lambda b: b)
    # HealthCheckRequest{service: ""} is empty; HealthCheckResponse{status: SERVING} is 08 01.
    assert check(b"") == b"\x08\x01"
