"""HTTP header rules of the 2026-12-01 contract, through real HTTP: repeated X-Forwarded-For lines are one
list, repeated credentials or forward-auth questions are refused, API answers are never cached, every HTML page
carries its security headers, and an oversized header is answered 431 in JSON without being echoed."""

from __future__ import annotations

import asyncio
import re

from multidict import CIMultiDict

from tests.api.conftest import from_address
from tests.api.service_token_calls import VIEWER, created, grant
from tests.conftest import Server

SET_IP = "mutation($enabled: Boolean!, $rules: [IpRuleInput!]!) { setIpRestrictions(enabled: $enabled, rules: $rules) { enabled } }"
OFFICE = "203.0.113.0/24"
FRAME_ANCESTORS = "frame-ancestors 'none'"


async def viewer_status(server: Server, headers: CIMultiDict[str] | dict[str, str]) -> int:
    async with server.session.post(server.url + "/graphql", json={"query": VIEWER}, headers=headers) as response:
        return response.status


async def test_a_proxy_appended_x_forwarded_for_line_is_read_with_the_clients_line(proxied):
    admin = await proxied.bootstrap()
    token = await created(proxied, admin.token, grants=[grant("ACCOUNT_VIEWER")])
    reply = await proxied.gql(
        SET_IP,
        {"enabled": True, "rules": [{"name": "office", "type": "ALLOW", "cidrs": [OFFICE]}]},
        token=admin.token,
        headers=from_address("203.0.113.1"),
    )
    assert reply.errors == [], reply.body
    bearer = {"Authorization": f"Bearer {token.secret}"}
    # The rules work: from the office the token is let in, from elsewhere refused (one header line each).
    assert await viewer_status(proxied, {**bearer, **from_address("203.0.113.9")}) == 200
    assert await viewer_status(proxied, {**bearer, **from_address("198.51.100.7")}) == 403
    # The attack: the client sends an office address itself; a proxy (HAProxy's option forwardfor) appends the
    # real client on a line of its own. Reading only the first line let the client's line decide.
    lines = CIMultiDict([("Authorization", bearer["Authorization"]), ("X-Forwarded-For", "203.0.113.9")])
    lines.add("X-Forwarded-For", "198.51.100.7")
    assert await viewer_status(proxied, lines) == 403
    async with proxied.session.get(proxied.url + "/auth/check", headers=lines) as response:
        assert response.status == 403
    # Lines in the other order: the right-most untrusted address is the office one, so it is let in.
    lines = CIMultiDict([("Authorization", bearer["Authorization"]), ("X-Forwarded-For", "198.51.100.7")])
    lines.add("X-Forwarded-For", "203.0.113.9")
    assert await viewer_status(proxied, lines) == 200


async def test_two_authorization_headers_are_refused_whichever_comes_first(server):
    admin = await server.bootstrap()
    weak = await created(server, admin.token, grants=[grant("JOB_VIEWER")])
    # Each alone is valid and who we think it is.
    for secret, kind in [(admin.token, "USER"), (weak.secret, "SERVICE_TOKEN")]:
        reply = await server.gql("{ viewer { kind } }", token=secret)
        assert reply.data == {"viewer": {"kind": kind}}
    for first, second in [(weak.secret, admin.token), (admin.token, weak.secret), (admin.token, admin.token)]:
        headers = CIMultiDict([("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")])
        async with server.session.post(
            server.url + "/graphql", json={"query": 'mutation { createProject(name: "p") { id } }'}, headers=headers
        ) as response:
            assert response.status == 400
            body = await response.json()
            assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
            assert "Authorization" in body["errors"][0]["message"]
        async with server.session.get(server.url + "/auth/check?resource=JOBS", headers=headers) as response:
            assert response.status == 400
    assert await server.pool.fetchval("SELECT count(*) FROM projects") == 0


async def test_a_repeated_forward_auth_question_header_is_refused(server):
    admin = await server.bootstrap()
    project = (await server.gql('mutation { createProject(name: "p") { id } }', token=admin.token)).data
    project_id = project["createProject"]["id"]
    weak = await created(server, admin.token, grants=[grant("JOB_VIEWER", project_id)])
    bearer = ("Authorization", f"Bearer {weak.secret}")

    async def check(*question: tuple[str, str]) -> int:
        async with server.session.get(
            server.url + "/auth/check/jobs", headers=CIMultiDict([bearer, *question])
        ) as response:
            return response.status

    # One line each: the token may read jobs in its project and may not write them, nor touch billing.
    assert await check(("X-Tokengate-Resource", "JOBS"), ("X-Tokengate-Project-Id", project_id)) == 200
    assert await check(("X-Tokengate-Resource", "BILLING")) == 403
    assert (
        await check(
            ("X-Tokengate-Resource", "JOBS"), ("X-Tokengate-Access", "WRITE"), ("X-Tokengate-Project-Id", project_id)
        )
        == 403
    )
    # A client adding its own line before or after the gateway's: refused, not first-wins.
    assert await check(("X-Tokengate-Resource", "JOBS"), ("X-Tokengate-Resource", "BILLING")) == 400
    assert await check(("X-Tokengate-Resource", "BILLING"), ("X-Tokengate-Resource", "JOBS")) == 400
    assert (
        await check(
            ("X-Tokengate-Resource", "JOBS"),
            ("X-Tokengate-Access", "READ"),
            ("X-Tokengate-Access", "WRITE"),
            ("X-Tokengate-Project-Id", project_id),
        )
        == 400
    )
    assert (
        await check(
            ("X-Tokengate-Resource", "JOBS"),
            ("X-Tokengate-Project-Id", project_id),
            ("X-Tokengate-Project-Id", "prj_other"),
        )
        == 400
    )


