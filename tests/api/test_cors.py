"""CORS: only configured origins, preflight answered, Authorization allowed."""

from __future__ import annotations

import pytest

from tests.conftest import make_config, start_server
from tokengate.config import ConfigError, parse_origins

ORIGIN = "http://127.0.0.1:5173"


@pytest.fixture
async def cors_server(database, tmp_path):
    async for server in start_server(database, make_config(tmp_path, cors_origins=(ORIGIN,))):
        yield server


async def test_preflight_from_an_allowed_origin(cors_server):
    headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with cors_server.session.options(cors_server.url + "/graphql", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed


async def test_actual_request_from_an_allowed_origin(cors_server):
    seeded = await cors_server.bootstrap()
    reply = await cors_server.gql("{ viewer { kind } }", token=seeded.token, headers={"Origin": ORIGIN})
    assert reply.status == 200 and reply.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_other_origins_are_refused(cors_server):
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    async with cors_server.session.options(cors_server.url + "/graphql", headers=headers) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    reply = await cors_server.gql("{ __typename }", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in reply.headers


async def test_no_cors_by_default(server):
    reply = await server.gql("{ __typename }", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in reply.headers


def test_origins_must_be_exact():
    assert parse_origins("https://a.example, http://127.0.0.1:3000/") == ("https://a.example", "http://127.0.0.1:3000")
    for bad in ["*", "https://*.example", "a.example", "https://a.example/path", "ftp://a"]:
        with pytest.raises(ConfigError):
            parse_origins(bad)
