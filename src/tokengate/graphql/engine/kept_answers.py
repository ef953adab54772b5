"""Answers kept per principal: a query that reads nothing but what its caller's principal holds is answered again
from the bytes of its first answer, as ``/auth/check`` answers from a decision kept per principal.

Integrations ask the same few questions over and over (``viewer``, ``check``, ``checks``). A query whose every
field is listed in ``ANSWERED_FROM_PRINCIPAL`` (graphql/schema/schema.py: no database, no clock, no client address)
answers the same for the same principal object and request body, so its answer's ``data`` is kept, keyed by that
principal object, the response's media type and the body's bytes (the same bytes parse to the same query,
variables and operation name). What a kept answer still does per request, as the executed path does: the gate
(rates, revocation, IP rules) before it is looked up, the cost bucket's charge and settlement and
``extensions.cost``, and the grant notes of its checks (``Grant.lastUsedAt``).

Why it is never stale: a principal object is never changed, and the principal cache replaces it on every notice
that changes what it holds (revocation, grants, projects, plan, a member's state), on every instance; an answer
is only given to the very object it was made for (``is``, through a weak reference: a replaced principal is
not kept alive by its answers), so the first request after a change executes again.
Kept only: POST bodies of at most ``MAX_BODY_BYTES`` carrying a query text (no persisted-query hash or document
id), answered without errors, by a principal from a token (a browser session's principal is read anew per
request). At most ``MAX_ANSWERS`` answers, forgotten all at once past that (an endless stream of distinct bodies
costs each its execution, as before). ``tests/api/test_kept_answers.py`` proves kept answers equal executed ones.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Final

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    visit,
)

from tokengate.core.policy import Principal
from tokengate.graphql.engine.documents import Document
from tokengate.graphql.schema.schema import ANSWERED_FROM_PRINCIPAL

MAX_ANSWERS: Final = 4096
MAX_BODY_BYTES: Final = 2048
MAX_DATA_BYTES: Final = 8192
TYPENAME: Final = "__typename"


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    principal: weakref.ReferenceType[Principal]  # the very object it was made for; weak: a replaced principal
    # (and all it holds) is not kept alive by its answers, and its id, once reused, finds a dead reference
    data: bytes  # the answer's ``data`` as compact JSON (http/responses.json_bytes)
    requested: int  # the operation's estimated cost, checked against the budget when it ran
    actual: int  # what it cost once answered: what each request is charged
    grants: tuple[int, ...]  # the grants its allowed checks noted, noted again per request

    def body(self, extensions: dict[str, Any] | None) -> bytes:
        """The response body ``json_bytes({"data": ..., "extensions": ...})`` would make."""
        if extensions is None:
            return b'{"data":' + self.data + b"}"
        return b'{"data":' + self.data + b',"extensions":' + orjson.dumps(extensions) + b"}"


class KeptAnswers:
    def __init__(self, size: int = MAX_ANSWERS):
        self.size = size
        self.answers: dict[tuple[int, str, bytes], KeptAnswer] = {}
        self.hits = 0  # answers given from memory (a counter for tests and the profile)

    def get(self, principal: Principal, media_type: str, body: bytes) -> KeptAnswer | None:
        kept = self.answers.get((id(principal), media_type, body))
        if kept is None or kept.principal() is not principal:
            return None
        self.hits += 1
        return kept

    def keep(
        self,
        principal: Principal,
        media_type: str,
        body: bytes,
        data: Any,
        requested: int,
        actual: int,
        grants: list[int],
    ) -> None:
        try:
            encoded = orjson.dumps(data)
        except orjson.JSONEncodeError:
            return  # answered with json.dumps (responses.json_bytes): not the bytes this would splice
        if len(encoded) > MAX_DATA_BYTES:
            return
        if len(self.answers) >= self.size:
            self.answers.clear()
        self.answers[(id(principal), media_type, body)] = KeptAnswer(
            weakref.ref(principal), encoded, requested, actual, tuple(grants)
        )


def reads_only_principal(schema: GraphQLSchema, document: Document, operation_name: str | None) -> bool:
    """Whether the operation is a query and every field of the document (every operation and fragment: a field
    the operation does not reach only makes this stricter) is one of ``ANSWERED_FROM_PRINCIPAL`` or
    ``__typename``; worked out once per document and operation, after validation."""
    found = document.principal_only.get(operation_name)
    if found is None:
        operation = document.operation(operation_name)
        assert document.ast is not None and operation is not None
        found = document.principal_only[operation_name] = _reads_only_principal(schema, document.ast, operation)
    return found


def _reads_only_principal(schema: GraphQLSchema, ast: DocumentNode, operation: OperationDefinitionNode) -> bool:
    if operation.operation != OperationType.QUERY:
        return False
    type_info = TypeInfo(schema)
    outside: list[str] = []

    class Fields(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            parent = type_info.get_parent_type()
            name = node.name.value
            if name != TYPENAME and (parent is None or f"{parent.name}.{name}" not in ANSWERED_FROM_PRINCIPAL):
                outside.append(name)

    visit(ast, TypeInfoVisitor(type_info, Fields()))
    return not outside
