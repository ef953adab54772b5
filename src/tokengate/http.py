"""The aiohttp application: /graphql, /auth/check, /healthz, /readyz."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp_cors
import asyncpg
from aiohttp import web
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)
from graphql.error import GraphQLSyntaxError
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from tokengate import db
from tokengate.api.context import Context, Services
from tokengate.api.schema import is_unexpected, schema
from tokengate.auth import Authenticator, DatabaseUnavailable, LastUsedRecorder, Unauthenticated
from tokengate.cache import PrincipalCache
from tokengate.catalog import ACCESS_LEVELS, READ, RESOURCES
from tokengate.config import Config
from tokengate.invalidation import InvalidationListener, invalidation_handler
from tokengate.ip_guard import IpGuard, database_loader
from tokengate.observability import CONTENT_TYPE, AccessLog, Metrics, RequestIds, hide_malformed_request_text
from tokengate.policy import USER, Principal, client_address
from tokengate.settings_page import service_tokens_page
from tokengate.store import DATABASE_UNAVAILABLE
from tokengate.store.migrations import migrate
from tokengate.tokens import ParsedToken

log = logging.getLogger("tokengate.http")

SERVICES = web.AppKey("services", Services)
METRICS = web.AppKey("metrics", Metrics)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
REQUEST_IDS = web.AppKey("request_ids", RequestIds)
REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL_PREFIX = web.RequestKey("principal_prefix", str)  # the display prefix, for the access log
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 1024 * 1024
# A POST body is JSON; aiohttp reports a missing Content-Type as application/octet-stream (curl -d sends a form
# type), so those two are read as JSON too. Anything else (text/plain, multipart, ...) is 415.
JSON_CONTENT_TYPES = frozenset({"application/json", "application/octet-stream", "application/x-www-form-urlencoded"})
READINESS_TIMEOUT = 2.0
INTROSPECTION_FIELDS = frozenset({"__schema", "__type", "__typename"})
# Root fields anyone may call without credentials (their resolvers never read the caller).
PUBLIC_FIELDS = frozenset({"reportLeakedToken"})
QUERY_ONLY = frozenset({OperationType.QUERY})
ALL_OPERATIONS = frozenset({OperationType.QUERY, OperationType.MUTATION})


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"errors": [{"message": message, "extensions": {"code": code}}]}, status, headers)


def unauthenticated_response(message: str) -> web.Response:
    return error_response(401, message, "UNAUTHENTICATED", {"WWW-Authenticate": "Bearer"})


IP_REFUSED_BODY = json.dumps(
    {"errors": [{"message": "Forbidden: Access denied", "extensions": {"code": "FORBIDDEN"}}]}, separators=(",", ":")
).encode()


def ip_refused_response() -> web.Response:
    """A token used from an address the account's IP restrictions refuse."""
    return web.Response(body=IP_REFUSED_BODY, status=403, content_type="application/json")


def request_client_address(request: web.Request, services: Services) -> str | None:
    return client_address(request.remote, request.headers.get("X-Forwarded-For"), services.config.trusted_proxies)


async def ip_allowed(services: Services, principal: Principal, client_addr: str | None) -> bool:
    """May this principal's account be used from this address? Loads the account's rules if needed."""
    return await services.ip_guard.allows(principal.account_id, client_addr)


UNAVAILABLE_MESSAGE = "the database is unreachable; try again shortly"
RETRY_AFTER = {"Retry-After": "1"}


def unavailable_response() -> web.Response:
    return error_response(503, UNAVAILABLE_MESSAGE, "SERVICE_UNAVAILABLE", RETRY_AFTER)


def is_database_unavailable(error: GraphQLError) -> bool:
    return isinstance(error.original_error, DATABASE_UNAVAILABLE)


def authenticate_request(
    request: web.Request, services: Services, client_addr: str | None
) -> Principal | Awaitable[Principal]:
    """The request's principal, counted and timed: a plain value when the cache answers (no coroutine on
    the hot path), else an awaitable that asks the database. Raises ``Unauthenticated`` (or, awaited,
    ``DatabaseUnavailable``)."""
    started = time.perf_counter()
    try:
        parsed, principal = services.authenticator.from_memory(request.headers.get("Authorization"))
    except Unauthenticated as refusal:
        _refused(services, refusal, started)
        raise
    if principal is not None:
        return _accepted(request, services, principal, started)
    return _authenticate_from_database(request, services, parsed, client_addr, started)


async def _authenticate_from_database(
    request: web.Request, services: Services, parsed: ParsedToken, client_addr: str | None, started: float
) -> Principal:
    try:
        principal = await services.authenticator.from_database(parsed, client_addr=client_addr)
    except Unauthenticated as refusal:
        _refused(services, refusal, started)
        raise
    return _accepted(request, services, principal, started)


