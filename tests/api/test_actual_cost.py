"""Charging what was done: an operation's estimate is checked against the budget before anything runs (and
reserved), then the payer is charged the cost its answer really holds; every answer says both in
``extensions.cost`` with the points left and the refill rate."""

from __future__ import annotations

from tests.api.service_token_calls import created
from tests.api.test_overload import freeze, serve
from tokengate.core.limits import Limits, Rate

TOKENS = "{ account { serviceTokens { id name } } }"
REQUESTED = 1 + 50 * (1 + 2)  # account, and the stated estimate of 50 tokens of two fields each
ACTUAL_OF_TWO = 1 + 2 * (1 + 2)


async def test_a_list_that_returns_two_items_is_charged_for_two(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(cost=Rate(1, 10_000))):
        freeze(server)  # no refill between requests
        seeded = await server.bootstrap()
        for name in ("a", "b"):
            await created(server, seeded.token, name)
        first = await server.gql(TOKENS, token=seeded.token)
        assert first.errors == [] and len(first.data["account"]["serviceTokens"]) == 2
        cost = first.body["extensions"]["cost"]
        assert cost["requested"] == REQUESTED and cost["actual"] == ACTUAL_OF_TWO
        assert cost["refillRate"] == 1
        await server.gql(TOKENS, token=seeded.token)  # a text is kept (and validated no more) once seen twice
        second = await server.gql(TOKENS, token=seeded.token)
        assert (
            second.body["extensions"]["cost"]["remaining"] == cost["remaining"] - 2 * ACTUAL_OF_TWO - 4
        )  # and 4 for validating again


async def test_a_person_reloading_a_page_is_charged_its_answers_not_its_estimates(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(cost=Rate(1, 1000))):
        freeze(server)
        seeded = await server.bootstrap()
        await created(server, seeded.token, "only")
        # Charged on the estimate, the seventh load of this list would be refused (7 x 151 > 1,000).
        for load in range(30):
            reply = await server.gql(TOKENS, token=seeded.token)
            assert reply.status == 200 and reply.errors == [], (load, reply.body)
            assert reply.body["extensions"]["cost"]["actual"] == 1 + 1 * 3
        assert reply.body["extensions"]["cost"]["remaining"] > 1000 - 30 * 10


async def test_an_estimate_over_the_budget_is_still_refused_up_front(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(cost=Rate(1, 10_000), cost_budget=REQUESTED)):
        seeded = await server.bootstrap()
        await created(server, seeded.token, "one")
        # Precondition: within the budget the list runs, and actually costs little.
        ran = await server.gql(TOKENS, token=seeded.token)
        assert ran.errors == [] and ran.body["extensions"]["cost"]["actual"] == 4
    async for server in serve(database, tmp_path, Limits(cost=Rate(1, 10_000), cost_budget=REQUESTED - 1)):
        seeded = await server.bootstrap()
        await created(server, seeded.token, "one")
        refused = await server.gql(TOKENS, token=seeded.token)
        assert refused.codes == ["BAD_USER_INPUT"] and "data" not in refused.body
        assert refused.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "cost": REQUESTED, "budget": REQUESTED - 1}
        cost = refused.body["extensions"]["cost"]
        assert cost["requested"] == REQUESTED and cost["actual"] == REQUESTED - 1  # it pays for one request
        assert set(cost) == {"requested", "actual", "remaining", "refillRate"}


async def test_a_mutation_is_charged_its_write_and_what_it_answered(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(cost=Rate(1, 10_000))):
        seeded = await server.bootstrap()
        reply = await server.gql('mutation { createProject(name: "p") { name } }', token=seeded.token)
        assert reply.errors == [], reply.body
        assert reply.body["extensions"]["cost"] == {
            "requested": 10 + 1,
            "actual": 10 + 1,
            "remaining": reply.body["extensions"]["cost"]["remaining"],
            "refillRate": 1,
        }
