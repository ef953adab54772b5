"""Running one GraphQL operation of a prepared document: the steps between the HTTP door and graphql-core.

Request errors (syntax, validation, an operation that cannot be chosen, unstorable text in the inputs, a cost
over the budget) are answered before anything executes; then a query runs on its compiled plan (compiled.py),
anything else on graphql-core with Strawberry's own execution context. Strawberry's own request pipeline is not
used: parsing and validation are cached per document (documents.py), and its extension hooks would only repeat
that work.

Who sends a request pays for it in cost points (limits.py): it runs only while its payer (principal, or the
address of a request without credentials) has points left, and is charged its cost (the budget, when it asks
for more), plus a point per field and argument when its document is validated (the expensive part of a new
one). Introspection, the same for every caller, is executed on the worker thread and its answers to documents
without variables are kept.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from graphql import (
    ExecutionResult,
    GraphQLError,
    Node,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    execute,
)
from strawberry.execution import optimized_is_awaitable

from tokengate.auth.gate import RETRY_AFTER, Refusal, payer, rate_limited
from tokengate.core.errors import InvalidInput, Overloaded
from tokengate.core.limits import Buckets, OverLimit
from tokengate.core.policy import Principal
from tokengate.core.validation import shown
from tokengate.graphql.engine.compiled import execute_compiled
from tokengate.graphql.engine.cost import ActualPlan, CostUnknown, actual_cost, actual_plan, operation_cost
from tokengate.graphql.engine.documents import INTROSPECTION_FIELDS, Document
from tokengate.graphql.engine.kept_answers import KeptAnswer, KeptAnswers, reads_only_principal
from tokengate.graphql.engine.offload import WORKER
from tokengate.graphql.schema.context import Context
from tokengate.graphql.schema.schema import schema

if TYPE_CHECKING:
    from tokengate.runtime import Runtime

CORE_SCHEMA: Final = schema._schema
EXECUTOR: Final = schema.execution_context_class  # Strawberry's own (public), what the plans' errors use too
UNSTORABLE_MESSAGE: Final = "must not contain NUL (\\u0000) characters or unpaired surrogates"
KEPT_INTROSPECTION_ANSWERS: Final = 4  # by text and operation: GraphiQL's and codegen's (~10k objects each)


class RequestRefused(Exception):
    """A request the GraphQL door answers with an HTTP status of its own (not a GraphQL result)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.code = code

    @classmethod
    def of(cls, refusal: Refusal) -> RequestRefused:
        """The gate's refusal, answered by the GraphQL door (one builder per refusal, in auth/gate.py)."""
        return cls(refusal.status, refusal.message, refusal.headers, refusal.code)


@dataclass(frozen=True, slots=True)
class RequestErrors:
    """Errors that stop a request before execution: the answer has no data."""

    errors: tuple[GraphQLError, ...]
    extensions: dict[str, Any] | None = None  # the response's own extensions (the cost of a refused operation)


