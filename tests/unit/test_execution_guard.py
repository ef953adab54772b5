"""The guard of the execution fast path: it is used on the verified graphql-core, and anything it relies on
that changes makes tokengate use Strawberry's plain execution context instead, with one warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from tokengate.graphql.engine import execution
from tokengate.graphql.engine.execution import (
    FastExecutionContext,
    execution_context_class,
    fast_path_problem,
)
from tokengate.graphql.engine.operations import EXECUTOR


def test_the_installed_graphql_core_is_verified_and_requests_use_the_fast_path():
    assert fast_path_problem() is None
    assert EXECUTOR is FastExecutionContext


@pytest.fixture
def fresh_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """``execution_context_class()`` decides once per process: forget the decision before and after."""
    execution_context_class.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    execution_context_class.cache_clear()
    assert execution_context_class() is FastExecutionContext


def changed_execute_field(self, parent_type, source, field_nodes, path):  # the pre-3.3 signature
    raise AssertionError("never called")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: m.setattr(execution, "VERIFIED_GRAPHQL_CORE", ((3, 2, 0), (3, 3, 0))), "outside the verified"),
        (lambda m: m.setattr(Executor, "execute_field", changed_execute_field), "Executor.execute_field"),
        (lambda m: m.delattr(Executor, "settle_in_background"), "Executor.settle_in_background"),
        (
            lambda m: m.setattr(
                StrawberryGraphQLCoreExecutionContext, "complete_value", lambda *a: None, raising=False
            ),
            "overrides Executor.complete_value",
        ),
    ],
    ids=["version", "signature", "missing method", "overridden completion"],
)
def test_a_changed_graphql_core_falls_back_to_plain_execution_with_one_warning(fresh_choice, caplog, change, reason):
    change(fresh_choice)
    with caplog.at_level(logging.WARNING, logger="tokengate.graphql.engine.execution"):
        assert execution_context_class() is StrawberryGraphQLCoreExecutionContext
        assert execution_context_class() is StrawberryGraphQLCoreExecutionContext
    warnings = [r.getMessage() for r in caplog.records if r.name == "tokengate.graphql.engine.execution"]
    assert len(warnings) == 1 and reason in warnings[0], warnings
