"""Schemathesis hooks: teach it to send NDJSON (the catalog import's media type), and make it use
Idempotency-Key the way a client does."""
import json
import uuid

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    # The schema describes the body as a string (lines of JSON); send anything else as one line.
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return (json.dumps(value) + "\n").encode()


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # A client mints a new Idempotency-Key for each new request and reuses it only to retry the
    # same one; the fuzzer draws keys from a small space and would "reuse" them for different
    # bodies (a 422 by design, tested in the Rust suite). Keep malformed keys as drawn: their 400
    # is part of the contract under test.
    headers = case.headers or {}
    changed = False
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and 1 <= len(value) <= 255 \
                and value.isascii() and value.isprintable():
            # Still 1-255 characters: a valid key stays valid (the boundary cases draw 255).
            headers[name] = f"{value[:200]}-{uuid.uuid4()}"
            changed = True
    # A valid key stays a valid key: tell schemathesis the case is as generated, or it would
    # re-judge it and, for a case that drops a header (Authorization), send that header again.
    sync = getattr(case, "_sync_validated_hashes", None)
    if changed and sync is not None:
        sync()
