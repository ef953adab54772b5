"""What the usage recorder keeps in memory between flushes (usage.py), without a database."""

from __future__ import annotations

from tokengate.jobs import usage_recorder as usage
from tokengate.jobs.usage_recorder import UsageRecorder, token_uses


def test_addresses_come_newest_first_and_distinct_with_the_counts():
    recorder = UsageRecorder(pool=None)  # type: ignore[arg-type]
    for token, address in [("a", "10.0.0.1"), ("b", None), ("a", "10.0.0.2"), ("a", "10.0.0.1"), ("a", None)]:
        recorder.note(token, address)
    uses = {use.token_id: use for use in token_uses(recorder.requests)}
    assert uses["a"].requests == 4 and uses["a"].addresses == ("10.0.0.1", "10.0.0.2")
    assert uses["b"].requests == 1 and uses["b"].addresses == ()


def test_a_failed_batch_is_kept_behind_newer_uses():
    recorder = UsageRecorder(pool=None)  # type: ignore[arg-type]
    recorder.note("a", "10.0.0.1")
    failed, recorder.requests = recorder.requests, {}
    recorder.note("a", "10.0.0.2")
    recorder._keep(failed, {})
    (use,) = token_uses(recorder.requests)
    assert use.requests == 2 and use.addresses == ("10.0.0.2", "10.0.0.1")


def test_while_the_database_stays_away_only_counts_are_kept_past_the_bound(monkeypatch):
    monkeypatch.setattr(usage, "MAX_PENDING", 3)
    recorder = UsageRecorder(pool=None)  # type: ignore[arg-type]
    failed = {("a", f"10.0.0.{n}"): 1 for n in range(5)}
    recorder._keep(failed, {7: 1.0})
    assert recorder.requests == {("a", None): 5} and recorder.grants == {7: 1.0}
