"""Relay's Global Object Identification and connections through HTTP: ids unique across types, node(id) for
every Node type under the rules of the fields that list it, Viewer.id, the bare token ids printed before,
rotate's previous, delete's new state, and keyset pages of service tokens and members with a filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.service_token_calls import DELETE, created, listed, rotated, row_key
from tests.api.test_graphql import create_project
from tests.conftest import Server, store_service_token
from tokengate.core.policy import Grant

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on ServiceToken { name state } ... on User { email } ... on Project { name } ... on Account { name }
  ... on IpRule { name } ... on AuditEvent { action } } }"""
EVERY_ID = """{
  viewer { id }
  account { id projects { id } members { id } serviceTokens { id }
            auditLog(first: 100) { edges { node { id targetId } } }
            ipRestrictions { rules { id } } }
}"""


async def with_one_of_each(server: Server) -> tuple[str, str]:
    """An admin of an account holding one object of every Node type; the admin's token and its project."""
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    await created(server, admin.token)
    reply = await server.gql(
        'mutation { setIpRestrictions(enabled: false, rules: [{name: "office", type: ALLOW, cidrs: ["10.0.0.0/8"]}])'
        " { enabled } }",
        token=admin.token,
    )
    assert reply.errors == [], reply.body
    return admin.token, project


def ids_of(data: dict) -> dict[str, list[str]]:
    account = data["account"]
    return {
        "Account": [account["id"]],
        "Project": [p["id"] for p in account["projects"]],
        "User": [m["id"] for m in account["members"]],
        "ServiceToken": [t["id"] for t in account["serviceTokens"]],
        "AuditEvent": [e["node"]["id"] for e in account["auditLog"]["edges"]],
        "IpRule": [r["id"] for r in account["ipRestrictions"]["rules"]],
    }


async def test_every_printed_id_is_unique_across_types_and_node_finds_the_same_object(server):
    token, _ = await with_one_of_each(server)
    reply = await server.gql(EVERY_ID, token=token)
    assert reply.errors == [], reply.body
    by_type = ids_of(reply.data)
    assert all(by_type.values()), by_type
    every = [the_id for ids in by_type.values() for the_id in ids] + [reply.data["viewer"]["id"]]
    assert len(every) == len(set(every))
    prefixes = {"Account": "acc_", "Project": "prj_", "User": "usr_", "ServiceToken": "stk_", "AuditEvent": "aud_"}
    prefixes["IpRule"] = "ipr_"
    for type_name, ids in by_type.items():
        for the_id in ids:
            assert the_id.startswith(prefixes[type_name]), (type_name, the_id)
            found = await server.gql(NODE, {"id": the_id}, token=token)
            assert found.errors == [] and found.data["node"]["__typename"] == type_name, found.body
            assert found.data["node"]["id"] == the_id
    # Audit targets that are token rows are printed as token ids, so node() finds them too.
    targets = {e["node"]["targetId"] for e in reply.data["account"]["auditLog"]["edges"]}
    assert set(by_type["ServiceToken"]) <= targets


