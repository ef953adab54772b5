"""GraphQL object types. Resolvers shape store rows; permission questions go to policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import strawberry

from tokengate.core import global_ids, tokens
from tokengate.core.browser_sessions import SESSION_PREFIX
from tokengate.core.catalog import CATALOG
from tokengate.core.errors import Forbidden
from tokengate.core.policy import (
    SERVICE_TOKEN,
    Decision,
    Grant,
    Principal,
    may_read_project,
    member_change_refusal,
    power_refusal,
)
from tokengate.graphql.schema.audit_log import MAX_PAGE_SIZE, AuditEventConnection, AuditLogFilter, audit_page
from tokengate.graphql.schema.context import Context, Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import (
    Access,
    License,
    PermissionSetKey,
    Plan,
    PrincipalKind,
    Resource,
    TokenFormat,
    TokenState,
    UserState,
)
from tokengate.graphql.schema.ip_restrictions import IpRestrictions
from tokengate.graphql.schema.node import Node
from tokengate.graphql.schema.scim_tokens import ScimToken, scim_tokens_of
from tokengate.graphql.schema.sign_in import BrowserSession, sessions_of
from tokengate.graphql.schema.token_policy import TokenPolicyView
from tokengate.graphql.schema.usage import DailyUsage, UsageBatch
from tokengate.graphql.schema.user_tokens import UserToken, user_tokens_of
from tokengate.graphql.schema.webhooks import Webhook, webhooks_of_account
from tokengate.store import grants as grant_store
from tokengate.store import ip_rules as ip_rule_store
from tokengate.store import projects as project_store
from tokengate.store import token_listing
from tokengate.store import token_policies as token_policy_store
from tokengate.store import tokens as token_store
from tokengate.store import usage as usage_store
from tokengate.store import users as user_store
from tokengate.store.projects import ProjectRow
from tokengate.store.tokens import TokenRecord
from tokengate.store.users import UserRow

if TYPE_CHECKING:
    from tokengate.graphql.schema.connections import ServiceTokenConnection, ServiceTokenFilter, UserConnection
    from tokengate.graphql.schema.single_sign_on import SingleSignOn
    from tokengate.graphql.schema.trust_policies import TrustPolicy

CONNECTIONS = "tokengate.graphql.schema.connections"
T = TypeVar("T")


@strawberry.type
class Project(Node):
    name: str

    @property
    def project_id_for_policy(self) -> str:
        return str(self.id)

    @classmethod
    def of(cls, row: ProjectRow) -> Project:
        return cls(id=strawberry.ID(row.id), name=row.name)


@strawberry.type(name="Grant")
class GrantView:
    permission_set: PermissionSetKey  # type: ignore[valid-type]
    all_projects: bool
    projects: list[Project] = strawberry.field(
        description="The listed projects the caller may read (PROJECTS:READ there, as `Account.projects` "
        "answers); the others are left out. Empty when the grant covers all projects."
    )
    last_used_at: datetime | None = strawberry.field(
        default=None,
        description="When this grant last allowed a check (/auth/check, check, checks, a field); written every "
        "few seconds. Null: never, as far as tokengate remembers. Grants nobody uses are candidates to remove.",
    )


async def grants_with_projects(context: Context, held: dict[str, list[Grant]]) -> dict[str, list[GrantView]]:
    """Grants of several owners with the projects the caller may read, from one query for all the projects.

    Lists batch by construction (one query per kind of thing, whatever the length) rather than through
    DataLoaders, and hand grants and projects to Strawberry as plain values: a list of 50 tokens then
    resolves without a future per key and a coroutine per token and per grant.
    """
    caller = context.caller
    project_ids = list(
        {p for grants in held.values() for grant in grants for p in grant.project_ids if may_read_project(caller, p)}
    )
    rows = await project_store.projects_by_ids(context.pool, project_ids) if project_ids else {}
    grant_ids = [grant.id for grants in held.values() for grant in grants if grant.id is not None]
    last_used = await usage_store.grants_last_used(context.pool, grant_ids) if grant_ids else {}
    return {
        owner: [
            GrantView(
                permission_set=PermissionSetKey(grant.permission_set),
                all_projects=grant.all_projects,
                projects=[Project.of(row) for p in grant.project_ids if (row := rows.get(p)) is not None],
                last_used_at=last_used.get(grant.id) if grant.id is not None else None,
            )
            for grant in grants
        ]
        for owner, grants in held.items()
    }


# Enum members by value, for the lists that make one per row (an Enum call costs a Python-level call chain);
# a value missing from a table still goes through the call, which raises as before.
PERMISSION_SET_KEYS = {member.value: member for member in PermissionSetKey}  # type: ignore[attr-defined]
TOKEN_FORMATS = {member.value.lower(): member for member in TokenFormat}  # type: ignore[attr-defined]
TOKEN_STATES = {member.value: member for member in TokenState}  # type: ignore[attr-defined]


def listed_grant_view(
    caller: Principal, listed: token_listing.ListedGrant, shown: dict[str, Project | None] | None = None
) -> GrantView:
    """A grant of ``Account.serviceTokens``'s one query, as ``grants_with_projects`` makes it. ``shown``: by
    project, the Project the caller may read (``may_read_project``) or None, kept across the grants of one answer
    (the same few projects come back in most grants; one query's rows name each project alike)."""
    key, all_projects, project_ids, last_used_at, names = listed
    if shown is None:
        shown = {}
    projects = []
    if names:
        for p in project_ids:
            if p in shown:
                project = shown[p]
            else:
                name = names.get(p)
                if name is None:
                    continue  # no such project (left out; asked again where another grant names it)
                project = shown[p] = Project(id=strawberry.ID(p), name=name) if may_read_project(caller, p) else None
            if project is not None:
                projects.append(project)
    return GrantView(
        permission_set=PERMISSION_SET_KEYS.get(key) or PermissionSetKey(key),
        all_projects=all_projects,
        projects=projects,
        last_used_at=last_used_at,
    )


@strawberry.type
class User(Node):
    email: str
    license: License  # type: ignore[valid-type]
    grants: list[GrantView]
    state: UserState  # type: ignore[valid-type]
    held: strawberry.Private[tuple[Grant, ...]] = ()  # the grants as policy reads them

    @requires(
        Resource.MEMBERS,
        Access.READ,
        description="The user's personal tokens, oldest first (deleted and expired ones with their state). "
        "Another user's only to a caller who could delete them: one who could take away everything the user "
        "holds (FORBIDDEN otherwise).",
    )
    async def tokens(self, info: Info) -> list[UserToken] | None:
        caller = info.context.caller
        if caller.user_id != str(self.id):
            refusal = power_refusal(caller, self.held)
            if refusal is not None:
                raise Forbidden(f"listing another user's personal tokens needs what deleting them needs: {refusal}")
        return await user_tokens_of(info.context.pool, str(self.id))

    @strawberry.field(
        description="Whether the caller may change this member's license or grants (updateUser), and why not: "
        "the server's own rule, asked ahead (MEMBERS:WRITE, not oneself, and only an account admin changes an "
        "account admin). Grants it may not give or take are still refused on save, as givablePermissionSets says."
    )
    def viewer_may_edit(self, info: Info) -> DecisionView:
        return _may(member_change_refusal(info.context.caller, str(self.id), self.held, everything=False))

    @strawberry.field(
        description="Whether the caller may deactivate this member (deactivateUser), and why not: the server's "
        "own rule, asked ahead (MEMBERS:WRITE, not oneself, and taking away everything the member holds)."
    )
    def viewer_may_deactivate(self, info: Info) -> DecisionView:
        return _may(member_change_refusal(info.context.caller, str(self.id), self.held, everything=True))


def _may(refusal: str | None) -> DecisionView:
    return DecisionView(allowed=refusal is None, reason=refusal or "allowed")


async def users_with_grants(context: Context, rows: list[UserRow]) -> list[User]:
    """Users with their grants: two queries whatever the number of users."""
    found = await grant_store.grants_for_users(context.pool, [row.id for row in rows])
    grants = await grants_with_projects(context, {row.id: found.get(row.id, []) for row in rows})
    return [
        User(
            id=strawberry.ID(r.id),
            email=r.email,
            license=License(r.license),
            grants=grants[r.id],
            state=UserState(r.state.upper()),
            held=tuple(found.get(r.id, [])),
        )
        for r in rows
    ]


@strawberry.type
class ServiceToken(Node):
    name: str
    display_prefix: str
    format: TokenFormat  # type: ignore[valid-type]
    state: TokenState  # type: ignore[valid-type]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    rotation_recommended: bool
    grants: list[GrantView]
    last_used_from: list[str] = strawberry.field(
        default_factory=list,
        description="The last 5 distinct client addresses the token was used from, newest first (written every "
        "few seconds).",
    )
    usage_batch: strawberry.Private[UsageBatch | None] = None  # shared by the tokens of one answer

    @strawberry.field(
        description="Requests per UTC day for the last `days` days (1 to 90), oldest first, 0 for a day without "
        "any; written every few seconds."
    )
    async def usage(self, info: Info, days: int = 30) -> list[DailyUsage]:
        key = global_ids.token_key(str(self.id), global_ids.SERVICE_TOKEN) or str(self.id)
        batch = self.usage_batch or UsageBatch([key])
        return await batch.of(info.context.pool, key, days)

    @classmethod
    def of(
        cls,
        record: TokenRecord | token_listing.ListedToken,
        grants: list[GrantView],
        usage_batch: UsageBatch | None = None,
        now: datetime | None = None,
    ) -> ServiceToken:
        """``now``: the moment the state is decided at (one for all the tokens of a list; the clock otherwise)."""
        format_ = record.format
        state = tokens.token_state(record.state, record.expires_at, datetime.now(UTC) if now is None else now)
        return cls(
            id=strawberry.ID(global_ids.service_token_id(record.id)),
            name=record.name,
            display_prefix=tokens.display_prefix_for(
                record.kind,  # type: ignore[arg-type]
                format_,
                record.lookup_hint or record.id,
            ),
            format=TOKEN_FORMATS.get(format_) or TokenFormat(format_.upper()),
            state=TOKEN_STATES.get(state) or TokenState(state),
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            expires_at=record.expires_at,
            rotation_recommended=format_ == "legacy" or tokens.rotation_recommended(record.created_at),
            grants=grants,
            last_used_from=list(record.last_used_from),
            usage_batch=usage_batch,
        )


async def service_tokens_with_grants(context: Context, records: list[TokenRecord]) -> list[ServiceToken]:
    """Tokens with their grants and granted projects: two queries whatever the number of tokens (and one for
    their usage, when it is asked)."""
    found = await grant_store.grants_for_tokens(context.pool, [record.id for record in records])
    grants = await grants_with_projects(context, {record.id: found.get(record.id, []) for record in records})
    usage = UsageBatch(record.id for record in records)
    return [ServiceToken.of(record, grants[record.id], usage) for record in records]


def listed_service_tokens(caller: Principal, listed: list[token_listing.ListedToken]) -> list[ServiceToken]:
    """``Account.serviceTokens``'s one query as GraphQL tokens, with one usage read for all, when it is asked."""
    usage = UsageBatch(token.id for token in listed)
    shown: dict[str, Project | None] = {}
    now = datetime.now(UTC)
    return [
        ServiceToken.of(token, [listed_grant_view(caller, g, shown) for g in token.grants], usage, now)
        for token in listed
    ]


async def service_token_with_grants(context: Context, record: TokenRecord) -> ServiceToken:
    return (await service_tokens_with_grants(context, [record]))[0]


@strawberry.type
class PermissionSet:
    key: PermissionSetKey  # type: ignore[valid-type]
    name: str
    level: str
    available_on_plan: bool = strawberry.field(
        description="Whether service tokens of the caller's account may carry this set."
    )


@strawberry.type(name="Decision")
class DecisionView:
    allowed: bool
    reason: str
    grant_id: strawberry.Private[int | None] = None  # the stored grant that allowed it

    @classmethod
    def of(cls, decision: Decision) -> DecisionView:
        return cls(allowed=decision.allowed, reason=decision.reason, grant_id=decision.grant_id)


def given(value: T | None) -> T | None:
    """An optional argument's value, None when it was left out (UNSET keeps `= null` out of the SDL)."""
    return None if value is strawberry.UNSET else value


@strawberry.type
class Account(Node):
    name: str
    plan: Plan  # type: ignore[valid-type]

    @classmethod
    def of(cls, principal: Principal) -> Account:
        return cls(
            id=strawberry.ID(principal.account_id), name=principal.account_name, plan=Plan(principal.account_plan)
        )

    @strawberry.field(description="Permission sets service tokens may carry on this account's plan.")
    def available_permission_sets(self) -> list[PermissionSetKey]:  # type: ignore[valid-type]
        return [PermissionSetKey(key) for key in CATALOG.sets_for_plan(self.plan.value)]

    @strawberry.field(description="The projects the caller may read (PROJECTS:READ there).")
    async def projects(self, info: Info) -> list[Project]:
        caller = info.context.caller
        rows = await project_store.list_projects(info.context.pool, str(self.id))
        return [Project.of(row) for row in rows if may_read_project(caller, row.id)]

    @requires(Resource.MEMBERS, Access.READ)
    async def members(self, info: Info) -> list[User] | None:
        return await users_with_grants(info.context, await user_store.list_users(info.context.pool, str(self.id)))

    @requires(
        Resource.SERVICE_TOKENS,
        Access.READ,
        description="The account's service tokens, oldest first; deleted ones only with includeDeleted.",
    )
    async def service_tokens(self, info: Info, include_deleted: bool | None = False) -> list[ServiceToken] | None:
        listed = await token_listing.service_tokens_with_grants(info.context.pool, str(self.id), bool(include_deleted))
        return listed_service_tokens(info.context.caller, listed)

    @requires(
        Resource.SERVICE_TOKENS,
        Access.READ,
        description="The account's service tokens as a connection, oldest first: `first` 1 to 100 (default 50), "
        "`after` a cursor of this connection, `filter` which tokens (default: not deleted).",
    )
    async def service_token_connection(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = strawberry.UNSET,
        filter: Annotated[ServiceTokenFilter, strawberry.lazy(CONNECTIONS)] | None = strawberry.UNSET,
    ) -> Annotated[ServiceTokenConnection, strawberry.lazy(CONNECTIONS)] | None:
        from tokengate.graphql.schema.connections import service_token_page

        return await service_token_page(info, str(self.id), first, given(after), given(filter))

    @requires(
        Resource.MEMBERS,
        Access.READ,
        description="The account's users as a connection, oldest first: `first` 1 to 100 (default 50), "
        "`after` a cursor of this connection.",
    )
    async def member_connection(
        self, info: Info, first: int | None = 50, after: str | None = strawberry.UNSET
    ) -> Annotated[UserConnection, strawberry.lazy(CONNECTIONS)] | None:
        from tokengate.graphql.schema.connections import member_page

        return await member_page(info, str(self.id), first, given(after))

    @requires(
        Resource.AUDIT_LOG,
        Access.READ,
        description=f"Every recorded change, newest first: `first` 1 to {MAX_PAGE_SIZE} (default 50), "
        "`after` the pageInfo.endCursor of the page before (with the same `filter`), `filter` which events.",
    )
    async def audit_log(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = strawberry.UNSET,
        filter: AuditLogFilter | None = None,
    ) -> AuditEventConnection | None:
        return await audit_page(
            info.context.pool,
            str(self.id),
            50 if first is None else first,
            after if isinstance(after, str) else None,
            filter,
        )

    @requires(Resource.IP_RESTRICTIONS, Access.READ)
    async def ip_restrictions(self, info: Info) -> IpRestrictions | None:
        return IpRestrictions.of(await ip_rule_store.settings(info.context.pool, str(self.id)))

    @requires(Resource.ACCOUNT_SETTINGS, Access.READ)
    async def token_policy(self, info: Info) -> TokenPolicyView | None:
        return TokenPolicyView.of(await token_policy_store.policy_of(info.context.pool, str(self.id)))

    @strawberry.field(
        description="The account's SCIM tokens (docs/scim.md), oldest first; ACCOUNT_ADMIN only (else FORBIDDEN)."
    )
    async def scim_tokens(self, info: Info, include_revoked: bool = False) -> list[ScimToken] | None:
        return await scim_tokens_of(info, str(self.id), include_revoked)

    @requires(Resource.WEBHOOKS, Access.READ, description="The account's webhooks, oldest first.")
    async def webhooks(self, info: Info) -> list[Webhook] | None:
        return await webhooks_of_account(info, str(self.id))

    @requires(
        Resource.SERVICE_TOKENS,
        Access.READ,
        description="Trust policies for keyless CI (docs/keyless-ci.md), oldest first.",
    )
    async def trust_policies(
        self, info: Info
    ) -> list[Annotated[TrustPolicy, strawberry.lazy("tokengate.graphql.schema.trust_policies")]] | None:
        from tokengate.graphql.schema.trust_policies import trust_policies_of_account

        return await trust_policies_of_account(info, str(self.id))

    @requires(
        Resource.AUTH_PROVIDER,
        Access.READ,
        description="The account's OpenID Connect single sign-on (docs/sign-in.md); null when not configured.",
    )
    async def single_sign_on(
        self, info: Info
    ) -> Annotated[SingleSignOn, strawberry.lazy("tokengate.graphql.schema.single_sign_on")] | None:
        from tokengate.graphql.schema.single_sign_on import single_sign_on_of_account

        return await single_sign_on_of_account(info, str(self.id))


def principal_node_id(principal: Principal) -> str:
    """The id of the node a principal is: its user, or its service token."""
    if principal.kind == SERVICE_TOKEN:
        return global_ids.service_token_id(principal.token_id)
    return principal.user_id or ""


@strawberry.type
class Viewer:
    kind: PrincipalKind  # type: ignore[valid-type]
    principal: strawberry.Private[Principal]

    @strawberry.field(description="One per principal (a user, or a service token), so clients can cache the viewer.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(global_ids.viewer_id(principal_node_id(self.principal)))

    @strawberry.field
    def account(self) -> Account:
        return Account.of(self.principal)

    @strawberry.field(description="The user, when the caller uses a personal token.")
    async def user(self, info: Info) -> User | None:
        if self.principal.user_id is None:
            return None
        row = await user_store.get_user(info.context.pool, self.principal.user_id)
        return (await users_with_grants(info.context, [row]))[0] if row else None

    @strawberry.field(description="The service token, when the caller is one.")
    async def service_token(self, info: Info) -> ServiceToken | None:
        if self.principal.kind != SERVICE_TOKEN:
            return None
        record = await token_store.token_by_id(info.context.pool, self.principal.account_id, self.principal.token_id)
        return await service_token_with_grants(info.context, record) if record else None

    @strawberry.field(description="The caller's own personal tokens, oldest first; [] for a service token.")
    async def user_tokens(self, info: Info) -> list[UserToken]:
        if self.principal.user_id is None:
            return []
        return await user_tokens_of(info.context.pool, self.principal.user_id)

    @strawberry.field(
        description="The caller's own browser sessions that are live, oldest first; [] for a service token."
    )
    async def sessions(self, info: Info) -> list[BrowserSession]:
        if self.principal.user_id is None:
            return []
        current = self.principal.token_id if self.principal.display_prefix == SESSION_PREFIX else None
        return await sessions_of(info.context.pool, self.principal.user_id, current)

    @strawberry.field(
        description="The caller's address as tokengate sees it (the one IP restrictions are checked against); "
        "null when unknown."
    )
    def client_address(self, info: Info) -> str | None:
        return info.context.client_addr

    @strawberry.field(description="The grants in force for this request (a user's, limited by license).")
    async def grants(self, info: Info) -> list[GrantView]:
        return (await grants_with_projects(info.context, {"": list(self.principal.grants)}))[""]
