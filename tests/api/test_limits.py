"""Abuse limits answer with a GraphQL error or a 4xx, never a 5xx, and leave introspection working."""

from __future__ import annotations

import json
import logging

from graphql import get_introspection_query

from tokengate.auth.gate import MAX_AUTHORIZATION_LENGTH
from tokengate.graphql.engine.document_limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from tokengate.graphql.schema.audit_log import MAX_PAGE_SIZE
from tokengate.http.graphql import MAX_BODY_BYTES


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


async def test_an_anonymous_megabyte_query_is_refused_unparsed_while_healthz_answers(server, monkeypatch):
    import asyncio

    from graphql import parse
    from graphql.language.lexer import Lexer

    from tokengate.graphql.engine.document_limits import ANONYMOUS_MAX_BODY_BYTES, ANONYMOUS_MAX_LENGTH

    documents = megabyte_documents()
    # The attack is real: every document fits in a body the server accepts, is far longer than what an
    # anonymous sender may have parsed, and is valid GraphQL that a parse without limits walks to its end
    # (the "fields" one costs seconds whole: a tenth of it shows the walk).
    fields = documents["fields"]
    tenth = parse(fields[: len(fields) // 10] + "}")
    assert len(tenth.definitions[0].selection_set.selections) == len(fields) // 10 // len("__typename ")
    for name in ("comment", "string"):
        assert parse(documents[name]).definitions, name
    for name, document in documents.items():
        assert len(json.dumps({"query": document})) <= MAX_BODY_BYTES and len(document) > ANONYMOUS_MAX_LENGTH, name

    # Every text the server hands to graphql-core's lexer while the attacks run (a spy: it lexes as before).
    lexed: list[int] = []
    lex = Lexer.__init__

    def spy(self, source, *args, **kwargs):
        lexed.append(len(source.body))
        lex(self, source, *args, **kwargs)

    monkeypatch.setattr(Lexer, "__init__", spy)

    async def health() -> list[int]:
        return [(await server.get("/healthz"))[0] for _ in range(10)]

    async def attack(body: bytes, chunked: bool) -> tuple[int, str]:
        async def chunks():  # no Content-Length: the size is known only once the body is read
            for start in range(0, len(body), 64 * 1024):
                yield body[start : start + 64 * 1024]

        data = chunks() if chunked else body
        headers = {"Content-Type": "application/json"}
        async with server.session.post(server.url + "/graphql", data=data, headers=headers) as response:
            return response.status, await response.text()

    for name, document in documents.items():
        body = json.dumps({"query": document}).encode()
        # With its Content-Length: refused before a byte of the body is read.
        (status, text), health_statuses = await asyncio.gather(attack(body, chunked=False), health())
        assert status == 401 and f"a body is at most {ANONYMOUS_MAX_BODY_BYTES} bytes" in text, (name, text[:300])
        assert health_statuses == [200] * 10, name
        # Chunked: read, then found too long to be a public document, before any parse.
        (status, text), health_statuses = await asyncio.gather(attack(body, chunked=True), health())
        assert status == 401 and '"UNAUTHENTICATED"' in text, (name, status, text[:300])
        assert health_statuses == [200] * 10, name
    # Not a character of a megabyte reached the lexer.
    assert all(length <= ANONYMOUS_MAX_LENGTH for length in lexed), lexed


async def test_a_megabyte_query_with_a_token_is_refused_by_length_not_parsed(server):
    seeded = await server.bootstrap()
    for name, document in megabyte_documents().items():
        reply = await server.gql(document, token=seeded.token)
        assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"], name
        assert "longer than" in reply.errors[0]["message"]
