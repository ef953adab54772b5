"""A renamed Strawberry internal turns the compiled plans off, not tokengate: it starts, answers exactly as before
through Strawberry's own execution, and says once in its log that the plans are off (seams.py).

Each case runs ``tokengate serve`` in a Python whose Strawberry was changed before tokengate is imported, as an
upgrade would change it: a private class renamed (importers see only the new name; Strawberry's own code,
which reads its module's globals, keeps working), or ``GraphQLCoreConverter.from_resolver`` rewritten so
that its code no longer defines ``_get_basic_result``. A run without a change is the control.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_cli import _wait_ready, external, serving, tokengate
from tests.conftest import CAPTURED_OUTPUT
from tokengate.graphql.engine import compiled, operations, seams

OFF = "GraphQL compiled plans off, every operation runs on Strawberry's own execution"

RENAME_CLASS = """
import types
import strawberry.schema.schema as real
old = "_OperationContextAwareGraphQLResolveInfo"
renamed = types.ModuleType(real.__name__)
renamed.__dict__.update({k: v for k, v in vars(real).items() if k != old})
renamed._OperationContextAwareResolveInfo = getattr(real, old)
sys.modules[real.__name__] = renamed
try:
    from strawberry.schema.schema import _OperationContextAwareGraphQLResolveInfo
except ImportError:
    print("SIMULATED: the private class is gone", file=sys.stderr, flush=True)
"""

REWRITE_RESOLVER = """
from strawberry.schema.schema_converter import GraphQLCoreConverter
original = GraphQLCoreConverter.from_resolver
def from_resolver(self, *args, **kwargs):
    return original(self, *args, **kwargs)
GraphQLCoreConverter.from_resolver = from_resolver
consts = GraphQLCoreConverter.from_resolver.__code__.co_consts
if not any(getattr(c, "co_name", None) == "_get_basic_result" for c in consts):
    print("SIMULATED: from_resolver defines no _get_basic_result", file=sys.stderr, flush=True)
"""

SERVE = """
import sys
{change}
from tokengate.cli import main
main(sys.argv[1:])
"""

QUERY = """{ viewer { kind account { name plan } }
  account { serviceTokens { name grants { permissionSet allProjects } } ...more } }
fragment more on Account { name }"""
CREATE = """mutation { createServiceToken(input: {name: "ci", grants: [{permissionSet: JOB_ADMIN, allProjects: true}]})
  { serviceToken { name grants { permissionSet allProjects } } } }"""
EXPECTED = {
    "viewer": {"kind": "USER", "account": {"name": "Seams", "plan": "ENTERPRISE"}},
    "account": {
        "serviceTokens": [{"name": "ci", "grants": [{"permissionSet": "JOB_ADMIN", "allProjects": True}]}],
        "name": "Seams",
    },
}


def test_the_installed_strawberry_has_every_internal_the_plans_read():
    assert seams.PROBLEM is None and seams.AVAILABLE and compiled.plan_problem() is None
    assert operations.EXECUTOR is seams.ExecutionContext  # Strawberry's own: the plans' errors use it too


def post(url: str, token: str, query: str) -> Any:
    request = urllib.request.Request(
        url + "/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        body = json.loads(response.read())
        body.pop("extensions", None)  # the cost accounting: not what these tests compare
        return body


@pytest.mark.parametrize(
    ("change", "simulated"),
    [
        ("", None),
        (RENAME_CLASS, "the private class is gone"),
        (REWRITE_RESOLVER, "from_resolver defines no _get_basic_result"),
    ],
    ids=["unchanged", "private class renamed", "from_resolver rewritten"],
)
def test_a_renamed_strawberry_internal_falls_back_to_strawberrys_execution(
    database: str, tmp_path: Path, change: str, simulated: str | None
):
    env = external(database)
    seeded = tokengate(
        "bootstrap", "--account-name", "Seams", "--plan", "Enterprise", "--admin-email", "s@x.io", env=env
    )
    assert seeded.returncode == 0, seeded.stderr
    token = json.loads(seeded.stdout)["token"]
    process, url = serving(["-c", SERVE.format(change=change)], ["--data-dir", str(tmp_path)], env)
    try:
        _wait_ready(url, process)
        created = post(url, token, CREATE)
        assert created == {
            "data": {
                "createServiceToken": {
                    "serviceToken": {"name": "ci", "grants": [{"permissionSet": "JOB_ADMIN", "allProjects": True}]}
                }
            }
        }, created
        for _ in range(3):  # a document is kept (and planned, when plans are on) from its second sighting
            assert post(url, token, QUERY) == {"data": EXPECTED}
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        CAPTURED_OUTPUT.append(stderr)
    if simulated is None:
        assert OFF not in stderr and "SIMULATED" not in stderr, stderr
    else:
        # The precondition: the simulated upgrade really removed what tokengate reads.
        assert f"SIMULATED: {simulated}" in stderr, stderr
        assert "Traceback" not in stderr, stderr
        warnings = [line for line in stderr.splitlines() if OFF in line]
        assert len(warnings) == 1, stderr


def test_only_strawberrys_own_type_checks_are_called_without_their_info():
    """The plans build no resolve info for Strawberry's ``is_type_of`` (it answers from the value alone), and
    keep building it for any other: a type check that reads its info gets it."""
    from tokengate.graphql.schema.schema import schema

    core = schema._schema
    for name in ("ServiceToken", "Project", "User"):
        assert seams.info_free_type_check(core.get_type(name).is_type_of), name  # type: ignore[union-attr]
    assert len(seams.INFO_FREE_TYPE_CHECKS) == 2

    def reads_info(obj: Any, info: Any) -> bool:
        return info.parent_type is not None

    def ignores_info(obj: Any, info: Any) -> bool:
        return obj is not None

    assert not seams.info_free_type_check(reads_info)
    assert not seams.info_free_type_check(ignores_info)  # not Strawberry's: its info is built, as before
    assert seams._never_reads_second_argument(ignores_info.__code__)
    assert not seams._never_reads_second_argument(reads_info.__code__)


def test_a_resolver_strawberry_no_longer_builds_as_read_keeps_strawberrys_own(monkeypatch: pytest.MonkeyPatch):
    """direct_resolver reads Strawberry's resolver by its code and closure: anything else is left to it."""
    from tokengate.graphql.schema.schema import schema

    viewer = schema._schema.query_type.fields["viewer"]  # type: ignore[union-attr]
    assert seams.direct_resolver(viewer, {}) is not None  # precondition: today's Strawberry is read
    monkeypatch.setattr(seams, "RESOLVER_CODES", {})
    assert seams.direct_resolver(viewer, {}) is None
    monkeypatch.undo()
    monkeypatch.setattr(seams, "EXTENSION_RESOLVER_CODE", object())
    assert seams.direct_resolver(viewer, {}) is None

    def custom(source: Any, info: Any) -> str:
        return "mine"

    assert seams.direct_resolver(type(viewer)(viewer.type, resolve=custom), {}) is None


