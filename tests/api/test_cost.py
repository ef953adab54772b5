"""The cost budget per request, through HTTP: an operation over it is refused with its cost and the budget
before any resolver runs; cost points per payer; heavy documents prepared off the event loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graphql import GraphQLInt, Undefined, coerce_input_value, get_introspection_query

from tests.api.query_log import QueryLog
from tests.api.service_token_calls import REPORT
from tests.api.test_overload import freeze, serve
from tests.conftest import make_config, start_server, store_service_token
from tokengate.core.limits import Limits, Rate
from tokengate.core.policy import Grant
from tokengate.core.trusted_documents import parse_manifest
from tokengate.graphql.engine.offload import WORKER
from tokengate.graphql.schema import queries as query_resolvers

CHECKS = "query($r: [CheckInput!]!) { checks(requests: $r) { allowed reason } }"
REQUESTS = [{"resource": "JOBS", "access": "READ"}] * 1000
BUDGET = Limits().cost_budget


def aliased(field: str, count: int, variables: str = "") -> str:
    return f"query{variables} {{ " + " ".join(f"a{i}: {field}" for i in range(count)) + " }"


@pytest.fixture
def decisions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every decision the `check`/`checks` resolvers make: a resolver that records it was called."""
    made: list[str] = []
    real = query_resolvers.decide

    def recording(principal, resource, access, project_id):
        made.append(resource)
        return real(principal, resource, access, project_id)

    monkeypatch.setattr(query_resolvers, "decide", recording)
    return made


async def test_an_operation_over_the_budget_is_refused_before_any_resolver_runs(server, decisions):
    seeded = await server.bootstrap()
    # The resolver is reached and works: one checks of 1,000 requests is within the budget.
    reply = await server.gql(CHECKS, {"r": REQUESTS}, token=seeded.token)
    assert reply.errors == [] and len(reply.data["checks"]) == 1000 and len(decisions) == 1000
    decisions.clear()
    # Fifty aliases of it (the 50,000-decision attack) are refused whole, and nothing is decided.
    attack = aliased("checks(requests: $r) { allowed reason }", 50, "($r: [CheckInput!]!)")
    reply = await server.gql(attack, {"r": REQUESTS}, token=seeded.token)
    assert reply.status == 200 and reply.data is None and reply.codes == ["BAD_USER_INPUT"]
    extensions = reply.errors[0]["extensions"]
    assert extensions == {"code": "BAD_USER_INPUT", "cost": 150_000, "budget": BUDGET}
    assert "over the budget" in reply.errors[0]["message"]
    assert decisions == []


async def test_an_over_budget_listing_runs_no_query(database, tmp_path):
    queries = QueryLog()
    async for server in serve(database, tmp_path, Limits(), pool_setup=queries.watch):
        seeded = await server.bootstrap()
        listing = "serviceTokens { id name grants { permissionSet projects { id name } } }"
        assert (await server.gql("{ account { " + listing + " } }", token=seeded.token)).errors == []
        queries.clear()
        many = "{ account { " + " ".join(f"a{i}: {listing}" for i in range(20)) + " } }"
        reply = await server.gql(many, token=seeded.token)
        assert reply.codes == ["BAD_USER_INPUT"] and reply.errors[0]["extensions"]["cost"] > BUDGET, reply.body
        assert len(queries.of_requests()) == 0


async def test_introspection_is_costed_once_in_full_and_many_aliases_are_refused(server):
    full = get_introspection_query(descriptions=True, directive_is_repeatable=True)
    assert (await server.gql(full)).errors == []
    schema = "__schema { types { name fields { name args { name } type { name ofType { name } } } } }"
    seeded = await server.bootstrap()
    # The attack of 50 aliases (16 kB in, 2 MB out): too many tokens to run without credentials, over budget with.
    assert (await server.gql(aliased(schema, 50))).status == 401
    reply = await server.gql(aliased(schema, 50), token=seeded.token)
    assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"] and reply.data is None
    assert reply.errors[0]["extensions"]["cost"] > BUDGET
    # What fits in the tokens allowed without credentials is still over budget.
    reply = await server.gql(aliased(schema, 20))
    assert reply.codes == ["BAD_USER_INPUT"] and reply.errors[0]["extensions"]["cost"] > BUDGET


