"""Abuse limits answer with a GraphQL error or a 4xx, never a 5xx, and leave introspection working."""

from __future__ import annotations

import json
import logging

from graphql import get_introspection_query

from tokengate.api.audit_log import MAX_PAGE_SIZE
from tokengate.api.limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tokengate.doors.graphql import MAX_BODY_BYTES
from tokengate.gate import MAX_AUTHORIZATION_LENGTH


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


async def test_codegen_introspection_with_every_option_works_with_and_without_credentials(server):
    # graphql-codegen and GraphiQL ask for all of these; the introspection query nests ofType ~8 levels deep.
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    seeded = await server.bootstrap()
    for token in [None, seeded.token]:
        reply = await server.gql(query, token=token)
        assert reply.status == 200 and reply.errors == [], reply.body
        assert reply.data["__schema"]["queryType"]["name"] == "Query"


async def test_exactly_the_alias_limit_is_allowed(server):
    seeded = await server.bootstrap()
    query = "{ " + " ".join(f"a{i}: viewer {{ kind }}" for i in range(MAX_ALIASES)) + " }"
    reply = await server.gql(query, token=seeded.token)
    assert reply.errors == [] and len(reply.data) == MAX_ALIASES


async def test_batched_requests_are_refused_with_400(server):
    seeded = await server.bootstrap()
    batch = [{"query": "{ viewer { kind } }"}, {"query": "{ viewer { kind } }"}]
    async with server.session.post(
        server.url + "/graphql", json=batch, headers={"Authorization": f"Bearer {seeded.token}"}
    ) as response:
        body = await response.json()
    assert response.status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "batched requests are not supported" in body["errors"][0]["message"]


async def test_body_over_one_mebibyte_is_413_and_just_under_is_read(server):
    seeded = await server.bootstrap()
    headers = {"Authorization": f"Bearer {seeded.token}", "Content-Type": "application/json"}
    query = "{ viewer { kind } }"
    for padding, status in [(MAX_BODY_BYTES - 100, 200), (MAX_BODY_BYTES + 1, 413), (10 * 1024 * 1024, 413)]:
        body = json.dumps({"query": query, "variables": {"pad": "x" * padding}}).encode()
        async with server.session.post(server.url + "/graphql", data=body, headers=headers) as response:
            assert response.status == status, padding
    # A 10 MB name is refused by size before anything reads it; a 100 kB one reaches the name rule.
    big = json.dumps(
        {"query": "mutation($n: String!) { createProject(name: $n) { id } }", "variables": {"n": "x" * 10**7}}
    )
    async with server.session.post(server.url + "/graphql", data=big, headers=headers) as response:
        assert response.status == 413
    reply = await server.gql(
        "mutation($n: String!) { createProject(name: $n) { id } }", {"n": "x" * 10**5}, seeded.token
    )
    assert reply.codes == ["BAD_USER_INPUT"]


async def test_authorization_header_over_the_limit_is_401_and_never_reaches_the_database(server):
    seeded = await server.bootstrap()
    for header in [
        "Bearer " + "a" * MAX_AUTHORIZATION_LENGTH,
        f"Bearer {seeded.token} " + "x" * MAX_AUTHORIZATION_LENGTH,  # a real token, padded past the limit
    ]:
        reply = await server.gql("{ viewer { kind } }", headers={"Authorization": header})
        assert reply.status == 401 and reply.codes == ["UNAUTHENTICATED"]
        assert reply.errors[0]["message"] == "malformed Authorization header"
        status, _, response_headers = await server.get("/auth/check", headers={"Authorization": header})
        assert status == 401 and response_headers["WWW-Authenticate"] == "Bearer"


async def test_header_past_the_http_parser_limit_is_a_431_in_json_and_its_text_is_not_logged(server, caplog):
    # aiohttp's parser refuses a header field over 8190 bytes before any handler runs, and logs its error, which
    # quotes the start of the header: the token. The server's log filter keeps only the kind of error. The
    # answer is 431 (Request Header Fields Too Large) in JSON like every error, and does not quote it either.
    seeded = await server.bootstrap()
    with caplog.at_level(logging.DEBUG):
        async with server.session.post(
            server.url + "/graphql",
            json={"query": "{ viewer { kind } }"},
            headers={"Authorization": f"Bearer {seeded.token} " + "x" * 9000},
        ) as response:
            assert response.status == 431 and response.content_type == "application/json"
            body = await response.json()
            assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
            assert seeded.token[:12] not in json.dumps(body)
    refused = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.getMessage() for r in refused] == [
        "refused a malformed HTTP request from 127.0.0.1: LineTooLong (HTTP 400)"
    ]
    assert refused[0].exc_info is None and seeded.token[:20] not in caplog.text
    assert (await server.gql("{ viewer { kind } }", token=seeded.token)).status == 200


async def test_audit_log_first_is_capped(server):
    seeded = await server.bootstrap()
    query = "query($first: Int) { account { auditLog(first: $first) { edges { cursor } } } }"
    for first in [0, -1, MAX_PAGE_SIZE + 1, 2**31 - 1]:
        reply = await server.gql(query, {"first": first}, seeded.token)
        assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"], first
        assert reply.data == {"account": {"auditLog": None}}
    reply = await server.gql(query, {"first": MAX_PAGE_SIZE}, seeded.token)
    assert reply.errors == []
    reply = await server.gql(query, {"first": 2**31}, seeded.token)  # not an Int at all
    assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"] and reply.data is None


def megabyte_documents() -> dict[str, str]:
    """Documents just under the body limit that an unbounded parse spends seconds on."""
    size = MAX_BODY_BYTES - 1024
    return {
        "fields": "{ " + "__typename " * (size // 11) + "}",
        "comment": "#" + "x" * size + "\n{ __typename }",
        "string": '{ __type(name: "' + "x" * size + '") { name } }',
    }


async def test_an_anonymous_megabyte_query_is_refused_fast_while_healthz_answers(server):
    import asyncio
    import time

    from graphql import parse

    documents = megabyte_documents()
    # The attack is real: a tenth of the "fields" document already costs an unbounded parse far more than
    # the whole refusal may take, and every document fits in a body the server accepts.
    started = time.perf_counter()
    parse(documents["fields"][: len(documents["fields"]) // 10] + "}")
    assert time.perf_counter() - started > 0.1
    for name, document in documents.items():
        body = json.dumps({"query": document})
        assert len(body) <= MAX_BODY_BYTES, name

        async def health() -> list[float]:
            times = []
            for _ in range(10):
                begun = time.perf_counter()
                status, _, _ = await server.get("/healthz")
                assert status == 200
                times.append(time.perf_counter() - begun)
            return times

        async def attack(body: str = body) -> tuple[int, float]:
            begun = time.perf_counter()
            async with server.session.post(
                server.url + "/graphql", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                return response.status, time.perf_counter() - begun

        (status, elapsed), health_times = await asyncio.gather(attack(), health())
        assert status == 401, name
        assert elapsed < 0.1, (name, elapsed)
        assert max(health_times) < 0.1, (name, health_times)


async def test_a_megabyte_query_with_a_token_is_refused_by_length_not_parsed(server):
    seeded = await server.bootstrap()
    for name, document in megabyte_documents().items():
        reply = await server.gql(document, token=seeded.token)
        assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"], name
        assert "longer than" in reply.errors[0]["message"]
