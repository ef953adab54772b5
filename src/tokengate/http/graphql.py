"""``/graphql``: GraphiQL for browsers, and GraphQL over HTTP (POST, and GET for queries) as its specification
has it (https://graphql.github.io/graphql-over-http/draft/).

The transport only: choose the response's media type from ``Accept``, read the request, find the document
(its text, or a persisted one by hash: api/persisted.py), admit the request through the gate (a document
anyone may run passes without credentials), run the operation (api/operations.py), render the result.

Status codes: with ``application/graphql-response+json`` a request error (syntax, validation, variable
coercion, an operation that cannot be chosen) is a 400 and, like every answer without data, says what
happened in its status; with ``application/json`` (legacy clients, ``*/*``, no ``Accept``) request errors
answer 200. A request error never has a ``data`` entry. What is not a GraphQL request at all (a body that
is not JSON, a wrong Content-Type, a body too large) answers 400, 413 or 415 in ``application/json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from tokengate.auth.gate import RETRY_AFTER, Admission, Refusal
from tokengate.core.browser_sessions import COOKIE
from tokengate.core.media_types import GRAPHQL_RESPONSE, JSON, response_media_type
from tokengate.core.validation import shown
from tokengate.graphql.engine.documents import DocumentCache
from tokengate.graphql.engine.error_answers import format_errors, is_database_unavailable
from tokengate.graphql.engine.kept_answers import MAX_BODY_BYTES as MAX_KEPT_BODY_BYTES
from tokengate.graphql.engine.operations import KeepAs, RequestErrors, RequestRefused, answer_kept, run
from tokengate.graphql.engine.persisted import ResolvedDocument, resolve
from tokengate.graphql.schema.context import Context
from tokengate.http.bodies import read_body
from tokengate.http.middleware import REQUEST_ID
from tokengate.http.pages import GRAPHIQL_PAGE
from tokengate.http.responses import error_response, json_response, refusal_response
from tokengate.http.sign_in import from_pages, pages_origin_of
from tokengate.runtime import RUNTIME, Runtime

log = logging.getLogger("tokengate.graphql")

MAX_BODY_BYTES: Final = 1024 * 1024
# A POST body is JSON; aiohttp reports a missing Content-Type as application/octet-stream (curl -d sends a form
# type), so those two are read as JSON too. Anything else (text/plain, multipart, ...) is 415.
JSON_CONTENT_TYPES: Final = frozenset(
    {"application/json", "application/octet-stream", "application/x-www-form-urlencoded"}
)
# GET parameters (and body entries) whose value is JSON text in a query string.
JSON_PARAMETERS: Final = ("variables", "extensions")
ACCEPTED: Final = {"Accept": f"{GRAPHQL_RESPONSE}, {JSON}"}


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str | None  # None: the document is named by a persisted hash or documentId
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    document_id: str | None
    body: bytes | None = None  # a POST's body as sent: what its answer may be kept under (kept_answers.py)


class BadRequest(Exception):
    status = 400


class UnsupportedMediaType(BadRequest):
    status = 415


def _query_parameters(request: web.BaseRequest) -> dict[str, Any]:
    # The spec: an empty optional parameter is the same as none; JSON ones are JSON text in the URL.
    raw: dict[str, Any] = {key: value for key, value in request.query.items() if value != "" or key == "query"}
    for name in JSON_PARAMETERS:
        if isinstance(raw.get(name), str):
            try:
                raw[name] = json.loads(raw[name])
            except (ValueError, RecursionError):
                raise BadRequest(f"{name} must be a JSON object") from None
    return raw


async def _body(request: web.BaseRequest, runtime: Runtime) -> tuple[Any, bytes]:
    if request.content_type not in JSON_CONTENT_TYPES and not request.content_type.endswith("+json"):
        raise UnsupportedMediaType(f"send the body as application/json, not {shown(request.content_type)}")
    body = await read_body(request, runtime)
    try:
        return json.loads(body), body
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser goes
        raise BadRequest("the body must be a JSON object with a 'query' string") from None


async def read_graphql_request(request: web.BaseRequest, runtime: Runtime) -> GraphQLRequest:
    """The parameters of a GET or POST, or ``BadRequest`` (aiohttp raises ``HTTPRequestEntityTooLarge``)."""
    raw, body = (_query_parameters(request), None) if request.method == "GET" else await _body(request, runtime)
    if isinstance(raw, list):
        raise BadRequest("batched requests are not supported: send one operation per request")
    if not isinstance(raw, dict):
        raise BadRequest("the body must be a JSON object with a 'query' string")
    query, variables, operation_name = raw.get("query"), raw.get("variables"), raw.get("operationName")
    extensions, document_id = raw.get("extensions"), raw.get("documentId")
    if variables is not None and not isinstance(variables, dict):
        raise BadRequest("variables must be a JSON object")
    if extensions is not None and not isinstance(extensions, dict):
        raise BadRequest("extensions must be a JSON object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise BadRequest("operationName must be a string")
    if document_id is not None and (not isinstance(document_id, str) or not document_id):
        raise BadRequest("documentId must be a non-empty string")
    named = document_id is not None or isinstance((extensions or {}).get("persistedQuery"), dict)
    if query is None and named:
        return GraphQLRequest(None, variables, operation_name or None, extensions, document_id)
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("no GraphQL query found in the request")
    return GraphQLRequest(query, variables, operation_name or None, extensions, document_id, body)


def wants_graphiql(request: web.BaseRequest) -> bool:
    return (
        request.method == "GET"
        and not {"query", "extensions", "documentId"} & request.query.keys()
        and "text/html" in request.headers.get("Accept", "")
    )


class GraphQLDoor:
    def __init__(self) -> None:
        # GraphiQL and its assets ship in the package: no CDN is needed to explore the API.
        self.graphiql_html = GRAPHIQL_PAGE.read_text(encoding="utf-8")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The route's handler (behind the middlewares, which gave the request its id)."""
        return await self.answer(request, request.app[RUNTIME], request[REQUEST_ID])

    async def answer(self, request: web.BaseRequest, runtime: Runtime, request_id: str) -> web.StreamResponse:
        """The answer to a request for ``/graphql``, from the route or from the fast door (fast_graphql.py)."""
        if wants_graphiql(request):
            return web.Response(text=self.graphiql_html, content_type="text/html")
        media_type = response_media_type(request.headers.get("Accept"))
        if media_type is None:
            return error_response(406, f"accepts neither {GRAPHQL_RESPONSE} nor {JSON}", "BAD_REQUEST", ACCEPTED)
        try:
            payload = await read_graphql_request(request, runtime)
        except BadRequest as problem:
            return error_response(problem.status, str(problem), "BAD_REQUEST")
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, f"the body is larger than {MAX_BODY_BYTES} bytes", "BAD_REQUEST")
        documents = runtime.documents
        try:
            found = resolve(
                payload.query, payload.extensions, payload.document_id, documents, runtime.config.trusted_documents
            )
        except RequestRefused as refused:
            return error_response(refused.status, str(refused), "BAD_REQUEST", refused.headers)
        if isinstance(found, RequestErrors):
            return request_errors_response(found, media_type, request_id)
        public_introspection = runtime.config.public_introspection
        session = request.cookies.get(COOKIE) if "Authorization" not in request.headers else None
        # A browser session counts only from the pages, with their CSRF defence; without it the cookie carries
        # nothing: a document anyone may run still runs (GraphiQL's introspection), anything else is a 403.
        csrf_refusal = from_pages(request) if session is not None else None
        try:
            if session is not None and csrf_refusal is None:
                admission = await runtime.gate.admit_session(request, session)
            else:
                # Only a request without credentials has its document parsed before admission (under the anonymous
                # limits): it decides whether anyone may run it.
                admitted = runtime.gate.admit(request, lambda: documents.public(found.text, public_introspection))
                admission = admitted if isinstance(admitted, Admission) else await admitted
        except Refusal as refusal:
            if csrf_refusal is not None and refusal.status == 401:
                return error_response(403, csrf_refusal, "FORBIDDEN", content_type=media_type)
            return refusal_response(refusal, media_type)
        keep_as = None
        principal = admission.principal
        # A browser session's principal is read anew per request: nothing kept for it would be found again.
        if principal is not None and session is None and (body := kept_under(payload, found)) is not None:
            kept = runtime.answers.get(principal, media_type, body)
            if kept is not None:  # a query that reads only this principal, answered before: its bytes again
                try:
                    extensions = answer_kept(kept, runtime, principal, admission.client_addr)
                except RequestRefused as refused:
                    return error_response(refused.status, str(refused), refused.code, refused.headers, media_type)
                return web.Response(body=kept.body(extensions), content_type=media_type, charset="utf-8")
            keep_as = KeepAs(runtime.answers, media_type, body)
        context = Context(runtime, principal, admission.client_addr, request_id, pages_origin_of(request, runtime))
        document = documents.get(found.text)
        try:
            result = await run(
                document,
                payload.operation_name,
                payload.variables,
                context,
                allow_mutations=request.method == "POST",
                keep_as=keep_as,
            )
        except RequestRefused as refused:
            return error_response(refused.status, str(refused), refused.code, refused.headers, media_type)
        register(found, document.ast is not None, documents)
        if isinstance(result, RequestErrors):
            return request_errors_response(result, media_type, request_id)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = format_errors(result.errors, request_id)
            if result.extensions:
                body["extensions"] = result.extensions
            if any(is_database_unavailable(error) for error in result.errors):
                log.warning("database unavailable during request %s", request_id)
                # With what was answered before the database was needed. The GraphQL media type must not
                # pair data with an error status: its clients read the outage from the errors' code.
                status = 200 if media_type == GRAPHQL_RESPONSE and result.data is not None else 503
                return json_response(body, status, RETRY_AFTER, media_type)
        if result.extensions:
            body["extensions"] = result.extensions
        return json_response(body, content_type=media_type)


