"""The audit log's filter through GraphQL: action, actor, target and time range, each narrowing the same
newest-first list the unfiltered log gives, page by page with cursors; another account's events stay out of
reach whatever the filter names; a filter that cannot mean anything is BAD_USER_INPUT, never a 500.

The events come from ``perform_every_audited_action`` (tests/api/test_audit_log.py): every audited action once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.api.conftest import from_address
from tests.api.test_audit_log import perform_every_audited_action
from tests.conftest import Server, store_service_token
from tokengate.core.policy import Grant

FILTERED = """
query($first: Int, $after: String, $filter: AuditLogFilter) {
  account { auditLog(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id action actor targetId occurredAt } }
    pageInfo { hasNextPage endCursor }
  } }
}
"""
# The pretend client address is inside the rules perform_every_audited_action leaves enabled.
OFFICE = from_address("203.0.113.5")


async def filtered(
    server: Server, token: str, only: dict[str, Any] | None, first: int = 100, after: str | None = None
) -> dict[str, Any]:
    reply = await server.gql(FILTERED, {"first": first, "after": after, "filter": only}, token=token, headers=OFFICE)
    assert reply.errors == [], reply.body
    return reply.data["account"]["auditLog"]


async def every_page(server: Server, token: str, only: dict[str, Any] | None, first: int) -> list[dict[str, Any]]:
    """Every event passing ``only``, through pages of ``first`` that follow endCursor."""
    nodes, after = [], None
    for _ in range(100):
        page = await filtered(server, token, only, first, after)
        assert len(page["edges"]) <= first
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("paging did not end")


def at(node: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(node["occurredAt"])


async def test_each_filter_keeps_exactly_the_matching_events_newest_first(proxied):
    admin, service, _ = await perform_every_audited_action(proxied)
    everything = (await filtered(proxied, admin.token, None))["edges"]
    nodes = [edge["node"] for edge in everything]
    assert len(nodes) == 13 and len({n["action"] for n in nodes}) == 11

    async def kept(only: dict[str, Any]) -> list[dict[str, Any]]:
        return [edge["node"] for edge in (await filtered(proxied, admin.token, only))["edges"]]

    assert await kept({"action": "user_token.created"}) == [n for n in nodes if n["action"] == "user_token.created"]
    assert len(await kept({"action": "user_token.created"})) == 2
    assert await kept({"action": "user_token"}) == []  # exact, not a prefix

    as_admin = f"user:{admin.user_id}"
    assert await kept({"actor": as_admin}) == [n for n in nodes if n["actor"] == as_admin]
    assert len(await kept({"actor": as_admin})) == 6
    # A service token by its listed actor text, or by its id alone (without the display prefix), the id as
    # GraphQL prints it (stk_) or bare, as printed before.
    listed = f"service_token:stk_{service[4:20]} ({service[:8]}…)"
    by_service = [n for n in nodes if n["actor"] == listed]
    assert [n["action"] for n in by_service] == ["ip_restrictions.updated"]
    assert await kept({"actor": listed}) == by_service
    assert await kept({"actor": f"service_token:stk_{service[4:20]}"}) == by_service
    assert await kept({"actor": f"service_token:{service[4:20]}"}) == by_service
    assert await kept({"actor": f"service_token:{service[4:19]}"}) == []  # not a prefix match either
    assert await kept({"actor": f"service_token:stk_{service[4:19]}"}) == []

    about_account = [n for n in nodes if n["targetId"] == admin.account_id]
    assert about_account and await kept({"targetId": admin.account_id}) == about_account

    # since is inclusive, until exclusive; a time without an offset is UTC.
    since, until = nodes[9]["occurredAt"], nodes[3]["occurredAt"]
    assert at(nodes[9]) < at(nodes[3])
    window = [n for n in nodes if at(nodes[9]) <= at(n) < at(nodes[3])]
    assert await kept({"since": since, "until": until}) == window == nodes[4:10]
    naive = {
        "since": at(nodes[9]).replace(tzinfo=None).isoformat(),
        "until": at(nodes[3]).replace(tzinfo=None).isoformat(),
    }
    assert await kept(naive) == window
    assert await kept({"since": since}) == nodes[:10]
    assert await kept({"until": until}) == nodes[4:]

    both = {"actor": as_admin, "since": since}
    assert await kept(both) == [n for n in nodes[:10] if n["actor"] == as_admin]
    assert await kept({"action": "project.created", "actor": "cli"}) == []
    # Null fields and an empty filter leave every side open.
    assert await kept({}) == nodes
    assert await kept({"action": None, "actor": None, "targetId": None, "since": None, "until": None}) == nodes


@pytest.mark.parametrize("first", [1, 2, 5])
async def test_filtered_pages_follow_cursors_to_the_same_list(proxied, first):
    admin, _, _ = await perform_every_audited_action(proxied)
    as_admin = {"actor": f"user:{admin.user_id}"}
    whole = [edge["node"] for edge in (await filtered(proxied, admin.token, as_admin))["edges"]]
    paged = await every_page(proxied, admin.token, as_admin, first)
    assert paged == whole and len(whole) == 6
    # hasNextPage counts only matching events: a page that ends on the last match says there is no other.
    last = await filtered(proxied, admin.token, as_admin, first=6)
    assert len(last["edges"]) == 6 and last["pageInfo"]["hasNextPage"] is False


async def test_a_filter_never_reaches_another_accounts_events(proxied):
    admin, _, _ = await perform_every_audited_action(proxied)
    other = await proxied.bootstrap("Other")
    reply = await proxied.gql('mutation { createProject(name: "theirs") { id } }', token=other.token)
    assert reply.errors == [], reply.body
    # The attack would work if the filter were the only scope: the other account's log has these events.
    their_actor, their_target = f"user:{other.user_id}", other.user_id
    assert len((await filtered(proxied, other.token, {"actor": their_actor}))["edges"]) == 1
    assert len((await filtered(proxied, other.token, {"targetId": their_target}))["edges"]) == 1
    for only in ({"actor": their_actor}, {"targetId": their_target}, {"targetId": other.account_id}):
        assert (await filtered(proxied, admin.token, only))["edges"] == [], only
    # cli events are in both logs; each account sees only its own.
    mine_by_cli = (await filtered(proxied, admin.token, {"actor": "cli"}))["edges"]
    theirs_by_cli = (await filtered(proxied, other.token, {"actor": "cli"}))["edges"]
    assert len(mine_by_cli) == 4 and len(theirs_by_cli) == 2
    assert {e["node"]["id"] for e in mine_by_cli}.isdisjoint(e["node"]["id"] for e in theirs_by_cli)

    # A cursor stays bound to its account with a filter too; the account's own cursor works beside it.
    their_cursor = (await filtered(proxied, other.token, {"actor": "cli"}, first=1))["pageInfo"]["endCursor"]
    own_cursor = (await filtered(proxied, admin.token, {"actor": "cli"}, first=1))["pageInfo"]["endCursor"]
    assert len((await filtered(proxied, admin.token, {"actor": "cli"}, after=own_cursor))["edges"]) == 3
    reply = await proxied.gql(
        FILTERED, {"after": their_cursor, "filter": {"actor": "cli"}}, token=admin.token, headers=OFFICE
    )
    assert reply.codes == ["BAD_USER_INPUT"] and reply.data["account"]["auditLog"] is None


@pytest.mark.parametrize(
    ("only", "message"),
    [
        ({"action": ""}, "filter.action must be 1 to 255 characters"),
        ({"actor": "x" * 256}, "filter.actor must be 1 to 255 characters"),
        ({"targetId": ""}, "filter.targetId must be 1 to 255 characters"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "filter.until must be later than"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "filter.until must be later than"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "filter.since is out of range"),
    ],
)
async def test_a_filter_that_cannot_mean_anything_is_bad_user_input(server, only, message):
    admin = await server.bootstrap()
    reply = await server.gql(FILTERED, {"filter": only}, token=admin.token)
    assert reply.status == 200
    assert reply.codes == ["BAD_USER_INPUT"], reply.body
    assert reply.errors[0]["message"].startswith(message), reply.body
    assert reply.data["account"]["auditLog"] is None
    # The same filter with usable values answers.
    reply = await server.gql(FILTERED, {"filter": {"action": "user.created"}}, token=admin.token)
    assert reply.errors == [] and len(reply.data["account"]["auditLog"]["edges"]) == 1


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01T00:00:00Z", 5, "\u0000"])
async def test_a_time_that_is_not_a_time_is_refused_without_a_500(server, since):
    admin = await server.bootstrap()
    reply = await server.gql(FILTERED, {"filter": {"since": since}}, token=admin.token)
    assert reply.status in (200, 400), reply.body
    assert reply.errors and reply.data is None, reply.body
    assert "INTERNAL_SERVER_ERROR" not in reply.codes


async def test_the_filter_needs_audit_log_read_like_the_log(server):
    admin = await server.bootstrap()
    viewer = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
    # The token is valid and reaches the resolver: other fields answer.
    reply = await server.gql(
        '{ viewer { kind } account { auditLog(filter: {actor: "cli"}) { edges { cursor } } } }', token=viewer
    )
    assert reply.data["viewer"] == {"kind": "SERVICE_TOKEN"}
    assert reply.data["account"]["auditLog"] is None
    assert reply.codes == ["FORBIDDEN"] and "requires AUDIT_LOG:READ" in reply.errors[0]["message"]
    auditor = await store_service_token(server, admin.account_id, [Grant("ACCOUNT_VIEWER")])
    reply = await server.gql('{ account { auditLog(filter: {actor: "cli"}) { edges { cursor } } } }', token=auditor)
    assert reply.errors == [] and len(reply.data["account"]["auditLog"]["edges"]) == 2
