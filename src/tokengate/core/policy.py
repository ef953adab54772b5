"""Authorization: principals, their compiled permissions, and the grant, plan and license rules. Pure, no I/O.

Grants are compiled once per principal into two dictionaries so that every question a request asks
(``@requires`` on a field, ``check``, ``/auth/check``) is a lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol

from tokengate.core import global_ids
from tokengate.core.catalog import ACCESS_LEVELS, CATALOG, READ, Catalog, is_account_resource
from tokengate.core.errors import Forbidden, InvalidInput, NotFound, PlanRestricted
from tokengate.core.validation import shown

SERVICE_TOKEN: Final = "SERVICE_TOKEN"
USER: Final = "USER"
# The identity provider through a SCIM token (docs/scim.md): admitted by /scim/v2 only, never by the gate.
SCIM_TOKEN: Final = "SCIM_TOKEN"


@dataclass(frozen=True, slots=True)
class Grant:
    permission_set: str
    all_projects: bool = True
    project_ids: tuple[str, ...] = ()
    id: int | None = field(default=None, compare=False)  # the stored grant's row, for its usage (None: not stored)


PROJECT_NOT_FOUND: Final = "project not found"
MAX_DECISIONS: Final = 256  # decisions kept per principal (the questions its callers ask); others are computed


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    unknown_project: bool = False  # the project is not one of the principal's account (or does not exist)
    grant_id: int | None = None  # the stored grant that allowed it


def license_denial(license_: str | None, resource: str, access: str) -> str | None:
    """Why a user's license forbids this access regardless of grants, or None."""
    if license_ == "READ_ONLY":
        if is_account_resource(resource):
            return "a READ_ONLY license gives no access to account resources"
        if access != READ:
            return "a READ_ONLY license allows READ at most"
    elif license_ == "IT" and not is_account_resource(resource):
        return "an IT license gives no access to project resources"
    return None


def license_cap(license_: str | None, resource: str) -> int:
    """The highest access level a license permits on a resource (0 none, 1 READ, 2 WRITE)."""
    if license_ == "READ_ONLY":
        return 0 if is_account_resource(resource) else ACCESS_LEVELS[READ]
    if license_ == "IT" and not is_account_resource(resource):
        return 0
    return ACCESS_LEVELS["WRITE"]


class Permissions:
    """A principal's grants compiled for constant-time decisions."""

    __slots__ = ("_by_project", "_decided", "_everywhere", "license")

    def __init__(self, grants: Iterable[Grant], license_: str | None = None, catalog: Catalog = CATALOG):
        self.license = license_
        # (resource, access, project id) -> the decision, once asked: the grants never change (a principal whose
        # grants change is replaced, and its permissions with it), and a gateway asks a few questions over and over
        self._decided: dict[tuple[str, str, str | None], Decision] = {}
        # resource -> (level, permission set, grant id) for grants that reach every project (or the account)
        self._everywhere: dict[str, tuple[int, str, int | None]] = {}
        # (resource, project id) -> (level, permission set, grant id) for grants limited to listed projects
        self._by_project: dict[tuple[str, str], tuple[int, str, int | None]] = {}
        for grant in grants:
            permission_set = catalog.permission_sets.get(grant.permission_set)
            if permission_set is None:
                continue
            reaches_all = grant.all_projects or permission_set.is_account_level
            for resource, access in permission_set.access.items():
                level = min(ACCESS_LEVELS[access], license_cap(license_, resource))
                if level == 0:
                    continue
                if reaches_all or is_account_resource(resource):
                    _keep_best(self._everywhere, resource, level, grant)
                else:
                    for project_id in grant.project_ids:
                        _keep_best(self._by_project, (resource, project_id), level, grant)

    def decide(self, resource: str, access: str, project_id: str | None = None) -> Decision:
        """May the principal have ``access`` to ``resource`` (in ``project_id`` for project resources)?"""
        key = (resource, access, project_id)
        decided = self._decided.get(key)
        if decided is None:
            decided = self._decide(resource, access, project_id)
            if len(self._decided) < MAX_DECISIONS:
                self._decided[key] = decided
        return decided

    def _decide(self, resource: str, access: str, project_id: str | None) -> Decision:
        needed = ACCESS_LEVELS[access]
        best = self._everywhere.get(resource)
        scope = "for all projects"
        if project_id is not None and not is_account_resource(resource):
            in_project = self._by_project.get((resource, project_id))
            if in_project is not None and (best is None or in_project[0] > best[0]):
                best, scope = in_project, f"on project {project_id}"
        if best is not None and best[0] >= needed:
            if is_account_resource(resource):
                scope = "on the account"
            return Decision(True, f"{resource}:{access} granted by {best[1]} {scope}", grant_id=best[2])
        denial = license_denial(self.license, resource, access)
        if denial is not None:
            return Decision(False, denial)
        where = f" in project {project_id}" if project_id and not is_account_resource(resource) else ""
        if not where and not is_account_resource(resource):
            where = " across all projects"
        return Decision(False, f"no grant gives {resource}:{access}{where}")

    def allows(self, resource: str, access: str, project_id: str | None = None) -> bool:
        return self.decide(resource, access, project_id).allowed