def test_strawberry_enums_are_answered_from_a_table_exactly_as_strawberry_answers():
    """seams.leaf_coercion answers every member of every enum of the schema with Strawberry's own name, and
    leaves what is not a member (a name, a wrong value, another enum's member) to Strawberry's own."""
    from graphql import GraphQLEnumType

    from tokengate.graphql.schema.schema import schema

    enums = [
        t for t in schema._schema.type_map.values() if isinstance(t, GraphQLEnumType) and hasattr(t, "wrapped_cls")
    ]
    assert len(enums) > 5
    others = [member for t in enums for member in t.wrapped_cls]  # type: ignore[attr-defined]

    def outcome(coerce: Any, value: Any) -> Any:
        try:
            return ("ok", coerce(value))
        except Exception as error:
            return (type(error).__name__, str(error))

    fast_ones = 0
    for leaf in enums:
        fast = seams.leaf_coercion(leaf)
        fast_ones += fast != leaf.coerce_output_value
        for value in [*leaf.wrapped_cls, *others, "NOPE", 3, None, *leaf.values]:  # type: ignore[attr-defined]
            assert outcome(fast, value) == outcome(leaf.coerce_output_value, value), (leaf, value)
    assert fast_ones == len(enums)

    mixed = GraphQLEnumType("Odd", {"ONE": 1, "TEXT": "one"})
    assert seams.leaf_coercion(mixed) == mixed.coerce_output_value  # not Strawberry's: its own


def test_string_id_and_boolean_values_are_stored_as_their_coercion_answers_them():
    """compiled.UNCHANGED_BY: each of graphql-core's coercions listed answers a value of exactly its type with
    that very value (so a plan may store it without the call), and the schema's String, ID and Boolean take the
    shortcut (a subclass, or a value of another type, still goes through the call)."""
    from graphql import GraphQLScalarType
    from graphql.type import scalars

    from tokengate.graphql.schema.schema import schema

    samples: dict[type, list[Any]] = {str: ["", "x", "é" * 3, "0", "true", "stk_abc"], bool: [True, False]}
    for coerce, kind in compiled.UNCHANGED_BY.items():
        for value in samples[kind]:
            assert type(value) is kind and coerce(value) is value, (coerce, value)
    assert set(compiled.UNCHANGED_BY) == {scalars.serialize_string, scalars.serialize_id, scalars.serialize_boolean}
    used = {
        name: compiled.UNCHANGED_BY.get(seams.leaf_coercion(t))
        for name, t in schema._schema.type_map.items()
        if isinstance(t, GraphQLScalarType)
    }
    assert used["String"] is str and used["ID"] is str and used["Boolean"] is bool, used
    assert used["Int"] is None  # its coercion checks the range