async def test_leak_reports_are_costed_so_fifty_aliases_do_not_run(server):
    assert (await server.gql(REPORT, {"token": "0" * 40})).data == {"reportLeakedToken": False}
    many = aliased(f'reportLeakedToken(token: "{"0" * 40}")', 50).replace("query", "mutation", 1)
    reply = await server.gql(many)
    assert reply.codes == ["BAD_USER_INPUT"] and reply.errors[0]["extensions"]["cost"] == 25_000


async def test_page_sizes_and_list_lengths_set_the_cost(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(cost_budget=400)):
        seeded = await server.bootstrap()
        page = "query($n: Int) { account { auditLog(first: $n) { edges { node { id action } } } } }"
        # account 1, and per item of the page: auditLog, edges, node, id, action
        assert (await server.gql(page, {"n": 79}, token=seeded.token)).errors == []  # 1 + 79 * 5
        reply = await server.gql(page, {"n": 80}, token=seeded.token)
        assert reply.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "cost": 401, "budget": 400}
        assert (await server.gql(CHECKS, {"r": REQUESTS[:133]}, token=seeded.token)).errors == []
        reply = await server.gql(CHECKS, {"r": REQUESTS[:134]}, token=seeded.token)
        assert reply.errors[0]["extensions"]["cost"] == 402  # 134 requests of three points


async def test_a_payer_out_of_cost_points_gets_429_before_anything_runs(database, tmp_path, decisions):
    async for server in serve(database, tmp_path, Limits(cost=Rate(10, 20))):
        clock = freeze(server)
        greedy = await server.bootstrap("Greedy")
        quiet = await server.bootstrap("Quiet")
        requests = {"r": REQUESTS[:15]}  # 45 points: admitted on a full bucket of 20, then 20 in debt (the most)
        assert (await server.gql(CHECKS, requests, token=greedy.token)).errors == []
        decisions.clear()
        reply = await server.gql(CHECKS, requests, token=greedy.token)
        assert reply.status == 429 and reply.codes == ["RATE_LIMITED"]
        assert reply.headers["Retry-After"] == "3" and reply.headers["RateLimit-Policy"] == '"cost";q=20;w=2'
        assert decisions == []
        assert (await server.gql(CHECKS, requests, token=quiet.token)).errors == []  # its own points
        clock.now += 3
        assert (await server.gql(CHECKS, requests, token=greedy.token)).errors == []


async def test_a_large_new_document_is_validated_off_the_event_loop(server):
    seeded = await server.bootstrap()
    document = aliased("permissionSets { key name level availableOnPlan }", 50)  # 250 fields, 2.7 kB
    before = WORKER.done
    reply = await server.gql(document, token=seeded.token)
    assert reply.errors == [] and len(reply.data) == 50
    assert WORKER.done >= before + 2  # its parse and its validation
    assert (await server.gql(document, token=seeded.token)).errors == []  # seen twice: kept from now on
    before = WORKER.done
    assert (await server.gql(document, token=seeded.token)).errors == []
    assert WORKER.done == before  # parsed and validated no more


async def test_the_answer_to_an_introspection_document_is_kept(server):
    full = get_introspection_query(descriptions=True)
    first = await server.gql(full)
    second = await server.gql(full)  # the document kept from its second sighting; the answer from the first
    before = WORKER.done
    third = await server.gql(full)
    assert second.body == third.body == first.body and WORKER.done == before


