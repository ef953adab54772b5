"""The modules listed in pyproject.toml's [tool.mypy] files pass `mypy --strict` (as `make typecheck` runs it)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def strict_modules() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return list(tomllib.load(file)["tool"]["mypy"]["files"])


def test_strict_list_holds_the_pure_core_folder():
    modules = strict_modules()
    assert "src/tokengate/core" in modules
    assert all((ROOT / module).exists() for module in modules), modules


# What the pure core may import: the standard library (no I/O modules below) and the crypto libraries.
CORE_MAY_IMPORT = {"nacl", "cryptography"}
IO_MODULES = {"asyncio", "socket", "ssl", "subprocess", "aiohttp", "asyncpg", "strawberry", "graphql", "logging"}


def test_the_core_imports_nothing_of_the_other_rooms_and_no_io():
    import ast

    offenders = []
    for path in sorted((ROOT / "src/tokengate/core").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                inside_core = name.startswith("tokengate.core") or name == "tokengate.reference"
                another_room = top == "tokengate" and not inside_core
                foreign = top not in sys.stdlib_module_names and top not in CORE_MAY_IMPORT | {"tokengate"}
                if another_room or foreign or top in IO_MODULES:
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_mypy_strict_passes(tmp_path):
    # No file arguments: mypy takes the list from pyproject.toml, the one place it is written.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
