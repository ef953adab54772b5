"""No escalation, both ways, table-driven over every permission set and scope of the matrix: a giver may give a
set to a user, or take it away, only if it holds ACCOUNT_ADMIN or already holds every (resource, access) of the
set on the same scope; a license change may give or take only what the giver holds; and a Hypothesis property
over random callers and changes: nothing allowed moves a (resource, access, scope) the caller lacks.

The oracle reads the reference matrix itself (not policy.py): a project resource is held on a scope when the
giver's set gives it at that level and the giver's grant covers that scope (all projects covers every project;
a grant on project A covers A only); an account resource is held account-wide by any grant that gives it.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_policy import LEVEL, ROWS, SETS, matrix_level
from tokengate.core.catalog import ACCOUNT_RESOURCES, CATALOG
from tokengate.core.errors import Forbidden
from tokengate.core.policy import (
    SERVICE_TOKEN,
    USER,
    Grant,
    GrantProblem,
    Principal,
    change_refusal,
    givable_sets,
    grant_denial,
    require_change,
    require_not_self,
)

PROJECTS = ("prj_a", "prj_b")
SET_LEVEL = {row["permission_set"]: row["set_level"] for row in ROWS}
GIVES = {s: [(r["resource"], r["access"]) for r in ROWS if r["permission_set"] == s] for s in SETS}


def scopes_of(permission_set: str) -> list[Grant]:
    """Every way to grant the set: all projects, and for project-level sets each single project."""
    grants = [Grant(permission_set, True, ())]
    if SET_LEVEL[permission_set] == "PROJECT":
        grants += [Grant(permission_set, False, (project,)) for project in PROJECTS]
    return grants


def principal(grants: list[Grant], license_: str | None = None, kind: str = SERVICE_TOKEN) -> Principal:
    return Principal(
        kind=kind,
        token_id="tok",
        display_prefix="tgs_tok…",
        account_id="acc",
        account_name="Acme",
        account_plan="ENTERPRISE",
        user_id="usr_giver" if kind == USER else None,
        license=license_,
        grants=tuple(grants),
        project_ids=frozenset(PROJECTS),
    )


def giver_holds(giver: Grant, resource: str, access: str, project: str | None) -> bool:
    """The oracle: does a giver with this one grant hold resource:access (on ``project``; None: all projects)?"""
    if matrix_level(giver.permission_set, resource) < LEVEL[access]:
        return False
    if resource in ACCOUNT_RESOURCES or giver.all_projects or SET_LEVEL[giver.permission_set] == "ACCOUNT":
        return True
    return project is not None and project in giver.project_ids


def may_give(giver: Grant, to_give: Grant) -> bool:
    if giver.permission_set == "ACCOUNT_ADMIN":
        return True
    projects = (None,) if to_give.all_projects else to_give.project_ids
    return all(
        giver_holds(giver, resource, access, None if resource in ACCOUNT_RESOURCES else project)
        for resource, access in GIVES[to_give.permission_set]
        for project in projects
    )


GIVERS = [grant for permission_set in SETS for grant in scopes_of(permission_set)]


@pytest.mark.parametrize("giver", GIVERS, ids=lambda g: f"{g.permission_set}@{g.project_ids or 'all'}")
def test_every_set_on_every_scope_is_given_only_by_who_holds_all_of_it(giver):
    caller = principal([giver])
    for permission_set in SETS:
        for to_give in scopes_of(permission_set):
            denial = grant_denial(caller, to_give)
            assert (denial is None) is may_give(giver, to_give), (giver, to_give, denial)
            if denial is not None:  # names a RESOURCE:ACCESS the set gives and the giver lacks there
                pair = denial.split(" ")[0]
                resource, access = pair.split(":")
                assert (resource, access) in GIVES[to_give.permission_set], denial
                assert matrix_level(giver.permission_set, resource) < LEVEL[access] or resource not in ACCOUNT_RESOURCES


def test_the_matrix_makes_the_table_worth_having():
    # Both answers occur for most givers, and every set can be given by someone other than ACCOUNT_ADMIN.
    outcomes = {(giver, g): may_give(giver, g) for giver in GIVERS for s in SETS for g in scopes_of(s)}
    assert sum(outcomes.values()) > len(GIVERS) and not all(outcomes.values())
    # The holes of the issue: none of these may give ACCOUNT_ADMIN.
    admin = Grant("ACCOUNT_ADMIN", True, ())
    for giver in [Grant("ADMIN", False, ("prj_a",)), Grant("SECURITY_ADMIN"), Grant("PROJECT_CREATOR")]:
        assert grant_denial(principal([giver]), admin) is not None
    # ...and a project ADMIN may still give JOB_VIEWER on its own project, not on another.
    project_admin = principal([Grant("ADMIN", False, ("prj_a",))])
    assert grant_denial(project_admin, Grant("JOB_VIEWER", False, ("prj_a",))) is None
    assert grant_denial(project_admin, Grant("JOB_VIEWER", False, ("prj_b",))) is not None
    assert grant_denial(project_admin, Grant("JOB_VIEWER", True, ())) is not None


def test_the_first_missing_access_is_named():
    with pytest.raises(Forbidden) as refused:
        require_change(principal([Grant("SECURITY_ADMIN")]), (), [Grant("ACCOUNT_ADMIN")])
    assert str(refused.value) == (
        "giving ACCOUNT_ADMIN requires ACCOUNT_SETTINGS:WRITE on the account, which you do not hold"
    )
    with pytest.raises(Forbidden) as refused:
        require_change(principal([Grant("ADMIN", False, ("prj_a",))]), (), [Grant("JOB_ADMIN", False, ("prj_b",))])
    assert "on project prj_b" in str(refused.value)
    require_change(None, (), [Grant("ACCOUNT_ADMIN")])  # the operator at the command line
    require_change(None, [Grant("ACCOUNT_ADMIN")], [], "DEVELOPER", "READ_ONLY")


def test_the_givers_license_limits_what_it_holds():
    # An IT license gives account resources only: its DEVELOPER grant cannot hand out project access.
    it_developer = principal([Grant("DEVELOPER")], "IT", USER)
    assert grant_denial(it_developer, Grant("JOB_VIEWER")) is not None
    assert grant_denial(principal([Grant("DEVELOPER")], "DEVELOPER", USER), Grant("JOB_VIEWER")) is None
    # A READ_ONLY license gives READ at most and no account resources, whatever the grant.
    assert grant_denial(principal([Grant("ADMIN")], "READ_ONLY", USER), Grant("STAKEHOLDER")) is not None
    # ACCOUNT_ADMIN under an IT license is still ACCOUNT_ADMIN (the license meant for admins).
    assert grant_denial(principal([Grant("ACCOUNT_ADMIN")], "IT", USER), Grant("DEVELOPER")) is None


def test_a_license_needs_licenses_write_and_may_not_give_or_take_more_than_the_giver_holds():
    with pytest.raises(Forbidden, match="requires LICENSES:WRITE"):
        require_change(principal([Grant("JOB_ADMIN")]), (), [], None, "DEVELOPER")
    security_admin = principal([Grant("SECURITY_ADMIN")])
    require_change(security_admin, (), [], None, "DEVELOPER")  # createUser: grants are checked on their own
    # READ_ONLY -> DEVELOPER on a user holding ADMIN would unlock access the giver lacks...
    kept = [Grant("ADMIN")]
    assert "would give this user" in (change_refusal(security_admin, kept, kept, "READ_ONLY", "DEVELOPER") or "")
    with pytest.raises(Forbidden, match="would give this user CONNECTIONS:READ on the account"):
        require_change(security_admin, kept, kept, "READ_ONLY", "DEVELOPER")
    # ...and DEVELOPER -> READ_ONLY would take them away: the same power is needed (issue 20).
    refusal = change_refusal(security_admin, kept, kept, "DEVELOPER", "READ_ONLY")
    assert (
        refusal
        == "a READ_ONLY license would take from this user CONNECTIONS:READ on the account, which you do not hold"
    )
    holds_connections = principal([Grant("SECURITY_ADMIN"), Grant("ANALYST", False, ("prj_a",))])
    job_admin = [Grant("JOB_ADMIN")]
    refusal = change_refusal(holds_connections, job_admin, job_admin, "DEVELOPER", "READ_ONLY")
    assert (
        refusal
        == "a READ_ONLY license would take from this user CREDENTIALS:WRITE for all projects, which you do not hold"
    )
    # The giver holding it all may move the license both ways; a license that changes nothing in the kept
    # grants needs LICENSES:WRITE only.
    assert change_refusal(principal([Grant("ADMIN")]), kept, kept, "READ_ONLY", "DEVELOPER") is None
    assert change_refusal(principal([Grant("ADMIN")]), kept, kept, "DEVELOPER", "READ_ONLY") is None
    assert change_refusal(security_admin, [], [], "DEVELOPER", "READ_ONLY") is None
    assert CATALOG.permission_sets["ADMIN"].level == "PROJECT"


def test_nobody_changes_themselves_and_only_an_account_admin_changes_one():
    me = principal([Grant("ACCOUNT_ADMIN")], "DEVELOPER", USER)
    with pytest.raises(Forbidden):
        require_not_self(me, "usr_giver")
    require_not_self(me, "usr_other")
    target = [Grant("ACCOUNT_ADMIN")]
    for change in ([], target, [*target, Grant("JOB_VIEWER")]):  # taken away, left alone, added to
        assert change_refusal(principal([Grant("SECURITY_ADMIN")]), target, change) == (
            "only an ACCOUNT_ADMIN may change or deactivate a user who holds ACCOUNT_ADMIN"
        )
        assert change_refusal(me, target, change) is None
    assert change_refusal(principal([Grant("SECURITY_ADMIN")]), [Grant("SECURITY_ADMIN")], []) is None
    assert change_refusal(principal([Grant("SECURITY_ADMIN")]), [Grant("MEMBER")], []) == (
        "taking away MEMBER on the account requires ACCOUNT_SETTINGS:WRITE on the account, which you do not hold"
    )
    # An ACCOUNT_ADMIN grant under a READ_ONLY license is not an account admin's power, but is protected as one.
    assert change_refusal(principal([Grant("ACCOUNT_ADMIN")], "READ_ONLY", USER), target, []) is not None


@pytest.mark.parametrize("giver", GIVERS, ids=lambda g: f"{g.permission_set}@{g.project_ids or 'all'}")
def test_what_a_form_is_told_it_may_give_is_what_the_mutations_accept(giver):
    caller = principal([giver])
    for scope in (None, ["prj_a"], ["prj_b"], ["prj_a", "prj_b"]):
        answers = dict(givable_sets(caller, scope))
        assert sorted(answers) == SETS
        for permission_set, refusal in answers.items():
            everywhere = scope is None or SET_LEVEL[permission_set] == "ACCOUNT"
            grant = Grant(permission_set, everywhere, () if everywhere else tuple(scope))
            try:
                require_change(caller, (), [grant])
            except Forbidden as refused:
                assert refusal == str(refused), (giver, scope, permission_set)
            else:
                assert refusal is None, (giver, scope, permission_set)


def test_givable_sets_take_the_accounts_projects_only():
    project_admin = principal([Grant("ADMIN", False, ("prj_a",))])
    assert dict(givable_sets(project_admin, ["prj_a"]))["JOB_VIEWER"] is None
    assert dict(givable_sets(project_admin, ["prj_a", "prj_a"]))["JOB_VIEWER"] is None
    for scope, message in (([], "must not be empty"), (["prj_a", "prj_other"], "unknown project prj_other")):
        with pytest.raises(GrantProblem, match=message):
            givable_sets(project_admin, scope)


# --- taking away is scoped like giving (issue 20) -----------------------------------------------------------

KEPT = Grant("ADMIN", True, ())  # what the target keeps: a set almost nobody here could give, left alone


@pytest.mark.parametrize("giver", GIVERS, ids=lambda g: f"{g.permission_set}@{g.project_ids or 'all'}")
def test_every_set_on_every_scope_is_taken_away_only_by_who_could_give_it(giver):
    caller = principal([giver])
    for permission_set in SETS:
        for removed in scopes_of(permission_set):
            only_by_an_account_admin = permission_set == "ACCOUNT_ADMIN" and giver.permission_set != "ACCOUNT_ADMIN"
            allowed = may_give(giver, removed) and not only_by_an_account_admin
            kept = [KEPT] if removed != KEPT else []
            for refusal in (
                change_refusal(caller, [*kept, removed], kept),  # updateUser: that grant removed, the rest kept
                change_refusal(caller, [removed], []),  # deactivateUser, deleteUserToken: everything taken
            ):
                assert (refusal is None) is allowed, (giver, removed, refusal)
                if refusal is not None and permission_set != "ACCOUNT_ADMIN":
                    assert refusal.startswith(f"taking away {permission_set} "), refusal
                    resource, access = refusal.split(" requires ")[1].split(" ")[0].split(":")
                    assert (resource, access) in GIVES[permission_set], refusal


def test_taking_away_part_of_a_grants_scope_needs_that_part_only():
    project_admin = principal([Grant("ADMIN", False, ("prj_a",))])
    both = [Grant("JOB_VIEWER", False, ("prj_a", "prj_b"))]
    assert change_refusal(project_admin, both, [Grant("JOB_VIEWER", False, ("prj_b",))]) is None
    assert change_refusal(project_admin, both, [Grant("JOB_VIEWER", False, ("prj_b", "prj_a"))]) is None  # reordered
    refusal = change_refusal(project_admin, both, [Grant("JOB_VIEWER", False, ("prj_a",))])
    assert refusal == (
        "taking away JOB_VIEWER on project prj_b requires ENV_VARS:READ on project prj_b, which you do not hold"
    )
    # Narrowing "all projects" to one project takes away "all projects".
    refusal = change_refusal(project_admin, [Grant("JOB_VIEWER")], [Grant("JOB_VIEWER", False, ("prj_a",))])
    assert refusal is not None and refusal.startswith("taking away JOB_VIEWER for all projects requires ")


def test_the_holes_of_issue_20_are_closed_and_a_project_admin_keeps_its_own_project():
    """ADMIN on prj_a: what the attack did, refused; what it may do on prj_a, allowed."""
    lead = principal([Grant("ADMIN", False, ("prj_a",))], "DEVELOPER", USER)
    admin_b = [Grant("ADMIN", False, ("prj_b",))]
    assert change_refusal(lead, admin_b, []) == (
        "taking away ADMIN on project prj_b requires CREDENTIALS:WRITE on project prj_b, which you do not hold"
    )
    assert change_refusal(lead, [Grant("JOB_ADMIN")], []) == (
        "taking away JOB_ADMIN for all projects requires CREDENTIALS:WRITE for all projects, which you do not hold"
    )
    security = [Grant("SECURITY_ADMIN")]
    assert change_refusal(lead, security, security, "DEVELOPER", "READ_ONLY") == (
        "a READ_ONLY license would take from this user AUDIT_LOG:READ on the account, which you do not hold"
    )
    assert change_refusal(lead, security, []) is not None  # deactivating, or deleting its personal token
    assert change_refusal(lead, [Grant("ACCOUNT_ADMIN")], []) == (
        "only an ACCOUNT_ADMIN may change or deactivate a user who holds ACCOUNT_ADMIN"
    )
    # Allowed: JOB_VIEWER on prj_a taken away, a person holding only prj_a's part deactivated, and the prj_a part
    # of someone who also holds ADMIN on prj_b changed while that stays as it is.
    viewer_a = Grant("JOB_VIEWER", False, ("prj_a",))
    assert change_refusal(lead, [viewer_a], []) is None
    assert change_refusal(lead, [*admin_b, viewer_a], admin_b) is None
    assert change_refusal(lead, [*admin_b, viewer_a], [*admin_b, Grant("JOB_ADMIN", False, ("prj_a",))]) is None
    # An account admin may do all of it.
    account_admin = principal([Grant("ACCOUNT_ADMIN")], "IT", USER)
    for old, new, licenses in (
        (admin_b, [], ()),
        (security, security, ("DEVELOPER", "READ_ONLY")),
        ([Grant("ACCOUNT_ADMIN")], [], ()),
    ):
        assert change_refusal(account_admin, old, new, *licenses) is None


LICENSE_CAPS = {"DEVELOPER": (2, 2), "READ_ONLY": (0, 1), "IT": (2, 0)}  # (account, project) from the README


def license_level(level: int, license_: str, resource: str) -> int:
    account, project = LICENSE_CAPS[license_]
    return min(level, account if resource in ACCOUNT_RESOURCES else project)


@pytest.mark.parametrize("giver", GIVERS, ids=lambda g: f"{g.permission_set}@{g.project_ids or 'all'}")
def test_a_license_change_gives_or_takes_only_what_the_giver_holds_in_the_grants_kept(giver):
    caller = principal([giver])
    for permission_set in SETS:
        if permission_set == "ACCOUNT_ADMIN":
            continue
        for kept in scopes_of(permission_set):
            for old in LICENSE_CAPS:
                for new in LICENSE_CAPS:
                    needed = [
                        (resource, max(before, after))
                        for resource, access in GIVES[permission_set]
                        if (before := license_level(LEVEL[access], old, resource))
                        != (after := license_level(LEVEL[access], new, resource))
                    ]
                    projects = (None,) if kept.all_projects else kept.project_ids
                    allowed = giver.permission_set == "ACCOUNT_ADMIN" or all(
                        giver_holds(giver, resource, access, project)
                        for resource, level in needed
                        for access in [next(a for a, n in LEVEL.items() if n == level)]
                        for project in ((None,) if resource in ACCOUNT_RESOURCES else projects)
                    )
                    refusal = change_refusal(caller, [kept], [kept], old, new)
                    assert (refusal is None) is allowed, (giver, kept, old, new, refusal)


# The property: no change a policy allows moves, from or to a user, a (resource, access, scope) the caller lacks.

ALL = "all"


def holdings(grants: list[Grant], license_: str | None) -> set[tuple[str, str, str]]:
    """(resource, access, scope) from the reference matrix: scope "account" for account resources, else each
    project, and "all" when the grant covers every project."""
    held: set[tuple[str, str, str]] = set()
    for grant in grants:
        for resource, access in GIVES[grant.permission_set]:
            level = LEVEL[access] if license_ is None else license_level(LEVEL[access], license_, resource)
            everywhere = grant.all_projects or SET_LEVEL[grant.permission_set] == "ACCOUNT"
            if resource in ACCOUNT_RESOURCES:
                scopes = ["account"]
            else:
                scopes = [*PROJECTS, ALL] if everywhere else list(grant.project_ids)
            held.update((resource, a, scope) for a, n in LEVEL.items() if level >= n for scope in scopes)
    return held


def any_grant() -> st.SearchStrategy[Grant]:
    def on_scope(permission_set: str) -> st.SearchStrategy[Grant]:
        if SET_LEVEL[permission_set] == "ACCOUNT":
            return st.just(Grant(permission_set, True, ()))
        listed = st.lists(st.sampled_from(PROJECTS), min_size=1, max_size=2, unique=True)
        return st.just(Grant(permission_set, True, ())) | listed.map(lambda p: Grant(permission_set, False, tuple(p)))

    return st.sampled_from(SETS).flatmap(on_scope)


GRANT_LISTS = st.lists(any_grant(), max_size=4)
LICENSE_OR_NONE = st.sampled_from(sorted(LICENSE_CAPS)) | st.none()


@settings(max_examples=3000, deadline=None, database=None)
@given(
    caller_grants=GRANT_LISTS,
    caller_license=LICENSE_OR_NONE,  # None: a service token
    old=GRANT_LISTS,
    new=GRANT_LISTS | st.none(),  # None: grants left as they are
    old_license=st.sampled_from(sorted(LICENSE_CAPS)),
    new_license=LICENSE_OR_NONE,  # None: license left as it is
)
def test_no_allowed_change_gives_or_takes_what_the_caller_lacks(
    caller_grants, caller_license, old, new, old_license, new_license
):
    kind = SERVICE_TOKEN if caller_license is None else USER
    caller = principal(caller_grants, caller_license, kind)
    after = old if new is None else new
    refusal = change_refusal(caller, old, after, old_license, new_license)
    if refusal is not None or (
        caller_license != "READ_ONLY" and any(g.permission_set == "ACCOUNT_ADMIN" for g in caller_grants)
    ):
        return
    before_held = holdings(old, old_license)
    after_held = holdings(after, new_license or old_license)
    lacked = holdings(caller_grants, caller_license)
    assert not (before_held - after_held) - lacked, "took away what the caller lacks"
    assert not (after_held - before_held) - lacked, "gave what the caller lacks"
    # Taking everything away (deactivation, deleting the person's personal token) is the same rule.
    if change_refusal(caller, old, []) is None:
        assert not before_held - lacked
