"""The one place every statement passes: admission, the circuit breaker, the watchdog (timeout, cancel, stalled
streams), statistics, metrics and one log record. `with guard.statement(route, call, context, message) as s:`."""

from __future__ import annotations

import itertools
import time

import pyarrow.flight as flight
import structlog

from ..auth import sql_scan
from ..engine.session import CURRENT_CALL
from . import status
from .handlers.base import Call
from .identity import middleware
from .routes import Route

log = structlog.get_logger("flight_server")

# Kinds whose result is a changed-row count.
_WRITES = frozenset({"update", "prepared_update", "ingest"})


class StatementGuard:
    def __init__(self, config, admission, breaker, watchdog, recovery, stats, metrics):
        self.config = config
        self.admission = admission
        self.breaker = breaker
        self.watchdog = watchdog
        self.recovery = recovery
        self.stats = stats
        self.metrics = metrics
        self._ids = itertools.count(1)

    def statement(self, route: Route, call: Call, context, message) -> Statement:
        return Statement(self, route, call, context, message)

    def count_streamed(self, rows: int, nbytes: int) -> None:
        self.stats.streamed(rows, nbytes)
        self.metrics.rows_streamed.inc(rows)
        self.metrics.bytes_streamed.inc(nbytes)


class Statement:
    """One statement under the guard. Entering takes an admission slot (after the recovery and breaker checks)
    and starts the watchdog; leaving releases them and records the outcome, except for a streaming route that
    returned its stream: that finishes when the call completes (the client has read it, or left)."""

    __slots__ = ("guard", "route", "call", "context", "message", "statement_id", "watch", "timeout", "started",
                 "rows", "_current")

    def __init__(self, guard: StatementGuard, route: Route, call: Call, context, message):
        self.guard = guard
        self.route = route
        self.call = call
        self.context = context
        self.message = message
        self.rows = -1

    def __enter__(self) -> Statement:
        guard, call = self.guard, self.call
        self.statement_id = next(guard._ids)
        guard.recovery.check()
        guard.breaker.before()
        try:
            call.lease = guard.admission.lease(call.owner)
        except BaseException:
            guard.breaker.abandon_probe()
            raise
        self.timeout = call.session.options.get("statement_timeout", guard.config.statement_timeout) or None
        marker = call.marker = object()
        session = call.session
        self.watch = guard.watchdog.watch(self.context.is_cancelled, lambda: session.interrupt_if_running(marker),
                                          self.timeout)
        self.started = time.perf_counter()
        self._current = CURRENT_CALL.set(marker)
        return self

    def produced(self, result) -> None:
        """Notes the handler's result: a FlightInfo's record count, or an update's row count."""
        if isinstance(result, flight.FlightInfo):
            self.rows = result.total_records
        elif isinstance(result, int):
            self.rows = result

    def __exit__(self, kind, error, traceback) -> bool:
        CURRENT_CALL.reset(self._current)
        if error is None:
            if self.route.streaming and self._defer():
                return False
            self.finish(None)
            return False
        reason = self.guard.watchdog.unwatch(self.watch)
        self.watch = None
        self.finish(error)
        if reason == "timeout":
            raise flight.FlightTimedOutError(
                f"statement exceeded the statement timeout of {self.timeout:g}s and was interrupted") from None
        return False

    def _defer(self) -> bool:
        """A stream leaves the call running: finish when the call completes, and meanwhile let a stream whose
        client stopped reading give up its slot."""
        hooks = middleware(self.context)
        if hooks is None:
            return False
        hooks.on_complete.append(self.finish)
        self._release_when_stalled()
        return True

    def _release_when_stalled(self) -> None:
        """A stream whose client stops reading for --stall-timeout seconds gives up its execution slot (DuckDB
        does nothing for it meanwhile); it takes one again before DuckDB works for it again."""
        call = self.call
        stream, lease, stall = call.result, call.lease, self.guard.config.stall_timeout
        if stream is None or not stall:
            return
        stream.before_fetch = lease.hold

        def check() -> None:
            if lease.held and stream.stalled_for() > stall:
                lease.release()
                log.info("stalled stream gave up its slot", session=call.session.session_id, peer=call.peer,
                         user=call.owner, stalled_s=round(stream.stalled_for(), 1))
        self.guard.watchdog.poll(self.watch, check)

    def finish(self, error: BaseException | None) -> None:
        guard, call, kind = self.guard, self.call, self.route.kind
        if self.watch is not None:
            guard.watchdog.unwatch(self.watch)
            self.watch = None
        call.lease.release()
        seconds = time.perf_counter() - self.started
        if error is None:
            guard.breaker.record_success()
        else:
            guard.breaker.record_failure(error)
            guard.recovery.report(error)
        rows, nbytes = self.rows, None
        if kind == "stream":
            if call.result is not None:
                rows, nbytes = call.result.rows_sent, call.result.bytes_sent
                guard.count_streamed(rows, nbytes)
        else:
            written = kind in _WRITES
            guard.stats.record(seconds, error is None, rows if written else 0)
            metrics = guard.metrics
            metrics.labels(metrics.statements, kind, "ok" if error is None else "error").inc()
            metrics.labels(metrics.duration, kind).observe(seconds)
            if error is None and written and rows > 0:
                guard.metrics.rows_written.inc(rows)
        self._log(error, seconds, rows, nbytes)

    def _log(self, error, seconds, rows, nbytes) -> None:
        call, message = self.call, self.message
        fields = {"statement_id": self.statement_id, "session": call.session.session_id, "peer": call.peer,
                  "user": getattr(call.principal, "user", None), "type": self.route.kind,
                  "ms": round(seconds * 1000, 3), "rows": rows, "bytes": nbytes,
                  "outcome": "ok" if error is None else type(status.to_flight_error(error)).__name__}
        text = getattr(message, "query", None)
        handle = getattr(message, "prepared_statement_handle", None)
        if not text and handle:
            prepared = call.session.prepared.get(handle)
            text = prepared.sql if prepared is not None else None
        if text and self.guard.config.log_sql:
            fields["sql"] = sql_scan.redact(text)
        if error is None:
            log.info("statement", **fields)
            return
        # DuckDB's parser echoes the statement in its errors: for SQL that may carry a credential only the
        # error's kind is logged.
        detail = str(getattr(error, "message", error))
        if text and sql_scan.is_sensitive(text):
            detail = detail.split(":", 1)[0] + ": <details withheld: the statement may carry credentials>"
        log.info("statement", error=detail[:500], **fields)
