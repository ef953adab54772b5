"""The permission catalog: plans, permission sets and the resource matrix.

The facts come from the CSV files bundled in ``tokengate/reference`` (copies of the product's
reference data, held equal to it by a test); this module only reads and indexes them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from typing import Final

READ: Final = "READ"
WRITE: Final = "WRITE"
ACCESS_LEVELS: Final[dict[str, int]] = {READ: 1, WRITE: 2}

# Which resources belong to the account and which to a project (reference README, "resource").
ACCOUNT_RESOURCES: Final[tuple[str, ...]] = (
    "ACCOUNT_SETTINGS",
    "AUDIT_LOG",
    "AUTH_PROVIDER",
    "BILLING",
    "CONNECTIONS",
    "GROUPS",
    "INVITATIONS",
    "IP_RESTRICTIONS",
    "LICENSES",
    "MARKETPLACE_APPS",
    "MEMBERS",
    "PROJECT_CREATION",
    "PUBLIC_MODELS",
    "SERVICE_TOKENS",
    "WEBHOOKS",
)
PROJECT_RESOURCES: Final[tuple[str, ...]] = (
    "CREDENTIALS",
    "ENV_VARS",
    "DATA_PLATFORM",
    "DEVELOP",
    "ENVIRONMENTS",
    "JOBS",
    "METADATA",
    "PERMISSIONS",
    "PROJECTS",
    "REPOSITORIES",
    "RUNS",
    "SEMANTIC_LAYER",
)
RESOURCES: Final[tuple[str, ...]] = ACCOUNT_RESOURCES + PROJECT_RESOURCES
PLANS: Final[tuple[str, ...]] = ("DEVELOPER", "STARTER", "TEAM", "ENTERPRISE", "ENTERPRISE_PLUS")
LICENSES: Final[tuple[str, ...]] = ("DEVELOPER", "READ_ONLY", "IT")

# Display names where title-casing the key would read wrong.
_DISPLAY_NAMES: Final[dict[str, str]] = {"READ_ONLY": "Read-Only", "GIT_ADMIN": "Git Admin"}


@dataclass(frozen=True, slots=True)
class MatrixRow:
    permission_set: str
    set_level: str
    resource: str
    access: str
    environment_write_possible: bool


@dataclass(frozen=True, slots=True)
class PermissionSet:
    key: str
    name: str
    level: str  # "ACCOUNT" or "PROJECT"
    access: dict[str, str]  # resource -> READ | WRITE

    @property
    def is_account_level(self) -> bool:
        return self.level == "ACCOUNT"


@dataclass(frozen=True, slots=True)
class Catalog:
    matrix: tuple[MatrixRow, ...]
    plan_rows: tuple[tuple[str, str], ...]
    permission_sets: dict[str, PermissionSet]
    plan_sets: dict[str, tuple[str, ...]]

    def sets_for_plan(self, plan: str) -> tuple[str, ...]:
        """Permission sets a service token may carry on ``plan``, in catalog order."""
        return self.plan_sets.get(plan, ())


def is_account_resource(resource: str) -> bool:
    return resource in _ACCOUNT_RESOURCE_SET


_ACCOUNT_RESOURCE_SET: Final = frozenset(ACCOUNT_RESOURCES)


def display_name(key: str) -> str:
    return _DISPLAY_NAMES.get(key) or key.replace("_", " ").title()


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("tokengate.reference").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def parse_catalog(matrix_rows: list[dict[str, str]], plan_rows: list[dict[str, str]]) -> Catalog:
    """Build the catalog from rows shaped like permission-matrix.csv and plans.csv."""
    matrix = tuple(
        MatrixRow(
            permission_set=row["permission_set"],
            set_level=row["set_level"],
            resource=row["resource"],
            access=row["access"],
            environment_write_possible=row["environment_write_possible"] == "yes",
        )
        for row in matrix_rows
    )
    levels: dict[str, str] = {}
    access: dict[str, dict[str, str]] = {}
    for row in matrix:
        levels.setdefault(row.permission_set, row.set_level)
        access.setdefault(row.permission_set, {})[row.resource] = row.access
    permission_sets = {
        key: PermissionSet(key=key, name=display_name(key), level=levels[key], access=access[key])
        for key in sorted(levels)
    }
    plans = tuple((row["plan"], row["permission_set"]) for row in plan_rows)
    allowed = set(plans)
    plan_sets = {plan: tuple(key for key in permission_sets if (plan, key) in allowed) for plan in PLANS}
    return Catalog(matrix=matrix, plan_rows=plans, permission_sets=permission_sets, plan_sets=plan_sets)


def load_catalog() -> Catalog:
    """The catalog from the bundled reference CSV files."""
    return parse_catalog(_read_csv("permission-matrix.csv"), _read_csv("plans.csv"))


CATALOG: Final[Catalog] = load_catalog()
PERMISSION_SET_KEYS: Final[tuple[str, ...]] = tuple(CATALOG.permission_sets)
