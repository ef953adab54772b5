"""Trust policies for keyless CI (docs/keyless-ci.md): ``Account.trustPolicies`` and their mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from tokengate.core import global_ids
from tokengate.core import trust_policies as rules
from tokengate.core.errors import InvalidInput
from tokengate.graphql.schema.context import Info
from tokengate.graphql.schema.directives import requires
from tokengate.graphql.schema.enums import Access, Resource
from tokengate.graphql.schema.inputs import GrantInput, grants_of
from tokengate.graphql.schema.types import GrantView, grants_with_projects
from tokengate.services import trust_policies as service
from tokengate.store import trust_policies as store
from tokengate.store.trust_policies import TrustPolicyRow


@strawberry.type
class ClaimCondition:
    name: str
    value: str


@strawberry.type(description="A token exchanged under a trust policy that is usable now.")
class ExchangedToken:
    id: strawberry.ID = strawberry.field(description="Its id (stk_…); its text starts tgx_.")
    created_at: datetime
    expires_at: datetime


@strawberry.type(
    description="Which CI jobs' OIDC tokens may be exchanged (POST /oauth/token, RFC 8693) for a short-lived "
    "token carrying these grants. Every value is matched exactly. See docs/keyless-ci.md."
)
class TrustPolicy:
    id: strawberry.ID
    name: str
    issuer: str = strawberry.field(description="The OIDC issuer (the tokens' iss).")
    audience: str = strawberry.field(description="The exact aud the tokens must carry.")
    subject: str = strawberry.field(description="The exact sub the tokens must carry.")
    conditions: list[ClaimCondition] = strawberry.field(description="Further claims, each an exact value.")
    grants: list[GrantView]
    max_lifetime_seconds: int = strawberry.field(description="How long an exchanged token lives (60 to 3600).")
    created_at: datetime
    updated_at: datetime

    @strawberry.field(description="Tokens exchanged under this policy and usable now, newest first (at most 100).")
    async def active_tokens(self, info: Info) -> list[ExchangedToken]:
        rows = await store.active_tokens(info.context.pool, str(self.id))
        return [
            ExchangedToken(
                id=strawberry.ID(global_ids.service_token_id(row.id)),
                created_at=row.created_at,
                expires_at=row.expires_at,
            )
            for row in rows
        ]


async def trust_policies_view(info: Info, rows: list[TrustPolicyRow]) -> list[TrustPolicy]:
    grants = await grants_with_projects(info.context, {row.id: list(row.grants) for row in rows})
    return [
        TrustPolicy(
            id=strawberry.ID(row.id),
            name=row.name,
            issuer=row.issuer,
            audience=row.audience,
            subject=row.subject,
            conditions=[ClaimCondition(name=name, value=value) for name, value in row.conditions.items()],
            grants=grants[row.id],
            max_lifetime_seconds=row.max_lifetime_seconds,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


async def trust_policies_of_account(info: Info, account_id: str) -> list[TrustPolicy]:
    return await trust_policies_view(info, await store.of_account(info.context.pool, account_id))


@strawberry.input(description="GitHub Actions: binds the repository and its owner's numeric id.")
class GitHubActionsInput:
    repository: str = strawberry.field(description="owner/name")
    repository_owner_id: str = strawberry.field(description="The owner's numeric id (a name can be re-registered).")
    ref: str | None = strawberry.field(default=None, description="refs/heads/main: needed without environment.")
    environment: str | None = None
    workflow: str | None = strawberry.field(default=None, description="The workflow file name, deploy.yml.")
    issuer: str | None = strawberry.field(default=None, description=f"Default {rules.GITHUB_ISSUER}.")


@strawberry.input(description="GitLab CI: binds the project path, its namespace's and its own numeric ids.")
class GitLabCiInput:
    project_path: str
    namespace_id: str
    project_id: str
    ref: str
    ref_type: str = "branch"
    environment: str | None = None
    issuer: str | None = strawberry.field(default=None, description=f"Default {rules.GITLAB_ISSUER}.")


@strawberry.input
class ClaimConditionInput:
    name: str
    value: str


@strawberry.input(description="One of github, gitlab, or issuer with subject (and conditions); the audience always.")
class TrustPolicyInput:
    name: str | None = None
    audience: str | None = None
    github: GitHubActionsInput | None = None
    gitlab: GitLabCiInput | None = None
    issuer: str | None = None
    subject: str | None = None
    conditions: list[ClaimConditionInput] | None = None
    grants: list[GrantInput] | None = None
    max_lifetime_seconds: int | None = None


def binding_of(input: TrustPolicyInput, current: rules.Binding | None = None) -> rules.Binding | None:
    """What the input binds; None when it changes no binding (an update of the name, grants or lifetime)."""
    presets = [preset for preset in (input.github, input.gitlab) if preset is not None]
    custom = input.issuer is not None or input.subject is not None or input.conditions is not None
    if not presets and not custom and input.audience is None:
        return None
    if len(presets) + int(custom) > 1:
        raise InvalidInput("give github, gitlab, or issuer with subject: one of them")
    audience = input.audience or (current.audience if current else None)
    if audience is None:
        raise InvalidInput("give the audience the tokens must carry")
    if input.github:
        g = input.github
        extra = {"issuer": g.issuer} if g.issuer else {}
        return rules.github_actions(
            audience=audience,
            repository=g.repository,
            repository_owner_id=g.repository_owner_id,
            workflow=g.workflow,
            ref=g.ref,
            environment=g.environment,
            **extra,
        )
    if input.gitlab:
        gl = input.gitlab
        extra = {"issuer": gl.issuer} if gl.issuer else {}
        return rules.gitlab_ci(
            audience=audience,
            project_path=gl.project_path,
            namespace_id=gl.namespace_id,
            project_id=gl.project_id,
            ref=gl.ref,
            ref_type=gl.ref_type,
            environment=gl.environment,
            **extra,
        )
    issuer = input.issuer or (current.issuer if current else None)
    subject = input.subject or (current.subject if current else None)
    if issuer is None or subject is None:
        raise InvalidInput("give github, gitlab, or issuer with subject")
    if input.conditions is not None:
        conditions = {c.name: c.value for c in input.conditions}
        if len(conditions) != len(input.conditions):
            raise InvalidInput("conditions: each claim once")
    else:
        conditions = dict(current.conditions) if current else {}
    return rules.Binding(issuer, audience, subject, conditions)


@strawberry.type
class TrustPolicyMutations:
    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Trust CI jobs' OIDC tokens for short-lived tokens with these grants (docs/keyless-ci.md). "
        "Grants are checked as a service token's; a token that expires may not create one that gives power.",
    )
    async def create_trust_policy(self, info: Info, input: TrustPolicyInput) -> TrustPolicy | None:
        context = info.context
        if input.name is None:
            raise InvalidInput("give the policy a name")
        binding = binding_of(input)
        if binding is None:
            raise InvalidInput("give github, gitlab, or issuer with subject, and the audience")
        row = await service.create(
            context.backend,
            context.actor,
            context.caller.account_id,
            input.name,
            binding,
            grants_of(input.grants or []),
            input.max_lifetime_seconds,
            context.runtime.config.webhook_allow_private,
        )
        return (await trust_policies_view(info, [row]))[0]

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Change a trust policy; every token exchanged under it is revoked at once.",
    )
    async def update_trust_policy(self, info: Info, id: strawberry.ID, input: TrustPolicyInput) -> TrustPolicy | None:
        context = info.context
        account_id = context.caller.account_id
        current = await service.get(context.backend, account_id, str(id))
        row = await service.update(
            context.backend,
            context.actor,
            account_id,
            str(id),
            name=input.name,
            binding=binding_of(input, current.binding),
            grants=grants_of(input.grants) if input.grants is not None else None,
            max_lifetime_seconds=input.max_lifetime_seconds,
            allow_private=context.runtime.config.webhook_allow_private,
        )
        return (await trust_policies_view(info, [row]))[0]

    @requires(
        Resource.SERVICE_TOKENS,
        Access.WRITE,
        description="Delete a trust policy; every token exchanged under it is revoked at once.",
    )
    async def delete_trust_policy(self, info: Info, id: strawberry.ID) -> TrustPolicy | None:
        context = info.context
        row = await service.delete(context.backend, context.actor, context.caller.account_id, str(id))
        return (await trust_policies_view(info, [row]))[0]