def is_storable(text: str) -> bool:
    """True when PostgreSQL can store ``text`` as UTF-8 ``text`` (no NUL, no unpaired surrogate)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def unstorable_variable(variables: dict[str, Any] | None) -> str | None:
    """The name of the first variable holding unstorable text anywhere inside it (iteratively: JSON
    variables may nest deeper than the recursion limit)."""
    for name, value in (variables or {}).items():
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if not is_storable(item):
                    return name
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def _nodes(root: Node) -> Iterator[Node]:
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, Node):
            yield item
            stack.extend(getattr(item, key) for key in item.keys if key != "loc")
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def has_unstorable_literal(document: Document) -> bool:
    # Only an escape (\u0000, \u{0}) yields NUL in a literal: the lexer refuses raw control characters and
    # unpaired surrogate escapes. So the walk runs only for the rare query with a \u escape.
    if "\\u" not in document.text or document.ast is None:
        return False
    return any(isinstance(node, StringValueNode) and not is_storable(node.value) for node in _nodes(document.ast))


def unstorable_input(document: Document, variables: dict[str, Any] | None) -> InvalidInput | None:
    """Text PostgreSQL cannot store, refused for every String and ID input before any resolver runs (it would
    otherwise surface as a database error deep in a resolver)."""
    name = unstorable_variable(variables)
    if name is not None:
        return InvalidInput(f"variable ${name} {UNSTORABLE_MESSAGE}")
    if has_unstorable_literal(document):
        return InvalidInput(f"string values {UNSTORABLE_MESSAGE}")
    return None


def operation_not_chosen(document: Document, operation_name: str | None) -> RequestErrors | None:
    """The request error when the operation to run cannot be chosen (GraphQL's GetOperation): several
    operations and no operationName, or no operation of that name."""
    if document.operation(operation_name) is not None:
        return None
    if operation_name is None:
        message = "the document has several operations: send operationName to choose one"
    else:
        message = f"no operation named {shown(operation_name)!r} in the document"
    return RequestErrors((GraphQLError(message, extensions={"code": "BAD_REQUEST"}),))


def refuse_unsupported(operation: OperationDefinitionNode, allow_mutations: bool) -> None:
    """Refuse what the transport answers with a status of its own: a subscription, a mutation over GET."""
    if operation.operation == OperationType.SUBSCRIPTION:
        raise RequestRefused(400, "subscriptions are not supported")
    if operation.operation == OperationType.MUTATION and not allow_mutations:
        raise RequestRefused(405, "mutations must be sent with POST", {"Allow": "POST"})


def over_budget(
    document: Document, operation_name: str | None, variables: dict[str, Any] | None, budget: int
) -> tuple[int, GraphQLError | None]:
    """The operation's cost, and the error refusing it when that is over ``budget``."""
    assert document.ast is not None
    operation = document.operation(operation_name)
    assert operation is not None  # chosen before
    constant = not operation.variable_definitions  # then the cost is the document's: computed once
    cost = document.costs.get(operation_name, -1) if constant else -1
    if cost < 0:
        try:
            cost = operation_cost(CORE_SCHEMA, document.ast, operation, variables)
            if constant:
                document.costs[operation_name] = cost
        except CostUnknown:
            cost = budget + 1
    if cost <= budget:
        return cost, None
    message = (
        f"the operation costs {cost} points, over the budget of {budget} per request: ask for fewer items "
        "(first, fewer checks) or fewer aliases, or split it into several requests"
    )
    return cost, GraphQLError(message, extensions={"code": "BAD_USER_INPUT", "cost": cost, "budget": budget})


def _execute(document: Document, operation_name: str | None, variables: dict[str, Any] | None, context: Context) -> Any:
    assert document.ast is not None
    return execute(
        CORE_SCHEMA,
        document.ast,
        variable_values=variables,
        operation_name=operation_name,
        context_value=context,
        executor_class=EXECUTOR,
        is_awaitable=optimized_is_awaitable,
    )


_introspection_answers: OrderedDict[tuple[str, str | None], ExecutionResult] = OrderedDict()


async def introspection(
    document: Document, operation_name: str | None, variables: dict[str, Any] | None, context: Context
) -> ExecutionResult:
    """An introspection-only operation, on the worker thread; the answer is the same for every caller, so the
    answers to documents without variables are kept."""
    key = (document.text, operation_name)
    kept = _introspection_answers.get(key) if not variables else None
    if kept is not None:
        _introspection_answers.move_to_end(key)
        return kept
    result = await WORKER.run(_execute, document, operation_name, variables, context)
    assert isinstance(result, ExecutionResult)  # introspection resolvers are synchronous
    if not variables and not result.errors:
        _introspection_answers[key] = result
        if len(_introspection_answers) > KEPT_INTROSPECTION_ANSWERS:
            _introspection_answers.popitem(last=False)
    return result


@dataclass(frozen=True, slots=True)
class KeepAs:
    """Where a request's answer is kept when it reads only its principal (kept_answers.py), and under what."""

    answers: KeptAnswers
    media_type: str
    body: bytes


async def run(
    document: Document,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    context: Context,
    *,
    allow_mutations: bool,
    keep_as: KeepAs | None = None,
) -> ExecutionResult | RequestErrors:
    """Choose the operation, validate (once per document), guard the inputs, check the cost, then execute.
    Raises ``RequestRefused`` (before validation, as Strawberry did: a subscription is a 400, not a validation
    error; a payer out of cost points is a 429; a busy worker a 503)."""
    paid_by = paying(context.runtime, context.principal, context.client_addr)
    try:
        return await _run(document, operation_name, variables, context, allow_mutations, paid_by, keep_as)
    except Overloaded as busy:
        context.runtime.gate.throttle.count("worker")
        raise RequestRefused(503, str(busy), RETRY_AFTER, busy.code) from None


def paying(runtime: Runtime, principal: Principal | None, client_addr: str | None) -> str:
    """Who pays the request's cost points; ``RequestRefused`` (429) while that payer has none left."""
    throttle = runtime.gate.throttle
    paid_by = payer(principal, client_addr)
    try:
        throttle.require(throttle.cost, paid_by)
    except OverLimit as over:
        raise RequestRefused.of(rate_limited(over)) from None
    return paid_by


def answer_kept(
    kept: KeptAnswer, runtime: Runtime, principal: Principal, client_addr: str | None
) -> dict[str, Any] | None:
    """What a kept answer still does per request, as ``run`` does it: the payer must have points left (else
    ``RequestRefused``, 429), is charged the estimate and settled to the actual cost, and its checks' grants are
    noted. Returns the answer's ``extensions``."""
    paid_by = paying(runtime, principal, client_addr)
    gate = runtime.gate
    bucket = gate.throttle.cost
    bucket.settle(paid_by, bucket.charge(paid_by, kept.requested), kept.actual)
    for grant_id in kept.grants:
        gate.usage.note_grant(grant_id)
    return cost_extensions(bucket, paid_by, kept.requested, kept.actual)


async def _run(
    document: Document,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    context: Context,
    allow_mutations: bool,
    paid_by: str,
    keep_as: KeepAs | None = None,
) -> ExecutionResult | RequestErrors:
    runtime = context.runtime
    throttle = runtime.gate.throttle
    await document.ensure_parsed()
    if document.ast is None:
        return RequestErrors(document.syntax_errors)
    not_chosen = operation_not_chosen(document, operation_name)
    if not_chosen is not None:
        return not_chosen
    operation = document.operation(operation_name)
    assert operation is not None
    refuse_unsupported(operation, allow_mutations)
    new = not document.is_validated(CORE_SCHEMA)
    errors = await document.validated(CORE_SCHEMA)
    if new:
        throttle.cost.charge(paid_by, document.fields)  # validating: about a point a field or argument
    if errors:
        return RequestErrors(errors)
    budget = runtime.config.limits.cost_budget
    cost, refusal = over_budget(document, operation_name, variables, budget)
    if refusal is not None:
        throttle.count("cost_budget")
        throttle.cost.charge(paid_by, budget)  # it asked for more than a request may do: it pays for one
        return RequestErrors((refusal,), cost_extensions(throttle.cost, paid_by, cost, budget))
    problem = unstorable_input(document, variables)
    if problem is not None:
        return RequestErrors((GraphQLError(str(problem), original_error=problem),))
    # The estimate is reserved before anything runs (concurrent requests see it spent), and settled to what the
    # answer really holds once it is done, as Shopify's GraphQL Admin API does with requested and actual cost.
    charged = throttle.cost.charge(paid_by, cost)
    if document.selects_only(INTROSPECTION_FIELDS):  # the same for everyone, and mostly answered from memory
        answer = await introspection(document, operation_name, variables, context)
        extensions = cost_extensions(throttle.cost, paid_by, cost, cost)
        return ExecutionResult(answer.data, answer.errors, extensions)
    result = execute_compiled(CORE_SCHEMA, document, operation_name, variables, context)
    if result is None:  # no plan for this operation (compiled.py), or variables graphql-core refuses
        result = _execute(document, operation_name, variables, context)
    if not isinstance(result, ExecutionResult):
        result = await result
    if is_request_error(result):
        return RequestErrors(tuple(result.errors or ()))
    actual = actual_cost(CORE_SCHEMA, document.ast, operation, result.data, planned_walk(document, operation_name))
    throttle.cost.settle(paid_by, charged, actual)
    result.extensions = cost_extensions(throttle.cost, paid_by, cost, actual)
    principal = context.principal
    if (
        keep_as is not None
        and principal is not None
        and not result.errors
        and reads_only_principal(CORE_SCHEMA, document, operation_name)
    ):
        keep_as.answers.keep(
            principal, keep_as.media_type, keep_as.body, result.data, cost, actual, context.noted_grants
        )
    return result


def planned_walk(document: Document, operation_name: str | None) -> ActualPlan | None:
    """The compiled count of the operation's actual cost (cost.actual_plan), made once per document."""
    plans = document.actual_plans
    if operation_name in plans:
        return plans[operation_name]  # type: ignore[no-any-return]
    operation = document.operation(operation_name)
    assert document.ast is not None and operation is not None
    plan = plans[operation_name] = actual_plan(CORE_SCHEMA, document.ast, operation)
    return plan


def cost_extensions(bucket: Buckets, paid_by: str, requested: int, actual: int) -> dict[str, Any] | None:
    """``extensions.cost`` of an answer: what the operation was estimated to cost before it ran (the budget is
    checked on it), what it cost once answered (what the payer is charged), the points left in the payer's
    bucket and how many come back per second, so that a client can pace itself. None when the cost rate limit
    is switched off (nothing to pace)."""
    if not bucket.rate.enabled:
        return None
    remaining = max(0, math.floor(bucket.level(paid_by)))
    return {
        "cost": {"requested": requested, "actual": actual, "remaining": remaining, "refillRate": bucket.rate.per_second}
    }


def is_request_error(result: ExecutionResult) -> bool:
    """graphql-core answers a request error it finds while executing (variable values that cannot be coerced)
    with an errors-only result; unlike a field error that nulls the whole data, none of its errors has a path."""
    return result.data is None and bool(result.errors) and all(error.path is None for error in result.errors or ())
