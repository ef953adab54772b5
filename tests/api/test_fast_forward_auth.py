"""The fast forward-auth door (doors/fast_forward_auth.py) answers exactly as the generic one did.

Two servers on one database, one with the fast door and one without (``serving.start(..., fast_doors=False)``),
get the same table of requests in the same order; every answer must match: status, body, and every header but
``Date`` and ``X-Request-Id`` (present on both, each its own). Both must count every request in
``tokengate_http_requests_total`` and write one access line each, alike. Requests the fast door does not take
(the Envoy form, an encoded target, ``Expect``) are proven to reach the application, and answered alike too.
Tokens that stop working after being cached (expired, deleted, fenced by new IP rules) stop alike on both, and
what raises (the database gone mid-request, a bug) is a 503 or a masked 500 alike. A real PostgreSQL outage
is test_faults.py's, through the fast door (``start_server`` serves with it).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from tests.api.conftest import LOOPBACK, from_address
from tests.conftest import (
    CAPTURED_OUTPUT,
    Server,
    free_port,
    last_character_changed,
    make_config,
    store_service_token,
)
from tokengate.app import create_app
from tokengate.config import Config
from tokengate.core import tokens
from tokengate.core.limits import Limits, Rate
from tokengate.core.policy import Grant
from tokengate.http import fast_forward_auth, forward_auth, serving
from tokengate.http.observability import AccessLog
from tokengate.runtime import RUNTIME
from tokengate.store import DatabaseUnavailable

CREATE_PROJECT = "mutation($name: String!) { createProject(name: $name) { id } }"
SET_IP = (
    "mutation($enabled: Boolean!, $rules: [IpRuleInput!]!) { setIpRestrictions(enabled: $enabled, rules: $rules) "
    "{ enabled } }"
)
DELETE = "mutation($id: ID!) { deleteServiceToken(id: $id) { state } }"
UNCOMPARED = {"date", "x-request-id"}
REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]+")


class Lines:
    """An access log stream that keeps its lines (and hands them to the suite's no-secret check)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        CAPTURED_OUTPUT.append(text)
        self.lines.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        pass


@dataclass
class Door:
    server: Server
    log: AccessLog
    lines: Lines


@asynccontextmanager
async def doors(database: str, config: Config) -> AsyncIterator[tuple[Door, Door]]:
    """(fast, generic): the same configuration on one database, the fast door on the first only."""
    runners: list[serving.GuardedAppRunner] = []
    made: list[Door] = []
    async with aiohttp.ClientSession() as session:
        try:
            for fast in (True, False):
                lines = Lines()
                log = AccessLog(stream=lines, flush_interval=3600)
                app = create_app(config, dsn=database, migrate_on_start=False, access_log=log)
                port = free_port()
                runners.append(await serving.start(app, config, "127.0.0.1", port, fast_doors=fast))
                made.append(
                    Door(Server(f"http://127.0.0.1:{port}", session, app[RUNTIME].pool, config, app), log, lines)
                )
            yield made[0], made[1]
        finally:
            for runner in runners:
                await runner.cleanup()


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: tuple[tuple[str, str], ...]


async def ask(
    server: Server, method: str, target: str, headers: CIMultiDict[str] | dict[str, str], body: bytes | None = None
) -> Answer:
    url = URL(server.url + target, encoded=True)  # sent as written: an encoded target stays encoded
    async with server.session.request(method, url, data=body, headers=headers) as response:
        text = await response.text()
        request_id = response.headers.get("X-Request-Id", "")
        assert REQUEST_ID.fullmatch(request_id), (method, target, dict(response.headers), text)
        kept = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() not in UNCOMPARED)
        return Answer(response.status, text.replace(request_id, "<request id>"), tuple(kept))


async def ask_both(
    fast: Door,
    generic: Door,
    method: str,
    target: str,
    headers: CIMultiDict[str] | dict[str, str],
    body: bytes | None = None,
) -> Answer:
    """The same request to both doors, which must answer alike."""
    mine = await ask(fast.server, method, target, headers, body)
    theirs = await ask(generic.server, method, target, headers, body)
    assert mine == theirs, (method, target, body[:200] if body else body, dict(headers))
    return mine


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def twice(name: str, first: str, second: str) -> CIMultiDict[str]:
    lines = CIMultiDict([(name, first)])
    lines.add(name, second)
    return lines


