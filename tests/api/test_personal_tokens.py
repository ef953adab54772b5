"""Personal tokens as a first-class thing, deactivation, token lifetimes bounded by their creator, and the
account token policy: through HTTP, with two instances on one database where "at once on every instance" is
claimed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api import service_token_calls as calls
from tests.api.service_token_calls import grant
from tests.api.test_cache_and_invalidation import eventually, learnt_by_notice
from tests.api.test_graphql import CREATE_USER
from tests.conftest import Server, make_config, start_server, store_service_token
from tokengate.core.policy import Grant

TOKEN_FIELDS = "id name displayPrefix state createdAt lastUsedAt expiresAt"
CREATE_USER_TOKEN = (
    "mutation($name: String!, $expiresAt: DateTime) { createUserToken(name: $name, expiresAt: $expiresAt) {"
    " secret id userToken { " + TOKEN_FIELDS + " } } }"
)
DELETE_USER_TOKEN = "mutation($id: ID!) { deleteUserToken(id: $id) { " + TOKEN_FIELDS + " } }"
MY_TOKENS = "{ viewer { userTokens { " + TOKEN_FIELDS + " } } }"
MEMBERS_TOKENS = "{ account { members { id state tokens { id state } } } }"
DEACTIVATE = "mutation($id: ID!) { deactivateUser(id: $id) { id state tokens { id state } } }"
POLICY = (
    "{ account { tokenPolicy { requireServiceTokenExpiry serviceTokenMaxLifetimeDays userTokenMaxLifetimeDays } } }"
)
SET_POLICY = """
mutation($input: TokenPolicyInput!) {
  setTokenPolicy(input: $input) { requireServiceTokenExpiry serviceTokenMaxLifetimeDays userTokenMaxLifetimeDays }
}
"""
ROTATE = (
    "mutation($id: ID!, $expiresAt: DateTime) { rotateServiceToken(id: $id, expiresAt: $expiresAt) { secret"
    " serviceToken { id expiresAt } } }"
)


@pytest.fixture
async def second(database, tmp_path):
    """Instance B on the same database, with its own caches and listener."""
    async for running in start_server(database, make_config(tmp_path / "b")):
        yield running


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


async def new_user_token(server: Server, caller: str, name: str = "laptop", expires_at: str | None = None):
    reply = await server.gql(CREATE_USER_TOKEN, {"name": name, "expiresAt": expires_at}, token=caller)
    if reply.data and reply.data.get("createUserToken"):
        server.issued.append(reply.data["createUserToken"]["secret"])
    return reply


async def member(server: Server, admin_token: str, email: str, grants: list, license_: str = "DEVELOPER"):
    reply = await server.gql(CREATE_USER, {"email": email, "license": license_, "grants": grants}, admin_token)
    assert reply.errors == [], reply.body
    user_id = reply.data["createUser"]["id"]
    return user_id, await server.issue_user_token(user_id)


async def token_count(server: Server) -> int:
    return await server.pool.fetchval("SELECT count(*) FROM tokens")


async def test_personal_tokens_are_listed_with_their_state_and_always_expire(server):
    admin = await server.bootstrap()
    reply = await server.gql(MY_TOKENS, token=admin.token)
    [bootstrap] = reply.data["viewer"]["userTokens"]
    signed_in_until = moment(bootstrap["expiresAt"])
    assert signed_in_until is not None  # even the first sign-in's token expires (the policy's 90 days)
    assert abs(signed_in_until - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=5)
    reply = await new_user_token(server, admin.token)
    answer = reply.data["createUserToken"]
    assert answer["id"] == answer["userToken"]["id"] and answer["secret"].startswith("tgu_")
    assert answer["userToken"]["state"] == "ACTIVE" and answer["userToken"]["displayPrefix"].startswith("tgu_")
    # Made with a personal token: never later than that token.
    assert moment(answer["userToken"]["expiresAt"]) <= signed_in_until
    listed = (await server.gql(MY_TOKENS, token=answer["secret"])).data["viewer"]["userTokens"]
    assert [t["id"] for t in listed] == [bootstrap["id"], answer["id"]]
    assert "secret" not in str(listed) and answer["secret"] not in str(listed)
    # A service token has none of its own; User.tokens needs MEMBERS:READ.
    service = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    assert (await server.gql(MY_TOKENS, token=service)).data == {"viewer": {"userTokens": []}}
    reply = await server.gql(MEMBERS_TOKENS, token=service)
    assert reply.codes == ["FORBIDDEN"]
    reply = await server.gql(MEMBERS_TOKENS, token=admin.token)
    assert [len(m["tokens"]) for m in reply.data["account"]["members"]] == [2]


async def test_a_personal_token_cannot_mint_longer_lived_ones(server):
    admin = await server.bootstrap()
    before = await token_count(server)
    for later, message in [
        (datetime.now(UTC) + timedelta(days=91), "at most 90 days"),
        (datetime.now(UTC) + timedelta(days=3650), "at most 90 days"),
    ]:
        reply = await new_user_token(server, admin.token, expires_at=later.isoformat())
        assert reply.codes == ["BAD_USER_INPUT"] and message in reply.errors[0]["message"], reply.body
    short = await new_user_token(server, admin.token, "short", (datetime.now(UTC) + timedelta(days=1)).isoformat())
    short_secret = short.data["createUserToken"]["secret"]
    # The one-day token cannot make a token that outlives it, by default or by asking.
    reply = await new_user_token(server, short_secret, expires_at=(datetime.now(UTC) + timedelta(days=2)).isoformat())
    assert reply.codes == ["BAD_USER_INPUT"] and "calling token's own expiry" in reply.errors[0]["message"]
    child = (await new_user_token(server, short_secret, "child")).data["createUserToken"]["userToken"]
    assert moment(child["expiresAt"]) == moment(short.data["createUserToken"]["userToken"]["expiresAt"])
    assert await token_count(server) == before + 2


async def test_deleting_a_personal_token_holds_at_once_on_every_instance(server, second):
    admin = await server.bootstrap()
    stolen = (await new_user_token(server, admin.token, "stolen")).data["createUserToken"]
    assert (await second.gql("{ viewer { kind } }", token=stolen["secret"])).status == 200  # warm in B's cache
    with learnt_by_notice(second):  # not by age: B's cache entries live longer than `eventually` waits
        reply = await server.gql(DELETE_USER_TOKEN, {"id": stolen["id"]}, admin.token)
        assert reply.errors == [] and reply.data["deleteUserToken"]["state"] == "DELETED"

        async def refused() -> bool:
            return (await second.gql("{ viewer { kind } }", token=stolen["secret"])).status == 401

        await eventually(refused)
    assert (await server.gql("{ viewer { kind } }", token=stolen["secret"])).status == 401
    assert (await server.gql("{ viewer { kind } }", token=admin.token)).status == 200  # only that one
    again = await server.gql(DELETE_USER_TOKEN, {"id": stolen["id"]}, admin.token)
    assert again.data["deleteUserToken"]["state"] == "DELETED"
    events = await server.pool.fetch(
        "SELECT actor FROM audit_events WHERE action = 'user_token.deleted' AND target_id = $1",
        stolen["id"].removeprefix("utk_"),  # the row key, as the audit table holds it
    )
    assert [e["actor"] for e in events] == [f"user:{admin.user_id}"]  # audited once


async def test_who_may_delete_whose_personal_token(server):
    admin = await server.bootstrap()
    member_id, member_token = await member(server, admin.token, "dev@acme.test", [grant("JOB_VIEWER")])
    other_id, other_token = await member(server, admin.token, "ops@acme.test", [grant("JOB_VIEWER")])
    other_token_id = other_token[4:20]
    # A member without MEMBERS:WRITE cannot delete another member's token; the token keeps working.
    reply = await server.gql(DELETE_USER_TOKEN, {"id": other_token_id}, member_token)
    assert reply.codes == ["FORBIDDEN"], reply.body
    assert (await server.gql("{ viewer { kind } }", token=other_token)).status == 200
    # A service token's id, or another account's personal token: not found.
    service = await calls.created(server, admin.token)
    other_account = await server.bootstrap("Other")
    for token_id in [service.id, other_account.token[4:20], "nope"]:
        reply = await server.gql(DELETE_USER_TOKEN, {"id": token_id}, admin.token)
        assert reply.codes == ["NOT_FOUND"], (token_id, reply.body)
    assert await calls.works(server, service.secret)
    assert (await server.gql("{ viewer { kind } }", token=other_account.token)).status == 200
    # Its own token: yes. Another's with MEMBERS:WRITE (the admin): yes.
    assert (await server.gql(DELETE_USER_TOKEN, {"id": member_token[4:20]}, member_token)).errors == []
    assert (await server.gql(DELETE_USER_TOKEN, {"id": other_token_id}, admin.token)).errors == []
    for secret in [member_token, other_token]:
        assert (await server.gql("{ viewer { kind } }", token=secret)).status == 401
    assert {member_id, other_id} == set(
        await server.pool.fetchval("SELECT array_agg(user_id) FROM tokens WHERE kind = 'user' AND state = 'deleted'")
    )


async def test_deactivating_a_user_stops_its_tokens_everywhere_but_not_its_service_tokens(server, second):
    admin = await server.bootstrap()
    user_id, personal = await member(server, admin.token, "leaver@acme.test", [grant("ACCOUNT_ADMIN")])
    made_by_user = await calls.created(server, personal, "made by the leaver")
    for instance in (server, second):  # both instances hold the user's token in their caches
        assert (await instance.gql("{ viewer { kind } }", token=personal)).status == 200
    with learnt_by_notice(second):
        reply = await server.gql(DEACTIVATE, {"id": user_id}, admin.token)
        assert reply.errors == [], reply.body
        assert reply.data["deactivateUser"]["state"] == "DEACTIVATED"
        assert {t["state"] for t in reply.data["deactivateUser"]["tokens"]} == {"DELETED"}

        async def refused_on_b() -> bool:
            return (await second.gql("{ viewer { kind } }", token=personal)).status == 401

        await eventually(refused_on_b)
    reply = await server.gql("{ viewer { kind } }", token=personal)
    assert reply.status == 401 and reply.codes == ["UNAUTHENTICATED"]
    async with server.session.get(server.url + "/auth/check", headers={"Authorization": f"Bearer {personal}"}) as r:
        assert r.status == 401
    # The account's service token, created by the user, keeps working on both instances.
    assert await calls.works(server, made_by_user.secret) and await calls.works(second, made_by_user.secret)
    # No new sign-in for a deactivated user; the credential query itself reads the user's state.
    with pytest.raises(Exception, match="deactivated"):
        await server.issue_user_token(user_id)
    await server.pool.execute("UPDATE tokens SET state = 'active', deleted_at = NULL WHERE user_id = $1", user_id)
    assert (await second.gql("{ viewer { kind } }", token=personal)).status == 401
    event = await server.pool.fetchrow("SELECT actor FROM audit_events WHERE action = 'user.deactivated'")
    assert event["actor"] == f"user:{admin.user_id}"
    # Deactivation is the admin's: nobody deactivates themselves (the last admin would be locked out).
    reply = await server.gql(DEACTIVATE, {"id": admin.user_id}, admin.token)
    assert reply.codes == ["FORBIDDEN"]
    assert (await server.gql("{ viewer { kind } }", token=admin.token)).status == 200


async def test_a_service_token_never_outlives_the_service_token_that_made_it(server):
    admin = await server.bootstrap()
    until = datetime.now(UTC) + timedelta(days=30)
    creator = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")], expires_at=until)
    assert await calls.works(server, creator)
    before = await token_count(server)
    # Asked for no expiry, or a later one: the first is bounded, the second refused.
    child = await calls.created(server, creator, "child")
    assert moment(child.token["expiresAt"]) == until
    reply = await calls.create(server, creator, "later", expiresAt=(until + timedelta(days=1)).isoformat())
    assert reply.codes == ["BAD_USER_INPUT"] and "calling token's own expiry" in reply.errors[0]["message"]
    assert await token_count(server) == before + 1
    # Rotating itself (or another token) never yields a token that lives longer than the rotating token.
    creator_id = creator[4:20]
    reply = await server.gql(ROTATE, {"id": creator_id}, token=creator)
    assert reply.errors == [], reply.body
    server.issued.append(reply.data["rotateServiceToken"]["secret"])
    assert moment(reply.data["rotateServiceToken"]["serviceToken"]["expiresAt"]) == until
    reply = await server.gql(ROTATE, {"id": child.id, "expiresAt": (until + timedelta(days=1)).isoformat()}, creator)
    assert reply.codes == ["BAD_USER_INPUT"]
    # A creator without expiry bounds nothing; nor does a user's personal token (service tokens are the account's).
    forever = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")])
    assert (await calls.created(server, forever, "free")).token["expiresAt"] is None
    assert (await calls.created(server, admin.token, "by a person")).token["expiresAt"] is None


async def test_the_account_token_policy_bounds_creation_and_rotation(server):
    admin = await server.bootstrap()
    old = await calls.created(server, admin.token, "before the policy")
    ends = datetime.now(UTC) + timedelta(days=10)
    expiring = await calls.created(server, admin.token, "expiring", expiresAt=ends.isoformat())
    assert (await server.gql(POLICY, token=admin.token)).data["account"]["tokenPolicy"] == {
        "requireServiceTokenExpiry": False,
        "serviceTokenMaxLifetimeDays": None,
        "userTokenMaxLifetimeDays": 90,
    }
    # Setting it needs ACCOUNT_SETTINGS:WRITE.
    weak = await calls.created(server, admin.token, "weak", grants=[grant("JOB_ADMIN")])
    policy = {"requireServiceTokenExpiry": True, "serviceTokenMaxLifetimeDays": 30, "userTokenMaxLifetimeDays": 7}
    reply = await server.gql(SET_POLICY, {"input": policy}, weak.secret)
    assert reply.codes == ["FORBIDDEN"]
    reply = await server.gql(SET_POLICY, {"input": policy}, admin.token)
    assert reply.data == {"setTokenPolicy": policy}, reply.body
    for bad in [{**policy, "serviceTokenMaxLifetimeDays": 0}, {**policy, "userTokenMaxLifetimeDays": 100000}]:
        assert (await server.gql(SET_POLICY, {"input": bad}, admin.token)).codes == ["BAD_USER_INPUT"]
    # Create: an expiry is required, and at most 30 days.
    reply = await calls.create(server, admin.token, "no expiry")
    assert reply.codes == ["BAD_USER_INPUT"] and "requires an expiry" in reply.errors[0]["message"]
    far = (datetime.now(UTC) + timedelta(days=31)).isoformat()
    assert (await calls.create(server, admin.token, "too long", expiresAt=far)).codes == ["BAD_USER_INPUT"]
    soon = datetime.now(UTC) + timedelta(days=3)
    assert (
        moment((await calls.created(server, admin.token, "ok", expiresAt=soon.isoformat())).token["expiresAt"]) == soon
    )
    # Rotate: without an expiry the new token keeps the old one's remaining lifetime (within the maximum)...
    reply = await server.gql(ROTATE, {"id": expiring.id}, admin.token)
    server.issued.append(reply.data["rotateServiceToken"]["secret"])
    assert moment(reply.data["rotateServiceToken"]["serviceToken"]["expiresAt"]) == ends
    # ...and one that never expired has no lifetime to keep: the rotation must name one, within the maximum.
    reply = await server.gql(ROTATE, {"id": old.id}, admin.token)
    assert reply.codes == ["BAD_USER_INPUT"] and "requires an expiry" in reply.errors[0]["message"]
    assert (await server.gql(ROTATE, {"id": old.id, "expiresAt": far}, admin.token)).codes == ["BAD_USER_INPUT"]
    reply = await server.gql(ROTATE, {"id": old.id, "expiresAt": soon.isoformat()}, admin.token)
    server.issued.append(reply.data["rotateServiceToken"]["secret"])
    assert moment(reply.data["rotateServiceToken"]["serviceToken"]["expiresAt"]) == soon
    # Existing tokens are not changed; personal tokens follow their own maximum.
    assert (await calls.listed(server, admin.token))[old.id]["expiresAt"] is None
    reply = await new_user_token(server, admin.token)
    made = moment(reply.data["createUserToken"]["userToken"]["expiresAt"])
    assert abs(made - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    event = await server.pool.fetchrow("SELECT actor, details FROM audit_events WHERE action = 'token_policy.updated'")
    assert event["actor"] == f"user:{admin.user_id}" and '"user_token_max_lifetime_days": 7' in event["details"]


async def test_out_of_range_times_and_huge_ints_are_bad_user_input_in_our_words(server):
    admin = await server.bootstrap()
    before = await token_count(server)
    for value in ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"]:
        reply = await calls.create(server, admin.token, "x", expiresAt=value)
        assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"], reply.body
        assert "out of range" in reply.errors[0]["message"]
        reply = await new_user_token(server, admin.token, expires_at=value)
        assert reply.codes == ["BAD_USER_INPUT"] and "out of range" in reply.errors[0]["message"]
    huge = "9" * 5000
    for query in [
        "{ account { auditLog(first: " + huge + ") { edges { cursor } } } }",
        'mutation { rotateServiceToken(id: "x", revokeOldInSeconds: -' + huge + ") { secret } }",
    ]:
        reply = await server.gql(query, token=admin.token)
        assert reply.codes == ["BAD_USER_INPUT"], reply.body
        message = reply.errors[0]["message"]
        assert message == "an Int literal has more than 20 digits: Int is a 32-bit integer"
        assert "sys.set_int_max_str_digits" not in str(reply.body) and huge[:100] not in str(reply.body)
    assert await token_count(server) == before
