"""Persisted queries through HTTP: Apollo's automatic persisted queries (the round trip Apollo Client's link
makes, over POST and GET), and a server in trusted-documents mode that runs listed documents only."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Server, make_config, start_server
from tokengate.core.trusted_documents import document_hash, parse_manifest

GR = "application/graphql-response+json"
VIEWER = "query Viewer { viewer { kind } }"
NOT_FOUND = {"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]}


def persisted(sha256_hash: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256_hash}}


async def post(server: Server, body: dict[str, Any], token: str | None, accept: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if accept is not None:
        headers["Accept"] = accept
    async with server.session.post(server.url + "/graphql", data=json.dumps(body), headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def get(server: Server, params: dict[str, str], token: str) -> tuple[int, Any]:
    status, text, _ = await server.get("/graphql", params=params, headers={"Authorization": f"Bearer {token}"})
    return status, json.loads(text)


async def test_apq_round_trip_miss_register_hit_over_post_and_get(server):
    admin = await server.bootstrap()
    sha = document_hash(VIEWER)
    # A miss: the exact answer Apollo Client's persisted query link retries on (no data entry).
    assert await post(server, {"extensions": persisted(sha)}, admin.token) == (200, NOT_FOUND)
    assert await post(server, {"extensions": persisted(sha)}, admin.token, GR) == (400, NOT_FOUND)
    status, body = await get(server, {"extensions": json.dumps(persisted(sha))}, admin.token)
    assert (status, body) == (200, NOT_FOUND)
    # The retry with the text registers it, and answers.
    status, body = await post(server, {"query": VIEWER, "extensions": persisted(sha)}, admin.token)
    assert (status, body) == (200, {"data": {"viewer": {"kind": "USER"}}})
    # Hits: the hash alone, over POST and over GET (a query, so GET may carry it).
    assert await post(server, {"extensions": persisted(sha)}, admin.token) == (
        200,
        {"data": {"viewer": {"kind": "USER"}}},
    )
    status, body = await get(server, {"extensions": json.dumps(persisted(sha)), "operationName": "Viewer"}, admin.token)
    assert (status, body) == (200, {"data": {"viewer": {"kind": "USER"}}})


async def test_a_persisted_mutation_runs_over_post_only(server):
    admin = await server.bootstrap()
    mutation = 'mutation { createProject(name: "by hash") { name } }'
    sha = document_hash(mutation)
    status, body = await post(server, {"query": mutation, "extensions": persisted(sha)}, admin.token)
    assert status == 200 and body["data"]["createProject"]["name"] == "by hash"
    status, body = await get(server, {"extensions": json.dumps(persisted(sha))}, admin.token)
    assert status == 405 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 1


async def test_a_hash_that_does_not_match_its_text_or_is_no_hash_is_refused_and_not_registered(server):
    admin = await server.bootstrap()
    other = document_hash("{ account { id } }")
    status, body = await post(server, {"query": VIEWER, "extensions": persisted(other)}, admin.token)
    assert status == 400 and body["errors"][0]["message"] == "provided sha does not match query"
    assert await post(server, {"extensions": persisted(other)}, admin.token) == (200, NOT_FOUND)
    for bad in [{"version": 2, "sha256Hash": other}, {"version": 1, "sha256Hash": "ABC"}, {"version": 1}, "x"]:
        status, body = await post(server, {"query": VIEWER, "extensions": {"persistedQuery": bad}}, admin.token)
        assert status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST", bad


async def test_an_anonymous_sender_registers_only_what_it_may_run(server):
    admin = await server.bootstrap()
    private = "{ account { name } }"
    sha = document_hash(private)
    # Without credentials the document does not run, so its text is not kept...
    status, body = await post(server, {"query": private, "extensions": persisted(sha)}, None)
    assert status == 401 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await post(server, {"extensions": persisted(sha)}, admin.token) == (200, NOT_FOUND)
    # ...nor one that does not even parse (a bounded store is not a free text store).
    junk = "{ " * 10
    assert (await post(server, {"query": junk, "extensions": persisted(document_hash(junk))}, None))[0] == 401
    assert await post(server, {"extensions": persisted(document_hash(junk))}, admin.token) == (200, NOT_FOUND)
    # A document anyone may run (introspection) is registered by an anonymous sender.
    typename = "{ __typename }"
    public = await post(server, {"query": typename, "extensions": persisted(document_hash(typename))}, None)
    assert public == (200, {"data": {"__typename": "Query"}})
    assert await post(server, {"extensions": persisted(document_hash(typename))}, None) == public
    # The same private text with credentials registers; by hash it then still needs them.
    assert (await post(server, {"query": private, "extensions": persisted(sha)}, admin.token))[0] == 200
    assert (await post(server, {"extensions": persisted(sha)}, None))[0] == 401
    assert await post(server, {"extensions": persisted(sha)}, admin.token) == (
        200,
        {"data": {"account": {"name": "Acme"}}},
    )


def test_the_apq_store_is_bounded_in_entries_and_characters():
    from tokengate.graphql.engine.documents import PersistedQueries

    store = PersistedQueries(max_entries=3, max_characters=100)
    for number in range(5):
        store.register(f"h{number}", f"{{ a{number} }}")
    assert len(store) == 3 and store.text("h0") is None and store.text("h4") == "{ a4 }"
    store.register("big", "x" * 90)
    assert store.characters <= 100 and store.text("big") == "x" * 90
    store.register("huge", "x" * 101)
    assert store.text("huge") is None


MANIFEST_TEXT = "query Viewer { viewer { kind } }"
LISTED_MUTATION = "mutation Project($name: String!) { createProject(name: $name) { name } }"


def apollo_manifest(*bodies: str) -> str:
    operations = [{"id": document_hash(body), "name": "x", "type": "query", "body": body} for body in bodies]
    return json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations})


async def trusted_server(database, tmp_path, manifest: str):
    config = make_config(tmp_path, trusted_documents=parse_manifest(manifest))
    async for running in start_server(database, config):
        yield running


async def test_a_trusted_documents_server_runs_listed_documents_and_refuses_the_rest(server, database, tmp_path):
    admin = await server.bootstrap()
    unlisted = 'mutation { createProject(name: "not listed") { name } }'
    # The attack works on an ordinary server: any document runs.
    assert (await post(server, {"query": "{ account { name } }"}, admin.token))[1]["data"] == {
        "account": {"name": "Acme"}
    }
    async for trusted in trusted_server(database, tmp_path, apollo_manifest(MANIFEST_TEXT, LISTED_MUTATION)):
        # Listed: by hash alone (Apollo's manifest clients), and by its exact text.
        viewer = {"data": {"viewer": {"kind": "USER"}}}
        assert await post(trusted, {"extensions": persisted(document_hash(MANIFEST_TEXT))}, admin.token) == (
            200,
            viewer,
        )
        assert await post(trusted, {"query": MANIFEST_TEXT}, admin.token) == (200, viewer)
        status, body = await post(
            trusted, {"documentId": document_hash(LISTED_MUTATION), "variables": {"name": "listed"}}, admin.token
        )
        assert status == 200 and body == {"data": {"createProject": {"name": "listed"}}}
        # Unlisted: any other text, even a valid one or one whitespace away, and any other hash.
        for text in [unlisted, "{ account { name } }", MANIFEST_TEXT + " ", "{ __typename }"]:
            status, body = await post(trusted, {"query": text}, admin.token, GR)
            assert status == 400 and "data" not in body, text
            assert body["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST", text
        assert await post(trusted, {"extensions": persisted(document_hash(unlisted))}, admin.token) == (200, NOT_FOUND)
        # APQ registration is off: sending an unlisted text with its hash does not make the hash run.
        await post(trusted, {"query": unlisted, "extensions": persisted(document_hash(unlisted))}, admin.token)
        assert await post(trusted, {"extensions": persisted(document_hash(unlisted))}, admin.token) == (200, NOT_FOUND)
    projects = await server.pool.fetch("SELECT name FROM projects")
    assert [row["name"] for row in projects] == ["listed"]


async def test_a_trusted_documents_server_reads_the_flat_map_of_hive_and_relay(database, tmp_path):
    manifest = json.dumps({"viewer-v1": MANIFEST_TEXT})
    async for trusted in trusted_server(database, tmp_path, manifest):
        admin = await trusted.bootstrap()
        assert await post(trusted, {"documentId": "viewer-v1"}, admin.token) == (
            200,
            {"data": {"viewer": {"kind": "USER"}}},
        )
        assert await post(trusted, {"documentId": "viewer-v2"}, admin.token) == (200, NOT_FOUND)
