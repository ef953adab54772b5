"""Server key rotation (docs/operations.md, "Rotating the server key"): TOKENGATE_SECRET_KEY holds several keys, newest
first; new hashes use the first, validation accepts any, a token that validates under an older key is
re-hashed under the newest, and `tokengate key-status` counts what removing a key would break. A token
never presented cannot be re-hashed: once its key is removed it stops working."""

from __future__ import annotations

import json

from tests.api.service_token_calls import created, works
from tests.api.test_cli import external, tokengate
from tests.conftest import TEST_SECRET_KEY, make_config, start_server
from tokengate.config import parse_secret_keys
from tokengate.core import tokens
from tokengate.store import tokens as token_store

OLD = TEST_SECRET_KEY  # what the `server` fixture hashes with
NEW = "new-key-9876543210-zyxwvutsrqponmlkjihgfedcba"
OLD_ID, NEW_ID = (tokens.key_id(parse_secret_keys(text)[0]) for text in (OLD, NEW))


def key_status(database: str, key_setting: str) -> dict:
    result = tokengate("key-status", env={**external(database), "TOKENGATE_SECRET_KEY": key_setting})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def counts(status: dict) -> dict[str, int]:
    return {key["key_id"]: key["tokens"] for key in status["keys"]} | {
        name: status[name] for name in ("unknown_key", "not_recorded", "legacy")
    }


async def stored(server, token_id: str) -> tuple[bytes, str | None]:
    row = await server.pool.fetchrow("SELECT hash, key_id FROM tokens WHERE id = $1", token_id)
    return row["hash"], row["key_id"]


def test_key_ids_are_short_public_fingerprints():
    old, new = parse_secret_keys(f"{OLD},{NEW}")
    assert tokens.key_id(old) == OLD_ID and len(OLD_ID) == 8 and int(OLD_ID, 16) >= 0
    assert OLD_ID != NEW_ID and OLD_ID not in old.hex() and NEW_ID not in new.hex()


async def test_rotating_the_server_key_end_to_end(server, database, tmp_path):
    admin = await server.bootstrap()  # a personal token, hashed under OLD
    used = await created(server, admin.token, "used during the rotation")
    idle = await created(server, admin.token, "never presented again")
    bounced = await created(server, admin.token, "shows why the new key goes in second first")
    assert await stored(server, used.key) == (tokens.hash_token(used.secret, parse_secret_keys(OLD)[0]), OLD_ID)
    assert counts(key_status(database, OLD)) == {OLD_ID: 4, "unknown_key": 0, "not_recorded": 0, "legacy": 0}

    # Phase 2 of the procedure: NEW first, OLD still accepted.
    async for rotated in start_server(
        database, make_config(tmp_path / "b", secret_keys=parse_secret_keys(f"{NEW},{OLD}"))
    ):
        fresh = await created(rotated, admin.token, "created after the rotation")
        assert (await stored(rotated, fresh.key))[1] == NEW_ID  # new hashes use the first key
        assert await works(rotated, used.secret)  # validation accepts the older key...
        new_hash = tokens.hash_token(used.secret, parse_secret_keys(NEW)[0])
        assert await stored(rotated, used.key) == (new_hash, NEW_ID)  # ...and re-hashes under the newest
        assert await works(rotated, used.secret)
        assert await works(rotated, bounced.secret)
        status = key_status(database, f"{NEW},{OLD}")
        assert [key["key_id"] for key in status["keys"]] == [NEW_ID, OLD_ID] and status["keys"][0]["newest"]
        # NEW: the admin's token (re-hashed when it created `fresh`), used, fresh, bounced; OLD: idle.
        assert counts(status) == {NEW_ID: 4, OLD_ID: 1, "unknown_key": 0, "not_recorded": 0, "legacy": 0}

    # An instance that only knows OLD refuses a token re-hashed under NEW: hence phase 1 (every instance
    # learns NEW as a second key) before phase 2 (NEW first).
    assert not await works(server, bounced.secret)

    # Phase 3: OLD removed. What was used moved to NEW and works; the idle token cannot have moved.
    async for after in start_server(database, make_config(tmp_path / "c", secret_keys=parse_secret_keys(NEW))):
        assert await works(after, used.secret) and await works(after, fresh.secret) and await works(after, admin.token)
        assert not await works(after, idle.secret)
    assert counts(key_status(database, NEW)) == {NEW_ID: 4, "unknown_key": 1, "not_recorded": 0, "legacy": 0}


async def test_a_token_hashed_before_key_ids_were_recorded_gets_one_at_its_next_use(server, database):
    admin = await server.bootstrap()
    issued = tokens.issue_token("service")
    async with server.pool.acquire() as conn:
        # As a row written before migration 004: a hash under the current key, no key id.
        await token_store.insert_token(
            conn,
            token_id=issued.id,
            account_id=admin.account_id,
            kind="service",
            format_="v2",
            token_hash=tokens.hash_token(issued.text, server.config.secret_keys[0]),
            name="older row",
            created_by="test",
        )
    server.issued.append(issued.text)
    assert key_status(database, OLD)["not_recorded"] == 1
    assert await works(server, issued.text)
    assert (await stored(server, issued.id))[1] == OLD_ID
    assert counts(key_status(database, OLD)) == {OLD_ID: 2, "unknown_key": 0, "not_recorded": 0, "legacy": 0}
