"""Metrics (Prometheus text format), the access log and structured logs. Cheap enough for the hot path.

Counters on the request path are plain dictionary increments, exported at scrape time; the access log
keeps one entry per request in a buffer and formats its JSON lines when it writes them, every
``flush_interval`` (the logging module costs about 100 µs a record, as much as the rest of a forward-auth
request).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Final, TextIO

from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from tokengate.jobs.batching import PeriodicFlush

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VALIDATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)


class Histogram:
    """Bucket counts and a sum; ``observe`` is a bisect and two additions."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value


class Metrics:
    """One registry per application, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.authentications: defaultdict[str, int] = defaultdict(int)
        self.denials: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.validation_seconds = Histogram(VALIDATION_BUCKETS)
        self.registry.register(_Exported(self))

    def count_request(self, route: str, status: int) -> None:
        self.requests[(route, status)] += 1

    def count_authentication(self, outcome: str) -> None:
        self.authentications[outcome] += 1

    def count_denial(self, resource: str, access: str) -> None:
        self.denials[(resource, access)] += 1

    def add_gauges(
        self, name: str, documentation: str, label: str, read: Callable[[], Iterable[tuple[str, float]]]
    ) -> None:
        """A gauge family read at scrape time (cache counters, pool usage): nothing on the hot path."""
        self.registry.register(_ScrapeTimeGauges(name, documentation, label, read))

    def add_counters(
        self, name: str, documentation: str, label: str, read: Callable[[], Iterable[tuple[str, float]]]
    ) -> None:
        """A counter family read at scrape time from counts kept elsewhere (the limits' refusals)."""
        self.registry.register(_ScrapeTimeGauges(name, documentation, label, read, CounterMetricFamily))

    def add_histogram(self, name: str, documentation: str, histogram: Histogram) -> None:
        self.registry.register(_ScrapeTimeHistogram(name, documentation, histogram))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Exported(Collector):
    """The request-path counters and the validation histogram, read when Prometheus scrapes."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        m = self.metrics
        requests = CounterMetricFamily(
            "tokengate_http_requests", "HTTP requests by route and status", labels=["route", "status"]
        )
        for (route, status), count in list(m.requests.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        outcomes = CounterMetricFamily("tokengate_authentications", "Authentication outcomes", labels=["outcome"])
        for outcome, count in list(m.authentications.items()):
            outcomes.add_metric([outcome], count)
        yield outcomes
        denials = CounterMetricFamily(
            "tokengate_permission_denials", "Permission denials by resource and access", labels=["resource", "access"]
        )
        for (resource, access), count in list(m.denials.items()):
            denials.add_metric([resource, access], count)
        yield denials
        yield _histogram_family(
            "tokengate_token_validation_seconds", "Time to validate a presented token", m.validation_seconds
        )

    def describe(self) -> Iterable[Metric]:
        return []


class _ScrapeTimeGauges(Collector):
    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        read: Callable[[], Iterable[tuple[str, float]]],
        family_type: Any = GaugeMetricFamily,
    ):
        self.name, self.documentation, self.label, self.read = name, documentation, label, read
        self.family_type = family_type

    def collect(self) -> Iterable[Metric]:
        family = self.family_type(self.name, self.documentation, labels=[self.label])
        for label_value, value in self.read():
            family.add_metric([label_value], value)
        yield family

    def describe(self) -> Iterable[Metric]:
        return [self.family_type(self.name, self.documentation, labels=[self.label])]


def _histogram_family(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    cumulative = list(itertools.accumulate(histogram.counts))
    bounds = [str(b) for b in histogram.buckets] + ["+Inf"]
    return HistogramMetricFamily(
        name, documentation, buckets=list(zip(bounds, cumulative, strict=True)), sum_value=histogram.sum
    )


class _ScrapeTimeHistogram(Collector):
    def __init__(self, name: str, documentation: str, histogram: Histogram):
        self.name, self.documentation, self.histogram = name, documentation, histogram

    def collect(self) -> Iterable[Metric]:
        yield _histogram_family(self.name, self.documentation, self.histogram)

    def describe(self) -> Iterable[Metric]:
        return []


LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLag(PeriodicFlush):
    """Measures how late the event loop wakes a task that sleeps ``interval`` seconds: the time it spent busy
    with other work, which every request waiting on it also waited (a histogram)."""

    INTERVAL = 0.1

    def __init__(self) -> None:
        self.interval = self.INTERVAL
        self.task_name = "event-loop-lag"
        self.histogram = Histogram(LOOP_LAG_BUCKETS)
        self._woken: float | None = None

    def flush(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._woken is not None:
            self.histogram.observe(max(0.0, now - self._woken - self.interval))
        self._woken = now


class RequestIds:
    """Unique, short request ids: a random per-process prefix and a counter (no syscall per request)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


HEAD: Final = '{"time":"%s","level":"info","logger":"tokengate.access","message":"request","request_id":"'
# An access line's fields: when (time.time()), request id, method, route, status, duration in ms, principal.
Entry = tuple[float, str, str, str, int, float, str | None]


class AccessLog(PeriodicFlush):
    """One line per request (JSON, or text for humans), buffered and written every ``interval`` seconds."""

    def __init__(
        self, stream: TextIO | None = None, log_format: str = "json", enabled: bool = True, flush_interval: float = 0.2
    ):
        self.stream = stream
        self.log_format = log_format
        self.enabled = enabled
        self.interval = flush_interval
        self.task_name = "access-log-flush"
        self.buffer: list[Entry] = []  # the lines not yet written, as their fields
        self._second = -1
        self._stamp = ""
        self._json: dict[str | None, str] = {}  # methods, routes and display prefixes as JSON, made once each
        self._middles: dict[tuple[str, str, int, str | None], tuple[str, str]] = {}  # see ``lines``
        self._durations: dict[float, str] = {}

    def write(
        self, request_id: str, method: str, route: str, status: int, duration_ms: float, principal: str | None
    ) -> None:
        """One request's line: its fields and the time now, kept as they are; ``flush`` formats the lines it
        writes (one loop over the batch rather than a formatting call per request)."""
        if not self.enabled:
            return
        buffer = self.buffer
        buffer.append((time.time(), request_id, method, route, status, duration_ms, principal))
        if len(buffer) >= 512:
            self.flush()

    def lines(self, entries: list[Entry]) -> list[str]:
        """The access lines of ``entries``, in their order."""
        if self.log_format != "json":
            return [
                f"{self._stamp_of(now)} {request_id} {method} {route} {status} {duration_ms}ms {principal or '-'}"
                for now, request_id, method, route, status, duration_ms, principal in entries
            ]
        made = []
        middles = self._middles
        durations = self._durations
        last_ms, head = -1, ""
        for now, request_id, method, route, status, duration_ms, principal in entries:
            # Assembled by hand from parts made once: a line's head per millisecond (a busy second has thousands
            # of lines), its middle and tail per method, route, status and principal (the display prefix is the
            # only free text: json.dumps), the duration's text per value (a few dozen distinct ones).
            second = int(now)
            ms = second * 1000 + int((now - second) * 1000)  # the stamp's own arithmetic, so its own boundaries
            if ms != last_ms:
                last_ms, head = ms, HEAD % self._stamp_of(now)
            parts = middles.get((method, route, status, principal))
            if parts is None:
                parts = self._parts(method, route, status, principal)
            duration = durations.get(duration_ms)
            if duration is None:
                duration = repr(duration_ms)
                if len(durations) < 4096:
                    durations[duration_ms] = duration
            made.append(head + request_id + parts[0] + duration + parts[1])
        return made

    def _stamp_of(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # formatting the date once a second, not once a line
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def _parts(self, method: str, route: str, status: int, principal: str | None) -> tuple[str, str]:
        """A JSON line's text between the request id and the duration, and after the duration."""
        as_json = self._as_json
        parts = (
            f'","method":{as_json(method)},"route":{as_json(route)},"status":{status},"duration_ms":',
            f',"principal":{as_json(principal)}}}',
        )
        if len(self._middles) < 4096:
            self._middles[(method, route, status, principal)] = parts
        return parts

    def _as_json(self, text: str | None) -> str:
        """``json.dumps(text, ensure_ascii=False)``, kept for the next line (a few thousand texts at most)."""
        quoted = self._json.get(text)
        if quoted is None:
            quoted = json.dumps(text, ensure_ascii=False)
            if len(self._json) < 4096:
                self._json[text] = quoted
        return quoted

    def flush(self) -> None:
        if not self.buffer:
            return
        entries, self.buffer = self.buffer, []
        lines = self.lines(entries)
        stream = self.stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed or full stream must not fail requests
            stream.write("\n".join(lines) + "\n")
            stream.flush()

    def start(self) -> None:
        if self.enabled:
            super().start()


# Attributes every LogRecord has; anything else passed through `extra=` becomes a JSON field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class HideMalformedRequestText(logging.Filter):
    """aiohttp logs a request its parser refuses (e.g. a header over 8190 bytes) with the parser's error, which
    quotes the start of the offending line: for an oversized ``Authorization`` header, the token. Keep the
    client address and the kind of error only; it is the client's mistake, so INFO, not ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        problem = record.exc_info[1] if record.exc_info else None
        if isinstance(problem, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
            record.msg = "refused a malformed HTTP request from %s: %s (HTTP %s)"
            record.args = (remote, type(problem).__name__, problem.code)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


MALFORMED_REQUEST_FILTER = HideMalformedRequestText()


def hide_malformed_request_text() -> None:
    """Idempotent: the filter is added once to aiohttp's server logger."""
    logging.getLogger("aiohttp.server").addFilter(MALFORMED_REQUEST_FILTER)


def configure_logging(log_format: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
