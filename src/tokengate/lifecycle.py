"""Token operations shared by the CLI and the GraphQL API: store calls, hashing and audit together."""

from __future__ import annotations

from dataclasses import dataclass

from tokengate import tokens
from tokengate.policy import Grant
from tokengate.store import Executor, audit
from tokengate.store import accounts as account_store
from tokengate.store import grants as grant_store
from tokengate.store import tokens as token_store
from tokengate.store import users as user_store
from tokengate.store.accounts import Account
from tokengate.store.audit import AuditEntry
from tokengate.store.users import User


@dataclass(frozen=True)
class Actor:
    """Who makes a change and through which door, for the audit log."""

    name: str  # user:usr_… | service_token:… | cli
    source: str  # graphql | cli
    client_addr: str | None = None

    def entry(self, account_id: str, action: str, target_id: str | None, **details: object) -> AuditEntry:
        return AuditEntry(account_id, action, self.name, self.source, self.client_addr, target_id, dict(details))


CLI_ACTOR = Actor(name="cli", source="cli")


async def issue_user_token(conn: Executor, key: bytes, user: User, name: str, actor: Actor) -> tokens.IssuedToken:
    """A personal token for ``user``; the returned text is the only copy of the secret."""
    issued = tokens.issue_token("user")
    await token_store.insert_token(
        conn,
        token_id=issued.id,
        account_id=user.account_id,
        kind="user",
        format_="v2",
        token_hash=tokens.hash_token(issued.text, key),
        name=name,
        created_by=actor.name,
        user_id=user.id,
    )
    await audit.record(conn, actor.entry(user.account_id, "user_token.created", issued.id, user_id=user.id, name=name))
    return issued


async def bootstrap_account(
    conn: Executor, key: bytes, name: str, plan: str, admin_email: str, actor: Actor = CLI_ACTOR
) -> tuple[Account, User, tokens.IssuedToken]:
    """A new account with its first user (Developer license, ACCOUNT_ADMIN) and that user's token.

    Run it inside a transaction: the four rows and their audit events land together or not at all.
    """
    account = await account_store.create_account(conn, tokens.new_id("acc"), name, plan)
    user = await user_store.create_user(conn, tokens.new_id("usr"), account.id, admin_email, "DEVELOPER")
    await grant_store.add_user_grants(conn, account.id, user.id, [Grant("ACCOUNT_ADMIN", True, ())])
    await audit.record(conn, actor.entry(account.id, "user.created", user.id, license="DEVELOPER"))
    issued = await issue_user_token(conn, key, user, "bootstrap", actor)
    return account, user, issued
