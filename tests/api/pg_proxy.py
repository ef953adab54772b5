"""A TCP proxy in front of the test PostgreSQL that can hold back, on the wire, the reply to one statement: what a
slow network does to a server's query, made deterministic. Nothing is changed or answered by the proxy; PostgreSQL
executes the statement at once and its reply waits in the proxy until the test releases it.

    async with HoldingProxy(database) as proxy:      # proxy.dsn: give it to the server under test
        held = proxy.hold_reply_to(b"some id")        # the next statement sent with these bytes in it
        ...                                           # send the request that reads it
        await held.answered.wait()                    # PostgreSQL has answered (its snapshot is taken)
        ...                                           # change things meanwhile
        held.release()                                # the server reads the old answer now

It can also be cut: ``await proxy.cut()`` drops every connection and refuses new ones (the database is
unreachable from the server under test, as when a network partitions), ``await proxy.restore()`` listens again on
the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit


class Held:
    """The reply to one statement, held in the proxy until ``release``."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.sent = asyncio.Event()  # the statement went to PostgreSQL
        self.answered = asyncio.Event()  # PostgreSQL's whole reply (up to ReadyForQuery) is held here
        self.buffer = b""
        self._client: asyncio.StreamWriter | None = None
        self._released = False

    def _keep(self, data: bytes) -> None:
        self.buffer += data
        if ready_for_query_in(self.buffer):
            self.answered.set()

    def release(self) -> None:
        """Pass the held reply on to the client, and everything after it."""
        self._released = True
        if self._client is not None and self.buffer:
            self._client.write(self.buffer)
        self.buffer = b""


def ready_for_query_in(messages: bytes) -> bool:
    """Whether backend messages (type byte, then a length that counts itself) include a ReadyForQuery ('Z')."""
    at = 0
    while at + 5 <= len(messages):
        if messages[at : at + 1] == b"Z":
            return True
        at += 1 + int.from_bytes(messages[at + 1 : at + 5], "big")
    return False


class HoldingProxy:
    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        self._host = query.get("host", [parts.hostname or "localhost"])[0]
        self._port = int(query.get("port", [str(parts.port or 5432)])[0])
        credentials = parts.username or "postgres"
        if parts.password:
            credentials += ":" + parts.password
        self._credentials = credentials
        self._database = parts.path
        self._server: asyncio.base_events.Server | None = None
        self._port_here = 0
        self._armed: Held | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dsn = ""

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self._port_here)
        self._port_here = self._server.sockets[0].getsockname()[1]
        self.dsn = f"postgresql://{self._credentials}@127.0.0.1:{self._port_here}{self._database}?sslmode=disable"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cut()

    async def cut(self) -> None:
        """Close every connection and stop listening: connecting is refused until ``restore``."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def restore(self) -> None:
        """Listen again, on the same port (the server under test keeps its DSN); nothing when listening."""
        if self._server is None:
            await self.__aenter__()

    def hold_reply_to(self, marker: bytes) -> Held:
        """Hold the reply to the next statement whose bytes (a Bind's parameters) include ``marker``; once."""
        self._armed = Held(marker)
        return self._armed

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._host.startswith("/"):
            return await asyncio.open_unix_connection(f"{self._host}/.s.PGSQL.{self._port}")
        return await asyncio.open_connection(self._host, self._port)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_reader, server_writer = await self._upstream()
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        holding: list[Held] = []  # the latest hold on this connection, once its statement is sent
        try:
            await asyncio.gather(
                self._to_server(client_reader, server_writer, holding, client_writer),
                self._to_client(server_reader, client_writer, holding),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
            self._tasks.discard(task)

    async def _to_server(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        holding: list[Held],
        client_writer: asyncio.StreamWriter,
    ) -> None:
        while data := await reader.read(65536):
            armed = self._armed
            if armed is not None and (not holding or holding[0]._released) and armed.marker in data:
                self._armed = None
                armed._client = client_writer
                holding[:] = [armed]
                writer.write(data)
                await writer.drain()
                armed.sent.set()
                continue
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _to_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, holding: list[Held]) -> None:
        while data := await reader.read(65536):
            if holding and not holding[0]._released:
                holding[0]._keep(data)
                continue
            writer.write(data)
            await writer.drain()
        writer.close()
