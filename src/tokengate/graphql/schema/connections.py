"""Relay connections beside the plain lists: ``Account.serviceTokenConnection`` and ``Account.memberConnection``.

Pages are keyset pages in SQL (store/), oldest first like the lists; ``first`` 1 to 100, ``after`` an
opaque cursor from ``pageInfo.endCursor`` or an edge. A cursor names a row of the caller's account: one
from another account or another list is refused exactly like one that was never handed out.
``totalCount`` counts everything the filter matches (one more query, only when it is asked for).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Final

import strawberry

from tokengate.core.errors import InvalidInput
from tokengate.graphql.schema.audit_log import PageInfo
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.enums import TokenFormat, TokenState
from tokengate.graphql.schema.types import ServiceToken, User, service_tokens_with_grants, users_with_grants
from tokengate.store import tokens as token_store
from tokengate.store import users as user_store
from tokengate.store.tokens import ServiceTokenFilter as StoredFilter

MAX_PAGE_SIZE: Final = 100
DEFAULT_PAGE_SIZE: Final = 50
MAX_CURSOR_KEY: Final = 64


def encode_cursor(list_name: str, key: str) -> str:
    """An opaque cursor: the list it belongs to and the key of its row."""
    return base64.urlsafe_b64encode(f"{list_name}:{key}".encode()).decode("ascii")


def decode_cursor(list_name: str, cursor: str) -> str:
    """The row key inside a cursor of ``list_name``; anything else is BAD_USER_INPUT."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    name, separator, key = text.partition(":")
    if name != list_name or not separator or not 0 < len(key) <= MAX_CURSOR_KEY or not key.replace("_", "").isalnum():
        raise not_a_cursor()
    return key


def not_a_cursor() -> InvalidInput:
    return InvalidInput("after: not a cursor from this list (use pageInfo.endCursor)")


def page_size(first: int | None) -> int:
    size = DEFAULT_PAGE_SIZE if first is None else first
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE_SIZE}")
    return size


def page_info(cursors: list[str], has_next_page: bool, after: str | None) -> PageInfo:
    return PageInfo(
        has_next_page=has_next_page,
        end_cursor=cursors[-1] if cursors else None,
        has_previous_page=after is not None,  # the row of `after` itself comes before this page
        start_cursor=cursors[0] if cursors else None,
    )


@strawberry.input(description="Which service tokens a connection holds. Every condition given must hold.")
class ServiceTokenFilter:
    states: list[TokenState] = strawberry.field(  # type: ignore[valid-type]
        default_factory=lambda: [TokenState.ACTIVE, TokenState.EXPIRED],  # type: ignore[attr-defined]
        description="Tokens in one of these states; deleted ones only when DELETED is listed.",
    )
    format: TokenFormat | None = None  # type: ignore[valid-type]
    rotation_recommended: bool | None = None
    expiring_before: datetime | None = strawberry.field(
        default=None, description="Tokens with an expiry earlier than this (tokens without expiry never match)."
    )

    def stored(self) -> StoredFilter:
        expiring_before = self.expiring_before
        if expiring_before is not None and expiring_before.tzinfo is None:
            expiring_before = expiring_before.replace(tzinfo=UTC)
        return StoredFilter(
            states=tuple(state.value for state in self.states),
            format=self.format.value.lower() if self.format is not None else None,
            rotation_recommended=self.rotation_recommended,
            expiring_before=expiring_before,
        )


@strawberry.type
class ServiceTokenEdge:
    node: ServiceToken
    cursor: str


@strawberry.type
class ServiceTokenConnection:
    edges: list[ServiceTokenEdge]
    page_info: PageInfo
    account_id: strawberry.Private[str]
    wanted: strawberry.Private[StoredFilter]

    @strawberry.field(description="How many service tokens the filter matches, on every page.")
    async def total_count(self, info: Info) -> int:
        return await token_store.count_service_tokens(info.context.pool, self.account_id, self.wanted)


@strawberry.type
class UserEdge:
    node: User
    cursor: str


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    account_id: strawberry.Private[str]

    @strawberry.field(description="How many members the account has.")
    async def total_count(self, info: Info) -> int:
        return await user_store.count_users(info.context.pool, self.account_id)


SERVICE_TOKENS: Final = "service_token"
MEMBERS: Final = "member"


async def start_after(list_name: str, after: str | None, exists: Callable[[str], Awaitable[bool]]) -> str | None:
    """The row key a page follows (None: the first page), from a cursor that must name a row of the account."""
    if after is None:
        return None
    key = decode_cursor(list_name, after)
    if not await exists(key):
        raise not_a_cursor()
    return key


async def service_token_page(
    info: Info, account_id: str, first: int | None, after: str | None, wanted: ServiceTokenFilter | None
) -> ServiceTokenConnection:
    size, pool = page_size(first), info.context.pool
    key = await start_after(SERVICE_TOKENS, after, partial(token_store.has_service_token, pool, account_id))
    stored = (wanted or ServiceTokenFilter()).stored()
    records = await token_store.service_token_page(pool, account_id, stored, key, size + 1)  # one more: a next page?
    tokens = await service_tokens_with_grants(info.context, records[:size])
    cursors = [encode_cursor(SERVICE_TOKENS, record.id) for record in records[:size]]
    return ServiceTokenConnection(
        edges=[ServiceTokenEdge(node=token, cursor=cursor) for token, cursor in zip(tokens, cursors, strict=True)],
        page_info=page_info(cursors, len(records) > size, after),
        account_id=account_id,
        wanted=stored,
    )


async def member_page(info: Info, account_id: str, first: int | None, after: str | None) -> UserConnection:
    size, pool = page_size(first), info.context.pool
    key = await start_after(MEMBERS, after, partial(user_store.has_user, pool, account_id))
    rows = await user_store.user_page(pool, account_id, key, size + 1)
    users = await users_with_grants(info.context, rows[:size])
    cursors = [encode_cursor(MEMBERS, row.id) for row in rows[:size]]
    return UserConnection(
        edges=[UserEdge(node=user, cursor=cursor) for user, cursor in zip(users, cursors, strict=True)],
        page_info=page_info(cursors, len(rows) > size, after),
        account_id=account_id,
    )