class Counted:
    """Counts the requests the fast door answered itself."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls = 0
        check = fast_forward_auth.check

        def counting(runtime: Any, request: Any) -> Any:
            self.calls += 1
            return check(runtime, request)

        monkeypatch.setattr(fast_forward_auth, "check", counting)


async def access_lines(door: Door, route: str = "/auth/check") -> list[tuple[Any, ...]]:
    door.log.flush()
    entries = [json.loads(line) for line in door.lines.lines]
    return [(e["method"], e["route"], e["status"], e["principal"]) for e in entries if e["route"] == route]


async def counted_requests(door: Door, route: str = "/auth/check") -> dict[str, int]:
    status, text, _ = await door.server.get("/metrics")
    assert status == 200
    found = re.findall(r'tokengate_http_requests_total\{route="' + re.escape(route) + r'",status="(\d+)"\} (\d+)', text)
    return {code: int(float(count)) for code, count in found}


async def test_the_fast_door_answers_every_question_as_the_generic_one(database, tmp_path: Path, monkeypatch):
    config = make_config(tmp_path, trusted_proxies=LOOPBACK)
    counted = Counted(monkeypatch)
    async with doors(database, config) as (fast, generic):
        server = fast.server
        admin = await server.bootstrap()
        other = await server.bootstrap("Other")
        mine = (await server.gql(CREATE_PROJECT, {"name": "A"}, token=admin.token)).data["createProject"]["id"]
        theirs = (await server.gql(CREATE_PROJECT, {"name": "T"}, token=other.token)).data["createProject"]["id"]
        runner = await store_service_token(server, admin.account_id, [Grant("JOB_ADMIN", False, (mine,))])
        viewer = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
        deleted = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
        restricted = await store_service_token(server, other.account_id, [Grant("JOB_VIEWER")])
        gone = await server.gql(DELETE, {"id": deleted[4:20]}, token=admin.token)
        assert gone.data == {"deleteServiceToken": {"state": "DELETED"}}, gone.body
        rules = {"enabled": True, "rules": [{"name": "office", "type": "ALLOW", "cidrs": ["203.0.113.0/24"]}]}
        fenced = await server.gql(SET_IP, rules, token=other.token, headers=from_address("203.0.113.1"))
        assert fenced.errors == [], fenced.body
        unknown = tokens.issue_token("service").text  # a well-formed token no store holds
        server.issued.append(unknown)
        job = f"?resource=JOBS&access=WRITE&projectId={mine}"
        table: list[tuple[str, str, Any, int]] = [
            ("GET", "/auth/check", {}, 401),
            ("GET", job, {"Authorization": ""}, 401),
            ("GET", job, {"Authorization": "Basic dXNlcjpwYXNz"}, 401),
            ("GET", job, {"Authorization": "Bearer tgs_short"}, 401),
            ("GET", job, {"Authorization": "Bearer " + "x" * 600}, 401),
            ("GET", job, bearer(unknown), 401),
            ("GET", job, bearer(unknown), 401),  # now known not to authenticate: refused from memory
            ("GET", job, bearer(deleted), 401),
            ("GET", "/auth/check", bearer(runner), 200),
            ("GET", job, bearer(runner), 200),  # first use: from the database
            ("GET", job, bearer(runner), 200),  # then from the cache
            ("GET", f"?resource=jobs&access=write&projectId={mine}", bearer(runner), 200),
            ("GET", "?resource=JOBS", bearer(viewer), 200),
            ("GET", job, bearer(viewer), 403),
            ("GET", f"?resource=JOBS&projectId={theirs}", bearer(runner), 403),
            ("GET", "?resource=JOBS&projectId=prj_nope", bearer(runner), 403),
            ("GET", "?resource=BILLING", bearer(runner), 403),
            ("GET", "?resource=NOPE", bearer(runner), 400),
            ("GET", "?resource=JOBS&access=ADMIN", bearer(runner), 400),
            ("GET", "?access=READ", bearer(runner), 400),
            ("GET", "?resource=MEMBERS&access=WRITE", bearer(admin.token), 200),
            ("GET", job, twice("Authorization", f"Bearer {runner}", f"Bearer {viewer}"), 400),
            ("GET", job, bearer(last_character_changed(restricted)), 401),
            ("GET", "?resource=JOBS", bearer(restricted, **from_address("203.0.113.7")), 200),
            ("GET", "?resource=JOBS", bearer(restricted, **from_address("198.51.100.7")), 403),
            ("GET", "?resource=JOBS", bearer(restricted), 403),
            ("POST", job, bearer(runner), 200),
            ("PUT", job, bearer(runner), 200),
            ("DELETE", job, bearer(runner), 200),
            ("OPTIONS", job, bearer(runner), 200),
            ("HEAD", job, bearer(runner), 200),
            ("HEAD", job, {}, 401),
        ]
        for method, query, headers, status in table:
            target = query if query.startswith("/") else "/auth/check" + query
            answer = await ask_both(fast, generic, method, target, headers)
            assert answer.status == status, (method, target, answer)
            assert ("cache-control", "no-store") in answer.headers
        assert counted.calls == len(table)  # the fast server answered each itself
        # Every request counted and logged, alike, by both.
        assert await counted_requests(fast) == await counted_requests(generic)
        assert sum((await counted_requests(fast)).values()) == len(table)
        assert await access_lines(fast) == await access_lines(generic)
        assert len(await access_lines(fast)) == len(table)


async def test_requests_the_fast_door_does_not_take_reach_the_application_and_answer_alike(
    database, tmp_path: Path, monkeypatch
):
    counted = Counted(monkeypatch)
    async with doors(database, make_config(tmp_path)) as (fast, generic):
        admin = await fast.server.bootstrap()
        token = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        question = {"X-Tokengate-Resource": "JOBS", "X-Tokengate-Access": "READ"}
        for method, target, headers, status in [
            ("GET", "/auth/check/some/path?resource=BILLING", bearer(token, **question), 200),  # Envoy's form
            ("GET", "/auth/check/", bearer(token, **question), 200),
            ("GET", "/auth/%63heck?resource=JOBS", bearer(token), 200),  # an encoded target: the router's
            ("GET", "/auth/check?resource=JOBS", bearer(token, Expect="100-continue"), 200),
            ("GET", "/auth/checks", bearer(token), 404),
        ]:
            answer = await ask_both(fast, generic, method, target, headers)
            assert answer.status == status, (method, target, answer)
            assert counted.calls == 0, target


async def test_rate_limits_refuse_alike_with_their_headers(database, tmp_path: Path):
    limits = Limits(cost=Rate(0, 1), principal=Rate(1, 2), failures=Rate(1, 2))
    async with doors(database, make_config(tmp_path, limits=limits)) as (fast, generic):
        admin = await fast.server.bootstrap()
        token = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        statuses = []
        for _ in range(3):
            answer = await ask_both(fast, generic, "GET", "/auth/check?resource=JOBS", bearer(token))
            statuses.append(answer.status)
        assert statuses == [200, 200, 429]
        assert ("retry-after", "1") in answer.headers and json.loads(answer.body)["errors"][0]["extensions"] == {
            "code": "RATE_LIMITED"
        }
        unknown = [tokens.issue_token("service").text for _ in range(3)]
        fast.server.issued.extend(unknown)
        refused = [(await ask_both(fast, generic, "GET", "/auth/check", bearer(u))).status for u in unknown]
        assert refused == [401, 401, 429]  # past the failures budget: no query at all


async def test_concurrent_first_uses_wait_for_the_database_in_the_fast_door(database, tmp_path: Path):
    async with doors(database, make_config(tmp_path)) as (fast, generic):
        admin = await fast.server.bootstrap()
        cold = [await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")]) for _ in range(5)]
        for door in (fast, generic):
            answers = await asyncio.gather(
                *(ask(door.server, "GET", "/auth/check?resource=JOBS", bearer(token)) for token in cold * 2)
            )
            assert [a.status for a in answers] == [200] * 10
            assert all(("x-tokengate-account-id", admin.account_id) in a.headers for a in answers)


async def until_refused(door: Door, token: str, status: int, seconds: float = 10.0) -> None:
    """Wait until ``door`` refuses ``token`` with ``status`` (the other instance learns a change by NOTIFY)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (await ask(door.server, "GET", "/auth/check?resource=JOBS", bearer(token))).status != status:
        assert loop.time() - started < seconds, f"not refused with {status} within {seconds} s"
        await asyncio.sleep(0.02)


