"""Access lines assembled from parts kept between lines (observability.AccessLog.lines) are exactly what
``json.dumps`` makes of each line's fields, and the text format what its f-string makes: over random entries
with close timestamps (millisecond and second boundaries, out of order), methods, routes, statuses, durations and
display prefixes that need escaping."""

from __future__ import annotations

import json
import random
import time

from tokengate.http.observability import AccessLog, Entry


def as_json(
    now: float, request_id: str, method: str, route: str, status: int, duration: float, principal: str | None
) -> str:
    second = int(now)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{int((now - second) * 1000):03d}Z"
    fields = {
        "time": stamp,
        "level": "info",
        "logger": "tokengate.access",
        "message": "request",
        "request_id": request_id,
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration,
        "principal": principal,
    }
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def as_text(
    now: float, request_id: str, method: str, route: str, status: int, duration: float, principal: str | None
) -> str:
    second = int(now)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{int((now - second) * 1000):03d}Z"
    return f"{stamp} {request_id} {method} {route} {status} {duration}ms {principal or '-'}"


def entries(seed: int, count: int = 20_000) -> list[Entry]:
    chooser = random.Random(seed)
    start = 1_796_598_939.0 + chooser.random()
    return [
        (
            start + index * 0.00003 + chooser.random() * 0.00002,  # many lines a millisecond, a few out of order
            f"{seed:08x}-{index:x}",
            chooser.choice(["GET", "POST", "HEAD", "OPTIONS"]),
            chooser.choice(["/auth/check", "/graphql", "/scim/v2/Users", "unmatched"]),
            chooser.choice([200, 401, 403, 429, 500]),
            round(chooser.random() * chooser.choice([0.1, 1.0, 100.0, 10_000.0]), 3),
            chooser.choice(["tgs_2NXt…", None, 'we"ird\\…', "utk_ünï…", "\u2028"]),
        )
        for index in range(count)
    ]


def test_json_lines_are_what_json_dumps_makes():
    for seed in range(3):
        batch = entries(seed)
        log = AccessLog()
        assert log.lines(batch[:7000]) + log.lines(batch[7000:]) == [as_json(*entry) for entry in batch]


def test_text_lines_are_what_the_format_makes():
    batch = entries(7)
    assert AccessLog(log_format="text").lines(batch) == [as_text(*entry) for entry in batch]
