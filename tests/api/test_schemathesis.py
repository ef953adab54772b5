"""Schemathesis (GraphQL) against a live server with a real admin token: no 5xx and no INTERNAL_SERVER_ERROR over
every query and mutation of the schema. Typed answers (UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, NOT_FOUND,
PLAN_RESTRICTED) are what bad or unlucky input should get, so they are not failures.

The schema is loaded from the live /graphql (introspection is public). Run size: for each root field of Query
and Mutation (as many as the schema has; the count is read from it, so a new field is fuzzed without an edit
here), 35 valid operations and 10 invalid ones (schemathesis' negative mode): with 27 root fields up to 1,215
requests (hypothesis skips duplicates), at least 500 asserted. About 50 s.
"""

from __future__ import annotations

from collections import Counter

import requests
import schemathesis
from graphql import build_schema
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.api.test_graphql import create_project
from tests.api.test_requires_property import secrets_in
from tokengate.core.errors import CONTRACT_CODES as EXPECTED_CODES
from tokengate.graphql.schema.schema import schema as tokengate_schema

VALID_PER_OPERATION = 35
INVALID_PER_OPERATION = 10
MIN_OPERATIONS = 500


def root_fields() -> list[str]:
    """Every root field schemathesis makes operations of: the Query's and the Mutation's, read from the schema."""
    printed = build_schema(tokengate_schema.as_str())
    roots = [printed.query_type, printed.mutation_type, printed.subscription_type]
    return [f"{root.name}.{name}" for root in roots if root is not None for name in root.fields]


def test_no_generated_operation_gets_a_server_error(live_server):
    live = live_server
    admin = live.run(live.server.bootstrap("Schemathesis", "ENTERPRISE_PLUS"))
    live.run(create_project(live.server, admin.token, "existing"))
    schema = schemathesis.graphql.from_url(live.url + "/graphql")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(root_fields()) > 0
    auth = {"Authorization": f"Bearer {admin.token}"}
    answers: Counter[str] = Counter()
    failures: list[str] = []

    with requests.Session() as session:
        for operation in operations:
            for mode, examples in [
                (GenerationMode.POSITIVE, VALID_PER_OPERATION),
                (GenerationMode.NEGATIVE, INVALID_PER_OPERATION),
            ]:

                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def no_server_error(case) -> None:
                    response = case.call(session=session, headers=auth)
                    body = response.json()
                    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
                    answers[f"HTTP {response.status_code}"] += 1
                    answers.update(codes)
                    live.server.issued.extend(secrets_in(body.get("data")))
                    unexpected = [code for code in codes if code not in EXPECTED_CODES]
                    if response.status_code >= 500 or unexpected:
                        failures.append(f"{case.operation.label}: {response.status_code} {body} for {case.body}")

                no_server_error()

    total = sum(count for answer, count in answers.items() if answer.startswith("HTTP "))
    assert not failures, failures[:5]
    assert total >= MIN_OPERATIONS, answers
    print(f"schemathesis: {total} operations, answers {dict(answers)}")
