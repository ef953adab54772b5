"""Authorization decisions, table-driven from the reference matrix for every permission set."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tokengate.core.catalog import ACCOUNT_RESOURCES, CATALOG, PROJECT_RESOURCES, RESOURCES
from tokengate.core.policy import Grant, GrantProblem, Permissions, PlanRestriction, check_grants, check_plan

MATRIX = Path(__file__).resolve().parents[2] / "src" / "tokengate" / "reference" / "permission-matrix.csv"
ROWS = list(csv.DictReader(MATRIX.open(encoding="utf-8")))
LEVEL = {"READ": 1, "WRITE": 2}
SETS = sorted({row["permission_set"] for row in ROWS})


def matrix_level(permission_set: str, resource: str) -> int:
    for row in ROWS:
        if row["permission_set"] == permission_set and row["resource"] == resource:
            return LEVEL[row["access"]]
    return 0


@pytest.mark.parametrize("permission_set", SETS)
def test_set_granted_for_all_projects_follows_the_matrix(permission_set):
    permissions = Permissions([Grant(permission_set, True)])
    for resource in RESOURCES:
        for access, needed in LEVEL.items():
            expected = matrix_level(permission_set, resource) >= needed
            project = None if resource in ACCOUNT_RESOURCES else "prj_a"
            assert permissions.allows(resource, access, project) is expected, (resource, access)


@pytest.mark.parametrize("permission_set", [s for s in SETS if CATALOG.permission_sets[s].level == "PROJECT"])
def test_project_level_set_on_project_a_does_not_reach_project_b(permission_set):
    permissions = Permissions([Grant(permission_set, False, ("prj_a",))])
    for resource in PROJECT_RESOURCES:
        for access, needed in LEVEL.items():
            expected = matrix_level(permission_set, resource) >= needed
            assert permissions.allows(resource, access, "prj_a") is expected, (resource, access)
            assert not permissions.allows(resource, access, "prj_b")
            assert not permissions.allows(resource, access, "prj_of_another_account")
            assert not permissions.allows(resource, access, None)  # no project: only all-projects grants
    # Its account-resource access holds account-wide.
    for resource in ACCOUNT_RESOURCES:
        assert permissions.allows(resource, "READ") is (matrix_level(permission_set, resource) >= 1)


def test_job_admin_on_project_a_cannot_write_jobs_in_project_b():
    permissions = Permissions([Grant("JOB_ADMIN", False, ("prj_a",))])
    assert permissions.allows("JOBS", "WRITE", "prj_a")
    decision = permissions.decide("JOBS", "WRITE", "prj_b")
    assert not decision.allowed
    assert "prj_b" in decision.reason


def test_account_level_set_reaches_every_project():
    permissions = Permissions([Grant("ACCOUNT_ADMIN", True)])
    assert permissions.allows("JOBS", "WRITE", "prj_anything")
    assert permissions.allows("JOBS", "WRITE", None)


def test_write_implies_read_and_best_grant_wins():
    permissions = Permissions([Grant("JOB_VIEWER", True), Grant("JOB_ADMIN", False, ("prj_a",))])
    assert permissions.allows("JOBS", "READ", "prj_b")
    assert not permissions.allows("JOBS", "WRITE", "prj_b")
    assert permissions.allows("JOBS", "WRITE", "prj_a")


def test_read_only_license_gets_read_at_most_and_no_account_resources():
    permissions = Permissions([Grant("ACCOUNT_ADMIN", True)], license_="READ_ONLY")
    assert permissions.allows("JOBS", "READ", "prj_a")
    assert not permissions.allows("JOBS", "WRITE", "prj_a")
    assert not permissions.allows("MEMBERS", "READ")
    assert "READ_ONLY" in permissions.decide("JOBS", "WRITE", "prj_a").reason


def test_it_license_gets_account_resources_only():
    permissions = Permissions([Grant("ACCOUNT_ADMIN", True)], license_="IT")
    assert permissions.allows("MEMBERS", "WRITE")
    assert permissions.allows("SERVICE_TOKENS", "WRITE")
    assert not permissions.allows("JOBS", "READ", "prj_a")
    assert "IT license" in permissions.decide("JOBS", "READ", "prj_a").reason


def test_developer_license_is_not_limited():
    assert Permissions([Grant("ACCOUNT_ADMIN", True)], license_="DEVELOPER").allows("JOBS", "WRITE", "p")


def test_no_grants_allow_nothing():
    permissions = Permissions([])
    assert not any(permissions.allows(r, "READ", "p") for r in RESOURCES)


def test_account_level_set_cannot_be_limited_to_projects():
    with pytest.raises(GrantProblem, match="account-level"):
        check_grants([Grant("ACCOUNT_ADMIN", False, ("prj_a",))], {"prj_a"})


def test_grant_project_rules():
    with pytest.raises(GrantProblem, match="must not be empty"):
        check_grants([Grant("JOB_ADMIN", False, ())], {"prj_a"})
    with pytest.raises(GrantProblem, match="unknown project"):
        check_grants([Grant("JOB_ADMIN", False, ("prj_other",))], {"prj_a"})
    assert check_grants([Grant("JOB_ADMIN", False, ("prj_a", "prj_a"))], {"prj_a"}) == (
        Grant("JOB_ADMIN", False, ("prj_a",)),
    )


@pytest.mark.parametrize("plan", ["DEVELOPER", "STARTER", "TEAM", "ENTERPRISE", "ENTERPRISE_PLUS"])
def test_plan_allows_exactly_its_sets(plan):
    allowed = set(CATALOG.sets_for_plan(plan))
    for permission_set in SETS:
        if permission_set in allowed:
            check_plan([Grant(permission_set)], plan)
        else:
            with pytest.raises(PlanRestriction, match=plan):
                check_plan([Grant(permission_set)], plan)


def test_a_remembered_decision_is_the_one_computed_afresh() -> None:
    """``Permissions.decide`` keeps each question's decision (at most ``MAX_DECISIONS``): asked again, and past
    that bound, it answers as a fresh computation does."""
    from tokengate.core.policy import MAX_DECISIONS

    grants = [
        Grant("JOB_ADMIN", False, ("prj_a", "prj_b")),
        Grant("JOB_VIEWER"),
        Grant("PROJECT_ADMIN", False, ("prj_c",)),
    ]
    kept = Permissions(grants)
    questions = [
        (resource, access, project)
        for resource in RESOURCES
        for access in ("READ", "WRITE")
        for project in (None, "prj_a", "prj_b", "prj_c", "prj_z", *(f"prj_{n}" for n in range(40)))
    ]
    assert len(questions) > MAX_DECISIONS
    for _ in range(2):
        for question in questions:
            assert kept.decide(*question) == Permissions(grants).decide(*question), question