def _refused(services: Services, refusal: Unauthenticated, started: float) -> None:
    services.metrics.count_authentication(refusal.outcome)
    services.metrics.validation_seconds.observe(time.perf_counter() - started)


def _accepted(request: web.Request, services: Services, principal: Principal, started: float) -> Principal:
    services.metrics.count_authentication("ok")
    services.metrics.validation_seconds.observe(time.perf_counter() - started)
    request[PRINCIPAL_PREFIX] = principal.display_prefix
    return principal


@dataclass(frozen=True)
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
            raise UnsupportedMediaType(f"send the body as application/json, not {request.content_type[:MAX_ECHO]}")
        try:
            raw = json.loads(await request.read())
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


def is_introspection_only(query: str) -> bool:
    """True when every operation selects only ``__schema``, ``__type`` or ``__typename`` at its root."""
    return selects_only(query, INTROSPECTION_FIELDS)


@lru_cache(maxsize=256)
def selects_only(query: str, root_fields: frozenset[str]) -> bool:
    """True when every operation selects nothing but ``root_fields`` at its root (fragments followed)."""
    try:
        document = parse(query)
    except GraphQLSyntaxError:
        return False
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]

    def only_allowed(selection_set: SelectionSetNode, seen: frozenset[str]) -> bool:
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value not in root_fields:
                    return False
            elif isinstance(selection, InlineFragmentNode):
                if not only_allowed(selection.selection_set, seen):
                    return False
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in seen or name not in fragments:
                    return False
                if not only_allowed(fragments[name].selection_set, seen | {name}):
                    return False
        return True

    return bool(operations) and all(only_allowed(op.selection_set, frozenset()) for op in operations)


def wants_graphiql(request: web.Request) -> bool:
    return request.method == "GET" and "query" not in request.query and "text/html" in request.headers.get("Accept", "")


def format_errors(errors: list[GraphQLError], request_id: str) -> list[dict[str, Any]]:
    formatted = []
    for error in errors:
        if is_database_unavailable(error):  # an outage, not a bug: the request is answered 503
            formatted.append(
                {"message": UNAVAILABLE_MESSAGE, "path": error.path, "extensions": {"code": "SERVICE_UNAVAILABLE"}}
            )
            continue
        if is_unexpected(error):
            log.error(
                "unexpected error in request %s at %s",
                request_id,
                error.path,
                exc_info=error.original_error,
            )
            formatted.append(
                {
                    "message": f"Internal server error (request id {request_id})",
                    "path": error.path,
                    "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                }
            )
            continue
        entry = error.formatted
        # Not unexpected: a syntax, validation or variable coercion error (its cause, if any, a GraphQLError).
        entry.setdefault("extensions", {}).setdefault("code", "BAD_USER_INPUT")
        formatted.append(entry)
    return formatted


class GraphQLEndpoint:
    def __init__(self, graphiql_html: str):
        self.graphiql_html = graphiql_html

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if wants_graphiql(request):
            return web.Response(text=self.graphiql_html, content_type="text/html")
        services = request.app[SERVICES]
        request_id = request[REQUEST_ID]
        try:
            payload = await read_graphql_request(request)
        except BadRequest as problem:
            return error_response(problem.status, str(problem), "BAD_REQUEST")
        header = request.headers.get("Authorization")
        client_addr = request_client_address(request, services)
        principal = None
        try:
            authenticated = authenticate_request(request, services, client_addr)
            principal = authenticated if isinstance(authenticated, Principal) else await authenticated
        except Unauthenticated as refusal:
            public = header is None and (
                (services.config.public_introspection and is_introspection_only(payload.query))
                # reportLeakedToken needs no credentials; anything else in the request still gets 401
                or selects_only(payload.query, PUBLIC_FIELDS)
            )
            if not public:
                return unauthenticated_response(str(refusal))
        if principal is not None:
            allowed = services.ip_guard.cached_allows(principal.account_id, client_addr)
            if not (await ip_allowed(services, principal, client_addr) if allowed is None else allowed):
                return ip_refused_response()
        context = Context(services=services, principal=principal, client_addr=client_addr, request_id=request_id)
        try:
            result = await schema.execute(
                payload.query,
                variable_values=payload.variables,
                context_value=context,
                operation_name=payload.operation_name,
                allowed_operation_types=QUERY_ONLY if request.method == "GET" else ALL_OPERATIONS,
            )
        except InvalidOperationTypeError as problem:
            if problem.operation_type == OperationType.SUBSCRIPTION:
                return error_response(400, "subscriptions are not supported", "BAD_REQUEST")
            return error_response(405, "mutations must be sent with POST", "BAD_REQUEST", {"Allow": "POST"})
        except (CannotGetOperationTypeError, MissingQueryError) as problem:
            message = (
                problem.as_http_error_reason() if isinstance(problem, CannotGetOperationTypeError) else str(problem)
            )
            return error_response(400, message, "BAD_REQUEST")
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = format_errors(result.errors, request_id)
            if any(is_database_unavailable(error) for error in result.errors):
                log.warning("database unavailable during request %s", request_id)
                return _json(body, 503, RETRY_AFTER)  # with what was answered before the database was needed
        return _json(body)


@web.middleware
async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
    """Request id, one access log line and a counter per request; a 500 never shows a traceback."""
    started = time.perf_counter()
    app = request.app
    request_id = request[REQUEST_ID] = app[REQUEST_IDS].next()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as http_error:
        status = http_error.status
        http_error.headers["X-Request-Id"] = request_id
        raise
    except (DatabaseUnavailable, *DATABASE_UNAVAILABLE):
        log.warning("database unavailable during request %s", request_id)
        response = unavailable_response()
        status = response.status
    except Exception:
        log.exception("unhandled error in request %s", request_id)
        response = error_response(500, f"Internal server error (request id {request_id})", "INTERNAL_SERVER_ERROR")
    finally:
        app[METRICS].count_request(route, status)
        app[ACCESS_LOG].write(
            request_id,
            request.method,
            route,
            status,
            round((time.perf_counter() - started) * 1000, 3),
            request.get(PRINCIPAL_PREFIX),
        )
    response.headers["X-Request-Id"] = request_id
    return response


async def metrics_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE})


