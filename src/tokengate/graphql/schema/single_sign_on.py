"""Single sign-on in GraphQL (docs/sign-in.md "Single sign-on"): ``Account.singleSignOn``,
``configureSingleSignOn`` and ``removeSingleSignOn``. The client secret is taken, sealed and never answered."""

from __future__ import annotations

from datetime import datetime

import strawberry

from tokengate.core import single_sign_on as rules
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, Resource
from tokengate.graphql.schema.inputs import GrantInput, grants_of
from tokengate.graphql.schema.types import GrantView, given, grants_with_projects
from tokengate.services import single_sign_on as service
from tokengate.store.single_sign_on import SingleSignOnRow


@strawberry.type(description="A group of the provider's groups claim and the grants its members get.")
class SingleSignOnGroupMapping:
    group: str
    grants: list[GrantView]


@strawberry.type(
    description="The account's OpenID Connect provider (docs/sign-in.md). The client secret is never shown."
)
class SingleSignOn:
    issuer: str = strawberry.field(description="The provider's issuer URL (its ID tokens' iss).")
    client_id: str
    email_domains: list[str] = strawberry.field(
        description="Lower-case; only e-mails of these domains may sign in or be made members."
    )
    trust_emails_without_verification: bool = strawberry.field(
        description="The provider is authoritative for those domains: an e-mail it does not say is verified (Entra "
        "ID sends no email_verified) still makes a member. Off, such an e-mail is refused (the nOAuth takeover)."
    )
    default_grants: list[GrantView] = strawberry.field(description="Given to a member made just in time.")
    groups_claim: str = strawberry.field(description="The ID token's claim listing the member's groups.")
    group_mappings: list[SingleSignOnGroupMapping]
    enforced: bool = strawberry.field(
        description="Members other than ACCOUNT_ADMINs may sign in only through single sign-on."
    )
    sign_in_again_after_seconds: int = strawberry.field(description="A single sign-on session ends after this.")
    redirect_uri: str = strawberry.field(description="What the admin registers at the provider.")
    sign_in_path: str = strawberry.field(description="Where members start signing in.")
    links_existing_members: bool = strawberry.field(
        description="Read-only, decided at every save: true when an ACCOUNT_ADMIN saved it. Then a first sign-in "
        "whose e-mail passes the just-in-time rule is linked to the active member who has that e-mail and no link "
        "to this issuer yet (keeping their grants, adding those of their mapped groups). Saved by anyone else "
        "(a SECURITY_ADMIN), such a sign-in is refused: they could not sign in as every member themselves."
    )
    updated_at: datetime


async def single_sign_on_view(info: Info, row: SingleSignOnRow) -> SingleSignOn:
    settings = row.settings
    held = {"default": list(settings.default_grants)}
    held.update({f"group:{index}": list(m.grants) for index, m in enumerate(settings.group_mappings)})
    grants = await grants_with_projects(info.context, held)
    origin = info.context.pages_origin or rules.pages_origin(None, "http", None)
    return SingleSignOn(
        issuer=settings.issuer,
        client_id=settings.client_id,
        email_domains=list(settings.email_domains),
        trust_emails_without_verification=settings.trust_emails_without_verification,
        default_grants=grants["default"],
        groups_claim=settings.groups_claim,
        group_mappings=[
            SingleSignOnGroupMapping(group=m.group, grants=grants[f"group:{index}"])
            for index, m in enumerate(settings.group_mappings)
        ],
        enforced=settings.enforced,
        sign_in_again_after_seconds=settings.sign_in_again_after_seconds,
        redirect_uri=rules.redirect_uri(origin),
        sign_in_path=rules.sign_in_path(row.account_id),
        links_existing_members=row.links_existing_members,
        updated_at=row.updated_at,
    )


async def single_sign_on_of_account(info: Info, account_id: str) -> SingleSignOn | None:
    context = info.context
    row = await service.get(context.pool, context.actor, account_id)
    return await single_sign_on_view(info, row) if row is not None else None


@strawberry.input
class SingleSignOnGroupMappingInput:
    group: str
    grants: list[GrantInput]


@strawberry.input(description="The account's OpenID Connect provider.")
class SingleSignOnInput:
    issuer: str
    client_id: str
    client_secret: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="Required the first time; left out, the stored one is kept. Never answered back, never logged.",
    )
    email_domains: list[str]
    trust_emails_without_verification: bool = False
    default_grants: list[GrantInput] = strawberry.field(default_factory=list)
    groups_claim: str = rules.DEFAULT_GROUPS_CLAIM
    group_mappings: list[SingleSignOnGroupMappingInput] = strawberry.field(default_factory=list)
    enforced: bool = False
    sign_in_again_after_seconds: int = rules.DEFAULT_SIGN_IN_AGAIN_SECONDS

    def __repr__(self) -> str:  # the client secret is no one's business
        return f"SingleSignOnInput(issuer={self.issuer!r})"


def settings_of(input: SingleSignOnInput) -> rules.Settings:
    return rules.Settings(
        issuer=input.issuer,
        client_id=input.client_id,
        email_domains=tuple(input.email_domains),
        trust_emails_without_verification=input.trust_emails_without_verification,
        default_grants=tuple(grants_of(input.default_grants)),
        groups_claim=input.groups_claim,
        group_mappings=tuple(rules.GroupMapping(m.group, tuple(grants_of(m.grants))) for m in input.group_mappings),
        enforced=input.enforced,
        sign_in_again_after_seconds=input.sign_in_again_after_seconds,
    )


@strawberry.type
class SingleSignOnMutations:
    @requires(
        Resource.AUTH_PROVIDER,
        Access.WRITE,
        description="Configure the account's OpenID Connect provider (docs/sign-in.md). Every grant is checked as "
        "giving it to a member would be; ACCOUNT_ADMIN only by an ACCOUNT_ADMIN.",
    )
    async def configure_single_sign_on(self, info: Info, input: SingleSignOnInput) -> SingleSignOn | None:
        context = info.context
        row = await service.configure(
            context.backend,
            context.actor,
            context.caller.account_id,
            settings_of(input),
            given(input.client_secret),
            context.runtime.config.webhook_allow_private,
        )
        return await single_sign_on_view(info, row)

    @requires(
        Resource.AUTH_PROVIDER,
        Access.WRITE,
        description="Remove the account's provider: nobody signs in through it any more, and enforcement ends.",
    )
    async def remove_single_sign_on(self, info: Info) -> SingleSignOn | None:
        context = info.context
        row = await service.remove(context.backend, context.actor, context.caller.account_id)
        return await single_sign_on_view(info, row)
