"""Playhead's authorization server driven by third-party clients.

authlib (an independent OAuth 2.0 client) runs the device flow and the authorization-code + PKCE
flow against a real `playhead serve`; PyJWT validates the access tokens against our JWKS. The
hosted pages are plain HTML forms, filled in here the way a browser would (requests keeps no
`Secure` cookies over plain HTTP, so the cookies are carried by hand).

Nothing here skips: when the server cannot be built or started the tests fail (CI=true or not).
"""

import json
import os
import re
import socket
import subprocess
import tempfile
import time
from html import unescape
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "correct horse battery"
EMAIL = "authlib@example.com"


def binary():
    path = os.environ.get("PLAYHEAD_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "playhead"
    )
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "-q", "-p", "playhead"], cwd=ROOT, check=True)
    return path


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve(bin_, global_args, port, env):
    """`playhead [global_args] serve` on `port`, once /livez answers (the test fails otherwise)."""
    proc = subprocess.Popen([bin_, *global_args, "serve", "--listen", f"127.0.0.1:{port}", "--metrics-listen", "off"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            if requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("playhead serve did not start: " + proc.stderr.read().decode()[-2000:])


@pytest.fixture(scope="module")
def server():
    bin_ = binary()
    data = tempfile.mkdtemp(prefix="playhead-py-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Only settings go to the server: it refuses unknown PLAYHEAD_* keys (like PLAYHEAD_BIN).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYHEAD_")}
    env.update(PLAYHEAD_DATA_DIR=data, PLAYHEAD_ISSUER=base, RUST_LOG="error")

    def admin(*args, stdin=None):
        out = subprocess.run([bin_, "admin", *args], env=env, input=stdin, capture_output=True, text=True)
        assert out.returncode == 0, f"playhead admin {args[0]}: {out.stderr}"
        return json.loads(out.stdout)

    account = admin("create-account", "--email", EMAIL)["account_id"]
    profile = admin("create-profile", "--account", account, "--name", "Living room")["profile_id"]
    admin("set-password", "--account", account, stdin=PASSWORD + "\n")
    tv = admin("client", "create", "--name", "Authlib TV", "--type", "public",
               "--grant", "device_code", "--grant", "refresh_token")["client_id"]
    redirect = f"http://127.0.0.1:{port}/callback"
    web = admin("client", "create", "--name", "Authlib Web", "--type", "public",
                "--grant", "authorization_code", "--grant", "refresh_token", "--redirect-uri", redirect)["client_id"]
    # Services (client credentials): one whose token is revoked, one that is deleted, and a
    # resource server that introspects.
    def service(name, scope):
        c = admin("client", "create", "--name", name, "--type", "confidential",
                  "--grant", "client_credentials", "--scope", scope)
        return {"id": c["client_id"], "secret": c["client_secret"]}

    partner = service("Authlib Partner", "catalog:write")
    doomed = service("Authlib Doomed", "catalog:write")
    rs = service("Authlib Resource Server", "catalog:write")
    proc = serve(bin_, [], port, env)
    meta = requests.get(base + "/.well-known/oauth-authorization-server", timeout=5).json()
    yield {"base": base, "meta": meta, "tv": tv, "web": web, "redirect": redirect, "profile": profile,
           "partner": partner, "doomed": doomed, "rs": rs, "admin": admin}
    proc.terminate()
    proc.wait(timeout=30)


def hidden_fields(html):
    return {m.group(1): unescape(m.group(2)) for m in re.finditer(r'name="([^"]+)" value="([^"]*)"', html)}


def cookie_of(resp, name):
    for v in resp.raw.headers.getlist("Set-Cookie"):
        first = v.split(";")[0]
        if first.startswith(name + "=") and len(first) > len(name) + 1:
            assert "Secure" in v and "HttpOnly" in v and "SameSite=Lax" in v, v
            return first.split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {resp.headers}")


def sign_in(base):
    page = requests.get(base + "/signin", timeout=5)
    csrf_cookie = cookie_of(page, "__Host-playhead-csrf")
    fields = hidden_fields(page.text)
    r = requests.post(base + "/signin", timeout=10, allow_redirects=False,
                      headers={"Cookie": f"__Host-playhead-csrf={csrf_cookie}"},
                      data={"csrf": fields["csrf"], "email": EMAIL, "password": PASSWORD, "return_to": "/device"})
    assert r.status_code == 303, r.text
    return {"Cookie": "__Host-playhead-session=" + cookie_of(r, "__Host-playhead-session")}


def validate(server, access_token):
    """PyJWT, from our JWKS alone: signature, alg, iss, aud, exp; and the RFC 9068 type."""
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt" and header["alg"] == "EdDSA" and header["kid"]
    key = jwt.PyJWKClient(server["meta"]["jwks_uri"]).get_signing_key_from_jwt(access_token)
    claims = jwt.decode(access_token, key.key, algorithms=["EdDSA"], audience="playhead-api",
                        issuer=server["meta"]["issuer"], options={"require": ["exp", "iat", "sub", "jti"]})
    assert claims["sid"] and claims["exp"] - claims["iat"] == 600
    return claims


def test_metadata_is_rfc_8414(server):
    meta = server["meta"]
    assert meta["issuer"] == server["base"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "password" not in meta["grant_types_supported"]


def test_device_flow_with_authlib(server):
    meta = server["meta"]
    client = OAuth2Session(client_id=server["tv"], token_endpoint_auth_method="none", scope="history:read history:write")
    d = requests.post(meta["device_authorization_endpoint"], timeout=5,
                      data={"client_id": server["tv"], "scope": "history:read history:write"}).json()
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", d["user_code"])
    grant = "urn:ietf:params:oauth:grant-type:device_code"
    with pytest.raises(Exception) as pending:
        client.fetch_token(meta["token_endpoint"], grant_type=grant, device_code=d["device_code"])
    assert "authorization_pending" in str(pending.value)

    auth = sign_in(server["base"])
    page = requests.get(d["verification_uri_complete"], headers=auth, timeout=5)
    assert "Authlib TV" in page.text
    fields = hidden_fields(page.text)
    r = requests.post(server["base"] + "/device", headers=auth, timeout=5,
                      data={"csrf": fields["csrf"], "user_code": d["user_code"], "decision": "approve",
                            "profile_id": server["profile"]})
    assert r.status_code == 200, r.text

    token = client.fetch_token(meta["token_endpoint"], grant_type=grant, device_code=d["device_code"])
    claims = validate(server, token["access_token"])
    assert claims["profile_id"] == server["profile"] and claims["client_id"] == server["tv"]
    r = requests.get(f"{server['base']}/v1/profiles/{server['profile']}/continue-watching", timeout=5,
                     headers={"Authorization": "Bearer " + token["access_token"]})
    assert r.status_code == 200

    refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    validate(server, refreshed["access_token"])


def test_authorization_code_with_pkce_with_authlib(server):
    meta = server["meta"]
    client = OAuth2Session(client_id=server["web"], redirect_uri=server["redirect"], scope="history:read",
                           code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier = generate_token(64)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    assert "code_challenge_method=S256" in url

    auth = sign_in(server["base"])
    consent = requests.get(url, headers=auth, timeout=5)
    assert consent.status_code == 200 and "Authlib Web" in consent.text
    fields = hidden_fields(consent.text)
    fields["decision"] = "approve"
    r = requests.post(server["base"] + "/oauth/authorize", headers=auth, data=fields, allow_redirects=False, timeout=5)
    assert r.status_code == 303, r.text
    callback = r.headers["Location"]
    q = parse_qs(urlparse(callback).query)
    assert q["state"] == [state] and q["iss"] == [server["base"]]

    token = client.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    claims = validate(server, token["access_token"])
    assert claims["scope"] == "history:read"
    # The same code a second time is refused (and revokes what it issued).
    with pytest.raises(Exception) as reused:
        client.fetch_token(meta["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    assert "invalid_grant" in str(reused.value)


def service_session(server, c):
    return OAuth2Session(client_id=c["id"], client_secret=c["secret"], scope="catalog:write",
                         token_endpoint_auth_method="client_secret_basic")


def introspect(server, token):
    rs = service_session(server, server["rs"])
    r = rs.introspect_token(server["meta"]["introspection_endpoint"], token=token)
    assert r.status_code == 200, r.text
    return r.json()


def refused_within_30_s(server, token):
    """The documented bound: every replica refuses a revoked token within 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = requests.get(server["base"] + "/v1/titles", timeout=5, headers={"Authorization": "Bearer " + token})
        if r.status_code == 401:
            assert "invalid_token" in r.headers["WWW-Authenticate"], r.headers
            return
        assert r.status_code == 200, r.text
        time.sleep(0.5)
    pytest.fail("the revoked token still works after 30 s")


def test_a_revoked_client_credentials_token_stops_working_with_authlib(server):
    meta = server["meta"]
    client = service_session(server, server["partner"])
    token = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert "refresh_token" not in token
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "client:" + server["partner"]["id"] and "sid" not in claims
    r = requests.get(server["base"] + "/v1/titles", timeout=5,
                     headers={"Authorization": "Bearer " + token["access_token"]})
    assert r.status_code == 200
    assert introspect(server, token["access_token"])["active"] is True

    r = client.revoke_token(meta["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token")
    assert r.status_code == 200, r.text
    assert introspect(server, token["access_token"]) == {"active": False}
    refused_within_30_s(server, token["access_token"])
    # A new token for the same client still works: only the revoked one is denied.
    fresh = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert introspect(server, fresh["access_token"])["active"] is True


def test_deleting_a_client_revokes_what_it_issued_with_authlib(server):
    meta = server["meta"]
    client = service_session(server, server["doomed"])
    token = client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert introspect(server, token["access_token"])["active"] is True
    assert server["admin"]("client", "delete", "--client-id", server["doomed"]["id"]) == {
        "deleted": server["doomed"]["id"]}
    assert introspect(server, token["access_token"]) == {"active": False}
    refused_within_30_s(server, token["access_token"])
    with pytest.raises(Exception) as refused:
        client.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert "invalid_client" in str(refused.value)
