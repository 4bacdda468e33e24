"""Operator actions: health (open to all), statistics, circuit-breaker-reset and backup, with JSON bodies and results."""

from __future__ import annotations

import json
import os
import shlex
import time

import psutil

from ...engine import backup
from ...engine.errors import EngineError
from ...resilience.breaker import OPEN


class OperationsHandlers:
    def health_report(self) -> dict:
        started = time.perf_counter()
        try:
            conn = self.database.connect()
            try:
                conn.execute("SELECT 1").fetchall()
            finally:
                conn.close()
            query_ok = True
        except Exception as exc:
            query_ok = False
            self.recovery.report(exc)
        elapsed = time.perf_counter() - started
        path = self.database.path
        exists = path == ":memory:" or os.path.exists(path)
        size_mb = os.path.getsize(path) / 1e6 if path != ":memory:" and exists else 0.0
        breaker = self.breaker.stats()
        pool = self.pool.stats()
        queue = self.admission.stats()
        saturated = queue["running"] >= queue["max_running"] and queue["queued"] > 0  # statements wait for slots
        broken = self.recovery.broken
        if not query_ok or not exists or broken:
            status = "unhealthy"
        elif (breaker["state"] != "closed" or pool["available_connections"] == 0 or self.admission.draining
              or saturated):
            status = "degraded"
        else:
            status = "healthy"
        return {
            "status": status,
            "service_initialized": True,
            "database_exists": exists,
            "database_size_mb": round(size_mb, 3),
            "query_test": {"success": query_ok, "execution_time": round(elapsed, 6)},
            "database": {"state": "reopening" if broken else "open", "fatal_error": broken,
                         "reopens": self.database.reopens},
            "connection_pool": pool,
            "admission": {k: queue[k] for k in ("running", "queued", "max_running")},
            "circuit_breaker": {k: breaker[k] for k in ("state", "failure_count", "success_rate")},
        }

    def ready(self) -> tuple[bool, dict]:
        open_breaker = self.breaker.stats()["state"] == OPEN
        broken = self.recovery.broken
        ok = not open_breaker and not self.admission.draining and not broken
        return ok, {"circuit_breaker": self.breaker.state, "draining": self.admission.draining,
                    "database": "reopening" if broken else "open"}

    def live(self) -> tuple[bool, dict]:
        """Alive unless the database is invalidated and not yet reopened (the server keeps trying; an
        orchestrator may restart it instead)."""
        broken = self.recovery.broken
        if broken:
            return False, {"database": "reopening", "fatal_error": broken}
        return True, {}

    def statistics_report(self) -> dict:
        process = psutil.Process()
        path = self.database.path
        folder = os.path.dirname(os.path.abspath(path)) if path != ":memory:" else os.getcwd()
        stats = self.stats.snapshot()
        return {
            "service": {
                "uptime_seconds": round(time.time() - self.started, 3),
                "memory_limit": self.database.setting("memory_limit"),
                "worker_threads": int(self.database.setting("threads")),
                "version": self.sql_info.values[1],
            },
            "metrics": {k: stats[k] for k in ("total_queries", "successful_queries", "failed_queries",
                                               "success_rate", "avg_query_time")},
            "performance": {k: stats[k] for k in ("recent_query_times", "queries_over_1s", "queries_over_5s")},
            "system": {
                "process_memory_mb": round(process.memory_info().rss / 1e6, 3),
                "cpu_percent": process.cpu_percent(interval=0.05),
                "disk_usage_percent": psutil.disk_usage(folder).percent,
            },
            "sessions": {"active": len(self.pool.sessions()), **self.pool.stats(),
                         "reclaimed": dict(self.pool.reclaimed)},
            "results": self.pool.spill.stats() if self.pool.spill is not None else {},
            "queue": self.admission.stats(),
            "data": {k: stats[k] for k in ("rows_written", "rows_streamed", "bytes_streamed")},
            "circuit_breaker": self.breaker.stats(),
            "watchdog": {"interrupts": self.watchdog.interrupts},
        }

    def action_health(self, context, body: bytes):
        return [json.dumps(self.health_report()).encode()]

    def action_statistics(self, context, body: bytes):
        return [json.dumps(self.statistics_report()).encode()]

    def action_backup(self, context, body: bytes):
        key_file = backup.key_path(self.config.data_dir)
        try:
            key = backup.load_key(key_file, create=True)
        except (OSError, backup.BackupError) as exc:
            raise EngineError(f"cannot use the backup key: {exc}") from None
        conn = self.database.connect()
        try:
            result = backup.backup(conn, self.config.backup_directory, key)
        finally:
            conn.close()
        database = self.database.path
        command = ["duckdb-flight-server", "restore", result["path"], "--backup-key", key_file]
        if database != ":memory:":
            command += ["--database", os.path.abspath(database)]
        allowed = self.database.settings.allowed_directories
        command += (["--allowed-directories", ",".join(os.path.abspath(p) for p in allowed)] if allowed is not None
                    else ["--sandbox", "false"])
        result["restore"] = shlex.join(command)  # to run with the server stopped
        exposed = self._reachable_from_sql(self.config.backup_directory, key_file)
        if exposed:
            result["warning"] = exposed
        return [json.dumps(result).encode()]

    def _reachable_from_sql(self, *paths: str) -> str | None:
        """Says so when the sandbox lets SQL reach one of `paths` (configured into an allowed directory, or off)."""
        allowed = self.database.settings.allowed_directories
        if allowed is None:
            return "the sandbox is off: SQL can read and change backups and their key"
        for folder in allowed:
            root = os.path.realpath(folder)
            for path in paths:
                if os.path.commonpath([root, os.path.realpath(path)]) == root:
                    return (f"{path} is inside the allowed directory {folder}: SQL can reach it; keep "
                            "--backup-dir and the data folder outside --allowed-directories")
        return None

    def action_circuit_breaker_reset(self, context, body: bytes):
        before = self.breaker.state
        self.breaker.reset()
        return [json.dumps({"previous_state": before, "state": self.breaker.state}).encode()]