async def test_tokens_that_stop_working_after_being_cached_stop_alike(database, tmp_path: Path):
    async with doors(database, make_config(tmp_path, trusted_proxies=LOOPBACK)) as (fast, generic):
        server = fast.server
        admin = await server.bootstrap()
        other = await server.bootstrap("Other")
        expiry = datetime.now(UTC) + timedelta(seconds=4)
        expiring = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")], expires_at=expiry)
        deleted = await store_service_token(server, admin.account_id, [Grant("JOB_VIEWER")])
        fenced = await store_service_token(server, other.account_id, [Grant("JOB_VIEWER")])
        for token in (expiring, deleted, fenced):  # valid and cached by both first: the attack would work
            for _ in range(2):
                assert (await ask_both(fast, generic, "GET", "/auth/check?resource=JOBS", bearer(token))).status == 200
        for door in (fast, generic):
            cached = door.server.runtime.authenticator.cache.token_ids()
            assert {deleted[4:20], fenced[4:20], expiring[4:20]} <= cached

        gone = await server.gql(DELETE, {"id": deleted[4:20]}, token=admin.token)
        assert gone.data == {"deleteServiceToken": {"state": "DELETED"}}, gone.body
        rules = {"enabled": True, "rules": [{"name": "office", "type": "ALLOW", "cidrs": ["203.0.113.0/24"]}]}
        assert (await server.gql(SET_IP, rules, token=other.token, headers=from_address("203.0.113.1"))).errors == []
        for door in (fast, generic):
            await until_refused(door, deleted, 401)
            await until_refused(door, fenced, 403)
        await asyncio.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds() + 0.1))
        for token, status in ((deleted, 401), (fenced, 403), (expiring, 401), (expiring, 401)):
            answer = await ask_both(fast, generic, "GET", "/auth/check?resource=JOBS", bearer(token))
            assert answer.status == status, answer
        # A positive beside the refusals: the admin's own token still works on both.
        assert (await ask_both(fast, generic, "GET", "/auth/check", bearer(admin.token))).status == 200


