"""The delivery worker every instance runs: claims due outbox rows, signs and POSTs them, records the outcome.

At least once: a row is claimed in a short statement (``FOR UPDATE SKIP LOCKED``, then a lease), sent outside
any transaction, and its outcome written only by the claim that made the attempt. A failure is retried with
exponential backoff until the retry window (24 h) has passed; then the delivery fails and the webhook is marked
failing (audited). The next success clears the mark. Changes made on this instance wake the worker at once;
other instances' are found by a poll every second.

Before sending, the event is checked against what the webhook's owner may read at that moment
(webhook_events.delivery_refusal): one it may not is recorded as skipped and not sent, and the actor's client
address is left out unless the owner reads the audit log.

The sender refuses, at connect time, every address that is not public (webhook_addresses.py), whatever DNS
answered, unless the operator allows private networks; redirects are not followed, the response body is read
at most ``MAX_RESPONSE_BYTES`` and then dropped, and every request has a short timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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

from tokengate.config import WebhookTiming
from tokengate.core import global_ids, webhook_events
from tokengate.core.errors import InvalidInput
from tokengate.core.policy import USER, Principal
from tokengate.core.webhook_addresses import address_refusal, checked_webhook_url, origin
from tokengate.jobs.batching import stop_task
from tokengate.services import Backend
from tokengate.services import webhooks as webhook_service
from tokengate.store import DATABASE_UNAVAILABLE, Executor
from tokengate.store import tokens as token_store
from tokengate.store import webhooks as webhook_store
from tokengate.store.grants import grants_from_document
from tokengate.store.tokens import credential_state, principal_from_credential
from tokengate.store.webhooks import ClaimedDelivery

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
class Owner:
    """Whose reading a webhook carries, as of now: a principal, None for the operator (who reads everything),
    or ``gone`` saying why there is no one any more."""

    principal: Principal | None
    gone: str | None = None

    def refusal(self, claimed: ClaimedDelivery) -> str | None:
        """Why this event may not be sent to the webhook now, or None."""
        if self.gone is not None:
            return f"not sent: {self.gone}"
        return webhook_events.delivery_refusal(self.principal, claimed.event_type, claimed.subject)


OwnerKey = tuple[str, str | None, str | None]  # account, owner user, owner token


async def load_owner(db: Executor, key: OwnerKey) -> Owner:
    """The owner of a webhook with its grants of the moment (a deactivated user, or a deleted or expired service
    token, is gone)."""
    account_id, user_id, token_id = key
    if token_id is not None:
        credential = await token_store.credential_of_token(db, token_id)
        if (
            credential is None
            or credential.account_id != account_id
            or credential_state(credential, datetime.now(UTC)) != "ACTIVE"
        ):
            return Owner(None, "the webhook's owner, a service token, is deleted or expired")
        return Owner(principal_from_credential(credential))
    if user_id is not None:
        row = await webhook_store.owner_user(db, user_id)
        if row is None or row["account_id"] != account_id:
            return Owner(None, "the webhook's owner, a user, is deactivated")
        return Owner(
            Principal(
                kind=USER,
                token_id="",
                display_prefix="",
                account_id=account_id,
                account_name=row["account_name"],
                account_plan=row["account_plan"],
                user_id=user_id,
                license=row["license"],
                grants=grants_from_document(row["grants"]),
                project_ids=frozenset(row["project_ids"]),
            )
        )
    return Owner(None)


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
        previous = None
        if claimed.previous_sealed_secret is not None and claimed.previous_secret_key_id is not None:
            # Rotated out but still in its window; under a server key no longer configured, it just does not sign.
            previous = webhook_events.unseal_secret(
                claimed.previous_sealed_secret, claimed.previous_secret_key_id, self.keys
            )
        body = self.body_of(claimed)
        headers = {
            "Content-Type": webhook_events.CONTENT_TYPE,
            webhook_events.SIGNATURE_HEADER: webhook_events.signature_header(secret, int(time.time()), body, previous),
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


def _owner_key(claimed: ClaimedDelivery) -> OwnerKey:
    return (claimed.account_id, claimed.owner_user_id, claimed.owner_token_id)


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
        """Claim the due rows (at most ``BATCH``), read their webhooks' owners, send what each owner may read
        concurrently, record each outcome."""
        claims = await webhook_store.claim_due(self.pool, BATCH, self.timing.lease_seconds)
        for claimed in claims:
            self._in_flight[claimed.id] = claimed
        try:
            owners: dict[OwnerKey, Owner] = {}
            for key in {_owner_key(claimed) for claimed in claims}:
                owners[key] = await load_owner(self.pool, key)
        except Exception:  # cancelled instead: stop() hands back what is in flight
            for claimed in claims:
                self._in_flight.pop(claimed.id, None)
            with contextlib.suppress(*DATABASE_UNAVAILABLE, asyncpg.PostgresError):
                await webhook_store.release(self.pool, claims)
            raise
        await asyncio.gather(*(self._deliver(claimed, owners[_owner_key(claimed)]) for claimed in claims))
        return len(claims)

    async def _deliver(self, claimed: ClaimedDelivery, owner: Owner) -> None:
        """Send one claimed row, if its owner may read it, and record the outcome. Cancelled (the instance
        stops), it stays in flight for ``stop`` to hand back."""
        refusal = owner.refusal(claimed)
        if refusal is not None:
            try:
                await webhook_store.mark_skipped(self.pool, claimed, refusal)
            except (*DATABASE_UNAVAILABLE, asyncpg.PostgresError) as problem:
                log.warning("could not record webhook delivery %s: %s", claimed.id, type(problem).__name__)
            self._in_flight.pop(claimed.id, None)
            log.debug("webhook delivery %s (%s) skipped: %s", claimed.id, claimed.event_type, refusal)
            return
        claimed = dataclasses.replace(claimed, data=dict(webhook_events.visible_data(owner.principal, claimed.data)))
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