RESOURCE_BY_NAME = {resource.upper(): resource for resource in RESOURCES}
ACCESS_BY_NAME = {access.upper(): access for access in ACCESS_LEVELS}
MAX_ECHO = 64  # of a bad parameter value, in the 400 message


@dataclass(frozen=True, slots=True)
class CheckQuestion:
    """What a gateway asks: only "is this a valid token?" when ``resource`` is None."""

    resource: str | None
    access: str
    project_id: str | None


@lru_cache(maxsize=1024)
def check_question(resource: str | None, access: str | None, project_id: str | None) -> CheckQuestion:
    """The parameters of ``/auth/check`` (case-insensitive names), or ``BadRequest`` saying what is wrong."""
    if not resource:
        if access or project_id:
            raise BadRequest("access and projectId need a resource, e.g. ?resource=JOBS&access=READ")
        return CheckQuestion(None, READ, None)
    checked_resource = RESOURCE_BY_NAME.get(resource.strip().upper())
    if checked_resource is None:
        raise BadRequest(f"unknown resource {resource[:MAX_ECHO]!r}: expected one of {', '.join(RESOURCES)}")
    checked_access = ACCESS_BY_NAME.get((access or READ).strip().upper())
    if checked_access is None:
        raise BadRequest(f"unknown access {(access or '')[:MAX_ECHO]!r}: expected READ or WRITE")
    return CheckQuestion(checked_resource, checked_access, project_id.strip() if project_id else None)


def principal_headers(principal: Principal) -> dict[str, str]:
    """What a gateway passes upstream: ids only, never a secret (the display prefix is not ASCII-only)."""
    name = f"user:{principal.user_id}" if principal.kind == USER else f"service_token:{principal.token_id}"
    return {
        "X-Tokengate-Account-Id": principal.account_id,
        "X-Tokengate-Principal": name,
        "X-Tokengate-Principal-Kind": principal.kind,
    }


async def answer_check(
    request: web.Request, resource: str | None, access: str | None, project_id: str | None
) -> web.Response:
    """200 with principal headers, 401 without a valid token, 403 when not allowed or refused by IP rules."""
    services = request.app[SERVICES]
    try:
        question = check_question(resource, access, project_id)
    except BadRequest as problem:
        return error_response(400, str(problem), "BAD_REQUEST")
    client_addr = request_client_address(request, services)
    try:
        authenticated = authenticate_request(request, services, client_addr)
        principal = authenticated if isinstance(authenticated, Principal) else await authenticated
    except Unauthenticated as refusal:
        return unauthenticated_response(str(refusal))
    allowed = services.ip_guard.cached_allows(principal.account_id, client_addr)
    if not (await ip_allowed(services, principal, client_addr) if allowed is None else allowed):
        return ip_refused_response()
    if question.resource is not None:
        required = f"requires {question.resource}:{question.access}"
        if question.project_id is not None and question.project_id not in principal.project_ids:
            return error_response(403, f"{required} (project not found)", "FORBIDDEN")
        decision = principal.permissions.decide(question.resource, question.access, question.project_id)
        if not decision.allowed:
            return error_response(403, f"{required} ({decision.reason})", "FORBIDDEN")
    return web.Response(status=200, headers=principal_headers(principal))


