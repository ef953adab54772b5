"""No escalation, table-driven over every permission set and scope of the matrix: a giver may give a set to a
user only if it holds ACCOUNT_ADMIN or already holds every (resource, access) of the set on the same scope.

The oracle reads the reference matrix itself (not policy.py): a project resource is held on a scope when the
giver's set gives it at that level and the giver's grant covers that scope (all projects covers every project;
a grant on project A covers A only); an account resource is held account-wide by any grant that gives it.
"""

from __future__ import annotations

import pytest

from tests.unit.test_policy import LEVEL, ROWS, SETS, matrix_level
from tokengate.catalog import ACCOUNT_RESOURCES, CATALOG
from tokengate.errors import Forbidden
from tokengate.policy import (
    SERVICE_TOKEN,
    USER,
    Grant,
    GrantProblem,
    Principal,
    givable_sets,
    grant_denial,
    license_widening_denial,
    require_license_change,
    require_may_manage,
    require_no_escalation,
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


def may_give(giver: Grant, given: Grant) -> bool:
    if giver.permission_set == "ACCOUNT_ADMIN":
        return True
    projects = (None,) if given.all_projects else given.project_ids
    return all(
        giver_holds(giver, resource, access, None if resource in ACCOUNT_RESOURCES else project)
        for resource, access in GIVES[given.permission_set]
        for project in projects
    )


GIVERS = [grant for permission_set in SETS for grant in scopes_of(permission_set)]


@pytest.mark.parametrize("giver", GIVERS, ids=lambda g: f"{g.permission_set}@{g.project_ids or 'all'}")
def test_every_set_on_every_scope_is_given_only_by_who_holds_all_of_it(giver):
    caller = principal([giver])
    for permission_set in SETS:
        for given in scopes_of(permission_set):
            denial = grant_denial(caller, given)
            assert (denial is None) is may_give(giver, given), (giver, given, denial)
            if denial is not None:  # names a RESOURCE:ACCESS the set gives and the giver lacks there
                pair = denial.split(" ")[0]
                resource, access = pair.split(":")
                assert (resource, access) in GIVES[given.permission_set], denial
                assert matrix_level(giver.permission_set, resource) < LEVEL[access] or resource not in ACCOUNT_RESOURCES


def test_the_matrix_makes_the_table_worth_having():
    # Both answers occur for most givers, and every set can be given by someone other than ACCOUNT_ADMIN.
    outcomes = {(giver, given): may_give(giver, given) for giver in GIVERS for s in SETS for given in scopes_of(s)}
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
        require_no_escalation(principal([Grant("SECURITY_ADMIN")]), [Grant("ACCOUNT_ADMIN")])
    assert str(refused.value) == (
        "giving ACCOUNT_ADMIN requires ACCOUNT_SETTINGS:WRITE on the account, which you do not hold"
    )
    with pytest.raises(Forbidden) as refused:
        require_no_escalation(principal([Grant("ADMIN", False, ("prj_a",))]), [Grant("JOB_ADMIN", False, ("prj_b",))])
    assert "on project prj_b" in str(refused.value)
    require_no_escalation(None, [Grant("ACCOUNT_ADMIN")])  # the operator at the command line


def test_the_givers_license_limits_what_it_holds():
    # An IT license gives account resources only: its DEVELOPER grant cannot hand out project access.
    it_developer = principal([Grant("DEVELOPER")], "IT", USER)
    assert grant_denial(it_developer, Grant("JOB_VIEWER")) is not None
    assert grant_denial(principal([Grant("DEVELOPER")], "DEVELOPER", USER), Grant("JOB_VIEWER")) is None
    # A READ_ONLY license gives READ at most and no account resources, whatever the grant.
    assert grant_denial(principal([Grant("ADMIN")], "READ_ONLY", USER), Grant("STAKEHOLDER")) is not None
    # ACCOUNT_ADMIN under an IT license is still ACCOUNT_ADMIN (the license meant for admins).
    assert grant_denial(principal([Grant("ACCOUNT_ADMIN")], "IT", USER), Grant("DEVELOPER")) is None


def test_a_license_needs_licenses_write_and_may_not_unlock_more_than_the_giver_holds():
    with pytest.raises(Forbidden, match="requires LICENSES:WRITE"):
        require_license_change(principal([Grant("JOB_ADMIN")]), (), None, "DEVELOPER")
    security_admin = principal([Grant("SECURITY_ADMIN")])
    require_license_change(security_admin, (), None, "DEVELOPER")  # createUser: grants are checked on their own
    # READ_ONLY -> DEVELOPER on a user holding ADMIN would unlock project writes the giver lacks.
    assert license_widening_denial(security_admin, [Grant("ADMIN")], "READ_ONLY", "DEVELOPER") is not None
    with pytest.raises(Forbidden, match="would give this user"):
        require_license_change(security_admin, [Grant("ADMIN")], "READ_ONLY", "DEVELOPER")
    # Narrowing unlocks nothing, and the giver holding it all may widen.
    assert license_widening_denial(security_admin, [Grant("ADMIN")], "DEVELOPER", "READ_ONLY") is None
    assert license_widening_denial(principal([Grant("ADMIN")]), [Grant("ADMIN")], "READ_ONLY", "DEVELOPER") is None
    assert CATALOG.permission_sets["ADMIN"].level == "PROJECT"


def test_nobody_changes_themselves_and_only_an_account_admin_changes_one():
    me = principal([Grant("ACCOUNT_ADMIN")], "DEVELOPER", USER)
    with pytest.raises(Forbidden):
        require_not_self(me, "usr_giver")
    require_not_self(me, "usr_other")
    with pytest.raises(Forbidden):
        require_may_manage(principal([Grant("SECURITY_ADMIN")]), [Grant("ACCOUNT_ADMIN")])
    require_may_manage(principal([Grant("SECURITY_ADMIN")]), [Grant("MEMBER")])
    require_may_manage(me, [Grant("ACCOUNT_ADMIN")])


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
                require_no_escalation(caller, [grant])
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
