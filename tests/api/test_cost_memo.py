"""The cost of an operation without variables is computed once per document (api/operations.over_budget) and
decides every later request the same way; an operation with variables is costed on each request's values."""

from __future__ import annotations

from tests.api.test_cost import BUDGET, CHECKS, aliased

SMALL = [{"resource": "JOBS", "access": "READ"}]


async def test_a_remembered_cost_refuses_and_admits_as_the_first_computation_did(server):
    seeded = await server.bootstrap()
    cheap = aliased("account { serviceTokens { id } }", 3)
    costly = aliased("account { serviceTokens { grants { projects { id } } } }", 50)  # lists count as full
    for _ in range(3):  # the first computes, the others reuse it
        assert (await server.gql(cheap, token=seeded.token)).errors == []
        reply = await server.gql(costly, token=seeded.token)
        assert reply.data is None and reply.codes == ["BAD_USER_INPUT"], reply.body
        assert reply.errors[0]["extensions"].get("budget") == BUDGET, reply.body
    document = server.runtime.documents.get(costly)
    assert document.costs == {None: reply.errors[0]["extensions"]["cost"]}
    # With variables, each request's values decide: a cheap value after a costly one is admitted.
    for requests, refused in ((SMALL * 1000, False), (SMALL, False)):
        reply = await server.gql(CHECKS, {"r": requests}, token=seeded.token)
        assert (reply.codes == ["BAD_USER_INPUT"]) is refused and (reply.errors == []) is not refused, reply.body
    attack = aliased("checks(requests: $r) { allowed }", 50, "($r: [CheckInput!]!)")
    for requests, refused in ((SMALL * 1000, True), (SMALL, False), (SMALL * 1000, True)):
        reply = await server.gql(attack, {"r": requests}, token=seeded.token)
        assert (reply.codes == ["BAD_USER_INPUT"]) is refused, (len(requests), reply.body)
    assert server.runtime.documents.get(attack).costs == {}