async def auth_check(request: web.Request) -> web.Response:
    """``/auth/check?resource=R&access=A&projectId=P`` (nginx auth_request, Traefik ForwardAuth)."""
    query = request.query
    return await answer_check(request, query.get("resource"), query.get("access"), query.get("projectId"))


async def auth_check_by_headers(request: web.Request) -> web.Response:
    """``/auth/check/<original path>`` as Envoy's ext_authz sends it: the question comes in headers
    set by the gateway; the query string is the client's own and is ignored."""
    headers = request.headers
    return await answer_check(
        request,
        headers.get("X-Tokengate-Resource"),
        headers.get("X-Tokengate-Access"),
        headers.get("X-Tokengate-Project-Id"),
    )


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    pool = request.app[SERVICES].pool
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            await pool.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return _json({"status": "unavailable", "database": "unreachable"}, status=503)
    return _json({"status": "ready"})


def create_app(
    config: Config,
    *,
    dsn: str | None = None,
    migrate_on_start: bool = True,
    pool_setup: Callable[[Any], Awaitable[None]] | None = None,
    access_log: AccessLog | None = None,
) -> web.Application:
    """The application; it owns its pool through ``cleanup_ctx``."""
    hide_malformed_request_text()
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[observe])
    metrics = app[METRICS] = Metrics()
    app[REQUEST_IDS] = RequestIds()
    app[ACCESS_LOG] = access_log if access_log is not None else AccessLog()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        target = dsn or await db.resolve_dsn(config)
        pool = await db.create_pool(target, setup=pool_setup)
        if migrate_on_start:
            async with pool.acquire() as conn:
                await migrate(conn)
        last_used = LastUsedRecorder(pool)
        last_used.start()
        cache = PrincipalCache(max_size=config.principal_cache_size)
        ip_guard = IpGuard(database_loader(pool))
        listener = InvalidationListener(target)
        listener.subscribe(invalidation_handler(cache, ip_guard), lambda: (cache.clear(), ip_guard.clear()))
        await listener.start()
        app[ACCESS_LOG].start()
        app[SERVICES] = Services(
            config=config,
            pool=pool,
            authenticator=Authenticator(
                pool, config.secret_keys, last_used, cache=cache, cache_trusted=lambda: listener.healthy
            ),
            metrics=metrics,
            ip_guard=ip_guard,
            listener=listener,
        )
        metrics.add_gauges(
            "tokengate_principal_cache",
            "Principal cache: hits, misses, evictions and invalidations since start, entries and size limit now",
            "stat",
            lambda: [
                ("hits", cache.stats.hits),
                ("misses", cache.stats.misses),
                ("evictions", cache.stats.evictions),
                ("invalidations", cache.stats.invalidations),
                ("flushes", cache.stats.flushes),
                ("entries", len(cache)),
                ("max_entries", cache.max_size),
            ],
        )
        metrics.add_gauges(
            "tokengate_db_pool_connections",
            "Database pool connections by state",
            "state",
            lambda: [("in_use", pool.get_size() - pool.get_idle_size()), ("idle", pool.get_idle_size())],
        )
        yield
        await app[ACCESS_LOG].stop()
        await listener.stop()
        await last_used.stop()  # the uses of the last seconds, before the pool goes
        await pool.close()

    app.cleanup_ctx.append(resources)
    # GraphiQL and its assets ship in the package: no CDN is needed to explore the API.
    endpoint = GraphQLEndpoint((STATIC_DIR / "graphiql" / "index.html").read_text(encoding="utf-8"))
    app.router.add_route("GET", "/graphql", endpoint.handle)
    app.router.add_route("POST", "/graphql", endpoint.handle)
    # Any method: nginx and Envoy send the client's method (with no body) to the auth service.
    app.router.add_route("*", "/auth/check", auth_check)
    app.router.add_route("*", "/auth/check/{original_path:.*}", auth_check_by_headers)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/settings/service-tokens", service_tokens_page)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    allow_cross_origin(app, config.cors_origins)
    return app


def allow_cross_origin(app: web.Application, origins: tuple[str, ...]) -> None:
    """CORS for browser front ends on the configured origins only (none by default)."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,  # tokens travel in Authorization, never in cookies
        allow_headers=("Authorization", "Content-Type"),
        expose_headers=("X-Request-Id", "WWW-Authenticate"),
        allow_methods=("GET", "POST"),
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        if route.method in ("GET", "POST") and not route.resource.canonical.startswith("/static"):
            cors.add(route)
