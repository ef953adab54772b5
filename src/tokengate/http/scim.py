"""``/scim/v2``: SCIM 2.0 (RFC 7643, RFC 7644) for an identity provider (Okta, Entra ID, …) that provisions and
deprovisions the account's members. docs/scim.md.

Every request, a wrong path or method included, is admitted first by the gate with a SCIM token and nothing else
(``Gate.admit_scim``: the address, failure and principal budgets, the account's IP rules); a service or personal
token is refused here, and a SCIM token is refused by every other door (core/tokens.py ``parse_token`` does not
know its prefix). Every answer is ``application/scim+json``; every refusal is SCIM's error document with its
status (RFC 7644 3.12), never a 500 for what a client sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from tokengate.auth.gate import Refusal
from tokengate.auth.scim_tokens import scim_principal
from tokengate.core import global_ids, scim
from tokengate.core.errors import Forbidden, InvalidInput, NotFound
from tokengate.core.scim import ScimError
from tokengate.http.bodies import read_in_time
from tokengate.http.responses import json_response
from tokengate.runtime import RUNTIME
from tokengate.services import Actor
from tokengate.services import scim as provisioning
from tokengate.store.scim import MemberFilter, MemberRecord

ROOT: Final = "/scim/v2"
MAX_BODY_BYTES: Final = 64 * 1024
NO_STORE: Final = {"Cache-Control": "no-store"}


def answer(document: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_response(document, status, {**NO_STORE, **(headers or {})}, content_type=scim.MEDIA_TYPE)


def refused(error: ScimError, headers: Mapping[str, str] | None = None) -> web.Response:
    return answer(scim.error_document(error), error.status, headers)


def not_found(what: str = "no such resource") -> ScimError:
    return ScimError(404, what)


def method_not_allowed(allowed: str) -> ScimError:
    return ScimError(405, f"this endpoint answers {allowed} only")


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{ROOT}"


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (at most MAX_BODY_BYTES), or ``ScimError`` 400 ``invalidSyntax``."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ScimError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = await read_in_time(request, request.app[RUNTIME].config.limits.body_timeout)
    if len(body) > MAX_BODY_BYTES:
        raise ScimError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ScimError(400, "the body is not JSON (or nests too deep)", "invalidSyntax") from None


def user_resource(request: web.Request, member: MemberRecord, projection: scim.Projection | None = None) -> Any:
    record = provisioning.record_of(member)
    return scim.resource(member.id, record, member.created_at.isoformat(), base_url(request), projection)


def member_filter(text: str | None) -> MemberFilter:
    wanted = scim.parsed_filter(text)
    if wanted is None:
        return MemberFilter()
    if wanted.attribute == "userName":
        return MemberFilter(user_name=wanted.value)
    if wanted.attribute == "externalId":
        return MemberFilter(external_id=wanted.value)
    if wanted.attribute == "emails.value":
        return MemberFilter(email=wanted.value)
    parsed = global_ids.parse(wanted.value)  # id: a member's usr_ id; anything else matches nobody
    if parsed is None or parsed.type != "User":
        return MemberFilter(nothing=True)
    return MemberFilter(id=parsed.key)


async def users(request: web.Request, actor: Actor, rest: list[str]) -> web.Response:
    runtime = request.app[RUNTIME]
    account_id = actor.principal.account_id if actor.principal is not None else ""
    query = request.query
    method = request.method
    if not rest:
        if method == "GET":
            projection = scim.projection(query.get("attributes"), query.get("excludedAttributes"))
            start_index, count = scim.paging(query.get("startIndex"), query.get("count"))
            page = await provisioning.page(
                runtime.pool, account_id, member_filter(query.get("filter")), start_index, count
            )
            found = [user_resource(request, member, projection) for member in page.members]
            return answer(scim.list_response(found, page.total, start_index))
        if method == "POST":
            record = scim.checked_record(await read_json(request))
            member = await provisioning.provision(runtime.backend, actor, account_id, record)
            document = user_resource(request, member)
            return answer(document, 201, {"Location": document["meta"]["location"]})
        raise method_not_allowed("GET and POST")
    if len(rest) != 1:
        raise not_found()
    user_id = rest[0]
    if user_id == ".search":
        raise ScimError(501, "searching with POST is not supported: use GET /Users?filter=")
    parsed = global_ids.parse(user_id)
    if parsed is None or parsed.type != "User":
        raise not_found("no such member")
    if method == "GET":
        projection = scim.projection(query.get("attributes"), query.get("excludedAttributes"))
        return answer(user_resource(request, await provisioning.member(runtime.pool, account_id, user_id), projection))
    if method == "PUT":
        record = scim.checked_record(await read_json(request))
        member = await provisioning.replace(runtime.backend, actor, account_id, user_id, record)
        return answer(user_resource(request, member))
    if method == "PATCH":
        body = await read_json(request)
        member = await provisioning.patch(runtime.backend, actor, account_id, user_id, body)
        return answer(user_resource(request, member))
    if method == "DELETE":
        await provisioning.remove(runtime.backend, actor, account_id, user_id)
        return web.Response(status=204, headers=NO_STORE)
    raise method_not_allowed("GET, PUT, PATCH and DELETE")


def discovery(request: web.Request, kind: str, rest: list[str]) -> web.Response:
    """ServiceProviderConfig, ResourceTypes and Schemas (RFC 7644 4): GET only."""
    if request.method != "GET":
        raise method_not_allowed("GET")
    base = base_url(request)
    if kind == "ServiceProviderConfig":
        if rest:
            raise not_found()
        return answer(scim.service_provider_config(base))
    documents = scim.resource_types(base) if kind == "ResourceTypes" else scim.schemas(base)
    if not rest:
        return answer(scim.list_response(documents, len(documents), 1))
    if len(rest) == 1:
        for document in documents:
            if document["id"] == rest[0]:
                return answer(document)
    raise not_found(f"no such {kind[:-1] if kind.endswith('s') else kind}")


async def route(request: web.Request, actor: Actor) -> web.Response:
    parts = [part for part in request.match_info.get("tail", "").split("/") if part]
    if not parts:
        raise not_found()
    head, rest = parts[0], parts[1:]
    if head in ("ServiceProviderConfig", "ResourceTypes", "Schemas"):
        return discovery(request, head, rest)
    if head == "Users":
        return await users(request, actor, rest)
    if head == ".search" and not rest:
        if request.method != "POST":
            raise method_not_allowed("POST")
        raise ScimError(501, "searching several resource types at once is not supported: use GET /Users?filter=")
    raise not_found()


async def scim_door(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    keys = runtime.config.secret_keys
    try:
        admission = await runtime.gate.admit_scim(request, lambda text: scim_principal(runtime.pool, keys, text))
    except Refusal as refusal:
        return refused(ScimError(refusal.status, refusal.message), refusal.headers)
    assert admission.principal is not None
    actor = Actor.of(admission.principal, admission.client_addr, source="scim")
    try:
        return await route(request, actor)
    except ScimError as error:
        return refused(error)
    except NotFound as error:
        return refused(ScimError(404, str(error)))
    except provisioning.Conflict:
        return refused(ScimError(409, provisioning.Conflict.MESSAGE, "uniqueness"))
    except Forbidden as error:
        return refused(ScimError(403, str(error)))
    except InvalidInput as error:
        return refused(scim.invalid_value(str(error)))


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", ROOT, scim_door)
    app.router.add_route("*", ROOT + "/{tail:.*}", scim_door)
