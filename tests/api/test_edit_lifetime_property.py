"""Property: no sequence of service-token changes made by an expiring service token (create, rotate,
updateServiceToken, setServiceTokenGrants, in any order, on tokens that expire before it, after it or never)
leaves a token that expires later than the caller with any (resource, access, scope) it did not hold before the
sequence; tokens the sequence made never outlive the caller at all.

The oracle is the reference permission matrix (``holdings`` of the no-escalation property test), not policy.py.
Run size: 60 sequences of up to 5 changes, each against a throwaway account of its own on one live server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api import service_token_calls as calls
from tests.api.test_graphql import create_project
from tests.api.test_requires_property import FUZZ_SETTINGS, as_input, grant_sets, holdings
from tests.api.test_set_service_token_grants import SET
from tests.conftest import store_service_token
from tokengate.core.catalog import CATALOG
from tokengate.core.policy import Grant

EXAMPLES = 60
PLAN = "ENTERPRISE_PLUS"
PLAN_SETS = frozenset(CATALOG.sets_for_plan(PLAN))  # what the plan allows on service tokens (not the subject here)
ROTATE = "mutation($id: ID!, $revoke: Int) { rotateServiceToken(id: $id, revokeOldInSeconds: $revoke) { secret } }"
# When a token expires, relative to the calling token: never, before it, with it, after it.
EXPIRIES = (None, -timedelta(minutes=30), timedelta(0), timedelta(days=1))
OPERATIONS = ("create", "rotate", "update", "set")


async def service_tokens(server: Any, account_id: str) -> dict[str, tuple[datetime | None, list[Grant]]]:
    """Every usable service token of the account: its expiry and grants, as stored."""
    rows = await server.pool.fetch(
        "SELECT id, expires_at FROM tokens WHERE account_id = $1 AND kind = 'service' AND state = 'active'"
        " AND (expires_at IS NULL OR expires_at > now())",
        account_id,
    )
    grants: dict[str, list[Grant]] = {row["id"]: [] for row in rows}
    for row in await server.pool.fetch(
        "SELECT token_id, permission_set, all_projects, project_ids FROM grants WHERE token_id = ANY($1)", list(grants)
    ):
        grants[row["token_id"]].append(Grant(row["permission_set"], row["all_projects"], tuple(row["project_ids"])))
    return {row["id"]: (row["expires_at"], grants[row["id"]]) for row in rows}


def test_no_sequence_of_edits_by_an_expiring_token_outlives_it_with_more_power(live_server):
    live = live_server
    seen = {"done": 0, "refused": 0, "outliving targets": 0}
    counter = iter(range(10**9))
    step = st.tuples(
        st.sampled_from(OPERATIONS),
        st.integers(min_value=0, max_value=20),  # which token (of those made so far)
        st.integers(min_value=0, max_value=3),  # grants: an index into the example's grant sets
        st.sampled_from(EXPIRIES),  # for create
        st.sampled_from((None, 0)),  # for rotate: keep the old token, or end it now
    )

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(
        targets=st.lists(st.tuples(st.integers(min_value=0, max_value=3), st.sampled_from(EXPIRIES)), max_size=3),
        steps=st.lists(step, min_size=1, max_size=5),
        data=st.data(),
    )
    def property_holds(targets, steps, data) -> None:
        server = live.server
        admin = live.run(server.bootstrap(f"Lifetimes{next(counter)}", PLAN))
        projects = [live.run(create_project(server, admin.token, f"p{i}")) for i in range(2)]
        on_tokens = grant_sets(projects).map(lambda grants: [g for g in grants if g.permission_set in PLAN_SETS])
        sets = [data.draw(on_tokens, label=f"grant set {i}") for i in range(4)]
        bound = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
        actor = live.run(store_service_token(server, admin.account_id, [Grant("ACCOUNT_ADMIN")], expires_at=bound))
        ids: list[str] = []
        for grants_index, offset in targets:  # made by a person: not bounded by the actor
            expires_at = None if offset is None else (bound + offset).isoformat()
            made = live.run(calls.created(server, admin.token, "t", as_input(sets[grants_index]), expiresAt=expires_at))
            ids.append(made.id)
        before = live.run(service_tokens(server, admin.account_id))

        for operation, pick, grants_index, offset, revoke in steps:
            grants = as_input(sets[grants_index])
            if operation == "create" or not ids:
                expires_at = None if offset is None else (bound + offset).isoformat()
                reply = live.run(calls.create(server, actor, "made", grants, expiresAt=expires_at))
                made = (reply.data or {}).get("createServiceToken")
                if made:
                    ids.append(made["serviceToken"]["id"])
            elif operation == "rotate":
                reply = live.run(server.gql(ROTATE, {"id": ids[pick % len(ids)], "revoke": revoke}, token=actor))
                if reply.data and reply.data.get("rotateServiceToken"):
                    server.issued.append(reply.data["rotateServiceToken"]["secret"])
            elif operation == "update":
                reply = live.run(server.gql(calls.UPDATE, {"id": ids[pick % len(ids)], "grants": grants}, token=actor))
            else:
                reply = live.run(server.gql(SET, {"id": ids[pick % len(ids)], "grants": grants}, token=actor))
            assert reply.status == 200 and "INTERNAL_SERVER_ERROR" not in reply.codes, reply.body
            seen["refused" if reply.errors else "done"] += 1

        actor_key = actor[4:20]
        for key, (expires_at, grants) in live.run(service_tokens(server, admin.account_id)).items():
            if key == actor_key or (expires_at is not None and expires_at <= bound):
                continue
            seen["outliving targets"] += 1
            held_before = holdings(before[key][1], None, projects) if key in before else set()
            beyond = holdings(grants, None, projects) - held_before
            assert not beyond, (targets, sets, steps, key, expires_at, grants, sorted(beyond)[:5])

    property_holds()
    assert seen["done"] > 0 and seen["refused"] > 0 and seen["outliving targets"] > 0, seen
