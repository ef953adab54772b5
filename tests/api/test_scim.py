"""SCIM 2.0 over HTTP on loopback with real tokens (docs/scim.md): SCIM tokens made, listed and revoked by an
account admin; /scim/v2/Users created, read, filtered, paged, replaced, patched and deleted by the identity
provider; deprovisioning that does what deactivateUser does on both instances; and the doors kept apart (a SCIM
token works on /scim/v2 only, and /scim/v2 takes nothing else). Each refusal is first shown reachable."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.api import service_token_calls as calls
from tests.api.scim_calls import (
    ERROR,
    REVOKE_SCIM_TOKEN,
    SCIM_TOKENS,
    USER_SCHEMA,
    patch,
    provisioned,
    scim,
    scim_token,
    user,
)
from tests.api.service_token_calls import grant
from tests.api.test_cache_and_invalidation import eventually, learnt_by_notice
from tests.api.test_cli import external, tokengate
from tests.api.test_personal_tokens import member
from tests.conftest import TEST_LIMITS, last_character_changed, make_config, start_server, store_service_token
from tokengate.core import tokens
from tokengate.core.limits import Rate
from tokengate.core.policy import Grant

VIEWER = "{ viewer { kind } }"
MEMBERS = "{ account { members { id email state } } }"


@pytest.fixture
async def second(database, tmp_path):
    """Instance B on the same database, with its own caches and listener."""
    async for running in start_server(database, make_config(tmp_path / "b")):
        yield running


async def test_an_account_admin_makes_lists_and_revokes_scim_tokens_shown_once(server, second):
    admin = await server.bootstrap()
    token_id, secret = await scim_token(server, admin.token)
    assert secret.startswith("tgp_") and len(secret) == tokens.TOKEN_LENGTH
    assert tokens.checksum(secret[:-6]) == secret[-6:]  # the checksum scheme of every token (secret scanning)
    assert tokens.parse_scim_token(secret) == token_id.removeprefix("scm_")
    stored = await server.pool.fetchrow("SELECT hash, name FROM scim_tokens WHERE id = $1", token_id[4:])
    assert stored["name"] == "okta" and secret.encode() not in bytes(stored["hash"])  # a keyed hash only
    listed = await server.gql(SCIM_TOKENS, {"all": False}, admin.token)
    assert listed.errors == [] and [t["id"] for t in listed.data["account"]["scimTokens"]] == [token_id]
    assert secret not in json.dumps(listed.body) and listed.data["account"]["scimTokens"][0]["displayPrefix"] == (
        secret[:8] + "…"
    )
    assert (await scim(server, "GET", "/Users", secret)).status == 200
    event = await server.pool.fetchrow("SELECT actor, target_id FROM audit_events WHERE action = 'scim_token.created'")
    assert event["actor"] == f"user:{admin.user_id}" and event["target_id"] == token_id[4:]

    # Revoked: refused from the next request, on the instance that revoked it and on the other.
    assert (await scim(second, "GET", "/Users", secret)).status == 200
    revoked = await server.gql(REVOKE_SCIM_TOKEN, {"id": token_id}, admin.token)
    assert revoked.errors == [] and revoked.data["revokeScimToken"]["revokedAt"]
    for instance in (server, second):
        reply = await scim(instance, "GET", "/Users", secret)
        assert reply.status == 401 and reply.body["schemas"] == [ERROR] and reply.headers["WWW-Authenticate"]
    listed = await server.gql(SCIM_TOKENS, {"all": False}, admin.token)
    assert listed.data["account"]["scimTokens"] == []
    assert len((await server.gql(SCIM_TOKENS, {"all": True}, admin.token)).data["account"]["scimTokens"]) == 1


async def test_only_an_account_admin_person_manages_scim_tokens(server):
    admin = await server.bootstrap()
    _, security = await member(server, admin.token, "sec@acme.test", [grant("SECURITY_ADMIN")])
    admin_service = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")])
    token_id, _ = await scim_token(server, admin.token)  # reachable: an ACCOUNT_ADMIN person may
    for caller in (security, admin_service):
        reply = await server.gql('mutation { createScimToken(name: "x") { secret } }', token=caller)
        assert reply.codes == ["FORBIDDEN"] and reply.data == {"createScimToken": None}
    listed = await server.gql(SCIM_TOKENS, {"all": True}, security)
    assert listed.codes == ["FORBIDDEN"] and listed.data["account"]["scimTokens"] is None
    refused = await server.gql(REVOKE_SCIM_TOKEN, {"id": token_id}, security)
    assert refused.codes == ["FORBIDDEN"]
    # A service token holding ACCOUNT_ADMIN may list and revoke (taking access away), not create.
    assert (await server.gql(SCIM_TOKENS, {"all": False}, admin_service)).errors == []
    assert (await server.gql(REVOKE_SCIM_TOKEN, {"id": token_id}, admin_service)).errors == []
    other = await server.bootstrap("Other")
    assert (await server.gql(REVOKE_SCIM_TOKEN, {"id": token_id}, other.token)).codes == ["NOT_FOUND"]


async def test_users_are_created_read_filtered_paged_replaced_patched_and_deleted(server):
    admin = await server.bootstrap(email="admin@acme.test")
    _, secret = await scim_token(server, admin.token)
    created = await scim(
        server,
        "POST",
        "/Users",
        secret,
        user("Ada@Acme.test", name={"givenName": "Ada", "familyName": "Lovelace"}, externalId="00u1"),
    )
    assert created.status == 201, created.body
    assert created.headers["Content-Type"].startswith("application/scim+json")
    ada = created.body
    assert ada["id"].startswith("usr_") and ada["userName"] == "Ada@Acme.test" and ada["active"] is True
    assert created.headers["Location"] == ada["meta"]["location"] and ada["meta"]["resourceType"] == "User"
    assert (await scim(server, "GET", f"/Users/{ada['id']}", secret)).body == ada
    # A member: READ_ONLY, no grants, the e-mail the userName is; created by the provider.
    members = (await server.gql(MEMBERS, token=admin.token)).data["account"]["members"]
    assert {"id": ada["id"], "email": "Ada@Acme.test", "state": "ACTIVE"} in members
    event = await server.pool.fetchrow(
        "SELECT actor, source FROM audit_events WHERE action = 'user.created' AND target_id = $1", ada["id"]
    )
    assert event["actor"].startswith("scim_token:scm_") and event["source"] == "scim"

    # Uniqueness: userName case-insensitively, and an existing member's e-mail (made elsewhere) alike.
    for taken in ("ada@acme.test", "ADMIN@acme.test"):
        again = await scim(server, "POST", "/Users", secret, user(taken))
        assert again.status == 409 and again.scim_type == "uniqueness", again.body

    # Filters: userName eq (case-insensitive), externalId eq; members made elsewhere are resources too.
    found = await scim(server, "GET", "/Users?filter=userName%20eq%20%22ADA@acme.test%22", secret)
    assert found.body["totalResults"] == 1 and found.body["Resources"][0]["id"] == ada["id"]
    found = await scim(server, "GET", "/Users?filter=externalId%20eq%20%2200u1%22", secret)
    assert [r["id"] for r in found.body["Resources"]] == [ada["id"]]
    found = await scim(server, "GET", "/Users?filter=userName%20eq%20%22admin@acme.test%22", secret)
    assert [r["id"] for r in found.body["Resources"]] == [admin.user_id]
    nobody = await scim(server, "GET", "/Users?filter=userName%20eq%20%22nobody@acme.test%22", secret)
    assert nobody.status == 200 and nobody.body["totalResults"] == 0 and nobody.body["Resources"] == []

    # Paging: startIndex is 1-based, count bounds the page, totalResults counts them all.
    for number in range(3):
        await provisioned(server, secret, f"p{number}@acme.test")
    everyone = (await scim(server, "GET", "/Users", secret)).body
    assert everyone["totalResults"] == 5 and everyone["startIndex"] == 1
    page = (await scim(server, "GET", "/Users?startIndex=2&count=2", secret)).body
    assert page["totalResults"] == 5 and page["itemsPerPage"] == 2 and page["startIndex"] == 2
    assert [r["id"] for r in page["Resources"]] == [r["id"] for r in everyone["Resources"][1:3]]
    assert (await scim(server, "GET", "/Users?count=0", secret)).body["Resources"] == []
    only = (await scim(server, "GET", "/Users?attributes=userName", secret)).body["Resources"][0]
    assert set(only) == {"schemas", "id", "userName"}

    # PUT replaces the record (a new userName moves the member's e-mail); PATCH changes parts of it.
    put = await scim(server, "PUT", f"/Users/{ada['id']}", secret, user("ada.l@acme.test", displayName="Ada L"))
    assert put.status == 200 and put.body["userName"] == "ada.l@acme.test" and "name" not in put.body
    patched = await scim(
        server,
        "PATCH",
        f"/Users/{ada['id']}",
        secret,
        patch(
            {"op": "replace", "path": "name.givenName", "value": "Augusta"},
            {"op": "add", "path": 'emails[type eq "work"].value', "value": "ada@work.test"},
            {"op": "remove", "path": "displayName"},
        ),
    )
    assert patched.status == 200, patched.body
    assert patched.body["name"] == {"givenName": "Augusta"} and "displayName" not in patched.body
    assert patched.body["emails"] == [{"type": "work", "value": "ada@work.test"}]
    members = (await server.gql(MEMBERS, token=admin.token)).data["account"]["members"]
    assert {"id": ada["id"], "email": "ada.l@acme.test", "state": "ACTIVE"} in members

    # DELETE: deactivated (kept for the audit trail), and no SCIM resource any more.
    assert (await scim(server, "DELETE", f"/Users/{ada['id']}", secret)).status == 204
    gone = await scim(server, "GET", f"/Users/{ada['id']}", secret)
    assert gone.status == 404 and gone.body["schemas"] == [ERROR] and gone.body["status"] == "404"
    assert (await scim(server, "GET", "/Users", secret)).body["totalResults"] == 4
    members = (await server.gql(MEMBERS, token=admin.token)).data["account"]["members"]
    assert {"id": ada["id"], "email": "ada.l@acme.test", "state": "DEACTIVATED"} in members
    actions = await server.pool.fetch("SELECT action FROM audit_events WHERE target_id = $1 ORDER BY id", ada["id"])
    assert [row["action"] for row in actions] == [
        "user.created",
        "user.updated",
        "user.updated",
        "user.deactivated",
        "user.scim_deleted",
    ]


async def test_client_mistakes_answer_scim_errors_never_a_500(server):
    admin = await server.bootstrap()
    _, secret = await scim_token(server, admin.token)
    someone = await provisioned(server, secret, "someone@acme.test")
    path = f"/Users/{someone['id']}"
    cases = [
        ("GET", "/Users?filter=userName%20co%20%22a%22", None, None, 400, "invalidFilter"),
        ("GET", "/Users?filter=title%20eq%20%22x%22", None, None, 400, "invalidFilter"),
        ("GET", "/Users?filter=userName%20eq%20%22unterminated", None, None, 400, "invalidFilter"),
        ("GET", "/Users?startIndex=first", None, None, 400, "invalidValue"),
        ("GET", "/Users/usr_doesNotExist0", None, None, 404, None),
        ("GET", "/Users/not-an-id", None, None, 404, None),
        ("GET", "/Nothing", None, None, 404, None),
        ("POST", "/Users", None, b"{not json", 400, "invalidSyntax"),
        ("POST", "/Users", [1, 2], None, 400, "invalidSyntax"),
        ("POST", "/Users", {"schemas": [USER_SCHEMA]}, None, 400, "invalidValue"),
        ("POST", "/Users", user("no-email-here"), None, 400, "invalidValue"),
        ("POST", "/Users", user("x@acme.test", active="perhaps"), None, 400, "invalidValue"),
        ("POST", "/Users", user("x@acme.test", name="Ada"), None, 400, "invalidValue"),
        ("POST", "/Users", user("x" * 400 + "@acme.test"), None, 400, "invalidValue"),
        ("PATCH", path, patch({"op": "remove", "path": "active"}), None, 400, "mutability"),
        ("PATCH", path, patch({"op": "remove", "path": "userName"}), None, 400, "mutability"),
        ("PATCH", path, patch({"op": "replace", "path": "title", "value": "x"}), None, 400, "invalidPath"),
        ("PATCH", path, patch({"op": "move", "path": "userName", "value": "x"}), None, 400, "invalidValue"),
        ("PATCH", path, patch({"op": "remove"}), None, 400, "noTarget"),
        ("PATCH", path, {"Operations": []}, None, 400, "invalidSyntax"),
        ("PATCH", path, patch({"op": "replace", "value": "active"}), None, 400, "invalidValue"),
        ("PUT", "/Users/usr_doesNotExist0", user("y@acme.test"), None, 404, None),
        ("PUT", "/ServiceProviderConfig", {}, None, 405, None),
        ("POST", "/Users", user("nul\u0000@acme.test"), None, 400, "invalidValue"),
        ("POST", "/Users", None, b'{"userName": "\\ud800@acme.test"}', 400, "invalidValue"),
        ("POST", "/Users", None, b"[" * 30000 + b"]" * 30000, 400, "invalidSyntax"),
        ("GET", "/Users?filter=userName%20eq%20%22a%5Cu0000b%22", None, None, 400, "invalidFilter"),
        (
            "PATCH",
            path,
            patch({"op": "replace", "path": 'emails[value eq "\\q"].value', "value": "x"}),
            None,
            400,
            "invalidPath",
        ),
        ("POST", "/.search", {}, None, 501, None),
    ]
    for method, where, body, raw, status, scim_type in cases:
        reply = await scim(server, method, where, secret, body, raw)
        assert reply.status == status, (method, where, reply.body)
        assert reply.body["schemas"] == [ERROR] and reply.body["status"] == str(status), reply.body
        assert reply.scim_type == scim_type, (method, where, reply.body)
        assert reply.headers["Content-Type"].startswith("application/scim+json")
    far = await scim(server, "GET", "/Users?startIndex=" + "9" * 40, secret)
    assert far.status == 200 and far.body["Resources"] == [] and far.body["totalResults"] == 2
    assert (await scim(server, "GET", path, secret)).body == someone  # nothing of it changed


async def test_active_false_stops_the_personal_tokens_on_both_instances_but_not_service_tokens(server, second):
    admin = await server.bootstrap()
    _, secret = await scim_token(server, admin.token)
    user_id, personal = await member(server, admin.token, "leaver@acme.test", [grant("ACCOUNT_ADMIN")])
    made_by_user = await calls.created(server, personal, "made by the leaver")
    for instance in (server, second):  # both instances hold the person's token in their caches
        assert (await instance.gql(VIEWER, token=personal)).status == 200
    with learnt_by_notice(second):
        # As Okta sends it: no path, the value's attributes.
        reply = await scim(
            server, "PATCH", f"/Users/{user_id}", secret, patch({"op": "replace", "value": {"active": False}})
        )
        assert reply.status == 200 and reply.body["active"] is False, reply.body

        async def refused_on_b() -> bool:
            return (await second.gql(VIEWER, token=personal)).status == 401

        await eventually(refused_on_b)
    assert (await server.gql(VIEWER, token=personal)).status == 401
    assert await calls.works(server, made_by_user.secret) and await calls.works(second, made_by_user.secret)
    rows = await server.pool.fetch(
        "SELECT action, actor, source FROM audit_events WHERE action IN ('user.deactivated', 'user_token.deleted')"
    )
    assert {row["action"] for row in rows} == {"user.deactivated", "user_token.deleted"}
    assert all(row["actor"].startswith("scim_token:scm_") and row["source"] == "scim" for row in rows)
    # Entra ID sends "False" as a string, and later switches the person on again: new sign-ins only.
    back = await scim(
        second, "PATCH", f"/Users/{user_id}", secret, patch({"op": "Replace", "path": "active", "value": "True"})
    )
    assert back.status == 200 and back.body["active"] is True, back.body
    assert (await server.gql(VIEWER, token=personal)).status == 401  # its deleted tokens stay deleted
    fresh = await server.issue_user_token(user_id)
    assert (await second.gql(VIEWER, token=fresh)).status == 200
    assert await server.pool.fetchval("SELECT count(*) FROM audit_events WHERE action = 'user.reactivated'") == 1


async def test_the_last_active_account_admin_cannot_be_deprovisioned(server):
    admin = await server.bootstrap()
    _, secret = await scim_token(server, admin.token)
    second_admin, second_token = await member(server, admin.token, "deputy@acme.test", [grant("ACCOUNT_ADMIN")])
    # Reachable: the provider may switch off an ACCOUNT_ADMIN while another one is left.
    off = await scim(
        server, "PATCH", f"/Users/{second_admin}", secret, patch({"op": "replace", "path": "active", "value": False})
    )
    assert off.status == 200 and off.body["active"] is False
    assert (await server.gql(VIEWER, token=second_token)).status == 401
    # The last one is refused, by PATCH, PUT and DELETE alike, and keeps working.
    attempts = [
        ("PATCH", patch({"op": "replace", "path": "active", "value": False})),
        ("PUT", user((await scim(server, "GET", f"/Users/{admin.user_id}", secret)).body["userName"], active=False)),
        ("DELETE", None),
    ]
    for method, body in attempts:
        refused = await scim(server, method, f"/Users/{admin.user_id}", secret, body)
        assert refused.status == 403 and "last active ACCOUNT_ADMIN" in refused.body["detail"], refused.body
    assert (await server.gql(VIEWER, token=admin.token)).status == 200
    assert (await scim(server, "GET", f"/Users/{admin.user_id}", secret)).body["active"] is True
    # Nor through GraphQL by a service token that holds ACCOUNT_ADMIN (a person cannot deactivate itself).
    admin_service = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")])
    deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { state } }"
    reply = await server.gql(deactivate, {"id": admin.user_id}, admin_service)
    assert reply.codes == ["FORBIDDEN"] and "last active ACCOUNT_ADMIN" in reply.errors[0]["message"]
    update = "mutation($id: ID!, $grants: [GrantInput!]) { updateUser(id: $id, grants: $grants) { id } }"
    lose = await server.gql(update, {"id": admin.user_id, "grants": [grant("MEMBER")]}, admin_service)
    assert lose.codes == ["FORBIDDEN"] and "last active ACCOUNT_ADMIN" in lose.errors[0]["message"], lose.body
    keep = await server.gql(
        update, {"id": admin.user_id, "grants": [grant("ACCOUNT_ADMIN"), grant("MEMBER")]}, admin_service
    )
    assert keep.errors == [], keep.body  # reachable: the same caller may change the last admin's other grants


async def test_a_scim_token_opens_scim_only_and_scim_takes_nothing_else(server):
    admin = await server.bootstrap()
    _, secret = await scim_token(server, admin.token)
    service = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")])
    # Reachable: each token works at its own door.
    assert (await scim(server, "GET", "/Users", secret)).status == 200
    for own in (admin.token, service):
        assert (await server.gql(VIEWER, token=own)).status == 200
    # A SCIM token anywhere else: not a token there.
    assert (await server.gql(VIEWER, token=secret)).status == 401
    async with server.session.get(server.url + "/auth/check", headers={"Authorization": f"Bearer {secret}"}) as r:
        assert r.status == 401
    form = {"token": admin.token}
    async with server.session.post(
        server.url + "/oauth/introspect", data=form, headers={"Authorization": f"Bearer {secret}"}
    ) as r:
        assert r.status == 401
    # Anything but a SCIM token on /scim/v2, on every path (a wrong one too): 401 in SCIM's error schema.
    for other in (admin.token, service, None, last_character_changed(secret)):
        for path in ("/Users", "/ServiceProviderConfig", "/Nothing"):
            reply = await scim(server, "GET", path, other)
            assert reply.status == 401 and reply.body["schemas"] == [ERROR], (path, reply.body)
            assert reply.headers["WWW-Authenticate"] == "Bearer"
    # Another account's SCIM token sees none of this account's members.
    other_account = await server.bootstrap("Other")
    _, other_secret = await scim_token(server, other_account.token)
    assert (await scim(server, "GET", f"/Users/{admin.user_id}", other_secret)).status == 404
    listed = (await scim(server, "GET", "/Users", other_secret)).body["Resources"]
    assert [r["id"] for r in listed] == [other_account.user_id]


async def test_wrong_scim_tokens_spend_the_address_failure_budget(database, tmp_path):
    limits = replace(TEST_LIMITS, failures=Rate(0.01, 3))
    async for server in start_server(database, make_config(tmp_path, limits=limits)):
        admin = await server.bootstrap()
        _, secret = await scim_token(server, admin.token)
        assert (await scim(server, "GET", "/Users", secret)).status == 200  # reachable before the budget is spent
        wrong = tokens.SCIM_PREFIX + secret[4:20] + "x" * 32
        wrong += tokens.checksum(wrong)  # well-formed: a real id with a wrong secret
        statuses = [(await scim(server, "GET", "/Users", wrong)).status for _ in range(5)]
        assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429], statuses
        limited = await scim(server, "GET", "/Users", secret)
        assert limited.status == 429 and limited.headers["Retry-After"] and limited.body["schemas"] == [ERROR]


async def test_the_command_line_makes_lists_and_revokes_scim_tokens(database, server):
    admin = await server.bootstrap()
    made = tokengate("create-scim-token", "--account-id", admin.account_id, "--name", "entra", env=external(database))
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    server.issued.append(created["token"])
    assert created["id"].startswith("scm_") and created["token"].startswith("tgp_")
    assert (await scim(server, "GET", "/Users", created["token"])).status == 200
    listed = json.loads(tokengate("list-scim-tokens", "--account-id", admin.account_id, env=external(database)).stdout)
    assert [t["id"] for t in listed["scim_tokens"]] == [created["id"]] and created["token"] not in json.dumps(listed)
    revoked = tokengate(
        "revoke-scim-token", "--account-id", admin.account_id, "--id", created["id"], env=external(database)
    )
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"], revoked.stderr
    assert (await scim(server, "GET", "/Users", created["token"])).status == 401
    missing = tokengate("revoke-scim-token", "--account-id", admin.account_id, "--id", "scm_x", env=external(database))
    assert missing.returncode == 1 and "no SCIM token with id scm_x" in missing.stderr
    source = await server.pool.fetchval("SELECT source FROM audit_events WHERE action = 'scim_token.revoked'")
    assert source == "cli"


async def test_discovery_documents(server):
    admin = await server.bootstrap()
    _, secret = await scim_token(server, admin.token)
    config = (await scim(server, "GET", "/ServiceProviderConfig", secret)).body
    assert config["patch"] == {"supported": True} and config["bulk"]["supported"] is False
    assert config["filter"] == {"supported": True, "maxResults": 200}
    types = (await scim(server, "GET", "/ResourceTypes", secret)).body
    assert [t["id"] for t in types["Resources"]] == ["User"] and types["Resources"][0]["schema"] == USER_SCHEMA
    schemas = (await scim(server, "GET", "/Schemas", secret)).body["Resources"]
    assert {s["name"] for s in schemas} == {"User", "ResourceType", "ServiceProviderConfig", "Schema"}
    user_schema = (await scim(server, "GET", f"/Schemas/{USER_SCHEMA}", secret)).body
    assert {a["name"] for a in user_schema["attributes"]} == {"userName", "name", "displayName", "emails", "active"}
    assert (await scim(server, "GET", "/ResourceTypes/Group", secret)).status == 404


async def test_a_leaked_scim_token_reported_is_revoked(server):
    admin = await server.bootstrap()
    token_id, secret = await scim_token(server, admin.token)
    assert (await scim(server, "GET", "/Users", secret)).status == 200  # reachable until reported
    report = "mutation($token: String!) { reportLeakedToken(token: $token) }"
    assert (await server.gql(report, {"token": secret})).data == {"reportLeakedToken": True}
    assert (await scim(server, "GET", "/Users", secret)).status == 401
    assert (await server.gql(report, {"token": secret})).data == {"reportLeakedToken": False}  # once
    forged = secret[:20] + "x" * 32
    forged += tokens.checksum(forged)  # its id, another secret: not a token of ours
    assert (await server.gql(report, {"token": forged})).data == {"reportLeakedToken": False}
    event = await server.pool.fetchrow(
        "SELECT actor, details FROM audit_events WHERE action = 'scim_token.leak_reported'"
    )
    assert event["actor"] == "anonymous" and json.loads(event["details"]) == {"revoked": True}
    assert token_id  # its id stays listed, revoked
    listed = (await server.gql(SCIM_TOKENS, {"all": True}, admin.token)).data["account"]["scimTokens"]
    assert [t["revokedAt"] is not None for t in listed] == [True]


async def test_a_patch_whose_operations_build_on_each_other(server):
    """Found by test_scim_fuzz.py: an operation that sets an attribute to the wrong type, then one inside it."""
    admin = await server.bootstrap()
    _, secret = await scim_token(server, admin.token)
    someone = await provisioned(server, secret, "someone@acme.test", name={"givenName": "Some"})
    path = f"/Users/{someone['id']}"
    for first in ({"op": "replace", "path": "name", "value": "x"}, {"op": "replace", "path": "emails", "value": "x"}):
        second = {"op": "replace", "path": "name.givenName", "value": "y"}
        third = {"op": "add", "path": 'emails[type eq "work"].value', "value": "w@acme.test"}
        reply = await scim(server, "PATCH", path, secret, patch(first, second, third))
        assert reply.status == 400 and reply.scim_type == "invalidValue", reply.body
    both = patch(
        {"op": "replace", "path": "name", "value": {"familyName": "One"}},
        {"op": "add", "path": "name.givenName", "value": "Two"},
    )
    reply = await scim(server, "PATCH", path, secret, both)
    assert reply.status == 200 and reply.body["name"] == {"givenName": "Two", "familyName": "One"}, reply.body
