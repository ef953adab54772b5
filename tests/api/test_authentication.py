"""Every way a request can fail to authenticate, through HTTP on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import last_character_changed, make_config, start_server, store_service_token
from tokengate.core import tokens
from tokengate.core.policy import Grant

VIEWER = "{ viewer { kind account { plan } } }"


def assert_unauthenticated(reply, secret: str | None = None):
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert reply.codes == ["UNAUTHENTICATED"]
    assert "data" not in reply.body
    if secret:
        assert secret not in str(reply.body)


async def test_bootstrap_token_answers_viewer(server):
    seeded = await server.bootstrap(plan="TEAM")
    reply = await server.gql(VIEWER, token=seeded.token)
    assert reply.status == 200
    assert reply.data == {"viewer": {"kind": "USER", "account": {"plan": "TEAM"}}}


async def test_token_scheme_is_accepted_as_well_as_bearer(server):
    seeded = await server.bootstrap()
    reply = await server.gql(VIEWER, headers={"Authorization": f"Token {seeded.token}"})
    assert reply.status == 200 and reply.data["viewer"]["kind"] == "USER"


async def test_no_credentials(server):
    assert_unauthenticated(await server.gql(VIEWER))


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "tgs_abc", "Bearer a b", "Bearer " + "x" * 600],
    ids=["empty", "scheme only", "scheme and space", "basic", "no scheme", "two words", "oversized"],
)
async def test_malformed_authorization_header(server, header):
    assert_unauthenticated(await server.gql(VIEWER, headers={"Authorization": header}))


async def test_malformed_tokens(server):
    seeded = await server.bootstrap()
    for text in [
        last_character_changed(seeded.token),  # bad checksum
        "tgx_" + seeded.token[4:],
        seeded.token[:-2],
        "é" * 58,
    ]:
        assert_unauthenticated(await server.gql(VIEWER, token=text), secret=text)


async def test_unknown_token_with_valid_checksum(server):
    await server.bootstrap()
    assert_unauthenticated(await server.gql(VIEWER, token=tokens.issue_token("user").text))


async def test_known_id_with_wrong_secret(server):
    seeded = await server.bootstrap()
    token_id = seeded.token[4:20]
    body = "tgu_" + token_id + tokens.random_base62(32)
    forged = body + tokens.checksum(body)
    assert_unauthenticated(await server.gql(VIEWER, token=forged))


async def test_user_token_id_presented_with_service_prefix(server):
    seeded = await server.bootstrap()
    body = "tgs_" + seeded.token[4:-6]
    assert_unauthenticated(await server.gql(VIEWER, token=body + tokens.checksum(body)))


async def test_expired_token(server):
    seeded = await server.bootstrap()
    past = datetime.now(UTC) - timedelta(seconds=1)
    token = await store_service_token(server, seeded.account_id, [Grant("ACCOUNT_ADMIN")], expires_at=past)
    assert_unauthenticated(await server.gql(VIEWER, token=token))


async def test_deleted_token(server):
    seeded = await server.bootstrap()
    token = await store_service_token(server, seeded.account_id, [Grant("ACCOUNT_ADMIN")])
    assert (await server.gql(VIEWER, token=token)).status == 200
    deleted = await server.gql(
        "mutation($id: ID!) { deleteServiceToken(id: $id) { state } }", {"id": token[4:20]}, token=seeded.token
    )
    assert deleted.data == {"deleteServiceToken": {"state": "DELETED"}}, deleted.body
    assert_unauthenticated(await server.gql(VIEWER, token=token))


async def test_token_hashed_with_another_server_key_is_refused(server, database, tmp_path):
    seeded = await server.bootstrap()
    other = make_config(tmp_path, secret_keys=(tokens.derive_key("another-key-" * 4),))
    async for second in start_server(database, other):
        assert_unauthenticated(await second.gql(VIEWER, token=seeded.token))


async def test_introspection_without_credentials_is_public(server):
    reply = await server.gql("{ __schema { queryType { name } } }")
    assert reply.status == 200
    assert reply.data == {"__schema": {"queryType": {"name": "Query"}}}
    reply = await server.gql("query Q { ...F } fragment F on Query { __typename }")
    assert reply.status == 200 and reply.data == {"__typename": "Query"}


async def test_introspection_mixed_with_data_needs_credentials(server):
    assert_unauthenticated(await server.gql("{ __schema { queryType { name } } viewer { kind } }"))
    assert_unauthenticated(await server.gql("query Q { ...F } fragment F on Query { viewer { kind } }"))


async def test_public_introspection_can_be_switched_off(database, tmp_path):
    async for server in start_server(database, make_config(tmp_path, public_introspection=False)):
        assert_unauthenticated(await server.gql("{ __schema { queryType { name } } }"))


async def test_introspection_with_a_bad_token_is_refused(server):
    assert_unauthenticated(await server.gql("{ __typename }", token="tgs_nope"))
