"""Scheduled notices: each token's expiry (30, 7, 1 days), expired and disuse notice is sent once, also when the
job runs twice and on two instances at once; tokens not due, deleted or far from expiry get nothing."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from tests.api import webhook_calls as hooks
from tests.api.webhook_calls import events_server, receiving
from tests.conftest import TEST_ACTOR, TEST_LIMITS, TEST_SECRET_KEY, Server, start_server, store_service_token
from tokengate.config import ConfigError, WebhookTiming, load_config
from tokengate.core import tokens
from tokengate.core.policy import Grant
from tokengate.store import tokens as token_store

JOBS = [Grant("JOB_ADMIN")]


async def service_token_expiring_in(server: Server, account_id: str, days: float, name: str) -> str:
    secret = await store_service_token(
        server, account_id, JOBS, expires_at=datetime.now(UTC) + timedelta(days=days), name=name
    )
    return tokens.parse_token(secret).lookup


async def test_each_notice_is_sent_once_on_two_instances_running_the_job_twice(database, tmp_path):
    async with (
        receiving() as receiver,
        events_server(database, tmp_path / "a") as a,
        events_server(database, tmp_path / "b") as b,
    ):
        admin = await a.bootstrap()
        webhook = await hooks.created(a, admin.token, receiver.url, ["service_token.*", "user_token.expiring"])
        in_29 = await service_token_expiring_in(a, admin.account_id, 29, "in 29 days")
        in_6 = await service_token_expiring_in(a, admin.account_id, 6, "in 6 days")
        in_half = await service_token_expiring_in(a, admin.account_id, 0.5, "in half a day")
        expired = await service_token_expiring_in(a, admin.account_id, -0.1, "expired")
        far = await service_token_expiring_in(a, admin.account_id, 40, "in 40 days")
        deleted = await service_token_expiring_in(a, admin.account_id, 6, "deleted")
        unused = await service_token_expiring_in(a, admin.account_id, 365, "unused")
        used = await service_token_expiring_in(a, admin.account_id, 365, "used lately")
        async with a.runtime.backend.change(TEST_ACTOR) as work:
            await token_store.delete_service_token(work.conn, admin.account_id, deleted)
            personal, _ = await token_store.insert_v2(
                work.conn,
                a.config.secret_keys[0],
                "user",
                admin.account_id,
                "laptop",
                "test",
                user_id=admin.user_id,
                expires_at=datetime.now(UTC) + timedelta(days=6),
            )
        a.issued.append(personal.text)
        await a.pool.execute(
            "UPDATE tokens SET created_at = now() - interval '120 days' WHERE id = ANY($1::text[])", [unused, used]
        )
        await a.pool.execute("UPDATE tokens SET last_used_at = now() - interval '3 days' WHERE id = $1", used)

        rounds = await asyncio.gather(a.runtime.notices.run_once(), b.runtime.notices.run_once())
        rounds += await asyncio.gather(a.runtime.notices.run_once(), b.runtime.notices.run_once())
        rounds += [await a.runtime.notices.run_once(), await b.runtime.notices.run_once()]
        assert sum(r.noted for r in rounds if r is not None) == 6  # whichever instance ran them

        expected = {
            ("service_token.expiring", in_29, 30),
            ("service_token.expiring", in_6, 7),
            ("service_token.expiring", in_half, 1),
            ("service_token.expired", expired, None),
            ("service_token.unused", unused, None),
            ("user_token.expiring", personal.id, 7),
        }
        received = await receiver.wait_for(len(expected))
        # Subjects are printed as the API prints token ids (stk_/utk_ + the row key); compared by row key here.
        seen = [
            (r.event["type"], r.event["subject"][4:], r.event["data"]["details"].get("days_before")) for r in received
        ]
        assert sorted(seen, key=str) == sorted(expected, key=str)
        assert all(r.signed_by(webhook.secret) for r in received)
        assert all(r.event["id"].startswith("notice-") and r.event["data"]["actor"] == "tokengate" for r in received)
        details = receiver.of_type("service_token.unused")[0].event["data"]["details"]
        assert details["name"] == "unused" and details["unused_days"] == 90 and "last_used_at" not in details
        assert far not in {subject for _, subject, _ in seen} and deleted not in {subject for _, subject, _ in seen}

        recorded = await a.pool.fetch("SELECT token_id, notice FROM token_notices ORDER BY token_id, notice")
        assert len(recorded) == 6 and len({(row["token_id"], row["notice"]) for row in recorded}) == 6
        # Later, the half-day token crosses no new threshold and the others are unchanged: nothing more is sent.
        await a.runtime.notices.run_once()
        await asyncio.sleep(0.5)
        assert len(receiver.received) == len(expected)


async def test_a_round_is_skipped_while_another_instance_runs_one(database, tmp_path):
    async with events_server(database, tmp_path / "a") as a, events_server(database, tmp_path / "b") as b:
        async with a.pool.acquire() as holder, holder.transaction():
            await holder.execute("SELECT pg_advisory_xact_lock($1)", 0x746F6B6E)
            assert await b.runtime.notices.run_once() is None
        assert await b.runtime.notices.run_once() is not None


def env_config(tmp_path, **env: str):
    return load_config(
        tmp_path, {"TOKENGATE_SECRET_KEY": TEST_SECRET_KEY, "TOKENGATE_DATABASE_URL": "postgresql://unused", **env}
    )


async def test_the_notice_interval_is_set_from_the_environment(database, tmp_path):
    assert env_config(tmp_path / "default").webhook_timing.notice_interval_seconds == 300
    config = env_config(tmp_path, TOKENGATE_TOKEN_NOTICE_INTERVAL_SECONDS="0.5", TOKENGATE_WEBHOOK_ALLOW_PRIVATE="true")
    assert config.webhook_timing.notice_interval_seconds == 0.5
    config = dataclasses.replace(
        config, limits=TEST_LIMITS, webhook_timing=dataclasses.replace(config.webhook_timing, poll_seconds=0.2)
    )
    async with receiving() as receiver:
        async for server in start_server(database, config):
            admin = await server.bootstrap()
            await hooks.created(server, admin.token, receiver.url, ["service_token.expiring"])
            soon = await service_token_expiring_in(server, admin.account_id, 6, "in 6 days")
            # No round is run by hand: the server's own job, every half second, sends the notice.
            (received,) = await receiver.wait_for(1, seconds=10)
            assert received.event["subject"] == f"stk_{soon}"


@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan", "inf", "86401"])
def test_a_notice_interval_that_is_not_a_positive_number_of_seconds_up_to_a_day_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="TOKENGATE_TOKEN_NOTICE_INTERVAL_SECONDS"):
        env_config(tmp_path, TOKENGATE_TOKEN_NOTICE_INTERVAL_SECONDS=value)
    assert WebhookTiming().notice_interval_seconds == 300


async def test_the_expiry_thresholds_are_the_one_constant(database, tmp_path, monkeypatch):
    """The notices' SQL takes its thresholds from webhook_events.EXPIRY_NOTICE_DAYS, written nowhere else."""
    from tokengate.core import webhook_events
    from tokengate.jobs import token_notices

    assert token_notices.EXPIRY_NOTICE_DAYS is webhook_events.EXPIRY_NOTICE_DAYS == (30, 7, 1)
    monkeypatch.setattr(token_notices, "EXPIRY_NOTICE_DAYS", (14, 3))
    async with events_server(database, tmp_path) as server:
        admin = await server.bootstrap()
        in_20 = await service_token_expiring_in(server, admin.account_id, 20, "in 20 days")
        in_10 = await service_token_expiring_in(server, admin.account_id, 10, "in 10 days")
        in_2 = await service_token_expiring_in(server, admin.account_id, 2, "in 2 days")
        expired = await service_token_expiring_in(server, admin.account_id, -0.1, "expired")
        await server.runtime.notices.run_once()
        recorded = await server.pool.fetch("SELECT token_id, notice FROM token_notices")
        assert {(row["token_id"], row["notice"]) for row in recorded} == {
            (in_10, "expiring:14"),
            (in_2, "expiring:3"),
            (expired, "expired"),
        }
        assert in_20 not in {row["token_id"] for row in recorded}
