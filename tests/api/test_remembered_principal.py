"""``Authenticator.remembered``: the principal of a token validated before, found by the keyed hash of its text.

The hot path of every door skips parsing, so it must not be foolable: only the exact text validated finds the
entry (the alias is its keyed hash under the newest server key, never the text), and what still applies after
a principal is cached (expiry, revocation, an untrusted cache) makes it answer None so the full path decides.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.conftest import store_service_token
from tokengate.core import tokens
from tokengate.core.policy import Grant

WHO = "{ viewer { kind } }"


async def test_only_the_exact_text_validated_finds_its_principal(server):
    admin = await server.bootstrap()
    secret = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    authenticator = server.runtime.authenticator
    assert authenticator.remembered(secret) is None  # never validated here: nothing to remember
    assert (await server.gql(WHO, token=secret)).status == 200
    principal = authenticator.remembered(secret)
    assert principal is not None and principal.token_id == secret[4:20]
    # The alias is the keyed hash of the text; the text itself is not a key.
    aliases = authenticator.cache._aliases
    assert aliases[tokens.hash_token(secret, server.config.secret_keys[0])] == secret[4:20]
    assert all(secret.encode() not in alias for alias in aliases)

    body = secret[:20] + tokens.random_base62(32)  # same id, another secret, a valid checksum
    other_secret = body + tokens.checksum(body)
    server.issued.append(other_secret)
    for near in (other_secret, secret + " ", " " + secret, secret[:-1], secret.upper(), secret + "é"):
        assert authenticator.remembered(near) is None, near
        assert authenticator.cached_principal(near) is None, near
    assert (await server.gql(WHO, token=other_secret)).status == 401
    assert (await server.gql(WHO, token=secret)).status == 200  # the real one still works


async def test_expiry_revocation_and_an_untrusted_cache_still_apply(server, monkeypatch):
    admin = await server.bootstrap()
    authenticator = server.runtime.authenticator
    expiry = datetime.now(UTC) + timedelta(seconds=2)
    expiring = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")], expires_at=expiry)
    revoked = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    for token in (expiring, revoked):
        assert (await server.gql(WHO, token=token)).status == 200
        assert authenticator.remembered(token) is not None

    monkeypatch.setattr(authenticator, "cache_trusted", lambda: False)  # the LISTEN connection is down
    assert authenticator.remembered(revoked) is None
    monkeypatch.undo()
    assert authenticator.remembered(revoked) is not None

    deleted = await server.gql(
        "mutation($id: ID!) { deleteServiceToken(id: $id) { state } }", {"id": revoked[4:20]}, token=admin.token
    )
    assert deleted.errors == [], deleted.body
    assert authenticator.remembered(revoked) is None  # forgotten by the notice applied after commit
    assert (await server.gql(WHO, token=revoked)).status == 401

    await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds() + 0.1))
    assert authenticator.remembered(expiring) is None
    assert (await server.gql(WHO, token=expiring)).status == 401
