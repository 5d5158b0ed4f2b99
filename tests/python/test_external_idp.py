"""A platform's own identity provider, built from third-party parts, trusted by a real `playhead serve`.

The IdP here is what a Keycloak realm looks like from the outside: keys made by `cryptography`,
published as a JWKS by PyJWT's own JWK encoder over HTTP, access tokens signed by PyJWT (RS256,
header typ "JWT", `typ: "Bearer"` claim marking access tokens, roles in `realm_access.roles`).
Playhead is configured for it through its TOML config file, as an operator would. Nothing skips.
"""

import json
import os
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from test_oauth import binary, free_port, serve

ISSUER = "https://sso.example.test/realms/media"


class Idp:
    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        keys = []
        for kid, alg, key in (("kc-rs-1", RSAAlgorithm, self.rsa), ("kc-ec-1", ECAlgorithm, self.ec)):
            jwk = json.loads(alg.to_jwk(key.public_key()))
            jwk.update(kid=kid, use="sig")
            keys.append(jwk)
        body = json.dumps({"keys": keys}).encode()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                idp.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.fetches = 0
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.jwks_uri = f"http://127.0.0.1:{self.http.server_address[1]}/realms/media/protocol/openid-connect/certs"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def token(self, sub, token_type="Bearer", alg="RS256", kid="kc-rs-1", roles=(), scope="openid email history:read"):
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": sub, "aud": ["account", "playhead"], "exp": now + 300, "iat": now,
                  "jti": str(uuid.uuid4()), "typ": token_type, "azp": "tv-app", "scope": scope,
                  "realm_access": {"roles": list(roles)}}
        key = self.rsa if alg.startswith("RS") else self.ec
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def setup():
    idp = Idp()
    data = tempfile.mkdtemp(prefix="playhead-idp-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = os.path.join(data, "playhead.toml")
    with open(config, "w") as f:
        f.write(f"""
[[identity.external_issuers]]
issuer = "{ISSUER}"
jwks_uri = "{idp.jwks_uri}"
algorithms = ["RS256"]
audience = "playhead"
access_token = {{ claim = "typ", value = "Bearer" }}
max_role = "service"
[identity.external_issuers.claims]
roles = "realm_access.roles"
service_values = ["playhead-service"]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYHEAD_")}
    env.update(PLAYHEAD_DATA_DIR=data, PLAYHEAD_ISSUER=base, RUST_LOG="error")
    proc = serve(binary(), ["--config", config], port, env)
    yield {"base": base, "idp": idp}
    proc.terminate()
    proc.wait(timeout=30)
    idp.http.shutdown()


def me(setup, token):
    return requests.get(setup["base"] + "/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)


def test_the_idps_access_tokens_reach_one_account_per_subject(setup):
    idp = setup["idp"]
    first = me(setup, idp.token("kc-alice"))
    assert first.status_code == 200, first.text
    again = me(setup, idp.token("kc-alice"))
    assert again.json()["account_id"] == first.json()["account_id"]
    other = me(setup, idp.token("kc-bob"))
    assert other.status_code == 200 and other.json()["account_id"] != first.json()["account_id"]
    assert idp.fetches == 1, "the JWKS is fetched once and cached"


@pytest.mark.parametrize("what", ["id token", "ES256 not allowed", "unknown kid", "wrong audience"])
def test_hostile_idp_tokens_get_401_with_a_challenge(setup, what):
    idp = setup["idp"]
    token = {
        "id token": lambda: idp.token("kc-alice", token_type="ID"),
        "ES256 not allowed": lambda: idp.token("kc-alice", alg="ES256", kid="kc-ec-1"),
        "unknown kid": lambda: idp.token("kc-alice", kid="kc-rs-999"),
        "wrong audience": lambda: jwt.encode(
            {**jwt.decode(idp.token("kc-alice"), options={"verify_signature": False}), "aud": "account"},
            idp.rsa, algorithm="RS256", headers={"kid": "kc-rs-1"}),
    }[what]()
    r = me(setup, token)
    assert r.status_code == 401, (what, r.status_code, r.text)
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"], r.headers
