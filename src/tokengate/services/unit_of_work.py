"""One way to make a change: a transaction that writes, audits and states what it makes stale, once.

``async with backend.change(actor) as work:`` opens a transaction on one connection. Inside it the change
writes through ``store/``, records its audit events (``work.audit``) and states its notices
(``work.notify``): each is published with NOTIFY in the transaction, so other instances hear it only when
the change commits. After the commit the same notices are applied to this instance's caches by the same
handler the listener runs for other instances' notices; no caller forgets a cache by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from tokengate.core.errors import NotFound
from tokengate.core.invalidations import Notice
from tokengate.core.policy import Principal
from tokengate.store import accounts as account_store
from tokengate.store import notify
from tokengate.store import webhooks as webhook_store
from tokengate.store.accounts import AccountRow
from tokengate.store.audit import AuditEntry
from tokengate.store.tokens import LegacyVerify


def _asks_nothing() -> None:
    """No door but GraphQL admits a browser session: elsewhere nobody is asked for a recent sign-in."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change, through which door and from where (the audit log's "who").

    ``principal`` is the authenticated caller whose permissions the services check; None is the operator at
    the command line, who runs on the server itself and may do anything.
    """

    name: str  # user:usr_… | service_token:… (tgs_…) | cli | anonymous
    source: str  # graphql | cli
    client_addr: str | None = None
    principal: Principal | None = None
    # A sensitive change calls this before it writes: the door binds auth/recent_sign_in.py's check, which refuses
    # a browser session that signed in too long ago (RECENT_SIGN_IN_REQUIRED) and lets any token through.
    require_recent_sign_in: Callable[[], None] = field(default=_asks_nothing, repr=False, compare=False)

    @classmethod
    def of(
        cls,
        principal: Principal,
        client_addr: str | None,
        source: str = "graphql",
        require_recent_sign_in: Callable[[], None] = _asks_nothing,
    ) -> Actor:
        return cls(principal.actor, source, client_addr, principal, require_recent_sign_in)

    def as_named_in(self, account_id: str) -> Actor:
        """This actor as another account's audit log may name it: a principal of that account by name, anyone
        else as ``anonymous`` (a leak report revokes a token of any account and must not tell it who reported)."""
        if self.principal is not None and self.principal.account_id != account_id:
            return Actor("anonymous", self.source, self.client_addr)
        return self


OPERATOR = Actor(name="cli", source="cli")


class UnitOfWork:
    """The connection of one change in its transaction, the audit events it records and the notices it states."""

    __slots__ = ("actor", "conn", "events_queued", "notices")

    def __init__(self, conn: asyncpg.Connection, actor: Actor):
        self.conn = conn
        self.actor = actor
        self.notices: list[Notice] = []
        self.events_queued = 0

    async def audit(self, account_id: str, action: str, target_id: str | None, **details: object) -> None:
        """Record what happened in the account's log, by this change's actor (never a secret), and queue it as
        an event to the account's webhooks subscribed to the action, in the same statement (the outbox)."""
        actor = self.actor
        entry = AuditEntry(account_id, action, actor.name, actor.source, actor.client_addr, target_id, dict(details))
        self.events_queued += await webhook_store.record_audit_with_outbox(self.conn, entry)

    async def account(self, account_id: str) -> AccountRow:
        """The account the change is made in, read in its transaction; NotFound when there is none."""
        account = await account_store.get_account(self.conn, account_id)
        if account is None:
            raise NotFound("account")
        return account

    async def notify(self, notice: Notice) -> None:
        """Publish what this change makes stale; applied here too once the transaction commits."""
        if notice not in self.notices:
            await notify.publish(self.conn, notice)
            self.notices.append(notice)


def _no_caches(notice: Notice) -> None:
    """The command line keeps no caches: its notices reach the servers through NOTIFY alone."""


def _no_sender() -> None:
    """The command line sends no webhooks: the servers' delivery workers find its events within a poll."""


@dataclass(frozen=True)
class Backend:
    """What the services write with: the pool, the server keys, this process's cache handler, and its limits."""

    pool: asyncpg.Pool
    keys: tuple[bytes, ...]  # newest first: new hashes use the first
    apply: Callable[[Notice], None] = field(default=_no_caches)
    events_queued: Callable[[], None] = field(default=_no_sender)  # wakes this process's delivery worker
    max_tokens_per_account: int = 1000  # usable service tokens (limits.Limits)
    # argon2id for legacy tokens: the server's bounded pool; None: a thread each
    verify_legacy: LegacyVerify | None = None
    refused: Callable[[str], None] = field(default=lambda reason: None)  # counts a quota refusal for the metrics

    @property
    def newest_key(self) -> bytes:
        return self.keys[0]

    @asynccontextmanager
    async def change(self, actor: Actor) -> AsyncIterator[UnitOfWork]:
        async with self.pool.acquire() as conn, conn.transaction():
            work = UnitOfWork(conn, actor)
            yield work
        for notice in work.notices:  # committed: this instance forgets what the others are forgetting
            self.apply(notice)
        if work.events_queued:
            self.events_queued()
