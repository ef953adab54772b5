"""Service token lifecycle through HTTP with real tokens: rules and their codes, rotation, deletion, expiry,
last use, leaks, personal tokens, audit, concurrency."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.service_token_calls import (
    DELETE,
    REPORT,
    UPDATE,
    create,
    created,
    grant,
    listed,
    rotate,
    rotated,
    works,
)
from tests.api.test_graphql import CREATE_USER, create_project
from tests.conftest import make_config, start_server, store_service_token
from tests.store.test_migrations import reference
from tokengate.core import tokens
from tokengate.core.policy import Grant
from tokengate.store import users as user_store

PLANS = ["DEVELOPER", "STARTER", "TEAM", "ENTERPRISE", "ENTERPRISE_PLUS"]
ALL_SETS = sorted({row["permission_set"] for row in reference("permission-matrix.csv")})


def plan_sets(plan: str) -> list[str]:
    """What the reference data says service tokens may carry on ``plan``."""
    return sorted(row["permission_set"] for row in reference("plans.csv") if row["plan"] == plan)


async def user_token(server, account_id: str, license_: str, grants: list[Grant]) -> str:
    """A user with this license and grants, and a personal token for it (as a sign-in gives)."""
    async with server.pool.acquire() as conn, conn.transaction():
        user = await user_store.create_user(
            conn, tokens.new_id("usr"), account_id, f"{license_.lower()}-{tokens.random_base62(6)}@acme.io", license_
        )
        from tokengate.store import grants as grant_store

        await grant_store.add_user_grants(conn, account_id, user.id, grants)
    return await server.issue_user_token(user.id)


async def service_token_count(server) -> int:
    return await server.pool.fetchval("SELECT count(*) FROM tokens WHERE kind = 'service'")


# --- the rules, one test each, with the code they answer ----------------------------------------------------


@pytest.mark.parametrize("plan", PLANS)
async def test_each_plan_allows_exactly_its_permission_sets(server, plan):
    admin = await server.bootstrap(plan=plan)
    allowed = plan_sets(plan)
    assert allowed, plan
    token = await created(server, admin.token, grants=[grant(key) for key in allowed])
    assert sorted(g["permissionSet"] for g in token.token["grants"]) == allowed
    assert await works(server, token.secret)
    refused = [key for key in ALL_SETS if key not in allowed]
    assert len(refused) == len(ALL_SETS) - len(allowed)
    for key in refused:
        reply = await create(server, admin.token, grants=[grant(allowed[0]), grant(key)])
        assert reply.codes == ["PLAN_RESTRICTED"], (key, reply.body)
        assert reply.data == {"createServiceToken": None}
        message = reply.errors[0]["message"]
        assert f"the {plan} plan does not allow {key}" in message
        assert message.endswith("it allows: " + ", ".join(allowed))
    assert await service_token_count(server) == 1


async def test_account_level_set_with_projects_is_bad_user_input(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    reply = await create(server, admin.token, grants=[grant("ACCOUNT_VIEWER", project)])
    assert reply.codes == ["BAD_USER_INPUT"]
    assert "ACCOUNT_VIEWER is an account-level permission set" in reply.errors[0]["message"]
    reply = await create(
        server,
        admin.token,
        grants=[{"permissionSet": "JOB_ADMIN", "allProjects": True, "projectIds": [project]}],
    )
    assert reply.codes == ["BAD_USER_INPUT"]
    assert await service_token_count(server) == 0


async def test_empty_project_list_is_bad_user_input(server):
    admin = await server.bootstrap()
    reply = await create(server, admin.token, grants=[{"permissionSet": "JOB_ADMIN", "allProjects": False}])
    assert reply.codes == ["BAD_USER_INPUT"]
    assert "projectIds must not be empty" in reply.errors[0]["message"]
    assert await service_token_count(server) == 0


async def test_another_accounts_project_is_bad_user_input_like_an_unknown_one(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    foreign = await create_project(server, one.token)
    replies = [
        await create(server, two.token, grants=[grant("JOB_ADMIN", foreign)]),
        await create(server, two.token, grants=[grant("JOB_ADMIN", "prj_missing")]),
    ]
    assert [r.codes for r in replies] == [["BAD_USER_INPUT"], ["BAD_USER_INPUT"]]
    assert replies[0].errors[0]["message"] == f"JOB_ADMIN: unknown project {foreign}"
    assert await service_token_count(server) == 0


@pytest.mark.parametrize(("length", "accepted"), [(0, False), (1, True), (255, True), (256, False)])
async def test_name_bounds(server, length, accepted):
    admin = await server.bootstrap()
    reply = await create(server, admin.token, name="n" * length)
    if accepted:
        assert reply.errors == [] and reply.data["createServiceToken"]["serviceToken"]["name"] == "n" * length
    else:
        assert reply.codes == ["BAD_USER_INPUT"] and "1 to 255 characters" in reply.errors[0]["message"]
        assert await service_token_count(server) == 0


async def test_rename_respects_the_same_bounds(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    for name in ["", "x" * 256]:
        reply = await server.gql(UPDATE, {"id": token.id, "name": name}, token=admin.token)
        assert reply.codes == ["BAD_USER_INPUT"]
    assert (await listed(server, admin.token))[token.id]["name"] == "ci"


async def test_caller_without_service_tokens_write_is_forbidden(server):
    admin = await server.bootstrap()
    job_admin = await store_service_token(server, admin.account_id, [Grant("JOB_ADMIN")])
    target = await created(server, admin.token)
    reply = await create(server, job_admin)
    assert reply.codes == ["FORBIDDEN"] and reply.errors[0]["message"] == "requires SERVICE_TOKENS:WRITE"
    assert reply.data == {"createServiceToken": None}
    for query, variables in [(DELETE, {"id": target.id}), (UPDATE, {"id": target.id, "name": "x"})]:
        assert (await server.gql(query, variables, token=job_admin)).codes == ["FORBIDDEN"]
    assert (await rotate(server, job_admin, target.id)).codes == ["FORBIDDEN"]
    listing = await server.gql("{ account { name serviceTokens { id } } }", token=job_admin)
    assert listing.data == {"account": {"name": "Acme", "serviceTokens": None}}
    assert listing.errors[0]["message"] == "requires SERVICE_TOKENS:READ"
    assert await service_token_count(server) == 2


async def test_read_only_license_cannot_manage_tokens_even_as_account_admin(server):
    admin = await server.bootstrap()
    read_only = await user_token(server, admin.account_id, "READ_ONLY", [Grant("ACCOUNT_ADMIN")])
    reply = await create(server, read_only)
    assert reply.codes == ["FORBIDDEN"] and reply.errors[0]["message"] == "requires SERVICE_TOKENS:WRITE"
    assert await service_token_count(server) == 0


async def test_it_license_passes_service_tokens_write_but_the_developer_license_rule_refuses(server):
    admin = await server.bootstrap()
    target = await created(server, admin.token)
    it_user = await user_token(server, admin.account_id, "IT", [Grant("ACCOUNT_ADMIN")])
    check = await server.gql("{ check(resource: SERVICE_TOKENS, access: WRITE) { allowed } }", token=it_user)
    assert check.data == {"check": {"allowed": True}}  # @requires alone would let it through
    reply = await create(server, it_user)
    assert reply.codes == ["FORBIDDEN"]
    assert reply.errors[0]["message"] == "managing service tokens requires a DEVELOPER license (yours is IT)"
    for query, variables in [(DELETE, {"id": target.id}), (UPDATE, {"id": target.id, "name": "x"})]:
        assert (await server.gql(query, variables, token=it_user)).codes == ["FORBIDDEN"]
    assert (await rotate(server, it_user, target.id)).codes == ["FORBIDDEN"]
    assert set(await listed(server, it_user)) == {target.id}  # reading needs no Developer license
    assert await service_token_count(server) == 1
    assert await works(server, target.secret)


async def test_a_service_token_with_account_admin_manages_tokens_without_a_license(server):
    admin = await server.bootstrap()
    terraform = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")])
    token = await created(server, terraform, name="from terraform")
    assert await works(server, token.secret)
    actor = await server.pool.fetchval("SELECT actor FROM audit_events WHERE action = 'service_token.created'")
    assert actor == f"service_token:{terraform[4:20]} ({terraform[:8]}…)"


async def test_expiry_in_the_past_is_bad_user_input(server):
    admin = await server.bootstrap()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    reply = await create(server, admin.token, expiresAt=past)
    assert reply.codes == ["BAD_USER_INPUT"] and "expiresAt must be in the future" in reply.errors[0]["message"]
    future = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    token = await created(server, admin.token, expiresAt=future.isoformat())
    assert datetime.fromisoformat(token.token["expiresAt"]) == future


@pytest.mark.parametrize("seconds", [-1, 30 * 24 * 3600 + 1])
async def test_revoke_window_out_of_range_is_bad_user_input(server, seconds):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    reply = await rotate(server, admin.token, token.id, seconds)
    assert reply.codes == ["BAD_USER_INPUT"] and "revokeOldInSeconds must be 0 to 2592000" in reply.errors[0]["message"]
    assert await service_token_count(server) == 1


async def test_ids_of_another_account_answer_not_found_like_unknown_ids(server):
    one = await server.bootstrap("One")
    two = await server.bootstrap("Two")
    foreign = await created(server, one.token)
    own_user_token = two.token[4:20]  # a personal token is not a service token
    for token_id in [foreign.id, "doesNotExist0000", own_user_token]:
        replies = [
            await rotate(server, two.token, token_id),
            await server.gql(UPDATE, {"id": token_id, "name": "mine"}, token=two.token),
            await server.gql(DELETE, {"id": token_id}, token=two.token),
        ]
        for reply in replies:
            assert reply.codes == ["NOT_FOUND"], reply.body
            assert reply.errors[0]["message"] == "service token not found"
    assert await works(server, foreign.secret)
    assert (await listed(server, one.token))[foreign.id]["name"] == "ci"
    assert await works(server, two.token)


# --- the secret, shown once ------------------------------------------------------------------------------


async def test_created_token_shows_its_secret_once_and_works(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    token = await created(server, admin.token, "deploy", [grant("JOB_ADMIN", project), grant("ACCOUNT_VIEWER")])
    assert tokens.parse_token(token.secret).kind == "service" and token.secret[4:20] == token.key
    assert token.token["displayPrefix"] == token.secret[:8] + "…"
    assert token.token["format"] == "V2" and token.token["state"] == "ACTIVE"
    assert token.token["rotationRecommended"] is False and token.token["lastUsedAt"] is None
    assert token.token["grants"] == [
        {"permissionSet": "JOB_ADMIN", "allProjects": False, "projects": [{"id": project}]},
        {"permissionSet": "ACCOUNT_VIEWER", "allProjects": True, "projects": []},
    ]
    reply = await server.gql(
        "query($p: ID) { viewer { kind serviceToken { id name } } check(resource: JOBS, access: WRITE, projectId: $p) "
        "{ allowed } }",
        {"p": project},
        token=token.secret,
    )
    assert reply.data["viewer"] == {"kind": "SERVICE_TOKEN", "serviceToken": {"id": token.id, "name": "deploy"}}
    assert reply.data["check"] == {"allowed": True}
    listing = await server.gql("{ account { serviceTokens { id name displayPrefix } } }", token=admin.token)
    assert token.secret not in str(listing.body) and token.secret[20:52] not in str(listing.body)


# --- rotation --------------------------------------------------------------------------------------------


async def test_documented_rotation_flow_end_to_end(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    old = await created(server, admin.token, "airflow", [grant("JOB_RUNNER", project), grant("ACCOUNT_VIEWER")])
    assert await works(server, old.secret)

    new = await rotated(server, admin.token, old.id)
    assert new.id != old.id and new.secret != old.secret and new.secret.startswith("tgs_")
    assert new.token["name"] == "airflow" and new.token["grants"] == old.token["grants"]
    assert new.token["format"] == "V2" and new.token["expiresAt"] is None
    assert await works(server, old.secret) and await works(server, new.secret)  # swap at leisure
    assert (await listed(server, admin.token))[old.id]["expiresAt"] is None

    deleted = await server.gql(DELETE, {"id": old.id}, token=admin.token)
    assert deleted.data["deleteServiceToken"]["state"] == "DELETED"
    assert not await works(server, old.secret)  # at once
    assert await works(server, new.secret)
    rotation = await server.pool.fetchrow(
        "SELECT target_id, details->>'new_token_id' AS new_id FROM audit_events WHERE action = 'service_token.rotated'"
    )
    assert (rotation["target_id"], rotation["new_id"]) == (old.key, new.key)  # the audit table holds row keys


async def test_rotation_with_a_revoke_window_stops_the_old_token_after_it(server):
    admin = await server.bootstrap()
    old = await created(server, admin.token)
    before = datetime.now(UTC)
    # A window of a few seconds: both tokens must be seen working inside it, however busy the machine.
    new = await rotated(server, admin.token, old.id, revoke=3)
    tokens_now = await listed(server, admin.token)
    expires = datetime.fromisoformat(tokens_now[old.id]["expiresAt"])
    assert before < expires <= datetime.now(UTC) + timedelta(seconds=3)
    assert await works(server, old.secret) and await works(server, new.secret)
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    assert not await works(server, old.secret)
    assert await works(server, new.secret)
    states = {t["id"]: t["state"] for t in (await listed(server, admin.token)).values()}
    assert states == {old.id: "EXPIRED", new.id: "ACTIVE"}


async def test_a_revoke_window_never_extends_an_earlier_expiry(server):
    admin = await server.bootstrap()
    soon = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    old = await created(server, admin.token, expiresAt=soon.isoformat())
    await rotated(server, admin.token, old.id, revoke=7 * 24 * 3600)
    assert datetime.fromisoformat((await listed(server, admin.token))[old.id]["expiresAt"]) == soon


async def test_revoke_window_of_zero_stops_the_old_token_at_once(server):
    admin = await server.bootstrap()
    old = await created(server, admin.token)
    new = await rotated(server, admin.token, old.id, revoke=0)
    assert not await works(server, old.secret) and await works(server, new.secret)


# --- update and delete -----------------------------------------------------------------------------------


async def test_update_changes_name_and_grants_from_the_next_request(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    token = await created(server, admin.token, "ci", [grant("JOB_ADMIN", project)])
    ask = "query($p: ID) { check(resource: JOBS, access: WRITE, projectId: $p) { allowed } }"
    assert (await server.gql(ask, {"p": project}, token=token.secret)).data["check"]["allowed"] is True
    reply = await server.gql(
        UPDATE, {"id": token.id, "name": "ci (read only)", "grants": [grant("JOB_VIEWER", project)]}, token=admin.token
    )
    assert reply.errors == []
    updated = reply.data["updateServiceToken"]
    assert updated["name"] == "ci (read only)"
    assert updated["grants"] == [{"permissionSet": "JOB_VIEWER", "allProjects": False, "projects": [{"id": project}]}]
    assert (await server.gql(ask, {"p": project}, token=token.secret)).data["check"]["allowed"] is False
    renamed_only = await server.gql(UPDATE, {"id": token.id, "name": "ci"}, token=admin.token)
    assert renamed_only.data["updateServiceToken"]["grants"] == updated["grants"]
    restricted = await server.gql(UPDATE, {"id": token.id, "grants": [grant("ACCOUNT_ADMIN")]}, token=admin.token)
    assert restricted.codes == []  # ENTERPRISE allows it
    starter = await server.bootstrap("Small", plan="STARTER")
    small = await created(server, starter.token, grants=[grant("SEMANTIC_LAYER_ONLY")])
    refused = await server.gql(UPDATE, {"id": small.id, "grants": [grant("JOB_ADMIN")]}, token=starter.token)
    assert refused.codes == ["PLAN_RESTRICTED"] and "the STARTER plan" in refused.errors[0]["message"]
    events = await server.pool.fetch(
        "SELECT details FROM audit_events WHERE action = 'service_token.updated' AND target_id = $1 ORDER BY id",
        token.key,
    )
    assert len(events) == 3


async def test_delete_is_immediate_keeps_the_record_and_is_idempotent(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    assert await works(server, token.secret)
    first = await server.gql(DELETE, {"id": token.id}, token=admin.token)
    assert first.data["deleteServiceToken"]["state"] == "DELETED"
    assert not await works(server, token.secret)
    again = await server.gql(DELETE, {"id": token.id}, token=admin.token)
    assert again.errors == [] and again.data == first.data
    assert token.id not in await listed(server, admin.token)
    assert (await listed(server, admin.token, include_deleted=True))[token.id]["state"] == "DELETED"
    assert (await rotate(server, admin.token, token.id)).codes == ["BAD_USER_INPUT"]
    renamed = await server.gql(UPDATE, {"id": token.id, "name": "back"}, token=admin.token)
    assert renamed.codes == ["BAD_USER_INPUT"]
    deletions = await server.pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'service_token.deleted' AND target_id = $1", token.key
    )
    assert deletions == 1


async def test_deletion_holds_on_every_running_instance(server, database, tmp_path):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    async for other in start_server(database, make_config(tmp_path)):
        assert await works(other, token.secret)
        cache = other.runtime.authenticator.cache
        invalidations = cache.stats.invalidations
        await server.gql(DELETE, {"id": token.id}, token=admin.token)
        # The other instance hears of it through NOTIFY, which can arrive just after the next request: allow
        # it the notice's delivery (generously), never the cache's TTL, and see that the notice did it.
        assert cache.ttl > 10  # the entry cannot age out within the deadline
        deadline = time.monotonic() + 10.0
        while await works(other, token.secret):
            assert time.monotonic() < deadline, "the other instance still accepts the deleted token"
            await asyncio.sleep(0.01)
        assert cache.stats.invalidations > invalidations


# --- expiry ----------------------------------------------------------------------------------------------


async def test_expired_token_is_refused_listed_expired_and_audited_once(server, database, tmp_path):
    admin = await server.bootstrap()
    old = await created(server, admin.token)
    await rotated(server, admin.token, old.id, revoke=0)  # expires now
    async for other in start_server(database, make_config(tmp_path)):
        # Many refused uses at once, through two server instances sharing the database.
        uses = [works(instance, old.secret) for _ in range(10) for instance in (server, other)]
        assert not any(await asyncio.gather(*uses))
    assert not await works(server, old.secret)
    events = await server.pool.fetch(
        "SELECT actor, source, client_addr FROM audit_events WHERE action = 'service_token.expired_on_use'"
        " AND target_id = $1",
        old.key,
    )
    assert [tuple(e) for e in events] == [(f"service_token:{old.key} ({old.secret[:8]}…)", "graphql", "127.0.0.1")]
    assert (await listed(server, admin.token))[old.id]["state"] == "EXPIRED"
    reply = await server.gql("{ viewer { kind } }", token=old.secret)
    assert reply.status == 401 and reply.codes == ["UNAUTHENTICATED"] and reply.headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_used_before_it_expires_is_not_audited_as_expired(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    for _ in range(3):
        assert await works(server, token.secret)
    count = await server.pool.fetchval(
        "SELECT count(*) FROM audit_events WHERE action = 'service_token.expired_on_use'"
    )
    assert count == 0


# --- last use --------------------------------------------------------------------------------------------


async def test_last_used_at_is_batched_in_memory_and_never_moves_backwards(server, database, tmp_path):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    recorder = server.runtime.authenticator.last_used
    await recorder.stop()  # no periodic flush during the test: it flushes by hand
    before = datetime.now(UTC)
    assert await works(server, token.secret)
    stored = "SELECT last_used_at FROM tokens WHERE id = $1"
    assert await server.pool.fetchval(stored, token.key) is None  # no write per request
    assert await recorder.flush() == 1
    first = await server.pool.fetchval(stored, token.key)
    assert first is not None and before <= first <= datetime.now(UTC)
    assert datetime.fromisoformat((await listed(server, admin.token))[token.id]["lastUsedAt"]) == first

    # Another instance that saw an older use flushes later: the time stays.
    async for other in start_server(database, make_config(tmp_path)):
        other_recorder = other.runtime.authenticator.last_used
        other_recorder.note(token.key, (first - timedelta(minutes=5)).timestamp())
        assert await other_recorder.flush() == 1
        assert await server.pool.fetchval(stored, token.key) == first
        assert await works(other, token.secret)
    # The other instance flushed its newer use when it shut down.
    latest = await server.pool.fetchval(stored, token.key)
    assert latest > first


async def test_last_use_of_many_requests_is_one_statement(server):
    admin = await server.bootstrap()
    created_tokens = [await created(server, admin.token, f"t{i}") for i in range(5)]
    recorder = server.runtime.authenticator.last_used
    await recorder.stop()  # no periodic flush during the test: it flushes by hand
    for token in created_tokens:
        for _ in range(3):
            assert await works(server, token.secret)
    assert len(recorder.pending) == 5  # fifteen uses, five pending entries
    assert await recorder.flush() == 5
    unused = await server.pool.fetchval(
        "SELECT count(*) FROM tokens WHERE kind = 'service' AND last_used_at IS NULL AND account_id = $1",
        admin.account_id,
    )
    assert unused == 0


# --- concurrency: tests/api/test_concurrency.py -------------------------------------------------------


# --- leaks -----------------------------------------------------------------------------------------------


async def test_report_leaked_token_needs_no_credentials_and_revokes(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    reply = await server.gql(REPORT, {"token": token.secret})
    assert reply.status == 200 and reply.body == {"data": {"reportLeakedToken": True}}
    assert admin.account_id not in str(reply.body)
    assert not await works(server, token.secret)
    assert (await listed(server, admin.token, include_deleted=True))[token.id]["state"] == "DELETED"
    event = await server.pool.fetchrow(
        "SELECT account_id, actor, source, client_addr FROM audit_events WHERE action = 'service_token.leak_reported'"
    )
    assert tuple(event) == (admin.account_id, "anonymous", "graphql", "127.0.0.1")
    # Once revoked it is no longer valid: a second report answers false and audits nothing.
    assert (await server.gql(REPORT, {"token": token.secret})).data == {"reportLeakedToken": False}
    reports = await server.pool.fetchval("SELECT count(*) FROM audit_events WHERE action LIKE '%leak_reported'")
    assert reports == 1


@pytest.mark.parametrize(
    "text",
    ["", "not a token", tokens.issue_token("service").text, "0" * 40, "tgs_" + "A" * 54],
    ids=["empty", "garbage", "unknown v2", "unknown legacy", "bad checksum"],
)
async def test_report_of_anything_but_a_valid_token_answers_false(server, text):
    await server.bootstrap()
    reply = await server.gql(REPORT, {"token": text})
    assert reply.status == 200 and reply.body == {"data": {"reportLeakedToken": False}}


async def test_report_of_an_expired_token_answers_false(server):
    admin = await server.bootstrap()
    old = await created(server, admin.token)
    await rotated(server, admin.token, old.id, revoke=0)
    assert (await server.gql(REPORT, {"token": old.secret})).data == {"reportLeakedToken": False}


async def test_a_user_token_can_be_reported_too(server):
    admin = await server.bootstrap()
    assert (await server.gql(REPORT, {"token": admin.token})).data == {"reportLeakedToken": True}
    assert not await works(server, admin.token)


async def test_other_fields_beside_a_leak_report_still_need_credentials(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    for query in [
        'mutation($token: String!) { reportLeakedToken(token: $token) createProject(name: "x") { id } }',
        "mutation($token: String!) { reportLeakedToken(token: $token) __typename }",
        "mutation($token: String!) { ...F } fragment F on Mutation { reportLeakedToken(token: $token) "
        'createUserToken(name: "x") { id } }',
    ]:
        reply = await server.gql(query, {"token": token.secret})
        assert reply.status == 401 and reply.codes == ["UNAUTHENTICATED"], reply.body
    assert await works(server, token.secret)  # nothing ran
    reply = await server.gql(REPORT, {"token": token.secret}, token="tgs_bogus")
    assert reply.status == 401  # a bad credential is refused, as everywhere
    assert await works(server, token.secret)


# --- personal tokens -------------------------------------------------------------------------------------

CREATE_USER_TOKEN = "mutation($name: String!) { createUserToken(name: $name) { id secret } }"


async def test_a_user_creates_a_personal_token_for_itself(server):
    admin = await server.bootstrap()
    reply = await server.gql(CREATE_USER_TOKEN, {"name": "laptop"}, token=admin.token)
    assert reply.errors == []
    answer = reply.data["createUserToken"]
    server.issued.append(answer["secret"])
    assert answer["secret"].startswith("tgu_") and answer["id"] == "utk_" + answer["secret"][4:20]
    me = await server.gql("{ viewer { kind user { id } } }", token=answer["secret"])
    assert me.data == {"viewer": {"kind": "USER", "user": {"id": admin.user_id}}}
    event = await server.pool.fetchrow(
        "SELECT actor, source, client_addr FROM audit_events WHERE action = 'user_token.created' AND target_id = $1",
        answer["secret"][4:20],
    )
    assert tuple(event) == (f"user:{admin.user_id}", "graphql", "127.0.0.1")
    for name in ["", "y" * 256]:
        assert (await server.gql(CREATE_USER_TOKEN, {"name": name}, token=admin.token)).codes == ["BAD_USER_INPUT"]


async def test_a_service_token_cannot_create_a_personal_token(server):
    admin = await server.bootstrap()
    service = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")])
    reply = await server.gql(CREATE_USER_TOKEN, {"name": "x"}, token=service)
    assert reply.codes == ["FORBIDDEN"] and reply.data is None
    assert await server.pool.fetchval("SELECT count(*) FROM tokens WHERE kind = 'user'") == 1


async def test_users_created_through_the_api_get_tokens_only_by_themselves(server):
    admin = await server.bootstrap()
    reply = await server.gql(
        CREATE_USER, {"email": "dev@acme.io", "license": "DEVELOPER", "grants": [grant("ACCOUNT_ADMIN")]}, admin.token
    )
    assert reply.errors == []
    mine = await server.gql(CREATE_USER_TOKEN, {"name": "mine"}, token=admin.token)
    server.issued.append(mine.data["createUserToken"]["secret"])
    mine_id = mine.data["createUserToken"]["id"].removeprefix("utk_")  # the row key behind the printed id
    owner = await server.pool.fetchval("SELECT user_id FROM tokens WHERE id = $1", mine_id)
    assert owner == admin.user_id


# --- audit -----------------------------------------------------------------------------------------------


async def test_every_token_action_is_audited_with_actor_source_and_address(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    await server.gql(UPDATE, {"id": token.id, "name": "renamed"}, token=admin.token)
    new = await rotated(server, admin.token, token.id, revoke=60)
    await server.gql(DELETE, {"id": token.id}, token=admin.token)
    await server.gql(REPORT, {"token": new.secret})
    rows = await server.pool.fetch(
        "SELECT action, actor, source, client_addr, target_id, details::text AS details FROM audit_events"
        " WHERE action LIKE 'service_token.%' ORDER BY id"
    )
    assert [(r["action"], r["target_id"]) for r in rows] == [
        ("service_token.created", token.key),
        ("service_token.updated", token.key),
        ("service_token.rotated", token.key),
        ("service_token.deleted", token.key),
        ("service_token.leak_reported", new.key),
    ]
    actor = f"user:{admin.user_id}"
    assert [r["actor"] for r in rows] == [actor] * 4 + ["anonymous"]
    assert {(r["source"], r["client_addr"]) for r in rows} == {("graphql", "127.0.0.1")}
    for row in rows:
        assert token.secret not in row["details"] and new.secret not in row["details"]


def test_the_contract_names_for_tokens_are_in_the_schema():
    from pathlib import Path

    sdl = (Path(__file__).resolve().parents[2] / "schema.graphql").read_text(encoding="utf-8")
    for name in [
        "serviceTokens(includeDeleted: Boolean = false): [ServiceToken!] @requires(resource: SERVICE_TOKENS, access: READ)",
        "createServiceToken(input: CreateServiceTokenInput!): ServiceTokenWithSecret @requires(resource: SERVICE_TOKENS, access: WRITE)",
        "rotateServiceToken(id: ID!, revokeOldInSeconds: Int",
        "updateServiceToken(id: ID!, name: String",
        "deleteServiceToken(id: ID!): ServiceToken @requires(resource: SERVICE_TOKENS, access: WRITE)",
        "createUserToken(name: String!, expiresAt: DateTime",
        "reportLeakedToken(token: String!): Boolean!",
        "type ServiceTokenWithSecret {\n  serviceToken: ServiceToken!\n  secret: String!\n",
        "type UserTokenWithSecret {\n  userToken: UserToken!\n  secret: String!\n",
        "input CreateServiceTokenInput {\n  name: String!\n  grants: [GrantInput!]!\n  expiresAt: DateTime",
    ]:
        assert name in sdl, name