def kept_under(payload: GraphQLRequest, found: ResolvedDocument) -> bytes | None:
    """The body a request's answer may be kept under (kept_answers.py), or None: a POST whose body carries the
    query text itself and is small enough; a document named by a hash or id depends on what is registered."""
    body = payload.body
    if body is None or payload.query is None or found.register_as is not None or len(body) > MAX_KEPT_BODY_BYTES:
        return None
    return body


def register(found: ResolvedDocument, parsed: bool, documents: DocumentCache) -> None:
    """Keep an APQ text sent with its hash, once the request was admitted and the text parsed."""
    if found.register_as is not None and parsed:
        documents.persisted.register(found.register_as, found.text)


def request_errors_response(errors: RequestErrors, media_type: str, request_id: str) -> web.Response:
    """A request error: no ``data`` entry; 400 in the GraphQL media type, 200 for legacy JSON clients."""
    status = 400 if media_type == GRAPHQL_RESPONSE else 200
    body: dict[str, Any] = {"errors": format_errors(errors.errors, request_id)}
    if errors.extensions:
        body["extensions"] = errors.extensions
    return json_response(body, status, content_type=media_type)


GRAPHQL_DOOR: Final = web.AppKey("graphql_door", GraphQLDoor)


def add_routes(app: web.Application) -> None:
    door = app[GRAPHQL_DOOR] = GraphQLDoor()
    app.router.add_route("GET", "/graphql", door.handle)
    app.router.add_route("POST", "/graphql", door.handle)
