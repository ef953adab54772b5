"""POST /secret-scanning/github: a report signed by GitHub's key revokes the tokens it names and answers GitHub's
feedback; a tampered body, an unknown key id or a missing header is 401 and revokes nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.api import service_token_calls as calls
from tests.api.conftest import LOOPBACK, from_address
from tests.api.test_overload import freeze
from tests.conftest import Server, make_config, start_server
from tokengate.core import tokens
from tokengate.core.leak_reports import MAX_MATCHES, MAX_REPORT_BYTES
from tokengate.core.limits import Limits, Rate

ROUTE = "/secret-scanning/github"
KEY_ID = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c"
GITHUB_KEY = ec.generate_private_key(ec.SECP256R1())
FOUND_AT = "https://github.com/octocat/hello/blob/2f0c/config/airflow.cfg"


def keys_file(directory: Path, key: ec.EllipticCurvePrivateKey = GITHUB_KEY, key_id: str = KEY_ID) -> Path:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = directory / "github-keys.json"
    path.write_text(json.dumps({"public_keys": [{"key_identifier": key_id, "key": pem.decode(), "is_current": True}]}))
    return path


def signed(body: bytes, key: ec.EllipticCurvePrivateKey = GITHUB_KEY, key_id: str = KEY_ID) -> dict[str, str]:
    signature = base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    return {
        "Github-Public-Key-Identifier": key_id,
        "Github-Public-Key-Signature": signature,
        "Content-Type": "application/json",
    }


def report(*found: str) -> bytes:
    return json.dumps(
        [{"token": token, "type": "tokengate_service_token", "url": FOUND_AT, "source": "content"} for token in found]
    ).encode()


@pytest.fixture
async def scanned(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    config = make_config(tmp_path, github_scanning_keys=keys_file(tmp_path))
    async for server in start_server(database, config):
        yield server


async def post(server: Server, body: bytes, headers: dict[str, str]) -> tuple[int, object]:
    async with server.session.post(server.url + ROUTE, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def leak_reports(server: Server, caller: str) -> list[dict[str, object]]:
    query = "{ account { auditLog(first: 100) { edges { node { action actor targetId details source } } } } }"
    edges = (await server.gql(query, token=caller)).data["account"]["auditLog"]["edges"]
    return [e["node"] for e in edges if e["node"]["action"] == "service_token.leak_reported"]


async def test_a_signed_report_revokes_the_token_and_answers_true_positive(scanned):
    admin = await scanned.bootstrap()
    leaked = await calls.created(scanned, admin.token)
    assert await calls.works(scanned, leaked.secret)
    not_ours = tokens.issue_token("service").text  # well formed, checksum valid, never stored
    body = report(leaked.secret, not_ours)

    status, answer = await post(scanned, body, signed(body))
    assert status == 200
    assert answer == [
        {
            "token_hash": hashlib.sha256(leaked.secret.encode()).hexdigest(),
            "token_type": "tokengate_service_token",
            "label": "true_positive",
        },
        {
            "token_hash": hashlib.sha256(not_ours.encode()).hexdigest(),
            "token_type": "tokengate_service_token",
            "label": "false_positive",
        },
    ]
    assert not await calls.works(scanned, leaked.secret)
    (event,) = await leak_reports(scanned, admin.token)
    assert event["targetId"] == leaked.id and event["actor"] == "github_secret_scanning"
    assert event["source"] == "secret_scanning" and event["details"] == {"revoked": True, "source_url": FOUND_AT}

    # GitHub reports it again: still a true positive (it is ours), not revoked or audited twice.
    status, answer = await post(scanned, report(leaked.secret), signed(report(leaked.secret)))
    assert status == 200 and answer[0]["label"] == "true_positive"
    assert len(await leak_reports(scanned, admin.token)) == 1


async def test_a_report_that_is_not_signed_by_github_revokes_nothing(scanned):
    admin = await scanned.bootstrap()
    leaked = await calls.created(scanned, admin.token)
    other = await calls.created(scanned, admin.token, name="other")
    body = report(leaked.secret)
    tampered = report(other.secret)
    impostor = ec.generate_private_key(ec.SECP256R1())
    without_signature = {k: v for k, v in signed(body).items() if k != "Github-Public-Key-Signature"}
    without_key_id = {k: v for k, v in signed(body).items() if k != "Github-Public-Key-Identifier"}
    attempts = [
        (tampered, signed(body)),  # GitHub's signature, another body
        (body, signed(body, key_id="unknown-key-id")),
        (body, signed(body, key=impostor)),  # a key GitHub never published, under GitHub's key id
        (body, without_signature),
        (body, without_key_id),
        (body, {"Content-Type": "application/json"}),
        (body, {**signed(body), "Github-Public-Key-Signature": "not base64 at all!"}),
    ]
    for sent, headers in attempts:
        status, answer = await post(scanned, sent, headers)
        assert status == 401, headers
        assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await calls.works(scanned, leaked.secret) and await calls.works(scanned, other.secret)
    assert await leak_reports(scanned, admin.token) == []
    # The same body with GitHub's signature would have revoked it: the refusals above are the signature's.
    assert (await post(scanned, body, signed(body)))[0] == 200
    assert not await calls.works(scanned, leaked.secret)


async def test_reports_are_bounded(scanned):
    admin = await scanned.bootstrap()
    leaked = await calls.created(scanned, admin.token)
    too_many = report(*([leaked.secret] * (MAX_MATCHES + 1)))
    status, answer = await post(scanned, too_many, signed(too_many))
    assert status == 400 and answer["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    too_big = report(leaked.secret)[:-1] + b"," + b'{"token":"x"},' * (MAX_REPORT_BYTES // 14) + b'{"token":"x"}]'
    assert len(too_big) > MAX_REPORT_BYTES
    assert (await post(scanned, too_big, signed(too_big)))[0] == 413
    not_a_list = b'{"token": "x"}'
    assert (await post(scanned, not_a_list, signed(not_a_list)))[0] == 400
    assert await calls.works(scanned, leaked.secret)


async def test_new_keys_are_read_when_the_file_changes(scanned, tmp_path):
    admin = await scanned.bootstrap()
    leaked = await calls.created(scanned, admin.token)
    rotated_key = ec.generate_private_key(ec.SECP256R1())
    body = report(leaked.secret)
    assert (await post(scanned, body, signed(body, key=rotated_key, key_id="next")))[0] == 401
    keys_file(tmp_path, rotated_key, "next")  # the operator saves GitHub's new public_keys document
    assert (await post(scanned, body, signed(body, key=rotated_key, key_id="next")))[0] == 200
    assert not await calls.works(scanned, leaked.secret)


async def test_the_door_is_closed_until_keys_are_configured(server):
    body = report("tgs_x")
    status, answer = await post(server, body, signed(body))
    assert status == 404 and answer["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_flood_from_one_address_is_refused_before_its_body_and_github_still_gets_through(database, tmp_path):
    """Issue 20: 1,379 reports a second of 485 kB, each hashed and ECDSA-checked, were never refused."""
    limits = Limits(secret_scanning=Rate(1, 3), cost=Rate(0, 1))
    config = make_config(tmp_path, github_scanning_keys=keys_file(tmp_path), trusted_proxies=LOOPBACK, limits=limits)
    async for server in start_server(database, config):
        freeze(server)
        admin = await server.bootstrap()
        leaked = await calls.created(server, admin.token)
        junk = b"[" + b'{"token":"tgs_x","type":"t","url":"u","source":"content"},' * 8000 + b"{}]"
        assert 400_000 < len(junk) <= MAX_REPORT_BYTES
        forged = {**signed(b"something else"), **from_address("198.51.100.66")}
        flood = [(await post(server, junk, forged))[0] for _ in range(6)]
        assert flood == [401, 401, 401, 429, 429, 429]  # the burst of 3, then refused
        async with server.session.post(server.url + ROUTE, data=junk, headers=forged) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert server.runtime.gate.throttle.refused["secret_scanning"] == 4
        # GitHub, from its own address, is not slowed by that flood.
        body = report(leaked.secret)
        status, answer = await post(server, body, {**signed(body), **from_address("192.30.252.1")})
        assert status == 200 and answer[0]["label"] == "true_positive"
        assert not await calls.works(server, leaked.secret)
        client = await server.pool.fetchval(
            "SELECT client_addr FROM audit_events WHERE action = 'service_token.leak_reported'"
        )
        assert str(client) == "192.30.252.1"
        # Behind the trusted proxy, a forwarded client that is not an address is refused here too.
        headers = {**signed(body), "X-Forwarded-For": "192.30.252.1, x"}
        status, answer = await post(server, body, headers)
        assert status == 400 and answer["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_reports_have_a_rate_limit_by_default():
    assert Limits().secret_scanning.enabled


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and head of the next answer on a raw connection, its body read past."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return int(head.split(b" ")[1]), head


async def closed(reader: asyncio.StreamReader) -> bool:
    """True once the server closes the connection; "eventually": far beyond the body timeout of the test."""
    try:
        return await asyncio.wait_for(reader.read(1), 60) == b""
    except ConnectionResetError:
        return True


async def raw_report(url: str, length: int, body: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A forged report announcing ``length`` bytes, ``body`` sent on a connection of its own."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    forged = "".join(f"{name}: {value}\r\n" for name, value in signed(b"something else").items())
    head = f"POST {ROUTE} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n{forged}\r\n"
    writer.write(head.encode() + body)  # what the kernel does not take waits in this process
    return reader, writer


async def closed_with_unsent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Waits for the server to close; the least of the body this process still held while it was open."""
    transport, least = writer.transport, 2**40
    closing = asyncio.ensure_future(closed(reader))
    while not closing.done():
        if not transport.is_closing():  # a reset connection drops what it held
            least = min(least, transport.get_write_buffer_size())
        await asyncio.sleep(0.05)
    assert closing.result()
    return least


