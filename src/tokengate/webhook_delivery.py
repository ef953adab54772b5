"""The delivery worker every instance runs: claims due outbox rows, signs and POSTs them, records the outcome.

At least once: a row is claimed in a short statement (``FOR UPDATE SKIP LOCKED``, then a lease), sent outside
any transaction, and its outcome written only by the claim that made the attempt. A failure is retried with
exponential backoff until the retry window (24 h) has passed; then the delivery fails and the webhook is marked
failing (audited). The next success clears the mark. Changes made on this instance wake the worker at once;
other instances' are found by a poll every second.

The sender refuses, at connect time, every address that is not public (webhook_addresses.py), whatever DNS
answered, unless the operator allows private networks; redirects are not followed, the response body is read
at most ``MAX_RESPONSE_BYTES`` and then dropped, and every request has a short timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import aiohttp
import aiohttp.abc
import asyncpg
from aiohappyeyeballs import AddrInfoType, SocketFactoryType

from tokengate import global_ids, webhook_events
from tokengate.background import stop_task
from tokengate.config import WebhookTiming
from tokengate.errors import InvalidInput
from tokengate.services import Backend
from tokengate.services import webhooks as webhook_service
from tokengate.store import DATABASE_UNAVAILABLE
from tokengate.store import webhooks as webhook_store
from tokengate.store.webhooks import ClaimedDelivery
from tokengate.webhook_addresses import address_refusal, checked_webhook_url, origin

log = logging.getLogger("tokengate.webhooks")

BATCH: Final = 20  # rows claimed at once, sent concurrently
MAX_RESPONSE_BYTES: Final = 4096
USER_AGENT: Final = "tokengate-webhooks/1"
REFUSED_ADDRESS: Final = "the receiver's address is loopback, private or reserved (TOKENGATE_WEBHOOK_ALLOW_PRIVATE)"
_JITTER: Final = secrets.SystemRandom()


class RefusedAddress(OSError):
    """The sender will not connect to this address. One message for all, so several refused addresses of one
    name are reported as this error rather than as a combined one."""

    def __init__(self) -> None:
        super().__init__(REFUSED_ADDRESS)


def guarded_socket(allow_private: bool) -> SocketFactoryType:
    """aiohttp's ``socket_factory``: called with each address the connector is about to connect to (after DNS,
    and for IP literals), so the address rule holds for whatever the name resolves to at that moment."""

    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if not allow_private and address_refusal(address[0]) is not None:
            raise RefusedAddress()
        return socket.socket(family=family, type=type_, proto=proto)

    return create


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: the HTTP status (None when none came back), the time taken, what went wrong."""

    status: int | None
    latency_ms: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Signs and POSTs one delivery through a guarded client session."""

    def __init__(
        self,
        keys: tuple[bytes, ...],
        timing: WebhookTiming,
        allow_private: bool,
        resolver: aiohttp.abc.AbstractResolver | None = None,  # DNS as the system has it; tests bring their own
    ):
        self.keys = keys
        self.timing = timing
        self.allow_private = allow_private
        self.resolver = resolver
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        timeout = self.timing.request_timeout_seconds
        connector = aiohttp.TCPConnector(
            socket_factory=guarded_socket(self.allow_private),
            resolver=self.resolver,
            limit=100,
            limit_per_host=10,
            ttl_dns_cache=30,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(5.0, timeout)),
            trust_env=False,  # no proxy from the environment: the guard must see the real receiver
            auto_decompress=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def body_of(self, claimed: ClaimedDelivery) -> bytes:
        # Ids as the API prints them (a token's stk_/utk_ id), as the audit log shows them: the outbox holds
        # what the audit table holds (a token's row key in target and actor; bare ids in older details).
        subject = global_ids.audit_target_id(claimed.event_type, claimed.subject) if claimed.subject else None
        data = dict(claimed.data)
        if data.get("target_id"):
            data["target_id"] = global_ids.audit_target_id(claimed.event_type, str(data["target_id"]))
        if isinstance(data.get("actor"), str):
            data["actor"] = global_ids.printed_actor(data["actor"])
        if isinstance(data.get("details"), dict):
            data["details"] = global_ids.printed_details(data["details"])
        return webhook_events.cloud_event(
            event_id=claimed.event_id,
            event_type=claimed.event_type,
            account_id=claimed.account_id,
            subject=subject,
            time=claimed.occurred_at,
            data=data,
        )

    async def send(self, claimed: ClaimedDelivery) -> Outcome:
        assert self.session is not None, "open() the sender first"
        try:
            url = checked_webhook_url(claimed.url, self.allow_private)
        except InvalidInput as problem:  # saved while the operator allowed it, refused now
            return Outcome(None, None, f"url not allowed: {problem}")
        secret = webhook_events.unseal_secret(claimed.sealed_secret, claimed.secret_key_id, self.keys)
        if secret is None:
            return Outcome(None, None, "the signing secret was sealed under a server key that is no longer configured")
        body = self.body_of(claimed)
        headers = {
            "Content-Type": webhook_events.CONTENT_TYPE,
            webhook_events.SIGNATURE_HEADER: webhook_events.signature_header(secret, int(time.time()), body),
        }
        started = time.perf_counter()
        try:
            async with self.session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.content.read(MAX_RESPONSE_BYTES)  # bounded; never stored
                status = response.status
        except aiohttp.ClientConnectorError as problem:
            error = REFUSED_ADDRESS if isinstance(problem.os_error, RefusedAddress) else "could not connect"
            if isinstance(problem, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
                error = "TLS handshake failed (certificate not trusted?)"
            return Outcome(None, _since(started), error)
        except TimeoutError:
            return Outcome(None, _since(started), f"no answer within {self.timing.request_timeout_seconds:g} s")
        except (aiohttp.ClientError, ssl.SSLError, OSError) as problem:
            return Outcome(None, _since(started), f"request failed ({type(problem).__name__})")
        latency = _since(started)
        if 200 <= status < 300:
            return Outcome(status, latency, None)
        if 300 <= status < 400:
            return Outcome(status, latency, f"HTTP {status}: redirects are not followed")
        return Outcome(status, latency, f"HTTP {status}")


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


class DeliveryWorker:
    """Delivers due outbox rows until stopped; one per instance, all instances share the work."""

    def __init__(self, pool: asyncpg.Pool, sender: WebhookSender, timing: WebhookTiming):
        self.pool = pool
        self.sender = sender
        self.timing = timing
        self.backend: Backend | None = None
        self._wake = asyncio.Event()
        self._in_flight: dict[int, ClaimedDelivery] = {}
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Events were queued here: look for due rows now rather than at the next poll."""
        self._wake.set()

    async def start(self, backend: Backend) -> None:
        self.backend = backend
        await self.sender.open()
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        """Stop sending; rows claimed but not finished are handed back, due again at once on any instance."""
        task, self._task = self._task, None
        await stop_task(task)
        unfinished, self._in_flight = list(self._in_flight.values()), {}
        if unfinished:
            with contextlib.suppress(*DATABASE_UNAVAILABLE, asyncpg.PostgresError):
                await webhook_store.release(self.pool, unfinished)
        await self.sender.close()

    async def _run(self) -> None:
        paused = False
        while True:
            try:
                claimed = await self.deliver_due()
                if paused:
                    log.info("webhook deliveries resumed")
                    paused = False
            except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as problem:
                if not paused:  # once per outage, not once per poll
                    log.warning("webhook deliveries paused: %s", type(problem).__name__)
                    paused = True
                claimed = 0
            except Exception:  # keep delivering whatever went wrong this time
                log.exception("webhook delivery round failed")
                claimed = 0
            if claimed < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.timing.poll_seconds)
                self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim the due rows (at most ``BATCH``), send them concurrently, record each outcome."""
        claims = await webhook_store.claim_due(self.pool, BATCH, self.timing.lease_seconds)
        for claimed in claims:
            self._in_flight[claimed.id] = claimed
        await asyncio.gather(*(self._deliver(claimed) for claimed in claims))
        return len(claims)

    async def _deliver(self, claimed: ClaimedDelivery) -> None:
        """Send one claimed row and record the outcome. Cancelled (the instance stops), it stays in flight for
        ``stop`` to hand back."""
        try:
            outcome = await self.sender.send(claimed)
        except Exception:  # a bug here, not the receiver's fault: recorded and retried like a failure
            log.exception("sending webhook delivery %s failed", claimed.id)
            outcome = Outcome(None, None, "internal error while sending")
        try:
            await self._record(claimed, outcome)
        except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as problem:
            # The lease runs out and the row is sent again: at least once.
            log.warning("could not record webhook delivery %s: %s", claimed.id, type(problem).__name__)
        self._in_flight.pop(claimed.id, None)
        log.debug(
            "webhook delivery %s (%s, attempt %d) to %s: %s",
            claimed.id,
            claimed.event_type,
            claimed.attempts,
            origin(claimed.url),
            outcome.status if outcome.delivered else outcome.error,
        )

    async def _record(self, claimed: ClaimedDelivery, outcome: Outcome) -> None:
        backend = self.backend
        assert backend is not None
        if outcome.delivered:
            assert outcome.status is not None and outcome.latency_ms is not None
            recorded = await webhook_store.mark_delivered(self.pool, claimed, outcome.status, outcome.latency_ms)
            if recorded and claimed.failing:
                await webhook_service.recovered(backend, claimed.webhook_id)
            return
        error = outcome.error or "failed"
        age = (datetime.now(UTC) - claimed.created_at).total_seconds()
        if age >= self.timing.retry_window_seconds:
            await webhook_service.give_up(backend, claimed, outcome.status, outcome.latency_ms, error)
            return
        delay = webhook_events.retry_delay(
            claimed.attempts, self.timing.retry_first_seconds, self.timing.retry_max_seconds, _JITTER.random()
        )
        await webhook_store.schedule_retry(self.pool, claimed, outcome.status, outcome.latency_ms, error, delay)
