"""Prometheus metrics (prometheus-client) kept in the server's own registry, read live at scrape time."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

_BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpcs = Counter("flight_rpcs", "Flight RPCs by method and gRPC outcome.", ["rpc", "outcome"], registry=r)
        self.statements = Counter("flight_statements", "SQL statements by type and outcome.",
                                  ["type", "outcome"], registry=r)
        self.duration = Histogram("flight_statement_duration_seconds", "Statement execution time.", ["type"],
                                  buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120), registry=r)
        self.rows_written = Counter("flight_rows_written", "Rows changed or ingested.", registry=r)
        self.rows_streamed = Counter("flight_rows_streamed", "Result rows sent to clients.", registry=r)
        self.bytes_streamed = Counter("flight_bytes_streamed", "Arrow bytes of result batches sent to clients.",
                                      registry=r)
        self.sessions = Gauge("flight_sessions_active", "Open client sessions.", registry=r)
        self.pool_in_use = Gauge("flight_pool_connections_in_use", "DuckDB connections held by sessions.",
                                 registry=r)
        self.queue_depth = Gauge("flight_admission_queue_depth", "Statements waiting for admission.", registry=r)
        self.running = Gauge("flight_admission_running", "Statements executing now.", registry=r)
        self.breaker = Gauge("flight_circuit_breaker_state", "0 closed, 1 half-open, 2 open.", registry=r)
        ProcessCollector(registry=r)
        self._children: dict[tuple, object] = {}

    def labels(self, metric, *values):
        """metric.labels(*values), looked up once per series: prometheus-client takes a lock on every labels()
        call, and the hot path (every RPC, every statement) uses the same few series."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def bind(self, sessions: Callable[[], int], queue: Callable[[], dict], breaker: Callable[[], dict]) -> None:
        """Gauges read their values from the live objects when scraped."""
        self.sessions.set_function(sessions)
        self.pool_in_use.set_function(sessions)
        self.queue_depth.set_function(lambda: queue()["queued"])
        self.running.set_function(lambda: queue()["running"])
        self.breaker.set_function(lambda: _BREAKER_STATES.get(str(breaker()["state"]), 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
