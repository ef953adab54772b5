"""Which media type a GraphQL response is sent in, read from the request's ``Accept`` header. Pure.

The GraphQL over HTTP specification: ``application/graphql-response+json`` when the client accepts it
(its status codes then say what happened), ``application/json`` for legacy clients and when there is no
``Accept`` at all, and ``406`` only when the header names neither (nor a wildcard that covers them).
"""

from __future__ import annotations

from typing import Final

GRAPHQL_RESPONSE: Final = "application/graphql-response+json"
JSON: Final = "application/json"
# Preferred on a tie (e.g. ``*/*``): until clients move, legacy JSON is what a wildcard gets.
SUPPORTED: Final = (JSON, GRAPHQL_RESPONSE)
MAX_RANGES: Final = 64  # an Accept header longer than this is read no further


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


def _specificity(media_range: str, media_type: str) -> int:
    """2 for an exact match, 1 for ``type/*``, 0 for ``*/*``, -1 when the range does not cover the type."""
    if media_range == media_type:
        return 2
    kind, _, subtype = media_range.partition("/")
    if subtype == "*" and kind == media_type.partition("/")[0]:
        return 1
    if media_range == "*/*":
        return 0
    return -1


def response_media_type(accept: str | None) -> str | None:
    """The media type to answer in, or None when the client accepts neither (answer 406).

    Per RFC 9110 the most specific range that covers a type gives its quality; the highest quality
    wins, then the more specific match, then the range listed first, then ``application/json``.
    """
    if accept is None or not accept.strip():
        return JSON
    ranked: dict[str, tuple[float, int, int]] = {}
    for position, item in enumerate(accept.split(",")[:MAX_RANGES]):
        media_range, *parameters = item.split(";")
        media_range = media_range.strip().lower()
        for media_type in SUPPORTED:
            specificity = _specificity(media_range, media_type)
            if specificity < 0:
                continue
            previous = ranked.get(media_type)
            if previous is None or specificity > previous[1]:
                ranked[media_type] = (_quality(parameters), specificity, -position)
    acceptable = [
        (rank, -SUPPORTED.index(media_type), media_type) for media_type, rank in ranked.items() if rank[0] > 0
    ]
    if not acceptable:
        return None
    return max(acceptable)[2]
