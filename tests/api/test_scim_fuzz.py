"""Property: whatever an identity provider sends to /scim/v2 (any JSON body for POST, PUT and PATCH, any text in
the query parameters), the answer is a SCIM document (a resource, a list, or RFC 7644's error schema) with a
status below 500, and a refused request changes nothing.

Run size: 250 generated requests against one account on a server of its own (``live_server``), each body built
from the User schema's attribute names, PATCH's words and arbitrary JSON.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api.scim_calls import ERROR, PATCH_OP, USER_SCHEMA, ScimReply, provisioned, scim, scim_token
from tests.api.test_requires_property import FUZZ_SETTINGS

EXAMPLES = 250
NAMES = [
    "userName",
    "name",
    "givenName",
    "name.givenName",
    "displayName",
    "emails",
    "value",
    "type",
    "primary",
    "active",
    "externalId",
    "schemas",
    "id",
    "meta",
    "Operations",
    "op",
    "path",
    'emails[type eq "work"].value',
    "urn:ietf:params:scim:schemas:core:2.0:User:userName",
    "add",
    "replace",
    "remove",
    "title",
]
WORDS = st.one_of(st.sampled_from(NAMES), st.text(max_size=12))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), WORDS, st.sampled_from(["True", "x@acme.test"])
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WORDS, inner, max_size=5), max_leaves=20
)
# Plausible values too, so that requests also get through (and change what later ones start from).
PLAUSIBLE = st.one_of(
    st.emails().map(lambda email: email[:300]),
    st.booleans(),
    st.fixed_dictionaries({}, optional={"givenName": st.text(min_size=1, max_size=8), "formatted": WORDS}),
    st.lists(
        st.fixed_dictionaries({"value": st.emails()}, optional={"type": WORDS, "primary": st.booleans()}), max_size=2
    ),
    st.text(min_size=1, max_size=10),
)
OPERATION = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "replace", "remove", "Replace", "move"]) | WORDS},
    optional={"path": st.sampled_from(NAMES) | st.text(max_size=20), "value": PLAUSIBLE | JSON},
)
SIMPLE_OPERATION = st.fixed_dictionaries(
    {
        "op": st.sampled_from(["add", "replace", "remove"]),
        "path": st.sampled_from(["displayName", "name.givenName", "externalId", "active", "emails", "name"]),
        "value": PLAUSIBLE,
    }
)
PATCH = st.one_of(
    st.builds(lambda ops: {"schemas": [PATCH_OP], "Operations": ops}, st.lists(OPERATION, max_size=3)),
    st.builds(
        lambda ops: {"schemas": [PATCH_OP], "Operations": ops}, st.lists(SIMPLE_OPERATION, min_size=1, max_size=2)
    ),
    JSON,
)
USER = st.one_of(
    st.builds(
        lambda attributes: {"schemas": [USER_SCHEMA], **attributes}, st.dictionaries(st.sampled_from(NAMES), JSON)
    ),
    st.builds(
        lambda user_name, attributes: {"schemas": [USER_SCHEMA], "userName": user_name, **attributes},
        st.emails().map(lambda email: email[:300]),
        st.dictionaries(st.sampled_from(NAMES[2:]), PLAUSIBLE, max_size=4),
    ),
    JSON,
)
QUERY = st.dictionaries(
    st.sampled_from(["filter", "startIndex", "count", "attributes", "excludedAttributes"]),
    st.one_of(st.text(max_size=30), st.sampled_from(['userName eq "x@acme.test"', "-1", "0", "9" * 30])),
    max_size=3,
)


def test_no_request_to_scim_is_answered_with_a_server_error(live_server):
    live = live_server
    server = live.server
    admin = live.run(server.bootstrap())
    _, secret = live.run(scim_token(server, admin.token))
    target = live.run(provisioned(server, secret, "target@acme.test"))["id"]
    seen: dict[str, int] = {}

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES)
    @given(
        request=st.one_of(
            st.tuples(st.just("POST"), st.just("/Users"), USER),
            st.tuples(st.just("PUT"), st.just("/Users/" + target), USER),
            st.tuples(st.just("PATCH"), st.just("/Users/" + target), PATCH),
            st.tuples(st.just("GET"), QUERY, st.none()),
        )
    )
    def property_holds(request: tuple[str, Any, Any]) -> None:
        method, where, body = request
        before = live.run(state(server, secret, target))
        if method == "GET":
            reply = live.run(get(server, secret, "/Users", where))
        else:
            reply = live.run(scim(server, method, where, secret, body))
        assert reply.status < 500, (method, where, body, reply.body)
        assert isinstance(reply.body, dict) and reply.body.get("schemas"), (method, where, body, reply.body)
        if reply.status >= 400:
            assert reply.body["schemas"] == [ERROR] and reply.body["status"] == str(reply.status), reply.body
            assert live.run(state(server, secret, target)) == before, (method, where, body, reply.body)
        seen[f"{method} {reply.status}"] = seen.get(f"{method} {reply.status}", 0) + 1

    property_holds()
    print(json.dumps(seen, sort_keys=True))
    assert any(key.endswith(" 400") for key in seen) and any(key.endswith(" 200") for key in seen), seen


async def state(server, token: str, target: str) -> tuple[int, Any]:
    """How many members the account has, and the target member as SCIM shows it."""
    members = await server.pool.fetchval("SELECT count(*) FROM users")
    return members, (await scim(server, "GET", "/Users/" + target, token)).body


async def get(server, token: str, path: str, params: dict[str, str]) -> ScimReply:
    headers = {"Authorization": f"Bearer {token}"}
    async with server.session.get(server.url + "/scim/v2" + path, params=params, headers=headers) as response:
        text = await response.text()
        return ScimReply(response.status, json.loads(text) if text else None, response.headers)