async def test_a_text_sent_once_is_not_kept_and_one_sent_again_is(server):
    documents = server.runtime.documents
    for i in range(10):  # an attacker's texts: new every time, each would hold its syntax tree in memory
        assert (await server.gql(f"# {i}\n{{ __typename }}")).status == 200
    assert len(documents) == 0
    for _ in range(2):
        assert (await server.gql("{ __typename }")).status == 200
    assert len(documents) == 1


async def test_fragments_nested_past_what_validation_can_follow_are_a_client_error(server):
    seeded = await server.bootstrap()
    depth = 500
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(depth))
    document = "{ ...F0 } " + chain + f" fragment F{depth} on Query {{ __typename }}"
    reply = await server.gql(document, token=seeded.token)
    assert reply.status == 200 and reply.codes == ["BAD_USER_INPUT"], reply.body
    assert "too deeply" in reply.errors[0]["message"]


def test_the_cost_of_the_documented_queries_fits_the_budget():
    from graphql import parse

    from tokengate.graphql.engine.cost import operation_cost
    from tokengate.graphql.engine.operations import CORE_SCHEMA

    def cost(text: str, variables: dict | None = None) -> int:
        document = parse(text)
        return operation_cost(CORE_SCHEMA, document, document.definitions[0], variables)

    full = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    assert cost(full) < BUDGET < 3 * cost(full)  # GraphiQL's and codegen's fits; three of them do not
    assert cost(CHECKS, {"r": REQUESTS}) == 3000
    listing = "{ account { serviceTokens { id name grants { permissionSet allProjects projects { id name } } } } }"
    assert cost(listing) < BUDGET
    assert json.dumps(cost("{ viewer { kind } }")) == "2"


def test_a_cost_too_nested_to_follow_is_over_budget(tmp_path: Path):
    from graphql import parse

    from tokengate.graphql.engine.cost import CostUnknown, operation_cost
    from tokengate.graphql.engine.operations import CORE_SCHEMA

    depth = 3000
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(depth))
    document = parse("{ ...F0 } " + chain + f" fragment F{depth} on Query {{ __typename }}", max_tokens=10**6)
    with pytest.raises(CostUnknown):
        operation_cost(CORE_SCHEMA, document, document.definitions[0], None)


# Issue 20: a page size sent as a float variable was costed as 1 and run by graphql-core as the Int it coerces to.
PAGES = (
    "query($n: Int, $d: Int!) { account { "
    + " ".join(
        f"a{i}: serviceTokenConnection(first: $n) {{ edges {{ node {{ id name usage(days: $d) {{ day count }} }} }} }}"
        for i in range(50)
    )
    + " } }"
)


async def read_only_token_of_an_account_with_tokens(server, count: int) -> str:
    seeded = await server.bootstrap()
    for number in range(count):
        await store_service_token(server, seeded.account_id, [Grant("JOB_VIEWER")], name=f"svc{number}")
    return await store_service_token(server, seeded.account_id, [Grant("ACCOUNT_VIEWER")], name="reader")


def test_graphql_core_coerces_an_integral_float_to_an_int():
    """What the attack relies on: JSON's 100.0 (and 1e2) is a valid Int, executed as 100."""
    assert coerce_input_value(100.0, GraphQLInt) == 100 and type(coerce_input_value(1e2, GraphQLInt)) is int
    assert coerce_input_value(100.5, GraphQLInt) is Undefined


async def test_a_page_size_sent_as_a_float_costs_what_it_is_run_as(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(cost_budget=400)):
        reader = await read_only_token_of_an_account_with_tokens(server, 3)
        page = "query($n: Int) { account { serviceTokenConnection(first: $n) { edges { node { id } } } } }"
        # The precondition: the float runs as the page size it coerces to (two of the four tokens).
        reply = await server.gql(page, {"n": 2.0}, token=reader)
        assert reply.errors == [] and len(reply.data["account"]["serviceTokenConnection"]["edges"]) == 2
        audit = "query($n: Int) { account { auditLog(first: $n) { edges { node { id action } } } } }"
        for n in (80, 80.0, 8e1):  # account 1, and 80 items of five points: one over the budget, as an int
            reply = await server.gql(audit, {"n": n}, token=reader)
            assert reply.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "cost": 401, "budget": 400}, n


