"""Per-validation cost of a v2 token (parse + keyed hash + compare) against a legacy one (argon2id verify).

Not a test: run it with `.venv/bin/python bench/validate.py`. It exits 1 when v2 is not at least 1000 times
cheaper, the product's reason to rotate legacy tokens.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from tokengate.core import tokens

REQUIRED_RATIO = 1000


def per_call(work: Callable[[], bool], calls: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean seconds per call; every call must succeed."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            if not work():
                raise SystemExit("validation failed: the benchmark is broken")
        results.append((time.perf_counter() - started) / calls)
    return statistics.median(results)


def main() -> int:
    key = tokens.derive_key("bench-key-" * 4)
    v2 = tokens.issue_token("service").text
    stored_v2 = tokens.hash_token(v2, key)
    legacy = tokens.new_legacy_secret()
    stored_legacy = tokens.hash_legacy(legacy)

    def validate_v2() -> bool:
        parsed = tokens.parse_token(v2)
        return tokens.hash_matches(parsed.text, stored_v2, (key,))

    def validate_legacy() -> bool:
        parsed = tokens.parse_token(legacy)
        return tokens.legacy_matches(parsed.text, stored_legacy)

    v2_cost = per_call(validate_v2, calls=20_000)
    legacy_cost = per_call(validate_legacy, calls=5)
    ratio = legacy_cost / v2_cost
    print(f"v2     (parse + BLAKE2b keyed hash + compare): {v2_cost * 1e6:10.2f} µs per validation")
    print(f"legacy (parse + argon2id verify, interactive): {legacy_cost * 1e6:10.2f} µs per validation")
    print(f"ratio legacy / v2: {ratio:,.0f}x (required: at least {REQUIRED_RATIO:,}x)")
    return 0 if ratio >= REQUIRED_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
