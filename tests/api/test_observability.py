"""Metrics and structured logs, as an operator sees them."""

from __future__ import annotations

import io
import json
import logging
import re

from tests.conftest import make_config, start_server
from tokengate.http.observability import AccessLog, JsonFormatter


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        match = re.match(r"([a-z_]+)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return 0.0


async def test_metrics_count_requests_denials_and_pool(server):
    seeded = await server.bootstrap()
    await server.gql("{ viewer { kind } }", token=seeded.token)
    await server.gql("{ viewer { kind } }")  # 401
    await server.gql('mutation { createProject(name: "p") { id } }', token=seeded.token)
    from tests.conftest import store_service_token
    from tokengate.core.policy import Grant

    viewer_token = await store_service_token(server, seeded.account_id, [Grant("JOB_VIEWER")])
    await server.gql("{ account { members { id } } }", token=viewer_token)
    status, text, headers = await server.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert metric(text, "tokengate_http_requests_total", route="/graphql", status="200") >= 3
    assert metric(text, "tokengate_http_requests_total", route="/graphql", status="401") == 1
    assert metric(text, "tokengate_permission_denials_total", resource="MEMBERS", access="READ") == 1
    assert "tokengate_db_pool_connections" in text
    assert (
        metric(text, "tokengate_db_pool_connections", state="idle")
        + metric(text, "tokengate_db_pool_connections", state="in_use")
        >= 1
    )


async def test_every_response_carries_a_request_id(server):
    status, _, headers = await server.get("/healthz")
    assert status == 200 and re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]+", headers["X-Request-Id"])
    status, _, headers = await server.get("/no-such-route")
    assert status == 404 and headers["X-Request-Id"]


async def test_one_structured_access_line_per_request_without_secrets(database, tmp_path):
    stream = io.StringIO()
    access_log = AccessLog(stream=stream)
    async for server in start_server(database, make_config(tmp_path), access_log=access_log):
        seeded = await server.bootstrap()
        reply = await server.gql("{ viewer { kind } }", token=seeded.token)
        await server.gql("{ viewer { kind } }", token="tgs_nope")
        access_log.flush()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert len(lines) == 2
        first, second = lines
        assert first["request_id"] == reply.headers["X-Request-Id"]
        assert first["route"] == "/graphql" and first["status"] == 200 and first["duration_ms"] > 0
        assert first["principal"] == seeded.token[:8] + "…" and first["logger"] == "tokengate.access"
        assert second["status"] == 401 and second["principal"] is None
        assert seeded.token not in stream.getvalue()


def test_text_access_lines_for_humans():
    stream = io.StringIO()
    access_log = AccessLog(stream=stream, log_format="text")
    access_log.write("r-1", "GET", "/healthz", 200, 0.5, None)
    access_log.flush()
    assert stream.getvalue().endswith("r-1 GET /healthz 200 0.5ms -\n")


def test_access_log_can_be_switched_off():
    stream = io.StringIO()
    access_log = AccessLog(stream=stream, enabled=False)
    access_log.write("r-1", "GET", "/healthz", 200, 0.5, None)
    access_log.flush()
    assert stream.getvalue() == ""


def test_json_formatter_keeps_extra_fields_and_exceptions():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, "f", 1, "failed %s", ("here",), None)
        import sys

        record.exc_info = sys.exc_info()
    record.request_id = "abc"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed here" and line["request_id"] == "abc" and "ValueError" in line["exception"]
