"""The audit log as a connection: newest first, opaque cursors, at most 100 events a page."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

import asyncpg
import strawberry
from strawberry.scalars import JSON

from tokengate.core import global_ids
from tokengate.core.errors import InvalidInput
from tokengate.core.validation import MAX_NAME_LENGTH
from tokengate.graphql.schema.node import Node
from tokengate.store import audit
from tokengate.store.audit import EVERY_EVENT, AuditFilter, AuditRow

MAX_PAGE_SIZE = 100
CURSOR_PREFIX = "audit:"
NEWEST = 2**63 - 1  # larger than any bigint identity: the first page starts below it


def encode_cursor(event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{event_id}".encode("ascii")).decode("ascii")


NOT_A_CURSOR = "after: not a cursor from this audit log (use pageInfo.endCursor)"


def decode_cursor(cursor: str) -> int:
    """The event id inside a cursor this API handed out; anything else is BAD_USER_INPUT."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    number = text.removeprefix(CURSOR_PREFIX)
    if not text.startswith(CURSOR_PREFIX) or not number.isdigit() or not 0 < int(number) < NEWEST:
        raise InvalidInput(NOT_A_CURSOR)
    return int(number)


@strawberry.type(description="One recorded change: who, through which door, from where, when. Never a secret.")
class AuditEvent(Node):
    action: str
    actor: str = strawberry.field(
        description="user:<user id>, service_token:<token id: stk_…> (<display prefix>), "
        "scim_token:<token id: scm_…> (<display prefix>) (the identity provider), cli, anonymous, "
        "github_secret_scanning or tokengate."
    )
    source: str = strawberry.field(
        description="graphql, cli, secret_scanning (GitHub's reports), system (the server's own jobs), sign_in "
        "(sign-ins and sign-outs of the pages), token_exchange (keyless CI) or scim (the identity provider through "
        "/scim/v2)."
    )
    client_address: str | None = strawberry.field(description="The client's address; null for the command line.")
    target_id: strawberry.ID | None
    occurred_at: datetime
    details: JSON | None

    @classmethod
    def of(cls, row: AuditRow) -> AuditEvent:
        return cls(
            id=strawberry.ID(global_ids.audit_event_id(row.id)),
            action=row.action,
            actor=global_ids.printed_actor(row.actor),
            source=row.source,
            client_address=row.client_addr,
            target_id=strawberry.ID(global_ids.audit_target_id(row.action, row.target_id))
            if row.target_id is not None
            else None,
            occurred_at=row.occurred_at,
            details=global_ids.printed_details(row.details),
        )


@strawberry.type
class AuditEventEdge:
    node: AuditEvent
    cursor: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None = strawberry.field(description="Pass as `after` for the next page; null when empty.")
    has_previous_page: bool = strawberry.field(
        default=False, description="True when the page was asked for after a cursor (Relay's rule for `after`)."
    )
    start_cursor: str | None = strawberry.field(default=None, description="The first edge's cursor.")


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo


@strawberry.input(description="Which events to list; every field left out or null leaves that side open.")
class AuditLogFilter:
    action: str | None = strawberry.field(default=None, description="Exactly this action, e.g. service_token.created.")
    actor: str | None = strawberry.field(
        default=None,
        description="Exactly this actor as listed (user:<user id>, cli, ...); a service token also by "
        "service_token:<token id> alone, without its display prefix, its id printed (stk_…) or bare.",
    )
    target_id: strawberry.ID | None = strawberry.field(default=None, description="Events about this id.")
    since: datetime | None = strawberry.field(
        default=None, description="Events at or after this time (without an offset: UTC)."
    )
    until: datetime | None = strawberry.field(
        default=None, description="Events before this time (without an offset: UTC); later than `since`."
    )


def _matched_text(value: str | None, what: str) -> str | None:
    if value is not None and not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise InvalidInput(f"filter.{what} must be 1 to {MAX_NAME_LENGTH} characters")
    return value


def _instant(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC instant in Python's range
        raise InvalidInput(f"filter.{what} is out of range") from None


def _target_key(target: str | None) -> str | None:
    # targetId is printed as the API prints ids (stk_…); the table holds a token's bare row key
    return global_ids.audit_target_key(target) if target is not None else None


def _stored_actor(actor: str | None) -> str | None:
    # actors are printed with a token's stk_ id; the table holds its row key (and the filter took that before)
    return global_ids.stored_actor(actor) if actor is not None else None


def checked_filter(given: AuditLogFilter | None) -> AuditFilter:
    """The filter as the store reads it; BAD_USER_INPUT for an empty or over-long text, or an empty range."""
    if given is None:
        return EVERY_EVENT
    since, until = _instant(given.since, "since"), _instant(given.until, "until")
    if since is not None and until is not None and until <= since:
        raise InvalidInput("filter.until must be later than filter.since")
    return AuditFilter(
        action=_matched_text(given.action, "action"),
        actor=_stored_actor(_matched_text(given.actor, "actor")),
        target_id=_target_key(_matched_text(given.target_id, "targetId")),
        since=since,
        until=until,
    )


async def audit_page(
    pool: asyncpg.Pool, account_id: str, first: int, after: str | None, given: AuditLogFilter | None = None
) -> AuditEventConnection:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE_SIZE}")
    only = checked_filter(given)
    before_id = NEWEST
    if after is not None:
        before_id = decode_cursor(after)
        # Another account's cursor is refused exactly like one that was never handed out.
        if not await audit.has_event(pool, account_id, before_id):
            raise InvalidInput(NOT_A_CURSOR)
    # One extra row tells whether another page exists.
    rows = await audit.page(pool, account_id, before_id, first + 1, only)
    edges = [AuditEventEdge(node=AuditEvent.of(row), cursor=encode_cursor(row.id)) for row in rows[:first]]
    return AuditEventConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first,
            end_cursor=edges[-1].cursor if edges else None,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
        ),
    )
