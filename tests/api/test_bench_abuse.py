"""bench/abuse.py's clients against this build for a few seconds, so the benchmark never drifts from the API:
the legitimate client stays error-free beside an attack, and every attack gets answers, none a server error."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from tests.api.service_token_calls import created, grant
from tests.api.test_graphql import create_project
from tests.conftest import make_config, start_server
from tokengate.core.leak_reports import MAX_REPORT_BYTES
from tokengate.core.limits import Limits, Rate
from tokengate.core.policy import Grant

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def abuse() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        import abuse

        yield abuse
    finally:
        sys.path.remove(str(BENCH))


async def test_the_abuse_bench_runs_against_this_build(server, abuse):
    admin = await server.bootstrap()
    project = await create_project(server, admin.token)
    v2 = await created(server, admin.token, "legit", grants=[grant("JOB_ADMIN")])
    viewer = await created(server, admin.token, "viewer", grants=[grant("JOB_VIEWER")])
    reader = await created(server, admin.token, "reader", grants=[grant("ACCOUNT_VIEWER")])
    legacy = await server.import_legacy_token(
        admin.account_id, "legacy user", datetime(2022, 3, 1, tzinfo=UTC), [Grant("JOB_ADMIN")]
    )
    secrets = abuse.Secrets(server.url, project, v2.secret, legacy, viewer.secret, reader.secret)
    # Warmed up first, as `make bench-abuse` does: the legacy token's first use waits for argon2id, which runs
    # at low CPU priority and so, on a machine busy with other work, takes longer than the client's 5 s.
    for token in (v2.secret, legacy):
        check = abuse.CHECK.format(project=project)
        assert (await server.get(check, headers={"Authorization": f"Bearer {token}"}))[0] == 200

    legit, attacked = await asyncio.gather(abuse.legit(secrets, 1.0, 60), abuse.attack("unknown-ids", secrets, 1.0))
    summary = legit.summary()
    # Every request the client sent was answered, and right (how many it sent in the second is the machine's).
    assert summary["sent"] > 0 and summary["errors"] == 0 and summary["answered"] == summary["sent"], summary
    assert set(attacked.statuses) <= {"401", "429"} and attacked.sent > 0, attacked.statuses
    for phase in abuse.PHASES:
        if phase in ("quiet", "unknown-ids", "slow-connections"):
            continue
        report = await abuse.attack(phase, secrets, 0.3)
        assert report.sent > 0, phase
        assert all(not status.startswith("5") or status == "503" for status in report.statuses), (phase, report)
    # From an address of its own: the phases above leave refused bodies unread on connections the server keeps
    # until the body timeout, up to the cap of connections per address.
    slow = await abuse.slow_connections(secrets, 0.5, "127.0.0.3", each=2)
    assert slow.sent == 6, slow


async def test_the_scanning_flood_of_the_abuse_bench_is_refused_past_its_rate(database, tmp_path, abuse):
    limits = Limits(secret_scanning=Rate(0.01, 3))  # a burst of three, then next to nothing
    config = make_config(tmp_path, github_scanning_keys=abuse.scanning_keys_file(tmp_path), limits=limits)
    async for server in start_server(database, config):
        secrets = abuse.Secrets(server.url, "", "", "", "", "")
        body, _ = abuse.forged_scanning_report()
        assert len(body) <= MAX_REPORT_BYTES
        report = await abuse.attack("scanning-flood", secrets, 2.0)
        # The forged signature is checked (401) until the address's burst is spent, then refused unread (429).
        assert report.statuses["401"] == 3 and report.statuses["429"] > 0, report.statuses
        assert set(report.statuses) == {"401", "429"}, report.statuses
