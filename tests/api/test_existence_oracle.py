"""An unknown token id and a real id with a wrong secret cost a client the same (issue 20, "an existence oracle"):
the same answers, the same failures charged to its address, the same 429 once the budget is spent, the same
queries. Counted, never timed.

Before, an unknown id was remembered after one query and then refused for free, while a real id with a wrong
secret was looked up and charged every time: an address out of failures got 429 for a real id and 401 for an
unknown one.
"""

from __future__ import annotations

from tests.api.query_log import QueryLog
from tests.api.test_overload import check, freeze, serve, unknown_token, with_other_secret
from tests.conftest import Server, store_service_token
from tokengate.core.limits import Limits, Rate, address_key
from tokengate.core.policy import Grant

BUDGET = 3
ATTEMPTS = 6


async def attempts(server: Server, queries: QueryLog, text: str, address: str) -> list[tuple[int, float, int]]:
    """For each attempt: the status, the failures its address has left after it, and the queries it cost."""
    failures = server.runtime.gate.throttle.failures
    seen = []
    for _ in range(ATTEMPTS):
        queries.clear()
        status = (await check(server, text, address))[0]
        seen.append((status, failures.level(address_key(address)), len(queries.of_requests())))
    return seen


async def test_an_unknown_id_and_a_real_id_with_a_wrong_secret_cost_the_same(database, tmp_path):
    queries = QueryLog()
    async for server in serve(database, tmp_path, Limits(failures=Rate(1, BUDGET)), pool_setup=queries.watch):
        freeze(server)  # no refill between attempts: the budget is spent exactly
        admin = await server.bootstrap()
        real = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
        in_use = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
        # The attack's premise: the ids are real, and valid (one is even in the cache, in use from elsewhere).
        assert (await check(server, in_use, "10.0.0.9"))[0] == 200
        assert (await check(server, in_use, "10.0.0.9"))[0] == 200

        unknown = await attempts(server, queries, unknown_token(), "10.0.0.1")
        wrong_secret = await attempts(server, queries, with_other_secret(real), "10.0.0.2")
        wrong_secret_cached = await attempts(server, queries, with_other_secret(in_use), "10.0.0.3")

        expected_statuses = [401] * BUDGET + [429] * (ATTEMPTS - BUDGET)
        expected_levels = [float(BUDGET - n) for n in range(1, BUDGET + 1)] + [0.0] * (ATTEMPTS - BUDGET)
        for seen in (unknown, wrong_secret, wrong_secret_cached):
            assert [status for status, _, _ in seen] == expected_statuses, seen
            assert [level for _, level, _ in seen] == expected_levels, seen
        # The database is asked once for a text it has not seen, then never again, whether the id exists or not.
        assert [count for _, _, count in unknown] == [count for _, _, count in wrong_secret] == [1] + [0] * 5
        # The real tokens themselves are not locked out by any of it.
        assert (await check(server, real, "10.0.0.4"))[0] == 200
        assert (await check(server, in_use, "10.0.0.4"))[0] == 200
