"""Webhooks in GraphQL: ``Account.webhooks`` with each webhook's delivery log, and the mutations that manage them
(WEBHOOKS:WRITE). Resolvers translate; the rules are services/webhooks.py's."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from tokengate.core import global_ids
from tokengate.core.errors import InvalidInput, NotFound
from tokengate.graphql.schema.audit_log import PageInfo
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.cursors import NEWEST, decode_cursor, encode_cursor
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, Resource
from tokengate.graphql.schema.node import Node
from tokengate.services import webhooks as webhook_service
from tokengate.store import webhooks as webhook_store
from tokengate.store.webhooks import DeliveryRow, WebhookRow

MAX_PAGE_SIZE = 100
CURSOR_KIND = "delivery"
DELIVERY_ID_PREFIX = global_ids.WEBHOOK_DELIVERY_PREFIX  # ids carry their type, as Node ids do
NOT_A_CURSOR = "after: not a cursor from this delivery log (use pageInfo.endCursor)"


@strawberry.enum
class WebhookDeliveryStatus(Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = strawberry.enum_value(
        "skipped", description="Not sent: the webhook's owner may not read this event (error says why)."
    )


@strawberry.type(description="One event sent (or to be sent) to a webhook: the delivery log's entry.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Pass to redeliverWebhookEvent to send the event again.")
    event_id: str = strawberry.field(description="The CloudEvents id: the same on every redelivery of the event.")
    event_type: str
    status: WebhookDeliveryStatus
    attempts: int
    response_code: int | None = strawberry.field(description="The HTTP status of the last attempt.")
    latency_ms: int | None = strawberry.field(description="How long the last attempt took.")
    error: str | None = strawberry.field(description="What went wrong with the last attempt.")
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = strawberry.field(description="When it is tried next, while PENDING.")
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: DeliveryRow) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(global_ids.webhook_delivery_id(row.id)),
            event_id=row.event_id,
            event_type=row.event_type,
            status=WebhookDeliveryStatus(row.status),
            attempts=row.attempts,
            response_code=row.response_status,
            latency_ms=row.latency_ms,
            error=row.last_error,
            created_at=row.created_at,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            delivered_at=row.delivered_at,
        )


@strawberry.type
class WebhookDeliveryEdge:
    node: WebhookDelivery
    cursor: str


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo


@strawberry.type(description="Where the account's events are POSTed, signed (see docs/webhooks.md).")
class Webhook(Node):
    url: str
    description: str
    events: list[str] = strawberry.field(
        description="Event types (service_token.created), families (service_token.*) or * for every event; "
        "only events the webhook's owner (who created it or last changed its URL or events) may read are sent."
    )
    created_at: datetime
    failing_since: datetime | None = strawberry.field(
        description="Set when a delivery gave up after 24 hours of retries; cleared by the next delivery."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After rotateWebhookSecret: until then deliveries are signed with the previous secret too."
    )

    @classmethod
    def of(cls, row: WebhookRow) -> Webhook:
        return cls(
            id=strawberry.ID(row.id),
            url=row.url,
            description=row.description,
            events=list(row.events),
            created_at=row.created_at,
            failing_since=row.failing_since,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )

    @strawberry.field(
        description=f"The delivery log, newest first: `first` 1 to {MAX_PAGE_SIZE} (default 20), `after` the "
        "pageInfo.endCursor of the page before. Kept 30 days after delivery."
    )
    async def deliveries(
        self, info: Info, first: int | None = 20, after: str | None = strawberry.UNSET
    ) -> WebhookDeliveryConnection:
        size = 20 if first is None else first
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE_SIZE}")
        pool, webhook_id = info.context.pool, str(self.id)
        before_id = NEWEST
        if isinstance(after, str):
            before_id = decode_cursor(CURSOR_KIND, after, NOT_A_CURSOR)
            # Another webhook's cursor is refused exactly like one that was never handed out.
            if not await webhook_store.has_delivery(pool, webhook_id, before_id):
                raise InvalidInput(NOT_A_CURSOR)
        rows = await webhook_store.deliveries_page(pool, webhook_id, before_id, size + 1)  # one more: a next page?
        edges = [
            WebhookDeliveryEdge(node=WebhookDelivery.of(row), cursor=encode_cursor(CURSOR_KIND, row.id))
            for row in rows[:size]
        ]
        return WebhookDeliveryConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(rows) > size, end_cursor=edges[-1].cursor if edges else None),
        )


@strawberry.type(description="A webhook with its signing secret: shown once, never again.")
class WebhookWithSecret:
    webhook: Webhook
    secret: str = strawberry.field(description="Verifies Tokengate-Signature; store it with the receiver.")

    def __repr__(self) -> str:
        return f"WebhookWithSecret(id={self.webhook.id!r})"


async def webhooks_of_account(info: Info, account_id: str) -> list[Webhook]:
    return [Webhook.of(row) for row in await webhook_store.webhooks_of_account(info.context.pool, account_id)]


def _delivery_id(id: strawberry.ID) -> int:
    """The row of a ``whd_<n>`` delivery id; anything else is answered as an unknown delivery."""
    number = str(id).removeprefix(DELIVERY_ID_PREFIX)
    if not str(id).startswith(DELIVERY_ID_PREFIX) or not number.isdigit() or not 0 < int(number) < NEWEST:
        raise NotFound("webhook delivery")
    return int(number)


@strawberry.type
class WebhookMutations:
    @requires(
        Resource.WEBHOOKS,
        Access.WRITE,
        description="A webhook for the account's events; its signing secret is in this answer only. https only "
        "(and never to private or loopback addresses) unless the operator allows private networks. Only event "
        "types the caller may read can be subscribed to; * means every event the caller may read.",
    )
    async def create_webhook(
        self, info: Info, url: str, events: list[str], description: str | None = ""
    ) -> WebhookWithSecret | None:
        context = info.context
        created = await webhook_service.create(
            context.backend,
            context.actor,
            context.caller.account_id,
            url,
            events,
            description or "",
            context.runtime.config.webhook_allow_private,
        )
        return WebhookWithSecret(webhook=Webhook.of(created.webhook), secret=created.secret)

    @requires(Resource.WEBHOOKS, Access.WRITE, description="Change the URL, the events and/or the description.")
    async def update_webhook(
        self,
        info: Info,
        id: strawberry.ID,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
    ) -> Webhook | None:
        context = info.context
        row = await webhook_service.update(
            context.backend,
            context.actor,
            context.caller.account_id,
            str(id),
            url,
            events,
            description,
            context.runtime.config.webhook_allow_private,
        )
        return Webhook.of(row)

    @requires(Resource.WEBHOOKS, Access.WRITE, description="Remove a webhook with its delivery log.")
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> Webhook | None:
        context = info.context
        row = await webhook_service.delete(context.backend, context.actor, context.caller.account_id, str(id))
        return Webhook.of(row)

    @requires(
        Resource.WEBHOOKS,
        Access.WRITE,
        description="Send a delivery's event again (a new delivery, the same event id).",
    )
    async def redeliver_webhook_event(self, info: Info, id: strawberry.ID) -> WebhookDelivery | None:
        context = info.context
        row = await webhook_service.redeliver(
            context.backend, context.actor, context.caller.account_id, _delivery_id(id)
        )
        return WebhookDelivery.of(row)

    @requires(
        Resource.WEBHOOKS,
        Access.WRITE,
        description="Queue a webhook.test event to this webhook only (whatever it subscribes to): its delivery.",
    )
    async def send_test_webhook_event(self, info: Info, id: strawberry.ID) -> WebhookDelivery | None:
        context = info.context
        row = await webhook_service.send_test_event(context.backend, context.actor, context.caller.account_id, str(id))
        return WebhookDelivery.of(row)

    @requires(
        Resource.WEBHOOKS,
        Access.WRITE,
        description="A new signing secret, in this answer only. The previous one keeps signing for "
        "expiresPreviousInSeconds (0 to 604800; 0: it stops at once): until then Tokengate-Signature carries "
        "both signatures, t=…,v1=<new>,v1=<previous>.",
    )
    async def rotate_webhook_secret(
        self,
        info: Info,
        id: strawberry.ID,
        expires_previous_in_seconds: int | None = webhook_service.DEFAULT_PREVIOUS_SECRET_SECONDS,
    ) -> WebhookWithSecret | None:
        context = info.context
        seconds = webhook_service.DEFAULT_PREVIOUS_SECRET_SECONDS
        if expires_previous_in_seconds is not None:
            seconds = expires_previous_in_seconds
        rotated = await webhook_service.rotate_secret(
            context.backend, context.actor, context.caller.account_id, str(id), seconds
        )
        return WebhookWithSecret(webhook=Webhook.of(rotated.webhook), secret=rotated.secret)