async def test_every_graphql_and_auth_check_answer_says_no_store(server):
    admin = await server.bootstrap()
    token = await created(server, admin.token)
    bearer = {"Authorization": f"Bearer {token.secret}"}
    answers = []
    for method, path, headers, body in [
        ("POST", "/graphql", bearer, {"query": VIEWER}),  # 200
        ("POST", "/graphql", {}, {"query": VIEWER}),  # 401
        ("POST", "/graphql", {"Authorization": "Bearer nonsense"}, {"query": VIEWER}),  # 401 malformed
        ("POST", "/graphql", bearer, {"nothing": 1}),  # 400
        ("GET", "/graphql?query={viewer{kind}}", bearer, None),  # 200 over GET
        ("GET", "/graphql", {"Accept": "text/html"}, None),  # GraphiQL
        ("PUT", "/graphql", bearer, None),  # 405
        ("GET", "/auth/check", bearer, None),  # 200
        ("GET", "/auth/check?resource=BILLING", bearer, None),  # 403
        ("GET", "/auth/check?resource=NOPE", bearer, None),  # 400
        ("GET", "/auth/check", {}, None),  # 401
        ("GET", "/auth/check/any/path", bearer, None),  # 200
    ]:
        async with server.session.request(method, server.url + path, headers=headers, json=body) as response:
            answers.append((method, path, response.status, response.headers.get("Cache-Control")))
    assert {status for _, _, status, _ in answers} == {200, 400, 401, 403, 405}
    assert [a for a in answers if a[3] != "no-store"] == []
    status, _, headers = await server.get("/healthz")  # not a credential's answer: left alone
    assert status == 200 and headers.get("Cache-Control") != "no-store"


def assert_page_headers(headers, where: str) -> None:
    policy = headers.get("Content-Security-Policy", "")
    assert FRAME_ANCESTORS in policy and "script-src 'self'" in policy, (where, policy)
    assert "unsafe-inline" not in policy, where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "no-referrer", where


async def test_every_html_page_carries_its_security_headers_graphiql_and_static_copies_included(server):
    # The settings pages' markup lives outside the static folder: there is no copy of it to serve at all.
    status, _, _ = await server.get("/static/settings/service-tokens.html")
    assert status == 404
    for path, headers in [
        ("/settings/service-tokens", {}),
        ("/graphql", {"Accept": "text/html"}),  # GraphiQL
        ("/static/graphiql/index.html", {}),  # a static HTML file still gets the page headers
    ]:
        status, _, response_headers = await server.get(path, headers=headers)
        assert status == 200 and response_headers["Content-Type"].startswith("text/html"), path
        assert_page_headers(response_headers, path)
    # GraphiQL runs under a strict policy: no inline script or style left in its page.
    _, page, _ = await server.get("/graphql", headers={"Accept": "text/html"})
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == [] and "<style" not in page
    assert "/static/graphiql/tokengate-graphiql.js" in page
    status, script, headers = await server.get("/static/graphiql/tokengate-graphiql.js")
    assert status == 200 and "GraphiQL.createFetcher" in script
    assert "Content-Security-Policy" not in headers  # only HTML answers get the page headers


async def raw_exchange(server: Server, request: bytes) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


OVERSIZED_BODY = (
    b'{"errors":[{"message":"request header fields too large: each header line may be at most 8190 bytes",'
    b'"extensions":{"code":"BAD_REQUEST"}}]}'
)


def without_date(answer: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]+", b"", answer)


async def test_an_oversized_header_is_answered_431_in_json_without_echoing_it(server):
    admin = await server.bootstrap()
    reply = await server.gql("{ viewer { kind } }", token=admin.token)
    assert reply.data == {"viewer": {"kind": "USER"}}  # the token is valid: only its padding is refused
    padded = f"Bearer {admin.token} ".encode() + b"x" * 9000
    for path in [b"/graphql", b"/auth/check"]:
        answer = await raw_exchange(
            server, b"GET " + path + b" HTTP/1.1\r\nHost: tokengate\r\nAuthorization: " + padded + b"\r\n\r\n"
        )
        assert without_date(answer) == (
            b"HTTP/1.0 431 Request Header Fields Too Large\r\n"
            b"Cache-Control: no-store\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: " + str(len(OVERSIZED_BODY)).encode() + b"\r\n"
            b"Server: " + answer.split(b"\r\nServer: ")[1].split(b"\r\n")[0] + b"\r\n"
            b"\r\n" + OVERSIZED_BODY
        )
        assert admin.token.encode()[:12] not in answer and b"xxxx" not in answer
    # Other bytes the parser refuses are a JSON 400 that quotes nothing either.
    answer = await raw_exchange(
        server, b"GET /graphql HTTP/1.1\r\nHost: tokengate\r\nBad\x01Name: " + padded[:40] + b"\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n")
    assert answer.endswith(b'{"errors":[{"message":"malformed HTTP request","extensions":{"code":"BAD_REQUEST"}}]}')
    assert admin.token.encode()[:12] not in answer
    # A header just under the limit still reaches the gate (and is refused there as malformed, 401).
    status, _, _ = await server.get("/auth/check", headers={"Authorization": "Bearer " + "x" * 8000})
    assert status == 401
