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


def test_strict_module_list_names_existing_files():
    modules = strict_modules()
    assert {"src/tokengate/core/catalog.py", "src/tokengate/core/tokens.py"} <= set(modules)
    assert all((ROOT / module).is_file() for module in modules), modules


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
