"""Which media type a GraphQL answer is sent in, from the Accept header (the GraphQL over HTTP specification)."""

from __future__ import annotations

import pytest

from tokengate.core.media_types import GRAPHQL_RESPONSE, JSON, response_media_type


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),  # no Accept: legacy JSON
        ("", JSON),
        ("application/json", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("application/graphql-response+json, application/json;q=0.9", GRAPHQL_RESPONSE),  # the spec's advice
        ("application/graphql-response+json,application/json;q=0.9", GRAPHQL_RESPONSE),  # Apollo Client 4's
        ("application/json;q=0.9, application/graphql-response+json", GRAPHQL_RESPONSE),
        ("application/json, application/graphql-response+json;q=0.5", JSON),
        ("application/json, application/graphql-response+json", JSON),  # a tie: the first listed
        ("*/*", JSON),  # a wildcard gets legacy JSON until clients move
        ("application/*", JSON),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),  # a browser
        ("application/graphql-response+json;q=0, */*", JSON),  # refused by name, a wildcard still covers JSON
        ("application/json;q=0, */*", GRAPHQL_RESPONSE),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON; charset=utf-8", GRAPHQL_RESPONSE),
        ("application/json;q=bogus, application/graphql-response+json;q=0.1", GRAPHQL_RESPONSE),
    ],
)
def test_the_response_type_follows_accept(accept, expected):
    assert response_media_type(accept) == expected


@pytest.mark.parametrize(
    "accept", ["text/html", "text/plain, image/png", "application/json;q=0", "application/xml", "text/*"]
)
def test_accept_naming_neither_type_is_not_acceptable(accept):
    assert response_media_type(accept) is None