async def test_node_answers_null_without_error_where_the_listing_field_would_refuse(server):
    token, project = await with_one_of_each(server)
    admin_view = ids_of((await server.gql(EVERY_ID, token=token)).data)
    # A service token with JOB_VIEWER in the project only: it reads the project, nothing of the account.
    viewer_token = await store_service_token(
        server, await account_of(server, token), [Grant("JOB_VIEWER", False, (project,))]
    )
    listing = await server.gql(
        "{ account { serviceTokens { id } members { id } auditLog { pageInfo { hasNextPage } } } }", token=viewer_token
    )
    assert listing.codes == ["FORBIDDEN"] * 3  # the listing fields refuse it...
    for type_name in ["ServiceToken", "User", "AuditEvent", "IpRule"]:
        reply = await server.gql(NODE, {"id": admin_view[type_name][0]}, token=viewer_token)
        assert reply.body == {"data": {"node": None}}, (type_name, reply.body)  # ...and node says nothing
    for type_name in ["Project", "Account"]:  # what it may read, node finds
        reply = await server.gql(NODE, {"id": admin_view[type_name][0]}, token=viewer_token)
        assert reply.data["node"]["id"] == admin_view[type_name][0]
    # Its own token and (for a user) its own user are found without the listing permission, as viewer shows them.
    own = (await server.gql("{ viewer { serviceToken { id } } }", token=viewer_token)).data["viewer"]["serviceToken"]
    assert (await server.gql(NODE, {"id": own["id"]}, token=viewer_token)).data["node"]["id"] == own["id"]
    for nonsense in ["", "stk_", "aud_0", "aud_99999999999999999999", "vwr_x", "x" * 1000]:
        assert (await server.gql(NODE, {"id": nonsense}, token=token)).body == {"data": {"node": None}}


async def account_of(server: Server, token: str) -> str:
    return (await server.gql("{ account { id } }", token=token)).data["account"]["id"]


async def test_viewer_id_is_one_per_principal(server):
    admin = await server.bootstrap()
    second_token = await server.issue_user_token(admin.user_id)
    service = await created(server, admin.token)
    ask = "{ viewer { id user { id } serviceToken { id } } }"
    by_user = (await server.gql(ask, token=admin.token)).data["viewer"]
    by_second = (await server.gql(ask, token=second_token)).data["viewer"]
    by_service = (await server.gql(ask, token=service.secret)).data["viewer"]
    assert by_user["id"] == by_second["id"] == f"vwr_{admin.user_id}"  # the same user: the same viewer
    assert by_service["id"] == f"vwr_{service.id}" != by_user["id"]


