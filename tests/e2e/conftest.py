"""End-to-end fixtures: the Debian chromium driven by Playwright, and small loopback web sites.

`make e2e` installs what these need (chromium, nginx, the playwright package) and runs them; `make test`
does not collect this directory. Playwright's own browser downloads are never used: the system
chromium is launched directly, and a missing one is an error, not a skip.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from tests.conftest import Server, free_port, make_config, start_server
from tests.e2e import pgbouncer as pooling
from tests.e2e.processes import install_node_packages

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "e2e-artifacts"
CHROMIUM = "/usr/bin/chromium"
# No GPU, no sandbox (root in CI), and nothing that reaches beyond loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make e2e` installs the Debian package chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    yield opened
    await context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def behind_proxy(database: str, tmp_path: Path) -> AsyncIterator[Server]:
    """A tokengate that believes X-Forwarded-For from loopback, so a browser can come from any address."""
    config = make_config(tmp_path, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    async for server in start_server(database, config):
        yield server


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def loopback_site() -> AsyncIterator[Callable[[Handler, int | None], Awaitable[str]]]:
    """Starts small aiohttp sites on 127.0.0.1 (one handler for every path); returns each one's origin."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, port: int | None = None) -> str:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        port = port or free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture(scope="session")
def node_packages() -> Path:
    """tests/e2e/node/node_modules as the committed lock has it (npm ci, only when the lock changed)."""
    return install_node_packages()


@pytest.fixture(scope="session")
async def postgres_cluster() -> AsyncIterator[pooling.Cluster]:
    """Debian's PostgreSQL in a temporary directory, for the tests that put PgBouncer in front of it."""
    async with pooling.postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
async def pgbouncer(postgres_cluster: pooling.Cluster) -> AsyncIterator[Callable[..., Awaitable[pooling.Bouncer]]]:
    """``await pgbouncer("session" | "transaction", pool_size=40)``: a PgBouncer in that pool mode in front of a
    fresh database of this test (every call: another PgBouncer, the same database); stopped after the test."""
    database = await postgres_cluster.create_database()
    async with AsyncExitStack() as stack:

        async def start(mode: str, **settings: int) -> pooling.Bouncer:
            return await stack.enter_async_context(pooling.pgbouncer(postgres_cluster, database, mode, **settings))

        yield start
    await postgres_cluster.drop_database(database)
