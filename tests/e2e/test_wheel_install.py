"""Installing on a server as docs/operations.md says: the wheel built from this checkout, installed with the
runtime lock into a clean venv outside the repository, serves from there, with its SQL migrations, static
files and templates (nothing is read from the checkout)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.processes import assert_no_secret_in, child_environment, tokengate_cli, tokengate_serve

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tokengate"
RUNTIME_LOCK = ROOT / ".ci" / "locks" / "runtime.lock"
# What the package needs beside its modules, as the wheel must carry it (path in the wheel: path in the checkout).
DATA = {
    "tokengate/sql": ROOT / "sql",
    **{f"tokengate/{name}": PACKAGE / name for name in ("static", "templates", "reference")},
}
VIEWER = "{ viewer { kind account { plan } } }"


def run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=cwd, env=child_environment({}))
    assert done.returncode == 0, (
        f"{argv[:4]} exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def files_under(directory: Path) -> set[str]:
    return {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def build_wheel(dist: Path) -> Path:
    """`pip wheel --no-deps` of the checkout: nothing but pip is needed to build."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(ROOT)], dist)
    wheels = list(dist.glob("tokengate-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def static_references(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """The server's directory, outside the checkout. Not under pytest's basetemp either: a concurrent pytest run
    resets that to mode 0700, which shuts out the account the embedded PostgreSQL runs as under root."""
    path = Path(tempfile.mkdtemp(prefix="tokengate-e2e-install-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_the_wheel_installs_outside_the_checkout_and_serves(server_dir: Path):
    assert ROOT not in server_dir.parents
    wheel = build_wheel(server_dir)
    with zipfile.ZipFile(wheel) as packed:
        names = set(packed.namelist())
    for inside, source in DATA.items():
        missing = {name for name in files_under(source) if f"{inside}/{name}" not in names}
        assert not missing, f"the wheel lacks {inside}/: {sorted(missing)}"

    # A clean venv, the pinned dependencies, the wheel: as an operator installs it.
    venv.create(server_dir / "venv", with_pip=True)
    python, tokengate = server_dir / "venv" / "bin" / "python", server_dir / "venv" / "bin" / "tokengate"
    run([str(python), "-m", "pip", "install", "--quiet", "-r", str(RUNTIME_LOCK), str(wheel)], server_dir)
    installed = Path(run([str(python), "-c", "import tokengate; print(tokengate.__file__)"], server_dir).strip())
    assert server_dir / "venv" in installed.parents, installed

    data_dir = server_dir / "data"
    async with (
        tokengate_serve([str(tokengate)], server_dir, {}, data_dir=data_dir, cwd=server_dir) as url,
        aiohttp.ClientSession() as client,
    ):
        async with client.get(url + "/healthz") as response:
            assert response.status == 200
        seeded = tokengate_cli(
            [str(tokengate)],
            *("bootstrap", "--account-name", "Installed", "--plan", "starter", "--admin-email", "ops@x.io"),
            *("--data-dir", str(data_dir)),
            env={},
            cwd=server_dir,
        )
        headers = {"Authorization": f"Bearer {seeded['token']}"}
        async with client.post(url + "/graphql", json={"query": VIEWER}, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["data"] == {"viewer": {"kind": "USER", "account": {"plan": "STARTER"}}}

        # GraphiQL and the settings pages, and every static file they load, as the checkout has them.
        pages = {}
        async with client.get(url + "/graphql", headers={"Accept": "text/html"}) as response:
            pages["graphiql"] = await response.text()
            assert response.status == 200 and "graphiql" in pages["graphiql"].lower()
        async with client.get(url + "/settings") as response:  # redirects to the first settings page
            pages["settings"] = await response.text()
            assert response.status == 200 and response.content_type == "text/html"
        for page, html in pages.items():
            references = static_references(html)
            assert references, f"the {page} page loads no static file"
            for reference in references:
                async with client.get(url + reference) as response:
                    assert response.status == 200, reference
                    assert await response.read() == (PACKAGE / reference.lstrip("/")).read_bytes(), reference
    assert_no_secret_in(server_dir / "tokengate.log", [seeded["token"]])