async def test_fifty_pages_of_usage_with_float_variables_are_refused_like_ints(server):
    reader = await read_only_token_of_an_account_with_tokens(server, 3)
    # Small, the document runs, and the floats are the Ints they coerce to: 2 tokens a page, 3 days each.
    reply = await server.gql(PAGES, {"n": 2.0, "d": 3.0}, token=reader)
    assert reply.errors == [], reply.body
    edges = reply.data["account"]["a49"]["edges"]
    assert len(edges) == 2 and len(edges[0]["node"]["usage"]) == 3
    refused = {}
    for variables in ({"n": 100, "d": 90}, {"n": 100.0, "d": 90.0}, {"n": 1e2, "d": 9e1}):
        reply = await server.gql(PAGES, variables, token=reader)
        assert reply.status == 200 and reply.data is None and reply.codes == ["BAD_USER_INPUT"], variables
        refused[json.dumps(variables)] = reply.errors[0]["extensions"]
    assert len({json.dumps(extensions) for extensions in refused.values()}) == 1, refused
    assert next(iter(refused.values()))["cost"] > BUDGET


async def test_a_trusted_document_taking_the_page_size_is_costed_on_its_coerced_variables(database, tmp_path):
    manifest = json.dumps({"pages-v1": PAGES})
    config = make_config(tmp_path, trusted_documents=parse_manifest(manifest))
    async for trusted in start_server(database, config):
        reader = await read_only_token_of_an_account_with_tokens(trusted, 3)

        async def by_id(variables: dict, server=trusted, token=reader) -> dict:
            payload = {"documentId": "pages-v1", "variables": variables}
            headers = {"Authorization": f"Bearer {token}"}
            async with server.session.post(server.url + "/graphql", json=payload, headers=headers) as response:
                assert response.status == 200
                return await response.json()

        body = await by_id({"n": 2.0, "d": 1.0})  # the precondition: it runs, with the floats as Ints
        assert "errors" not in body and len(body["data"]["account"]["a0"]["edges"]) == 2
        for variables in ({"n": 100, "d": 90}, {"n": 100.0, "d": 90.0}):
            body = await by_id(variables)
            assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and "data" not in body, variables
            assert body["errors"][0]["extensions"]["cost"] > BUDGET


def test_the_cost_is_computed_on_coerced_variables_and_defaults():
    from graphql import parse

    from tokengate.graphql.engine.cost import operation_cost
    from tokengate.graphql.engine.operations import CORE_SCHEMA

    document = parse(PAGES)
    operation = document.definitions[0]

    def cost(variables: dict) -> int:
        return operation_cost(CORE_SCHEMA, document, operation, variables)

    assert cost({"n": 100.0, "d": 90.0}) == cost({"n": 100, "d": 90}) > 100 * BUDGET
    assert cost({"n": 7.0, "d": 3.0}) == cost({"n": 7, "d": 3})
    assert cost({"d": 3}) == cost({"n": 50, "d": 3})  # absent: the argument's default page of 50
    assert cost({"n": "100", "d": True}) == cost({"d": 3.5})  # will not coerce (refused when run): no size from it
    defaulted = parse("query($n: Int = 80) { account { auditLog(first: $n) { edges { node { id } } } } }")
    assert operation_cost(CORE_SCHEMA, defaulted, defaulted.definitions[0], {}) == 1 + 80 * 4
    checks = parse(CHECKS)
    one = {"resource": "JOBS", "access": "READ"}
    assert operation_cost(CORE_SCHEMA, checks, checks.definitions[0], {"r": one}) == 3  # a list of one, coerced
