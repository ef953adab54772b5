"""Webhooks: create, update, delete, redeliver an event, send a test event, rotate the signing secret; and what
the delivery worker records as the server.

The signing secret is made here, returned once by ``create`` and ``rotate_secret``, and stored sealed under the
server key (webhook_events.seal_secret): the server signs with it, so it cannot be a hash. Audit details name
the URL by its origin only (a path may hold a receiver's own secret).

A webhook shows only what its owner may read (webhook_events.py): the caller that creates it, or changes its
URL or events, becomes its owner, and may subscribe only to event types and families it may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from tokengate.core import tokens
from tokengate.core.errors import Forbidden, InvalidInput, NotFound
from tokengate.core.policy import SERVICE_TOKEN, Principal, require, require_account
from tokengate.core.webhook_addresses import checked_webhook_url, origin
from tokengate.core.webhook_events import (
    TEST_EVENT,
    checked_event_names,
    new_signing_secret,
    seal_secret,
    subscription_refusal,
)
from tokengate.services.unit_of_work import Actor, Backend
from tokengate.store import webhooks as webhook_store
from tokengate.store.webhooks import ClaimedDelivery, DeliveryRow, WebhookRow

MAX_WEBHOOKS_PER_ACCOUNT: Final = 20
MAX_DESCRIPTION_LENGTH: Final = 1000
DEFAULT_PREVIOUS_SECRET_SECONDS: Final = 86_400  # a rotated-out secret keeps signing for a day by default
MAX_PREVIOUS_SECRET_SECONDS: Final = 7 * 86_400
WEBHOOK: Final = "webhook"
# The server itself, for what its jobs record (a delivery given up, an endpoint back).
SYSTEM: Final = Actor(name="tokengate", source="system")


@dataclass(frozen=True)
class CreatedWebhook:
    webhook: WebhookRow
    secret: str

    def __repr__(self) -> str:  # never print the secret
        return f"CreatedWebhook(id={self.webhook.id!r})"


def checked_description(description: str) -> str:
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidInput(f"description must be at most {MAX_DESCRIPTION_LENGTH} characters")
    return description


def _authorize(actor: Actor, account_id: str) -> None:
    require_account(actor.principal, account_id)
    require(actor.principal, "WEBHOOKS", "WRITE")


def owned_by(principal: Principal | None) -> tuple[str | None, str | None]:
    """The owner columns of a webhook this principal creates or re-points: (user, service token); the operator
    (None) is neither."""
    if principal is None:
        return (None, None)
    if principal.kind == SERVICE_TOKEN:
        return (None, principal.token_id)
    return (principal.user_id, None)


def require_readable(principal: Principal | None, events: Sequence[str]) -> None:
    """``Forbidden`` naming the first event type or family the caller, the webhook's owner to be, may not read."""
    for name in events:
        refusal = subscription_refusal(principal, name)
        if refusal is not None:
            raise Forbidden(refusal)


async def create(
    backend: Backend,
    actor: Actor,
    account_id: str,
    url: str,
    events: Sequence[str],
    description: str = "",
    allow_private: bool = False,
) -> CreatedWebhook:
    """A webhook receiving the subscribed events; its signing secret is returned once."""
    _authorize(actor, account_id)
    url = checked_webhook_url(url, allow_private)
    subscribed = checked_event_names(events)
    require_readable(actor.principal, subscribed)
    description = checked_description(description)
    secret = new_signing_secret()
    sealed, key_id = seal_secret(secret, backend.newest_key)
    async with backend.change(actor) as work:
        await work.account(account_id)
        if await webhook_store.count_of_account(work.conn, account_id) >= MAX_WEBHOOKS_PER_ACCOUNT:
            raise InvalidInput(f"an account has at most {MAX_WEBHOOKS_PER_ACCOUNT} webhooks")
        row = await webhook_store.insert_webhook(
            work.conn,
            tokens.new_id("whk"),
            account_id,
            url,
            description,
            subscribed,
            sealed,
            key_id,
            actor.name,
            owned_by(actor.principal),
        )
        await work.audit(account_id, "webhook.created", row.id, url=origin(url), events=list(subscribed))
    return CreatedWebhook(row, secret)


async def update(
    backend: Backend,
    actor: Actor,
    account_id: str,
    webhook_id: str,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    allow_private: bool = False,
) -> WebhookRow:
    """Change the URL, the events and/or the description (the secret stays); a change that changes nothing
    is not audited. Who changes the URL or the events becomes the webhook's owner: every event it subscribes
    to must be one the caller may read (else an event could be re-pointed to a receiver of the caller's)."""
    _authorize(actor, account_id)
    new_url = checked_webhook_url(url, allow_private) if url is not None else None
    new_events = checked_event_names(events) if events is not None else None
    new_description = checked_description(description) if description is not None else None
    async with backend.change(actor) as work:
        current = await webhook_store.lock_webhook(work.conn, account_id, webhook_id)
        if current is None:
            raise NotFound(WEBHOOK)
        wanted_url = new_url if new_url is not None else current.url
        wanted_events = new_events if new_events is not None else current.events
        wanted_description = new_description if new_description is not None else current.description
        if (wanted_url, wanted_events, wanted_description) == (current.url, current.events, current.description):
            return current
        owner = (current.owner_user_id, current.owner_token_id)
        if (wanted_url, wanted_events) != (current.url, current.events):
            require_readable(actor.principal, wanted_events)
            owner = owned_by(actor.principal)
        row = await webhook_store.update_webhook(
            work.conn, webhook_id, wanted_url, wanted_description, wanted_events, owner
        )
        changes: dict[str, object] = {}
        if row.url != current.url:
            changes["url"] = origin(row.url)
        if row.events != current.events:
            changes["events"] = list(row.events)
        if row.description != current.description:
            changes["description"] = True  # changed; the text is the account's own
        await work.audit(account_id, "webhook.updated", webhook_id, **changes)
    return row