def _keep_best(table: dict[Any, tuple[int, str, int | None]], key: object, level: int, grant: Grant) -> None:
    current = table.get(key)
    if current is None or level > current[0]:
        table[key] = (level, grant.permission_set, grant.id)


@dataclass(frozen=True, slots=True, weakref_slot=True)  # weakly held by answers kept for it (kept_answers.py)
class Principal:
    """Who is calling: a service token or a user (through a personal token), with compiled grants."""

    kind: str  # SERVICE_TOKEN | USER
    token_id: str
    display_prefix: str
    account_id: str
    account_name: str
    account_plan: str
    user_id: str | None
    license: str | None
    grants: tuple[Grant, ...]
    project_ids: frozenset[str]  # every project of the account, for tenant checks
    expires_at: datetime | None = None
    created_at: datetime | None = None  # when the token was issued (RFC 7662 ``iat``); None where unknown
    # An exchanged token's trust policy (docs/keyless-ci.md): such a principal never manages tokens.
    trust_policy_id: str | None = None
    # A browser session's sign-in (the session's start: each sign-in makes a new session); None for every token.
    # Sensitive changes ask for a recent one (auth/recent_sign_in.py).
    signed_in_at: datetime | None = None
    permissions: Permissions = field(init=False, repr=False, compare=False)
    # The principal alone, in its stored form (``user:usr_…``, ``service_token:<row key>``): what rate limits key
    # on and ``X-Tokengate-Principal`` says; made once (every request of the principal asks for it).
    name: str = field(init=False, repr=False, compare=False)
    # What a door derives from the principal alone and answers with on each of its requests (forward-auth's
    # headers), made once per principal: forgotten with it, so never kept past a change that replaces it.
    derived: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", Permissions(self.grants, self.license))
        object.__setattr__(self, "name", self._stored_name())
        object.__setattr__(self, "derived", {})

    def decide(self, resource: str, access: str, project_id: str | None = None) -> Decision:
        """The tenant rule, then the grants: a project of another account is answered as an unknown one."""
        if project_id is not None and project_id not in self.project_ids:
            return Decision(False, PROJECT_NOT_FOUND, unknown_project=True)
        return self.permissions.decide(resource, access, project_id)

    def _stored_name(self) -> str:
        if self.kind == USER:
            return global_ids.actor_name(global_ids.USER_ACTOR, str(self.user_id), printed=False)
        if self.kind == SCIM_TOKEN:
            return global_ids.actor_name(global_ids.SCIM_TOKEN_ACTOR, self.token_id, printed=False)
        return global_ids.actor_name(global_ids.SERVICE_TOKEN_ACTOR, self.token_id, printed=False)

    @property
    def actor(self) -> str:
        """How the audit log stores this principal (never a secret); ``global_ids.printed_actor`` prints it."""
        if self.kind == USER:
            return self.name
        if self.kind == SCIM_TOKEN:
            return global_ids.actor_name(global_ids.SCIM_TOKEN_ACTOR, self.token_id, self.display_prefix, printed=False)
        return global_ids.actor_name(global_ids.SERVICE_TOKEN_ACTOR, self.token_id, self.display_prefix, printed=False)


def may_read_project(principal: Principal, project_id: str) -> bool:
    """Whether the principal may see a project of its account (its name, its id in a grant): PROJECTS:READ
    there. What ``Account.projects`` lists, and what a grant shown to the principal names."""
    return principal.permissions.allows("PROJECTS", "READ", project_id)


