"""Prometheus metrics of the daemon, served on ``[metrics] address`` when configured.

One registry per daemon (not the process-global default), so tests can run several daemons in
one process. Gauges whose value lives elsewhere (mode, breaker, outbox, cache) are read when
scraped, through callbacks, so they are never stale.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: a delta takes milliseconds, a cold snapshot up to its 30 s target and beyond
SYNC_BUCKETS = (*LATENCY_BUCKETS, 20.0, 30.0, 45.0, 60.0)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


@dataclass
class Readings:
    """Where scraped gauges read their values."""

    mode: Callable[[], str]
    breaker: Callable[[], str]
    outbox_depth: Callable[[], float] = lambda: 0.0
    outbox_oldest_age_s: Callable[[], float] = lambda: 0.0
    cache_version: Callable[[], float] = lambda: 0.0
    cache_age_s: Callable[[], float] = lambda: 0.0


class DaemonMetrics:
    """The daemon's metrics; :meth:`observe` is called once per answered request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tillgate_requests",
            "Requests answered, by lane and type",
            ["lane", "type"],
            registry=self.registry,
        )
        self.errors = Counter(
            "tillgate_errors",
            "Error answers, by lane and code",
            ["lane", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tillgate_request_seconds",
            "Time from a request's arrival to its answer, by lane and type",
            ["lane", "type"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers_by_mode = Counter(
            "tillgate_answers_by_mode",
            "Receipt answers by where they were made",
            ["mode"],
            registry=self.registry,
        )
        self.sync_seconds = Histogram(
            "tillgate_sync_seconds",
            "Duration of edge cache syncs",
            buckets=SYNC_BUCKETS,
            registry=self.registry,
        )
        self._online = Gauge(
            "tillgate_online", "1 when central answers, 0 when offline", registry=self.registry
        )
        self._breaker = Gauge(
            "tillgate_breaker_state",
            "Circuit breaker: 0 closed, 1 half_open, 2 open",
            registry=self.registry,
        )
        self._outbox_depth = Gauge(
            "tillgate_outbox_depth",
            "Journal entries not yet acknowledged by central",
            registry=self.registry,
        )
        self._outbox_age = Gauge(
            "tillgate_outbox_oldest_age_seconds",
            "Age of the oldest unacknowledged entry",
            registry=self.registry,
        )
        self._cache_version = Gauge(
            "tillgate_cache_version", "Edge cache sync checkpoint", registry=self.registry
        )
        self._cache_age = Gauge(
            "tillgate_cache_age_seconds",
            "Seconds since the last successful sync",
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def bind(self, readings: Readings) -> None:
        self._online.set_function(lambda: 1.0 if readings.mode() == "online" else 0.0)
        self._breaker.set_function(lambda: float(BREAKER_VALUES.get(readings.breaker(), 2)))
        self._outbox_depth.set_function(readings.outbox_depth)
        self._outbox_age.set_function(readings.outbox_oldest_age_s)
        self._cache_version.set_function(readings.cache_version)
        self._cache_age.set_function(readings.cache_age_s)

    def observe(self, lane: str, kind: str, answer: dict[str, object], seconds: float) -> None:
        self.requests.labels(lane, kind).inc()
        self.latency.labels(lane, kind).observe(seconds)
        if answer.get("type") == "error":
            self.errors.labels(lane, str(answer.get("code"))).inc()
        mode = answer.get("mode")
        if isinstance(mode, str) and kind in ("calculate", "confirm", "refund"):
            self.answers_by_mode.labels(mode).inc()

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on a background thread; returns the bound port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
