"""Sign-in in GraphQL: ``createInvitation`` (a one-time link for a member), the caller's browser sessions
(``viewer.sessions``), ``endSession`` and ``endAllSessions`` ("sign out everywhere"). docs/sign-in.md."""

from __future__ import annotations

from datetime import datetime

import strawberry

from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, Resource
from tokengate.services import sign_in
from tokengate.services.sign_in import INVITATION_PATH, sign_in_timeouts
from tokengate.store import Executor
from tokengate.store import sign_in as sign_in_store
from tokengate.store.sign_in import InvitationRow, SessionRow


@strawberry.type(
    description="A browser session: made at each sign-in, ended by signing out, by its timeouts, by "
    "a new invitation or by deactivation."
)
class BrowserSession:
    id: strawberry.ID
    method: str = strawberry.field(description="How it was signed in: invitation | passkey.")
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime = strawberry.field(description="When it ends unless used before (the idle timeout).")
    absolute_expires_at: datetime = strawberry.field(description="When it ends whatever happens.")
    client_address: str | None
    user_agent: str | None
    current: bool = strawberry.field(description="Whether this request came through this session.")

    @classmethod
    def of(cls, row: SessionRow, current_id: str | None) -> BrowserSession:
        return cls(
            id=strawberry.ID(row.id),
            method=row.method,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.idle_expires_at,
            absolute_expires_at=row.absolute_expires_at,
            client_address=row.client_addr,
            user_agent=row.user_agent,
            current=row.id == current_id,
        )


async def sessions_of(db: Executor, user_id: str, current_id: str | None) -> list[BrowserSession]:
    return [BrowserSession.of(row, current_id) for row in await sign_in_store.sessions_of_user(db, user_id)]


@strawberry.type(description="An invitation to sign in (its secret only in createInvitation's answer).")
class Invitation:
    id: strawberry.ID
    user_id: strawberry.ID
    created_at: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: InvitationRow) -> Invitation:
        return cls(
            id=strawberry.ID(row.id),
            user_id=strawberry.ID(row.user_id),
            created_at=row.created_at,
            expires_at=row.expires_at,
        )


@strawberry.type(description="A new invitation with its one-time link: shown once, never again.")
class InvitationWithSecret:
    invitation: Invitation
    secret: str
    path: str = strawberry.field(
        description="Where the invitee goes, on the pages' origin: /invitation#<secret> (the secret stays in the "
        "fragment, out of server logs)."
    )

    def __repr__(self) -> str:
        return f"InvitationWithSecret(id={self.invitation.id!r})"


@strawberry.type
class SignInMutations:
    @requires(
        Resource.MEMBERS,
        Access.WRITE,
        description="A one-time sign-in link for a member, who opens it and registers a passkey. It expires, "
        "works once, and revokes the member's older invitations and passkeys and ends their sessions (a lost "
        "passkey). You must be able to give everything the member holds; never for yourself.",
    )
    async def create_invitation(self, info: Info, user_id: strawberry.ID) -> InvitationWithSecret | None:
        context = info.context
        row, secret = await sign_in.create_invitation(
            context.backend,
            context.actor,
            context.caller.account_id,
            str(user_id),
            sign_in_timeouts(info.context.runtime.config),
        )
        return InvitationWithSecret(invitation=Invitation.of(row), secret=secret, path=INVITATION_PATH + secret)

    @strawberry.mutation(description="Sign one of your own browser sessions out, at once on every instance.")
    async def end_session(self, info: Info, id: strawberry.ID) -> BrowserSession:
        context = info.context
        row = await sign_in.end_session(context.backend, context.actor, str(id))
        return BrowserSession.of(row, None)

    @strawberry.mutation(
        description="Sign out everywhere: every browser session of yours ends at once on every instance (this "
        "one too, when it is one). How many ended."
    )
    async def end_all_sessions(self, info: Info) -> int:
        context = info.context
        return await sign_in.end_all_sessions(context.backend, context.actor)