async def test_a_refused_report_too_big_to_drain_is_left_unread(database, tmp_path):
    """Issue 20: refused floods of 480 kB reports were read to their end all the same (aiohttp drains a body no
    handler reads, to keep the connection), and that reading took a legitimate client's p99 from 3 to 170 ms."""
    limits = Limits(secret_scanning=Rate(1, 2), cost=Rate(0, 1), body_timeout=3)
    config = make_config(tmp_path, github_scanning_keys=keys_file(tmp_path), limits=limits)
    async for server in start_server(database, config):
        freeze(server)
        # A small body is read to its end, refused or not, and the connection serves the next request.
        health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        reader, writer = await raw_report(server.url, 2_000, b" " * 2_000 + health)
        assert (await answer(reader))[0] == 401 and (await answer(reader))[0] == 200
        writer.close()
        # 16 MB sent after a head announcing them: the server answers, says it will close, and reads no more
        # than flow control lets in: most of it never leaves this process. Then it closes (body timeout).
        for status in (413, 429):  # over the size of a report; over the address's rate (its burst spent)
            reader, writer = await raw_report(server.url, 16 * 2**20, b" " * 16 * 2**20)
            code, head = await answer(reader)
            assert code == status and b"Connection: close" in head
            assert await closed_with_unsent(reader, writer) > 8 * 2**20
            writer.close()