async def delete(backend: Backend, actor: Actor, account_id: str, webhook_id: str) -> WebhookRow:
    """Removes the webhook, its delivery log and what it had not delivered yet."""
    _authorize(actor, account_id)
    async with backend.change(actor) as work:
        row = await webhook_store.delete_webhook(work.conn, account_id, webhook_id)
        if row is None:
            raise NotFound(WEBHOOK)
        await work.audit(account_id, "webhook.deleted", webhook_id, url=origin(row.url))
    return row


async def redeliver(backend: Backend, actor: Actor, account_id: str, delivery_id: int) -> DeliveryRow:
    """Send the event of a delivery again, as a new delivery with the same event id."""
    _authorize(actor, account_id)
    async with backend.change(actor) as work:
        row = await webhook_store.redeliver(work.conn, account_id, delivery_id)
        if row is None:
            raise NotFound("webhook delivery")
        await work.audit(
            account_id,
            "webhook.redelivered",
            row.webhook_id,
            delivery_id=str(delivery_id),
            new_delivery_id=str(row.id),
            event_id=row.event_id,
        )
    return row


async def send_test_event(backend: Backend, actor: Actor, account_id: str, webhook_id: str) -> DeliveryRow:
    """Queue a ``webhook.test`` event to this webhook only, whatever it subscribes to: its delivery."""
    _authorize(actor, account_id)
    async with backend.change(actor) as work:
        webhook = await webhook_store.lock_webhook(work.conn, account_id, webhook_id)
        if webhook is None:
            raise NotFound(WEBHOOK)
        data = {
            "account_id": account_id,
            "actor": actor.name,
            "source": actor.source,
            "client_address": actor.client_addr,
            "target_id": webhook_id,
            "details": {"message": "a test event, sent by sendTestWebhookEvent"},
        }
        event_id = "test-" + tokens.random_base62(tokens.ID_LENGTH)
        row = await webhook_store.queue_test_event(work.conn, webhook, event_id, TEST_EVENT, data)
        work.events_queued += 1
        await work.audit(account_id, "webhook.test_sent", webhook_id, delivery_id=str(row.id), event_id=event_id)
    return row


def checked_previous_seconds(seconds: int) -> int:
    if not 0 <= seconds <= MAX_PREVIOUS_SECRET_SECONDS:
        raise InvalidInput(f"expiresPreviousInSeconds must be between 0 and {MAX_PREVIOUS_SECRET_SECONDS}")
    return seconds


async def rotate_secret(
    backend: Backend,
    actor: Actor,
    account_id: str,
    webhook_id: str,
    previous_seconds: int = DEFAULT_PREVIOUS_SECRET_SECONDS,
) -> CreatedWebhook:
    """A new signing secret, returned once; the one it replaces keeps signing (deliveries carry both
    signatures) for ``previous_seconds`` (0: it stops at once). A secret rotated out earlier stops now."""
    _authorize(actor, account_id)
    previous_seconds = checked_previous_seconds(previous_seconds)
    secret = new_signing_secret()
    sealed, key_id = seal_secret(secret, backend.newest_key)
    until = datetime.now(UTC) + timedelta(seconds=previous_seconds) if previous_seconds else None
    async with backend.change(actor) as work:
        row = await webhook_store.rotate_secret(work.conn, account_id, webhook_id, sealed, key_id, until)
        if row is None:
            raise NotFound(WEBHOOK)
        await work.audit(
            account_id,
            "webhook.secret_rotated",
            webhook_id,
            previous_expires_at=until.isoformat() if until is not None else None,
        )
    return CreatedWebhook(row, secret)


async def give_up(
    backend: Backend, claimed: ClaimedDelivery, response_status: int | None, latency_ms: int | None, error: str
) -> None:
    """The retry window has passed: the delivery fails, and the webhook is marked failing (audited once)."""
    async with backend.change(SYSTEM) as work:
        if not await webhook_store.mark_failed(work.conn, claimed, response_status, latency_ms, error):
            return  # another claim got there first
        account_id = await webhook_store.set_failing(work.conn, claimed.webhook_id)
        if account_id is not None:
            await work.audit(
                account_id,
                "webhook.failing",
                claimed.webhook_id,
                delivery_id=str(claimed.id),
                event_id=claimed.event_id,
                attempts=claimed.attempts,
                error=error,
            )


async def recovered(backend: Backend, webhook_id: str) -> None:
    """A failing webhook took a delivery: the mark is cleared (audited once)."""
    async with backend.change(SYSTEM) as work:
        account_id = await webhook_store.clear_failing(work.conn, webhook_id)
        if account_id is not None:
            await work.audit(account_id, "webhook.recovered", webhook_id)
