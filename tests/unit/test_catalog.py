"""The bundled catalog equals the product's reference data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokengate.core.catalog import ACCOUNT_RESOURCES, CATALOG, PROJECT_RESOURCES, RESOURCES

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
BUNDLED = Path(__file__).resolve().parents[2] / "src" / "tokengate" / "reference"


@pytest.mark.parametrize("name", ["permission-matrix.csv", "plans.csv"])
def test_bundled_csv_equals_reference(name):
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not beside the checkout ({REFERENCE})")
    assert (BUNDLED / name).read_bytes() == (REFERENCE / name).read_bytes()


def test_every_matrix_resource_is_an_account_or_project_resource():
    assert {row.resource for row in CATALOG.matrix} <= set(RESOURCES)
    assert not set(ACCOUNT_RESOURCES) & set(PROJECT_RESOURCES)


def test_plans_allow_the_documented_number_of_sets():
    counts = {plan: len(sets) for plan, sets in CATALOG.plan_sets.items()}
    assert counts == {"ENTERPRISE": 17, "ENTERPRISE_PLUS": 17, "TEAM": 7, "STARTER": 1, "DEVELOPER": 1}
    assert CATALOG.sets_for_plan("DEVELOPER") == ("SEMANTIC_LAYER_ONLY",)


def test_each_set_has_one_level():
    for key, permission_set in CATALOG.permission_sets.items():
        levels = {row.set_level for row in CATALOG.matrix if row.permission_set == key}
        assert levels == {permission_set.level}