async def test_bare_token_ids_printed_before_still_work_and_ids_print_in_the_new_form(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    assert token.id == "stk_" + token.key and token.secret[4:20] == token.key
    renamed = await server.gql(
        "mutation($id: ID!) { updateServiceToken(id: $id, name: $name) { id name } }".replace("$name", '"renamed"'),
        {"id": token.key},
        token=admin.token,
    )
    assert renamed.data["updateServiceToken"] == {"id": token.id, "name": "renamed"}
    found = await server.gql(NODE, {"id": token.key}, token=admin.token)
    assert found.data["node"]["id"] == token.id
    new = await rotated(server, admin.token, token.key)
    assert new.id.startswith("stk_")
    deleted = await server.gql(DELETE, {"id": token.key}, token=admin.token)
    assert (
        deleted.data["deleteServiceToken"]["id"] == token.id
        and deleted.data["deleteServiceToken"]["state"] == "DELETED"
    )
    # Another kind's id is no service token id.
    for wrong in ["utk_" + new.key, admin.user_id]:
        reply = await server.gql(DELETE, {"id": wrong}, token=admin.token)
        assert reply.codes == ["NOT_FOUND"]


ROTATE_WITH_PREVIOUS = """mutation($id: ID!, $revoke: Int) { rotateServiceToken(id: $id, revokeOldInSeconds: $revoke) {
  secret serviceToken { id state expiresAt } previous { id state expiresAt name } } }"""


async def test_rotate_returns_the_replaced_token_as_it_is_now(server):
    admin = await server.bootstrap()
    old = await created(server, admin.token, "deploy")
    kept = await server.gql(ROTATE_WITH_PREVIOUS, {"id": old.id}, token=admin.token)
    answer = kept.data["rotateServiceToken"]
    server.issued.append(answer["secret"])
    assert answer["previous"] == {"id": old.id, "state": "ACTIVE", "expiresAt": None, "name": "deploy"}
    windowed = await server.gql(ROTATE_WITH_PREVIOUS, {"id": old.id, "revoke": 600}, token=admin.token)
    answer = windowed.data["rotateServiceToken"]
    server.issued.append(answer["secret"])
    expiry = datetime.fromisoformat(answer["previous"]["expiresAt"])
    assert timedelta(seconds=590) < expiry - datetime.now(UTC) <= timedelta(seconds=600)
    assert (await listed(server, admin.token))[old.id]["expiresAt"] == answer["previous"]["expiresAt"]
    created_answer = await server.gql(
        'mutation { createServiceToken(input: {name: "n", grants: [{permissionSet: ACCOUNT_VIEWER}]}) { secret previous { id } } }',
        token=admin.token,
    )
    server.issued.append(created_answer.data["createServiceToken"]["secret"])
    assert created_answer.data["createServiceToken"]["previous"] is None


PAGE = """query($first: Int, $after: String, $filter: ServiceTokenFilter) { account { serviceTokenConnection(
  first: $first, after: $after, filter: $filter) { totalCount edges { cursor node { id name } }
  pageInfo { hasNextPage hasPreviousPage endCursor startCursor } } } }"""


async def pages(server: Server, token: str, first: int, wanted: dict | None = None) -> list[list[str]]:
    """Every page of the connection, following endCursor."""
    found, after = [], None
    while True:
        reply = await server.gql(PAGE, {"first": first, "after": after, "filter": wanted}, token=token)
        assert reply.errors == [], reply.body
        connection = reply.data["account"]["serviceTokenConnection"]
        found.append([edge["node"]["name"] for edge in connection["edges"]])
        info = connection["pageInfo"]
        assert info["hasPreviousPage"] is (after is not None)
        if connection["edges"]:
            assert info["startCursor"] == connection["edges"][0]["cursor"]
            assert info["endCursor"] == connection["edges"][-1]["cursor"]
        if not info["hasNextPage"]:
            return found
        after = info["endCursor"]


async def test_service_token_connection_pages_in_list_order_with_a_total(server):
    admin = await server.bootstrap()
    names = [f"t{number}" for number in range(7)]
    for name in names:
        await created(server, admin.token, name)
    assert await pages(server, admin.token, 3) == [names[:3], names[3:6], names[6:]]
    assert await pages(server, admin.token, 7) == [names]
    reply = await server.gql(PAGE, {"first": 2}, token=admin.token)
    assert reply.data["account"]["serviceTokenConnection"]["totalCount"] == 7
    listed_names = [t["name"] for t in (await listed(server, admin.token)).values()]
    assert listed_names == names  # the same order as the plain list
    for first in [0, 101]:
        assert (await server.gql(PAGE, {"first": first}, token=admin.token)).codes == ["BAD_USER_INPUT"]


async def test_a_page_stays_consistent_when_tokens_change_between_pages(server):
    admin = await server.bootstrap()
    tokens_made = [await created(server, admin.token, f"t{number}") for number in range(4)]
    first = await server.gql(PAGE, {"first": 2}, token=admin.token)
    cursor = first.data["account"]["serviceTokenConnection"]["pageInfo"]["endCursor"]
    await server.gql(DELETE, {"id": tokens_made[1].id}, token=admin.token)  # the cursor's own row leaves the filter
    rest = await server.gql(PAGE, {"first": 10, "after": cursor}, token=admin.token)
    assert [e["node"]["name"] for e in rest.data["account"]["serviceTokenConnection"]["edges"]] == ["t2", "t3"]


async def test_service_token_filter_by_state_format_rotation_and_expiry(server):
    admin = await server.bootstrap()
    soon = datetime.now(UTC) + timedelta(days=1)
    later = datetime.now(UTC) + timedelta(days=30)
    await created(server, admin.token, "plain")
    await created(server, admin.token, "soon", expiresAt=soon.isoformat())
    await created(server, admin.token, "later", expiresAt=later.isoformat())
    gone = await created(server, admin.token, "gone")
    await server.gql(DELETE, {"id": gone.id}, token=admin.token)
    await server.import_legacy_token(
        admin.account_id, "legacy", datetime(2022, 3, 1, tzinfo=UTC), [Grant("ACCOUNT_VIEWER")]
    )
    expired = await created(server, admin.token, "expired")
    await server.pool.execute("UPDATE tokens SET expires_at = now() - interval '1 hour' WHERE id = $1", expired.key)

    async def names(wanted: dict | None) -> tuple[list[str], int]:
        reply = await server.gql(PAGE, {"first": 100, "filter": wanted}, token=admin.token)
        assert reply.errors == [], reply.body
        connection = reply.data["account"]["serviceTokenConnection"]
        return [edge["node"]["name"] for edge in connection["edges"]], connection["totalCount"]

    # Oldest first: the imported legacy token was created in 2022.
    assert await names(None) == (["legacy", "plain", "soon", "later", "expired"], 5)  # not deleted, by default
    assert await names({"states": ["DELETED"]}) == (["gone"], 1)
    assert await names({"states": ["EXPIRED"]}) == (["expired"], 1)
    assert await names({"states": ["ACTIVE", "EXPIRED", "DELETED"]}) == (
        ["legacy", "plain", "soon", "later", "gone", "expired"],
        6,
    )
    assert await names({"format": "LEGACY"}) == (["legacy"], 1)
    assert await names({"format": "V2", "rotationRecommended": False}) == (["plain", "soon", "later", "expired"], 4)
    assert await names({"rotationRecommended": True}) == (["legacy"], 1)
    week = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    assert await names({"expiringBefore": week}) == (["soon", "expired"], 2)
    assert await names({"expiringBefore": week, "states": ["ACTIVE"]}) == (["soon"], 1)


async def test_member_connection_pages_users_and_refuses_a_token_cursor(server):
    admin = await server.bootstrap()
    for number in range(3):
        reply = await server.gql(
            "mutation($e: String!) { createUser(email: $e, license: IT, grants: []) { id } }",
            {"e": f"u{number}@acme.io"},
            token=admin.token,
        )
        assert reply.errors == [], reply.body
    ask = """query($after: String) { account { memberConnection(first: 2, after: $after) { totalCount
      edges { cursor node { email } } pageInfo { hasNextPage endCursor } } } }"""
    first = (await server.gql(ask, token=admin.token)).data["account"]["memberConnection"]
    second = (await server.gql(ask, {"after": first["pageInfo"]["endCursor"]}, token=admin.token)).data["account"]
    emails = [e["node"]["email"] for e in first["edges"] + second["memberConnection"]["edges"]]
    assert (
        first["totalCount"] == 4
        and first["pageInfo"]["hasNextPage"]
        and emails[1:] == [f"u{n}@acme.io" for n in range(3)]
    )
    token = await created(server, admin.token)
    token_cursor = (await server.gql(PAGE, {"first": 1}, token=admin.token)).data["account"]["serviceTokenConnection"]
    refused = await server.gql(ask, {"after": token_cursor["edges"][0]["cursor"]}, token=admin.token)
    assert refused.codes == ["BAD_USER_INPUT"] and row_key(token.id)  # a cursor of another list is no cursor here


async def test_connections_need_what_the_lists_need(server):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    viewer_token = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER", False, (project,))])
    reply = await server.gql(
        "{ account { name serviceTokenConnection { totalCount } memberConnection { totalCount } } }", token=viewer_token
    )
    assert reply.data == {"account": {"name": "Acme", "serviceTokenConnection": None, "memberConnection": None}}
    assert sorted(e["message"] for e in reply.errors) == ["requires MEMBERS:READ", "requires SERVICE_TOKENS:READ"]
    allowed = await server.gql("{ account { serviceTokenConnection { totalCount } } }", token=admin.token)
    assert allowed.data == {"account": {"serviceTokenConnection": {"totalCount": 1}}}