async def test_what_raises_is_a_503_or_a_masked_500_alike(database, tmp_path: Path, monkeypatch):
    async with doors(database, make_config(tmp_path)) as (fast, generic):
        admin = await fast.server.bootstrap()
        token = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        assert (await ask_both(fast, generic, "GET", "/auth/check?resource=JOBS", bearer(token))).status == 200
        answer = forward_auth.answer
        failures = {"down": DatabaseUnavailable("gone"), "bug": RuntimeError("a bug")}
        failing: list[str] = []

        def raising(*args: Any) -> Any:
            if failing:
                raise failures[failing[0]]
            return answer(*args)

        monkeypatch.setattr(forward_auth, "answer", raising)  # what both doors call once admitted
        failing.append("down")
        down = await ask_both(fast, generic, "GET", "/auth/check?resource=JOBS", bearer(token))
        assert down.status == 503 and ("retry-after", "1") in down.headers, down
        failing[0] = "bug"
        bug = await ask_both(fast, generic, "GET", "/auth/check?resource=JOBS", bearer(token))
        assert bug.status == 500 and "a bug" not in bug.body and "Traceback" not in bug.body, bug
        assert json.loads(bug.body)["errors"][0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
        failing.clear()
        assert (await ask_both(fast, generic, "GET", "/auth/check?resource=JOBS", bearer(token))).status == 200
        assert await counted_requests(fast) == await counted_requests(generic) == {"200": 2, "503": 1, "500": 1}
        assert await access_lines(fast) == await access_lines(generic)


async def test_cross_origin_requests_answer_alike_when_cors_is_configured(database, tmp_path: Path, monkeypatch):
    counted = Counted(monkeypatch)
    config = make_config(tmp_path, cors_origins=("https://app.example",))
    async with doors(database, config) as (fast, generic):
        admin = await fast.server.bootstrap()
        token = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        origin = {"Origin": "https://app.example"}
        preflight = {
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        graphql = await ask(generic.server, "OPTIONS", "/graphql", preflight)
        assert ("access-control-allow-origin", "https://app.example") in graphql.headers  # CORS is on
        for method, headers in (("GET", bearer(token, **origin)), ("OPTIONS", preflight), ("GET", origin)):
            await ask_both(fast, generic, method, "/auth/check?resource=JOBS", headers)
        assert counted.calls == 3


async def raw_answer(server: Server, request: bytes) -> bytes:
    """The bytes a server answers one raw request with (read until the end of the head; bodiless answers)."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = re.search(rb"(?im)^content-length: (\d+)\r$", head)
        if length and b" 200 " in head.split(b"\r\n", 1)[0] and not request.startswith(b"HEAD"):
            head += await reader.readexactly(int(length.group(1)))
        return head
    finally:
        writer.close()


def masked(answer: bytes) -> bytes:
    answer = re.sub(rb"(?m)^Date: [^\r]*\r$", b"Date: <date>\r", answer)
    return re.sub(rb"(?m)^X-Request-Id: [0-9a-f]{8}-[0-9a-f]+\r$", b"X-Request-Id: <id>\r", answer)


def sorted_lines(answer: bytes) -> list[bytes]:
    status, *lines = masked(answer).split(b"\r\n")
    return [status, *sorted(lines)]


async def test_prepared_answer_is_the_bytes_aiohttp_writes(database, tmp_path: Path, monkeypatch):
    """The fast door writes an allowed GET's 200 itself (``PreparedAnswer``): byte for byte, header order
    included, what aiohttp writes for the same door without it (``prepared_head`` None: aiohttp's response),
    kept alive or closing; HEAD and HTTP/1.0 are answered by aiohttp's response. The generic door's answer
    has the same lines (its ``Cache-Control`` comes later, from the response signal)."""
    async with doors(database, make_config(tmp_path)) as (fast, generic):
        admin = await fast.server.bootstrap()
        token = await store_service_token(fast.server, admin.account_id, [Grant("JOB_VIEWER")])
        prepared: list[bytes] = []
        head = fast_forward_auth.prepared_head
        prepare = fast_forward_auth.PreparedAnswer.prepare

        async def noting(self: Any, request: Any) -> None:
            prepared.append(self.head)
            await prepare(self, request)

        monkeypatch.setattr(fast_forward_auth.PreparedAnswer, "prepare", noting)
        for version, method, connection in [
            ("1.1", "GET", ""),
            ("1.1", "GET", "Connection: close\r\n"),
            ("1.1", "HEAD", ""),
            ("1.0", "GET", ""),
            ("1.0", "GET", "Connection: keep-alive\r\n"),
        ]:
            request = (
                f"{method} /auth/check?resource=JOBS&access=READ HTTP/{version}\r\nHost: x\r\n"
                f"Authorization: Bearer {token}\r\n{connection}\r\n"
            ).encode()
            before = len(prepared)
            mine = await raw_answer(fast.server, request)
            assert (len(prepared) > before) == (method == "GET" and version == "1.1"), (method, version)
            monkeypatch.setattr(fast_forward_auth, "prepared_head", lambda principal: None)
            libraries = await raw_answer(fast.server, request)
            monkeypatch.setattr(fast_forward_auth, "prepared_head", head)
            assert len(prepared) == before + (method == "GET" and version == "1.1")
            theirs = await raw_answer(generic.server, request)
            assert mine.startswith(f"HTTP/{version} 200 OK\r\n".encode()), mine
            assert masked(mine) == masked(libraries), (method, version, connection, mine, libraries)
            assert sorted_lines(mine) == sorted_lines(theirs), (method, version, connection, mine, theirs)
