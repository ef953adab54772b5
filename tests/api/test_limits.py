"""Abuse limits answer with a GraphQL error or a 4xx, never a 5xx, and leave introspection working."""

from __future__ import annotations

from graphql import get_introspection_query

from tokengate.api.schema import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS


async def test_full_introspection_query_works_without_credentials(server):
    reply = await server.gql(get_introspection_query(descriptions=True, directive_is_repeatable=True))
    assert reply.status == 200 and reply.errors == []
    directives = {d["name"] for d in reply.data["__schema"]["directives"]}
    assert "requires" in directives


async def test_too_many_aliases(server):
    seeded = await server.bootstrap()
    query = "{ " + " ".join(f"a{i}: viewer {{ kind }}" for i in range(MAX_ALIASES + 1)) + " }"
    reply = await server.gql(query, token=seeded.token)
    assert reply.status == 200 and reply.data is None
    assert reply.codes == ["BAD_USER_INPUT"] and "aliases" in reply.errors[0]["message"]


async def test_too_many_tokens(server):
    seeded = await server.bootstrap()
    query = "{ viewer { " + "kind " * MAX_TOKENS + "} }"
    reply = await server.gql(query, token=seeded.token)
    assert reply.status == 200 and reply.data is None and reply.codes == ["BAD_USER_INPUT"]


async def test_deepest_real_query_is_within_the_depth_limit(server):
    seeded = await server.bootstrap()
    reply = await server.gql("{ viewer { account { members { grants { projects { id } } } } } }", token=seeded.token)
    assert reply.errors == []


async def test_too_deep_is_refused(server):
    # The schema has no cycles, so depth beyond the limit comes only from crafted documents; the limiter
    # reports them alongside the unknown-field errors.
    seeded = await server.bootstrap()
    query = "{ viewer " + "{ account " * MAX_DEPTH + "{ id }" + " }" * MAX_DEPTH + " }"
    reply = await server.gql(query, token=seeded.token)
    assert reply.status == 200 and reply.data is None
    assert any("exceeds maximum operation depth" in e["message"] for e in reply.errors)
    assert set(reply.codes) == {"BAD_USER_INPUT"}
