"""JSON answers the doors share: a body, an error in the GraphQL error shape, a gate refusal."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from tokengate.auth.gate import Refusal

JSON = "application/json"


def json_response(
    payload: Any, status: int = 200, headers: Mapping[str, str] | None = None, content_type: str = JSON
) -> web.Response:
    return web.Response(
        body=json_bytes(payload), status=status, content_type=content_type, charset="utf-8", headers=headers
    )


def json_bytes(payload: Any) -> bytes:
    """``payload`` as compact UTF-8 JSON: orjson, or json.dumps for what orjson refuses (an integer past 64
    bits, a key that is not a string) so nothing that encoded before fails now."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return json.dumps(payload, separators=(",", ":")).encode()


def error_response(
    status: int, message: str, code: str, headers: Mapping[str, str] | None = None, content_type: str = JSON
) -> web.Response:
    """``{"errors": [{"message", "extensions": {"code"}}]}``: what every door answers for a refused request."""
    payload = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return json_response(payload, status, headers, content_type)


_REFUSAL_BODIES: dict[tuple[str, str], bytes] = {}


def refusal_body(refusal: Refusal) -> bytes:
    """A gate refusal's error body (kept: the same few are answered over and over)."""
    key = (refusal.code, refusal.message)
    body = _REFUSAL_BODIES.get(key)
    if body is None:
        body = json.dumps(
            {"errors": [{"message": refusal.message, "extensions": {"code": refusal.code}}]}, separators=(",", ":")
        ).encode()
        if len(_REFUSAL_BODIES) < 256:
            _REFUSAL_BODIES[key] = body
    return body


def refusal_response(refusal: Refusal, content_type: str = JSON) -> web.Response:
    """A gate refusal as its status and error body, in the media type the door negotiated."""
    body = refusal_body(refusal)
    return web.Response(
        body=body, status=refusal.status, content_type=content_type, charset="utf-8", headers=refusal.headers or None
    )
