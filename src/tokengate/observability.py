"""Metrics (Prometheus text format) and structured logs. Cheap enough for the hot path."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VALIDATION_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)


class Metrics:
    """One registry per application, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tokengate_http_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.authentications = Counter(
            "tokengate_authentications", "Authentication outcomes", ["outcome"], registry=self.registry
        )
        self.denials = Counter(
            "tokengate_permission_denials",
            "Permission denials by resource and access",
            ["resource", "access"],
            registry=self.registry,
        )
        self.validation_seconds = Histogram(
            "tokengate_token_validation_seconds",
            "Time to validate a presented token",
            buckets=VALIDATION_BUCKETS,
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, int], Any] = {}
        self._auth_children: dict[str, Any] = {}
        self._denial_children: dict[tuple[str, str], Any] = {}

    def count_request(self, route: str, status: int) -> None:
        child = self._request_children.get((route, status))
        if child is None:
            child = self._request_children[(route, status)] = self.requests.labels(route, str(status))
        child.inc()

    def count_authentication(self, outcome: str) -> None:
        child = self._auth_children.get(outcome)
        if child is None:
            child = self._auth_children[outcome] = self.authentications.labels(outcome)
        child.inc()

    def count_denial(self, resource: str, access: str) -> None:
        child = self._denial_children.get((resource, access))
        if child is None:
            child = self._denial_children[(resource, access)] = self.denials.labels(resource, access)
        child.inc()

    def add_gauges(
        self, name: str, documentation: str, label: str, read: Callable[[], Iterable[tuple[str, float]]]
    ) -> None:
        """A gauge family read at scrape time (cache counters, pool usage): nothing on the hot path."""
        self.registry.register(_ScrapeTimeGauges(name, documentation, label, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ScrapeTimeGauges(Collector):
    def __init__(self, name: str, documentation: str, label: str, read: Callable[[], Iterable[tuple[str, float]]]):
        self.name, self.documentation, self.label, self.read = name, documentation, label, read

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for label_value, value in self.read():
            family.add_metric([label_value], value)
        yield family

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=[self.label])]


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


def configure_logging(log_format: str = "json", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
