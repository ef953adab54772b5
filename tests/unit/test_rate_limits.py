"""Token buckets, the limits' settings, and who pays: pure, with a clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokengate.core.limits import (
    Buckets,
    Limits,
    OverLimit,
    Rate,
    Throttle,
    address_key,
    limits_from_env,
    setting_variables,
)

LIMITS_DOC = Path(__file__).resolve().parents[2] / "docs" / "limits.md"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refuses_with_the_time_until_one_is_back():
    clock = Clock()
    buckets = Buckets("address", Rate(per_second=2, burst=3), clock)
    for _ in range(3):
        buckets.take("a")
    with pytest.raises(OverLimit) as refused:
        buckets.take("a")
    assert refused.value.policy == "address"
    assert refused.value.retry_after == pytest.approx(0.5)
    buckets.take("b")  # another payer has its own bucket
    clock.now += 0.5
    buckets.take("a")  # refilled at the rate
    with pytest.raises(OverLimit):
        buckets.take("a")
    clock.now += 3600
    assert buckets.level("a") == 3  # never more than the burst


def test_the_refusal_carries_retry_after_and_the_draft_ratelimit_fields():
    over = OverLimit("principal", Rate(500, 1000), retry_after=0.002)
    assert over.headers() == {
        "Retry-After": "1",  # whole seconds, at least one
        "RateLimit-Policy": '"principal";q=1000;w=2',
        "RateLimit": '"principal";r=0;t=1',
    }
    assert OverLimit("cost", Rate(1000, 5000), retry_after=4.2).headers()["Retry-After"] == "5"


def test_work_admitted_while_in_credit_is_charged_afterwards_into_debt():
    clock = Clock()
    buckets = Buckets("cost", Rate(per_second=100, burst=500), clock)
    buckets.require("p")
    buckets.charge("p", 3000)  # a big operation, admitted on a full bucket
    assert buckets.level("p") == -500  # debt is bounded by one burst
    with pytest.raises(OverLimit) as refused:
        buckets.require("p")
    assert refused.value.retry_after == pytest.approx(5.01)
    clock.now += refused.value.retry_after + 0.001
    buckets.require("p")


def test_a_reserved_estimate_is_settled_to_the_actual_cost():
    clock = Clock()
    buckets = Buckets("cost", Rate(per_second=100, burst=500), clock)
    charged = buckets.charge("p", 150)  # the estimate, reserved before the work runs
    assert charged == 150 and buckets.level("p") == 350
    buckets.settle("p", charged, 7)  # the answer held two items: 7 points
    assert buckets.level("p") == 500 - 7
    buckets.settle("p", buckets.charge("p", 10), 30)  # more than estimated: the rest is charged too
    assert buckets.level("p") == 500 - 7 - 30


def test_a_settlement_gives_back_no_more_than_the_capped_charge_took():
    buckets = Buckets("cost", Rate(per_second=100, burst=500), Clock())
    charged = buckets.charge("p", 3000)  # capped at one burst of debt: 1,000 taken, not 3,000
    assert charged == 1000 and buckets.level("p") == -500
    buckets.settle("p", charged, 600)
    assert buckets.level("p") == -100  # 600 spent from a full bucket, not a full bucket given back


def test_a_rate_of_zero_switches_the_limit_off():
    buckets = Buckets("address", Rate(0, 1), Clock())
    for _ in range(1000):
        buckets.take("a")
    buckets.charge("a", 10**9)
    buckets.require("a")


def test_buckets_are_bounded_and_forget_the_least_recently_used_payer():
    buckets = Buckets("address", Rate(1, 1), Clock(), max_keys=2)
    for key in "abc":
        buckets.take(key)
    assert len(buckets) == 2
    buckets.take("a")  # forgotten: starts full again


def test_the_throttle_counts_what_each_policy_refused():
    throttle = Throttle(Limits(principal=Rate(1, 1)), Clock())
    throttle.take(throttle.principal, "p")
    for _ in range(2):
        with pytest.raises(OverLimit):
            throttle.take(throttle.principal, "p")
    assert throttle.refused == {"principal": 2}


def test_ipv6_clients_pay_per_slash_64_and_ipv4_per_address():
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("10.0.0.1") == "10.0.0.1" and address_key("10.0.0.2") == "10.0.0.2"
    assert address_key(None) == "-"


def test_settings_from_the_environment():
    limits = limits_from_env(
        {
            "TOKENGATE_RATE_PRINCIPAL": "50",
            "TOKENGATE_RATE_FAILURES_BURST": "7",
            "TOKENGATE_RATE_ADDRESS": "0",
            "TOKENGATE_COST_BUDGET": "2500",
            "TOKENGATE_HEADER_TIMEOUT": "2.5",
        }
    )
    assert limits.principal == Rate(50, 100)  # the burst follows a changed rate
    assert limits.failures == Rate(Limits().failures.per_second, 7)
    assert not limits.address.enabled
    assert limits.cost_budget == 2500 and limits.header_timeout == 2.5
    assert limits_from_env({}) == Limits()


@pytest.mark.parametrize(
    "variable, value",
    [
        ("TOKENGATE_RATE_PRINCIPAL", "fast"),
        ("TOKENGATE_RATE_PRINCIPAL", "-1"),
        ("TOKENGATE_RATE_PRINCIPAL_BURST", "0"),
        ("TOKENGATE_COST_BUDGET", "0"),
        ("TOKENGATE_MAX_TOKENS_PER_ACCOUNT", "1.5"),
        ("TOKENGATE_BODY_TIMEOUT", "inf"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        limits_from_env({variable: value})


def test_the_docs_list_every_limit_setting():
    text = LIMITS_DOC.read_text(encoding="utf-8")
    limits_section = text.split("\n## ", 1)[0]  # the table, before the measurements under attack
    missing = [variable for variable in setting_variables() if f"`{variable}`" not in limits_section]
    assert not missing, missing