class GrantProblem(InvalidInput):
    """A grant list that breaks the catalog's rules (BAD_USER_INPUT)."""


class PlanRestriction(PlanRestricted):
    """A permission set the account's plan does not allow on service tokens (PLAN_RESTRICTED)."""


MAX_GRANTS: Final = 100


def check_grants(
    grants: Sequence[Grant],
    account_project_ids: frozenset[str] | set[str],
    catalog: Catalog = CATALOG,
) -> tuple[Grant, ...]:
    """Validate grants against the catalog and the account's projects; return them normalised."""
    if len(grants) > MAX_GRANTS:
        raise GrantProblem(f"at most {MAX_GRANTS} grants")
    normalised: list[Grant] = []
    for grant in grants:
        permission_set = catalog.permission_sets.get(grant.permission_set)
        if permission_set is None:
            raise GrantProblem(f"unknown permission set {grant.permission_set}")
        if grant.all_projects:
            if grant.project_ids:
                raise GrantProblem(f"{grant.permission_set}: projectIds must be empty when allProjects is true")
            normalised.append(Grant(grant.permission_set, True, ()))
            continue
        if permission_set.is_account_level:
            raise GrantProblem(
                f"{grant.permission_set} is an account-level permission set: grant it with allProjects: true"
            )
        if not grant.project_ids:
            raise GrantProblem(f"{grant.permission_set}: projectIds must not be empty when allProjects is false")
        for project_id in grant.project_ids:
            if project_id not in account_project_ids:
                raise GrantProblem(f"{grant.permission_set}: unknown project {shown(project_id)}")
        normalised.append(Grant(grant.permission_set, False, tuple(dict.fromkeys(grant.project_ids))))
    return tuple(normalised)


def check_plan(grants: Sequence[Grant], plan: str, catalog: Catalog = CATALOG) -> None:
    """Raise ``PlanRestriction`` when a grant's set is not available for service tokens on ``plan``."""
    allowed = catalog.sets_for_plan(plan)
    refused = [grant.permission_set for grant in grants if grant.permission_set not in allowed]
    if refused:
        raise PlanRestriction(
            f"the {plan} plan does not allow {', '.join(dict.fromkeys(refused))} on service tokens; "
            f"it allows: {', '.join(allowed)}"
        )


TOKEN_ADMIN_LICENSE: Final = "DEVELOPER"


def service_token_admin_denial(principal: Principal) -> str | None:
    """Why this caller may not create, rotate, update or delete service tokens beyond its grants, or None.

    SERVICE_TOKENS:WRITE is checked by ``@requires``; a user caller also needs a Developer license
    (an IT license passes SERVICE_TOKENS:WRITE, so this rule is what refuses it).
    """
    if principal.trust_policy_id is not None:
        return "a token exchanged under a trust policy cannot manage tokens or trust policies"
    if principal.kind == USER and principal.license != TOKEN_ADMIN_LICENSE:
        return f"managing service tokens requires a {TOKEN_ADMIN_LICENSE} license (yours is {principal.license})"
    return None


def check_service_token_grants(
    grants: Sequence[Grant],
    account_project_ids: frozenset[str] | set[str],
    plan: str,
    catalog: Catalog = CATALOG,
) -> tuple[Grant, ...]:
    """A service token's grants, normalised: the catalog's rules (``GrantProblem``), then the plan's
    (``PlanRestriction``)."""
    checked = check_grants(grants, account_project_ids, catalog)
    check_plan(checked, plan, catalog)
    return checked


def require(principal: Principal | None, resource: str, access: str, project_id: str | None = None) -> None:
    """Raise ``Forbidden`` naming what is required unless the principal has it; None (the operator at the
    command line) has everything. The same message ``@requires`` gives."""
    if principal is not None and not principal.decide(resource, access, project_id).allowed:
        raise Forbidden(f"requires {resource}:{access}")


def require_account(principal: Principal | None, account_id: str) -> None:
    """A principal acts only in its own account; another account's id is answered as an unknown one."""
    if principal is not None and principal.account_id != account_id:
        raise NotFound("account")


def require_token_admin(principal: Principal | None) -> None:
    """SERVICE_TOKENS:WRITE, and for a user the Developer license (``service_token_admin_denial``)."""
    require(principal, "SERVICE_TOKENS", "WRITE")
    denial = service_token_admin_denial(principal) if principal is not None else None
    if denial is not None:
        raise Forbidden(denial)


