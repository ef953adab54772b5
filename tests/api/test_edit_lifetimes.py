"""Edits keep the lifetime bound, through HTTP (issue 20, "a token never outlives its creator" bypassed by
editing): a service token that expires in an hour gave ACCOUNT_ADMIN to an existing unexpiring JOB_VIEWER token
through setServiceTokenGrants (or updateServiceToken), and that token then minted an unexpiring ACCOUNT_ADMIN
token. Now an edit that gives a token more power is refused unless that token expires no later than the caller."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api import service_token_calls as calls
from tests.api.test_set_service_token_grants import SET
from tests.conftest import Server, store_service_token
from tokengate.core.policy import Grant

JOB_VIEWER = [calls.grant("JOB_VIEWER")]
ACCOUNT_ADMIN = [calls.grant("ACCOUNT_ADMIN")]
LISTED = "{ account { serviceTokens { id grants { permissionSet allProjects } } } }"


async def grants_of(server: Server, caller: str, token_id: str) -> list[str]:
    tokens = (await server.gql(LISTED, token=caller)).data["account"]["serviceTokens"]
    return [g["permissionSet"] for t in tokens if t["id"] == token_id for g in t["grants"]]


async def set_grants(server: Server, caller: str, token_id: str, grants: list) -> list[str]:
    """The error codes of setServiceTokenGrants (empty: done)."""
    reply = await server.gql(SET, {"id": token_id, "grants": grants}, token=caller)
    assert reply.status == 200, reply.body
    return reply.codes


async def update_grants(server: Server, caller: str, token_id: str, grants: list) -> list[str]:
    reply = await server.gql(calls.UPDATE, {"id": token_id, "grants": grants}, token=caller)
    assert reply.status == 200, reply.body
    return reply.codes


async def test_an_expiring_token_cannot_give_power_to_a_token_that_outlives_it(server):
    admin = await server.bootstrap()
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    actor = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")], expires_at=in_an_hour)
    victim = await calls.created(server, admin.token, "unexpiring viewer", grants=JOB_VIEWER)
    assert victim.token["expiresAt"] is None
    # Precondition: the one-hour token may edit that token's grants at all (same grants, a rename).
    assert await set_grants(server, actor, victim.id, JOB_VIEWER) == []
    reply = await server.gql(calls.UPDATE, {"id": victim.id, "name": "renamed"}, token=actor)
    assert reply.errors == [], reply.body

    # The attack: ACCOUNT_ADMIN (or any power it lacks) to the unexpiring token, by either mutation.
    for edit in (set_grants, update_grants):
        for more in (ACCOUNT_ADMIN, [*JOB_VIEWER, calls.grant("JOB_ADMIN")]):
            assert await edit(server, actor, victim.id, more) == ["FORBIDDEN"]
    reply = await server.gql(SET, {"id": victim.id, "grants": ACCOUNT_ADMIN}, token=actor)
    message = reply.errors[0]["message"]
    assert "never expires" in message and "expire no later than itself" in message, message
    assert await grants_of(server, admin.token, victim.id) == ["JOB_VIEWER"]
    # So the unexpiring token cannot mint an unexpiring ACCOUNT_ADMIN token either.
    assert (await calls.create(server, victim.secret, "minted", grants=ACCOUNT_ADMIN)).codes == ["FORBIDDEN"]

    # Taking power away from the unexpiring token is fine.
    assert await set_grants(server, actor, victim.id, []) == []
    assert await grants_of(server, admin.token, victim.id) == []

    # Giving power to a token that expires no later than the caller is fine.
    sooner = await calls.created(
        server, admin.token, "sooner", grants=JOB_VIEWER, expiresAt=(in_an_hour - timedelta(minutes=5)).isoformat()
    )
    assert await set_grants(server, actor, sooner.id, ACCOUNT_ADMIN) == []
    assert await update_grants(server, actor, sooner.id, [calls.grant("JOB_ADMIN")]) == []
    later = await calls.created(
        server, admin.token, "later", grants=JOB_VIEWER, expiresAt=(in_an_hour + timedelta(days=1)).isoformat()
    )
    assert await set_grants(server, actor, later.id, ACCOUNT_ADMIN) == ["FORBIDDEN"]


async def test_an_unexpiring_token_and_a_person_are_not_bounded(server):
    admin = await server.bootstrap()
    forever = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")])
    victim = await calls.created(server, admin.token, "viewer", grants=JOB_VIEWER)
    assert await set_grants(server, forever, victim.id, ACCOUNT_ADMIN) == []
    assert await update_grants(server, forever, victim.id, [calls.grant("JOB_ADMIN")]) == []
    # A person's personal token (which always expires) edits the account's service tokens unbounded, as it creates
    # them: service tokens belong to the account, not to the person.
    assert await set_grants(server, admin.token, victim.id, ACCOUNT_ADMIN) == []


async def test_an_expiring_token_cannot_give_a_person_power_their_later_personal_tokens_would_carry(server):
    """Grants given to a person reach their personal tokens (90 days by default): an expiring caller gives them only
    while none of those tokens outlives it."""
    from tests.api.test_members import UPDATE_USER, grants_of, signed_in

    admin = await server.bootstrap()
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    actor = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")], expires_at=in_an_hour)
    person, personal = await signed_in(server, admin, "p@acme.test", "DEVELOPER", JOB_VIEWER)
    expiry = await server.pool.fetchval("SELECT expires_at FROM tokens WHERE user_id = $1", person)
    assert expiry > in_an_hour  # the person's token outlives the caller
    # Precondition: the one-hour token may change this person's grants at all (taking away is allowed).
    reply = await server.gql(UPDATE_USER, {"id": person, "grants": []}, token=actor)
    assert reply.errors == [], reply.body
    reply = await server.gql(UPDATE_USER, {"id": person, "grants": ACCOUNT_ADMIN}, token=actor)
    assert reply.codes == ["FORBIDDEN"], reply.body
    assert "personal token" in reply.errors[0]["message"], reply.body
    assert await grants_of(server, person) == []
    # Without a personal token that outlives the caller, giving is allowed.
    await server.pool.execute("UPDATE tokens SET state = 'deleted', deleted_at = now() WHERE user_id = $1", person)
    reply = await server.gql(UPDATE_USER, {"id": person, "grants": JOB_VIEWER}, token=actor)
    assert reply.errors == [], reply.body
    assert personal  # issued and shown to no one else
