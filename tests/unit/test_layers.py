"""The rooms only lean on the rooms below them: what the data and the changes need never comes from the doors
or from authentication (issue 21's layering leaks: services imported authentication, the outage exception lived
in it, a background job too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tokengate"

# Which top-level rooms of the package each room may import (besides itself).
ALLOWED = {
    "core": set(),
    "store": {"core", "config"},
    "services": {"core", "store", "config"},
    "jobs": {"core", "store", "services", "config"},
}


def rooms_imported(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tokengate" and len(parts) > 1:
                rooms.add(parts[1])
    return rooms


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_a_room_imports_only_the_rooms_below_it(room):
    strays = {}
    for path in sorted((PACKAGE / room).rglob("*.py")):
        stray = rooms_imported(path) - ALLOWED[room] - {room}
        if stray:
            strays[str(path.relative_to(PACKAGE))] = sorted(stray)
    assert strays == {}


def test_the_check_sees_an_import_from_above():
    source = PACKAGE / "services" / "service_tokens.py"
    assert "core" in rooms_imported(source) and "store" in rooms_imported(source)
    assert rooms_imported(PACKAGE / "http" / "middleware.py") & {"auth"}