# No escalation: what a caller may give a user (createUser, updateUser).

ACCOUNT_ADMIN: Final = "ACCOUNT_ADMIN"


def holds_account_admin(principal: Principal) -> bool:
    """An ACCOUNT_ADMIN grant under a license that lets it act on the account (READ_ONLY does not)."""
    return principal.license != "READ_ONLY" and any(g.permission_set == ACCOUNT_ADMIN for g in principal.grants)


def gives_account_admin(
    before: Sequence[Grant], after: Sequence[Grant], old_license: str | None = None, new_license: str | None = None
) -> bool:
    """Whether taking a member or a token from ``before`` to ``after`` gives it ACCOUNT_ADMIN: the grant where it
    had none, or (for a member) a license that lets an ACCOUNT_ADMIN grant it holds act (READ_ONLY to another).
    Creating a holder is ``before`` empty. One of the changes that ask a browser session for a recent sign-in."""
    held_before = any(grant.permission_set == ACCOUNT_ADMIN for grant in before)
    held_after = any(grant.permission_set == ACCOUNT_ADMIN for grant in after)
    if held_after and not held_before:
        return True
    acted_before = held_before and old_license is not None and old_license != "READ_ONLY"
    return held_after and new_license is not None and new_license != "READ_ONLY" and not acted_before


def _scope(resource: str, project_id: str | None) -> str:
    if is_account_resource(resource):
        return "on the account"
    return "for all projects" if project_id is None else f"on project {project_id}"


class Holder(Protocol):
    """What can be asked whether it holds an access: a principal, or bare compiled permissions."""

    def decide(self, resource: str, access: str, project_id: str | None = None) -> Decision: ...


def _first_missing(giver: Holder, grant: Grant, needed: Iterable[tuple[str, str]], catalog: Catalog) -> str | None:
    """The first ``RESOURCE:ACCESS scope`` of ``needed`` (pairs of the grant's set) that the giver lacks on the
    grant's scope: account resources account-wide, project resources on every project the grant covers."""
    permission_set = catalog.permission_sets[grant.permission_set]
    reaches_all = grant.all_projects or permission_set.is_account_level
    projects: tuple[str | None, ...] = (None,) if reaches_all else grant.project_ids
    for resource, access in needed:
        for project_id in (None,) if is_account_resource(resource) else projects:
            if not giver.decide(resource, access, project_id).allowed:
                return f"{resource}:{access} {_scope(resource, project_id)}"
    return None


def grant_denial(giver: Principal, grant: Grant, catalog: Catalog = CATALOG) -> str | None:
    """What the giver lacks to give ``grant`` to a user (``RESOURCE:ACCESS`` and where), or None.

    ACCOUNT_ADMIN may give any set; anyone else only a set whose every (resource, access) of the matrix it
    already holds, in its effective permissions (license-limited), on the same scope.
    """
    if grant.permission_set not in catalog.permission_sets:
        return f"unknown permission set {grant.permission_set}"
    if holds_account_admin(giver):
        return None
    return _first_missing(giver, grant, catalog.permission_sets[grant.permission_set].access.items(), catalog)


_ACCESS_OF_LEVEL: Final = {level: access for access, level in ACCESS_LEVELS.items()}


def giving_refusal(giver: Principal, grant: Grant, catalog: Catalog = CATALOG) -> str | None:
    """Why the giver may not give ``grant`` to a user, as createUser and updateUser refuse it, or None."""
    missing = grant_denial(giver, grant, catalog)
    if missing is None:
        return None
    return f"giving {grant.permission_set} requires {missing}, which you do not hold"


MAX_SCOPE_PROJECTS: Final = 1000


def givable_sets(
    giver: Principal, project_ids: Sequence[str] | None = None, catalog: Catalog = CATALOG
) -> list[tuple[str, str | None]]:
    """Every permission set of the catalog with why the giver may not give it to a user (``giving_refusal``),
    or None: for all projects when ``project_ids`` is None, else on each listed project (an account-level set
    is always given account-wide). What a form asks before it offers a set; the mutations decide again."""
    scope: tuple[str, ...] = ()
    if project_ids is not None:
        if not project_ids:
            raise GrantProblem("projectIds must not be empty: leave it out for all projects")
        if len(project_ids) > MAX_SCOPE_PROJECTS:
            raise GrantProblem(f"at most {MAX_SCOPE_PROJECTS} projectIds")
        for project_id in project_ids:
            if project_id not in giver.project_ids:
                raise GrantProblem(f"unknown project {shown(project_id)}")
        scope = tuple(dict.fromkeys(project_ids))
    answers: list[tuple[str, str | None]] = []
    for key, permission_set in catalog.permission_sets.items():
        everywhere = not scope or permission_set.is_account_level
        answers.append((key, giving_refusal(giver, Grant(key, everywhere, () if everywhere else scope), catalog)))
    return answers


