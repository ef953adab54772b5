"""Slow and many connections, on raw sockets: heads and bodies have deadlines, and an address has a cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from tests.api.conftest import LOOPBACK
from tests.conftest import Server, make_config, start_server
from tokengate.core.limits import Limits, Rate

FAST = Limits(header_timeout=0.5, body_timeout=0.5)  # where the client outlasts the deadline by seconds
PATIENT = Limits(header_timeout=2.0)  # where the test must do something before the deadline
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"


async def serve(database: str, tmp_path: Path, limits: Limits, **config: object) -> AsyncIterator[Server]:
    async for server in start_server(database, make_config(tmp_path, limits=limits, **config)):
        yield server


async def connect(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = urlsplit(server.url)
    return await asyncio.open_connection(address.hostname, address.port)


async def until_closed(reader: asyncio.StreamReader, seconds: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not within ``seconds``)."""
    return await asyncio.wait_for(reader.read(), seconds)


async def let_go(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close a connection and wait until the server has let it go too (it closes its side on our EOF, and it
    stops counting the connection before this side can read that close)."""
    writer.write_eof()
    assert await until_closed(reader) == b""
    writer.close()


class Trickle:
    """Sends ``chunk`` every ``pause`` seconds, ``times`` times (ten seconds of it by default), if the server
    takes them all; ``finished`` says whether it did."""

    def __init__(self, writer: asyncio.StreamWriter, chunk: bytes, times: int = 100, pause: float = 0.1):
        self.sent, self.times = 0, times
        self.task = asyncio.ensure_future(self._send(writer, chunk, pause))
        self.task.add_done_callback(lambda task: task.cancelled() or task.exception())  # a reset ends it too

    async def _send(self, writer: asyncio.StreamWriter, chunk: bytes, pause: float) -> None:
        for _ in range(self.times):
            await asyncio.sleep(pause)
            writer.write(chunk)
            await writer.drain()
            self.sent += 1

    @property
    def finished(self) -> bool:
        return self.sent == self.times

    def stop(self) -> None:
        self.task.cancel()


async def response(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head + await reader.readexactly(length)


async def served(server: Server) -> bool:
    """A request on a connection of its own is answered (the server is not stuck on another one)."""
    reader, writer = await connect(server)
    writer.write(HEALTHZ)
    answer = await response(reader)
    writer.close()
    return answer.startswith(b"HTTP/1.1 200")


async def test_a_silent_connection_is_answered_408_and_closed_after_the_header_timeout(database, tmp_path):
    async for server in serve(database, tmp_path, PATIENT):
        reader, writer = await connect(server)
        closing = asyncio.ensure_future(until_closed(reader))
        # Not closed at once: another connection is served meanwhile, and the silent one is still open then.
        assert await served(server)
        assert not closing.done()
        answer = await closing
        assert answer.startswith(b"HTTP/1.1 408") and b'"code":"BAD_REQUEST"' in answer
        assert b"the request head did not arrive in time" in answer
        writer.close()


async def test_a_head_trickled_a_byte_at_a_time_is_cut_off_at_the_header_timeout(database, tmp_path):
    async for server in serve(database, tmp_path, FAST):
        reader, writer = await connect(server)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        trickling = Trickle(writer, b"X")  # ten seconds of it, and never a complete head
        answer = await until_closed(reader)
        trickling.stop()
        assert not trickling.finished  # cut off while the client was still trickling, not once it stopped
        assert answer.startswith(b"HTTP/1.1 408") and b"the request head did not arrive in time" in answer
        writer.close()


async def test_a_slow_but_timely_head_and_an_idle_kept_alive_connection_are_served(database, tmp_path):
    async for server in serve(database, tmp_path, PATIENT):
        reader, writer = await connect(server)
        writer.write(HEALTHZ[:20])
        assert await served(server)  # the rest of the head comes after another request went through
        writer.write(HEALTHZ[20:])
        assert (await response(reader)).startswith(b"HTTP/1.1 200")
        # Idle for longer than the header timeout: kept alive (the idle timeout is 75 s).
        await asyncio.sleep(PATIENT.header_timeout + 0.5)
        writer.write(HEALTHZ)
        assert (await response(reader)).startswith(b"HTTP/1.1 200")
        writer.close()


async def test_a_trickled_body_is_answered_408_at_the_body_timeout(database, tmp_path):
    async for server in serve(database, tmp_path, FAST):
        reader, writer = await connect(server)
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
        )
        trickling = Trickle(writer, b" " * 10)  # 1,000 of the 60,000 bytes, in ten seconds
        answer = await response(reader)
        trickling.stop()
        assert not trickling.finished  # answered while the body was still trickling in
        assert answer.startswith(b"HTTP/1.1 408") and b"body did not arrive in time" in answer
        writer.close()
        # A body sent at once is read as before.
        status = (await server.get("/healthz"))[0]
        assert status == 200


async def test_connections_past_the_cap_of_an_address_get_429_and_are_closed(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(connections_per_address=3)):
        held = [await connect(server) for _ in range(3)]
        for reader, writer in held[:1]:
            writer.write(HEALTHZ)
            assert (await response(reader)).startswith(b"HTTP/1.1 200")
        reader, writer = await connect(server)
        answer = await until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After: 1" in answer and b"RATE_LIMITED" in answer
        writer.close()
        await let_go(*held[1])
        reader, writer = await connect(server)  # one was closed: there is room again
        writer.write(HEALTHZ)
        assert (await response(reader)).startswith(b"HTTP/1.1 200")
        for held_reader, held_writer in [held[0], held[2], (reader, writer)]:
            await let_go(held_reader, held_writer)
        status, metrics, _ = await server.get("/metrics")
        assert status == 200 and 'tokengate_refusals_total{limit="connections"} 1.0' in metrics


async def test_trusted_proxies_are_not_capped(database, tmp_path):
    async for server in serve(database, tmp_path, Limits(connections_per_address=2), trusted_proxies=LOOPBACK):
        held = [await connect(server) for _ in range(5)]
        for reader, writer in held:
            writer.write(HEALTHZ)
            assert (await response(reader)).startswith(b"HTTP/1.1 200")
            writer.close()


async def test_a_large_body_without_credentials_is_refused_before_it_is_sent(server):
    reader, writer = await connect(server)
    # The head alone: the server answers without waiting for the megabyte it announces.
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    answer = await response(reader)
    assert answer.startswith(b"HTTP/1.1 401") and b"WWW-Authenticate: Bearer" in answer
    assert b"without credentials a body is at most 65536 bytes" in answer and b"UNAUTHENTICATED" in answer
    writer.close()
    seeded = await server.bootstrap()  # with credentials, the same size is read (and answered on its merits)
    body = b'{"query": "{ viewer { kind } }", "variables": {"pad": "' + b"x" * 100_000 + b'"}}'
    headers = {"Authorization": f"Bearer {seeded.token}", "Content-Type": "application/json"}
    async with server.session.post(server.url + "/graphql", data=body, headers=headers) as reply:
        assert reply.status == 200


async def test_a_payer_already_out_of_budget_is_refused_before_its_body_is_sent(database, tmp_path):
    limits = Limits(anonymous=Rate(1, 1), cost=Rate(1, 10))
    async for server in serve(database, tmp_path, limits):
        seeded = await server.bootstrap()
        assert (await server.gql("{ __typename }")).status == 200  # the one request without credentials
        checks = "query($r: [CheckInput!]!) { checks(requests: $r) { allowed } }"
        requests = [{"resource": "JOBS", "access": "READ"}] * 10  # 20 points: the bucket of 10 goes into debt
        assert (await server.gql(checks, {"r": requests}, token=seeded.token)).errors == []
        for authorization in (b"", f"Authorization: Bearer {seeded.token}\r\n".encode()):
            reader, writer = await connect(server)
            writer.write(
                b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                + authorization
                + b"Content-Length: 1000\r\n\r\n"
            )  # and no body: the answer comes without it
            answer = await response(reader)
            assert answer.startswith(b"HTTP/1.1 429") and b"Retry-After:" in answer and b"RATE_LIMITED" in answer
            writer.close()
