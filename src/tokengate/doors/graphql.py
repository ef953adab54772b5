"""``/graphql``: GraphiQL for browsers, and GraphQL over HTTP (POST, and GET for queries).

The transport only: read the request, admit it through the gate (a document anyone may run passes without
credentials), run the operation (api/operations.py), render the result.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from tokengate.api.context import Context
from tokengate.api.errors import format_errors, is_database_unavailable
from tokengate.api.operations import RequestErrors, RequestRefused, run
from tokengate.doors.pages import GRAPHIQL_PAGE
from tokengate.doors.responses import error_response, json_response, refusal_response
from tokengate.gate import RETRY_AFTER, Admission, Refusal
from tokengate.middleware import REQUEST_ID
from tokengate.runtime import RUNTIME
from tokengate.serving import read_body
from tokengate.validation import shown

log = logging.getLogger("tokengate.graphql")

MAX_BODY_BYTES: Final = 1024 * 1024
# A POST body is JSON; aiohttp reports a missing Content-Type as application/octet-stream (curl -d sends a form
# type), so those two are read as JSON too. Anything else (text/plain, multipart, ...) is 415.
JSON_CONTENT_TYPES: Final = frozenset(
    {"application/json", "application/octet-stream", "application/x-www-form-urlencoded"}
)


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


class BadRequest(Exception):
    status = 400


class UnsupportedMediaType(BadRequest):
    status = 415


async def read_graphql_request(request: web.Request) -> GraphQLRequest:
    """The query, variables and operation name of a GET or POST, or ``BadRequest``."""
    if request.method == "GET":
        raw: Any = dict(request.query)
        if isinstance(raw.get("variables"), str):
            try:
                raw["variables"] = json.loads(raw["variables"])
            except (ValueError, RecursionError):
                raise BadRequest("variables must be a JSON object") from None
    else:
        if request.content_type not in JSON_CONTENT_TYPES and not request.content_type.endswith("+json"):
            raise UnsupportedMediaType(f"send the body as application/json, not {shown(request.content_type)}")
        try:
            raw = json.loads(await read_body(request))
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
            raise BadRequest("the body must be a JSON object with a 'query' string") from None
    if isinstance(raw, list):
        raise BadRequest("batched requests are not supported: send one operation per request")
    if not isinstance(raw, dict):
        raise BadRequest("the body must be a JSON object with a 'query' string")
    query, variables, operation_name = raw.get("query"), raw.get("variables"), raw.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("no GraphQL query found in the request")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("variables must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("operationName must be a string")
    return GraphQLRequest(query, variables, operation_name)


def wants_graphiql(request: web.Request) -> bool:
    return request.method == "GET" and "query" not in request.query and "text/html" in request.headers.get("Accept", "")


class GraphQLDoor:
    def __init__(self) -> None:
        # GraphiQL and its assets ship in the package: no CDN is needed to explore the API.
        self.graphiql_html = GRAPHIQL_PAGE.read_text(encoding="utf-8")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if wants_graphiql(request):
            return web.Response(text=self.graphiql_html, content_type="text/html")
        runtime = request.app[RUNTIME]
        request_id = request[REQUEST_ID]
        try:
            payload = await read_graphql_request(request)
        except BadRequest as problem:
            return error_response(problem.status, str(problem), "BAD_REQUEST")
        documents, public_introspection = runtime.documents, runtime.config.public_introspection
        try:
            # The document is parsed (once, under the token limit) before admission only when the request
            # carries no credentials: it decides whether anyone may run it.
            admitted = runtime.gate.admit(request, lambda: documents.public(payload.query, public_introspection))
            admission = admitted if isinstance(admitted, Admission) else await admitted
        except Refusal as refusal:
            return refusal_response(refusal)
        context = Context(runtime, admission.principal, admission.client_addr, request_id)
        try:
            result = await run(
                documents.get(payload.query),
                payload.operation_name,
                payload.variables,
                context,
                allow_mutations=request.method == "POST",
            )
        except RequestRefused as refused:
            return error_response(refused.status, str(refused), refused.code, refused.headers)
        if isinstance(result, RequestErrors):
            return json_response({"data": None, "errors": format_errors(result.errors, request_id)})
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = format_errors(result.errors, request_id)
            if any(is_database_unavailable(error) for error in result.errors):
                log.warning("database unavailable during request %s", request_id)
                return json_response(body, 503, RETRY_AFTER)  # with what was answered before the database was needed
        return json_response(body)


def add_routes(app: web.Application) -> None:
    door = GraphQLDoor()
    app.router.add_route("GET", "/graphql", door.handle)
    app.router.add_route("POST", "/graphql", door.handle)