def added_power(before: Sequence[Grant], after: Sequence[Grant], catalog: Catalog = CATALOG) -> str | None:
    """The first ``RESOURCE:ACCESS scope`` that a service token holding ``after`` has and one holding ``before``
    has not, or None when ``after`` gives nothing more: the no-escalation comparison (``grant_denial``'s), with the
    token's old grants in the giver's place. Same sets on fewer projects, or a narrower set, add nothing; a set
    on all projects adds what a list of projects lacks (the projects made later)."""
    held = Permissions(before, None, catalog)
    for grant in after:
        permission_set = catalog.permission_sets.get(grant.permission_set)
        if permission_set is None:
            continue
        missing = _first_missing(held, grant, permission_set.access.items(), catalog)
        if missing is not None:
            return missing
    return None


SELF_CHANGE: Final = "you cannot change your own grants, license or state"


def require_not_self(giver: Principal | None, user_id: str) -> None:
    """Nobody changes their own grants or license (nor deactivates themselves)."""
    if giver is not None and giver.user_id == user_id:
        raise Forbidden(SELF_CHANGE)


# Taking away is scoped like giving (contract, "Additions of 2026-12-06"): one rule decides every change of a
# person's grants and license, from createUser (nothing before) to deactivation (nothing after).

ONLY_AN_ACCOUNT_ADMIN: Final = f"only an {ACCOUNT_ADMIN} may change or deactivate a user who holds {ACCOUNT_ADMIN}"

Unit = tuple[str, str | None]  # (permission set, project id; None: every project, or the account)


def _units(grant: Grant, catalog: Catalog) -> tuple[Unit, ...]:
    """A grant as (set, scope) units: one for all projects (and for an account-level set), else one per project."""
    permission_set = catalog.permission_sets.get(grant.permission_set)
    if grant.all_projects or (permission_set is not None and permission_set.is_account_level):
        return ((grant.permission_set, None),)
    return tuple((grant.permission_set, project_id) for project_id in grant.project_ids)


def _part(grant: Grant, others: set[Unit], in_others: bool, catalog: Catalog) -> Grant | None:
    """The part of ``grant`` on the scopes where ``others`` hold its set too (``in_others``) or do not, as a grant
    (None: no such part): what a new grant list keeps of an old grant, adds to the old list, or no longer holds."""
    units = [unit for unit in _units(grant, catalog) if (unit in others) is in_others]
    if not units:
        return None
    if units[0][1] is None:
        return Grant(grant.permission_set, True, ())
    return Grant(grant.permission_set, False, tuple(project_id for _, project_id in units if project_id is not None))


def _scope_of(grant: Grant, catalog: Catalog) -> str:
    permission_set = catalog.permission_sets.get(grant.permission_set)
    if permission_set is not None and permission_set.is_account_level:
        return "on the account"
    if grant.all_projects:
        return "for all projects"
    return ("on project " if len(grant.project_ids) == 1 else "on projects ") + ", ".join(grant.project_ids)


def _license_change_denial(
    giver: Principal, kept: Sequence[Grant], old_license: str, new_license: str, catalog: Catalog
) -> str | None:
    """What a license change gives or takes, in the grants the user keeps, that the giver does not hold there:
    a license is a limit, so moving it hands out or removes access as a grant would."""
    for grant in kept:
        permission_set = catalog.permission_sets.get(grant.permission_set)
        if permission_set is None:
            continue
        gained: list[tuple[str, str]] = []
        lost: list[tuple[str, str]] = []
        for resource, access in permission_set.access.items():
            before = min(ACCESS_LEVELS[access], license_cap(old_license, resource))
            after = min(ACCESS_LEVELS[access], license_cap(new_license, resource))
            if after > before:
                gained.append((resource, _ACCESS_OF_LEVEL[after]))
            elif after < before:
                lost.append((resource, _ACCESS_OF_LEVEL[before]))
        for pairs, what in ((gained, "give this user"), (lost, "take from this user")):
            missing = _first_missing(giver, grant, pairs, catalog)
            if missing is not None:
                return f"a {new_license} license would {what} {missing}, which you do not hold"
    return None


def change_refusal(
    giver: Principal,
    old_grants: Sequence[Grant],
    new_grants: Sequence[Grant],
    old_license: str | None = None,
    new_license: str | None = None,
    catalog: Catalog = CATALOG,
) -> str | None:
    """Why ``giver`` may not take a user from ``old_grants`` (under ``old_license``; None: a new user) to
    ``new_grants`` (under ``new_license``; None: unchanged), or None. The one rule of giving and taking away:

    - an ACCOUNT_ADMIN may make any change (checked first, so nothing below binds it);
    - a user who holds ACCOUNT_ADMIN is changed by an ACCOUNT_ADMIN only;
    - what the change adds (a set on a scope the user did not hold it on) must be one the giver could give
      (``giving_refusal``), and so must what it removes (a set on a scope the user no longer holds it on);
    - a license change must not give or take, in the grants the user keeps, access the giver does not hold there.

    Grants the user keeps on the same scope are neither given nor taken: a project admin changes the part of
    a person on its projects and leaves the rest as it is. Deactivating a person, or deleting its personal token
    (which carries all it holds), is taking everything away: ``new_grants`` empty.
    """
    if holds_account_admin(giver):
        return None
    if any(grant.permission_set == ACCOUNT_ADMIN for grant in old_grants):
        return ONLY_AN_ACCOUNT_ADMIN
    old_units = {unit for grant in old_grants for unit in _units(grant, catalog)}
    new_units = {unit for grant in new_grants for unit in _units(grant, catalog)}
    for grant in new_grants:
        added = _part(grant, old_units, False, catalog)
        refusal = giving_refusal(giver, added, catalog) if added is not None else None
        if refusal is not None:
            return refusal
    for grant in old_grants:
        removed = _part(grant, new_units, False, catalog)
        missing = grant_denial(giver, removed, catalog) if removed is not None else None
        if removed is not None and missing is not None:
            return (
                f"taking away {removed.permission_set} {_scope_of(removed, catalog)} requires {missing}, "
                "which you do not hold"
            )
    if old_license is not None and new_license is not None and new_license != old_license:
        kept = [part for grant in old_grants if (part := _part(grant, new_units, True, catalog)) is not None]
        return _license_change_denial(giver, kept, old_license, new_license, catalog)
    return None


def require_change(
    giver: Principal | None,
    old_grants: Sequence[Grant],
    new_grants: Sequence[Grant],
    old_license: str | None = None,
    new_license: str | None = None,
) -> None:
    """Raise ``Forbidden`` with ``change_refusal``'s reason; setting a license (``new_license``) needs
    LICENSES:WRITE first. The operator (None) may make any change."""
    if giver is None:
        return
    if new_license is not None:
        require(giver, "LICENSES", "WRITE")
    refusal = change_refusal(giver, old_grants, new_grants, old_license, new_license)
    if refusal is not None:
        raise Forbidden(refusal)


def member_change_refusal(giver: Principal, user_id: str, held: Sequence[Grant], *, everything: bool) -> str | None:
    """Why ``giver`` may not change the member ``user_id`` who holds ``held`` at all, or None: what updateUser
    (``everything`` False: some change of its license or grants) and deactivateUser (``everything``: taking all
    it holds away) check before the change itself, asked ahead so that a page offers only what will succeed.
    The same steps in the same order: MEMBERS:WRITE, not oneself, then ``change_refusal`` (an edit that keeps
    every grant is refused only for an ACCOUNT_ADMIN's grants to a giver without ACCOUNT_ADMIN)."""
    if not giver.decide("MEMBERS", "WRITE", None).allowed:
        return "requires MEMBERS:WRITE"
    if giver.user_id == user_id:
        return SELF_CHANGE
    return change_refusal(giver, held, () if everything else held)


def power_refusal(giver: Principal, held: Sequence[Grant]) -> str | None:
    """Why ``giver`` may not take away everything a person holds (deactivate it, delete or list its personal
    tokens, which carry it all), or None."""
    return change_refusal(giver, held, ())
