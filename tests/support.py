"""Server process management and small helpers shared by the test modules."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import adbc_driver_flightsql.dbapi as flightsql_dbapi
import pyarrow.flight as flight
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_GRACE_S = 10.0
COOKIE_OPTION = "adbc.flight.sql.rpc.with_cookie_middleware"


# ---------------------------------------------------------------------------
# Server process management
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: SIGTERM the server if the pytest process dies abruptly."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


class ServerHandle:
    """A running server subprocess."""

    def __init__(self, proc: subprocess.Popen, port: int, workdir: Path,
                 database: str, stderr_path: Path, argv: list[str]):
        self.proc = proc
        self.port = port
        self.host = HOST
        self.uri = f"grpc://{HOST}:{port}"
        self.workdir = workdir
        self.database = database
        self.stderr_path = stderr_path
        self.argv = argv

    # -- clients ------------------------------------------------------------
    def connect(self, autocommit: bool = True, *, cookies: bool = False,
                db_kwargs: dict | None = None, conn_kwargs: dict | None = None,
                **kwargs: Any):
        """An ADBC DB-API connection (autocommit on unless asked otherwise)."""
        dbk = dict(db_kwargs or {})
        if cookies:
            dbk[COOKIE_OPTION] = "true"
        return flightsql_dbapi.connect(
            self.uri, db_kwargs=dbk or None, conn_kwargs=conn_kwargs,
            autocommit=autocommit, **kwargs)

    def flight_client(self) -> flight.FlightClient:
        return flight.FlightClient(self.uri)

    # -- introspection ------------------------------------------------------
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, n: int = 60) -> str:
        return "\n".join(self.stderr_text().splitlines()[-n:])

    # -- lifecycle ----------------------------------------------------------
    def stop(self, grace: float = SHUTDOWN_GRACE_S) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds.  Returns the exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"<ServerHandle {self.uri} pid={self.proc.pid}>"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _constructed(uri: str) -> bool:
    """The port opens before the server object is complete; until it is, calls answer UNAVAILABLE "starting"."""
    client = flight.FlightClient(uri)
    try:
        list(client.list_actions(flight.FlightCallOptions(timeout=2)))
        return True
    except flight.FlightUnavailableError as exc:
        return "starting" not in str(exc)  # other failures (a TLS port spoken to in plain text): go on
    except flight.FlightError:
        return True
    finally:
        client.close()


def launch_server(workdir: Path, database: str | None = None, fixed_port: int | None = None,
                  **flags: Any) -> ServerHandle:
    """Start ``python -m flight_server`` and wait until its port accepts TCP.

    ``flags`` become ``--flag-name value`` (underscores turned into dashes);
    a value of ``True`` passes the bare flag.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if database is None:
        database = str(workdir / "test.duckdb")

    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")

    last_error = ""
    for attempt in range(3):  # a free port can be taken between probe and bind
        port = fixed_port or free_port()
        argv = [sys.executable, "-m", "flight_server", "--host", HOST,
                "--port", str(port), "--database", database]
        if "http_port" not in flags:
            argv += ["--http-port", "0"]  # the HTTP side port defaults to 8080; tests run many servers
        if "auth" not in flags:
            argv += ["--auth", "none"]  # authentication is on by default; tests/test_security.py covers it
        if "allowed_directories" not in flags and "sandbox" not in flags:
            # The sandbox confines SQL file access; tests read and write files in pytest's temp folders.
            argv += ["--allowed-directories", tempfile.gettempdir()]
        for key, value in flags.items():
            if value is None or value is False:
                continue
            flag = "--" + key.replace("_", "-")
            # --flag=value: a value that starts with '-' (a random secret can) is not taken for a flag.
            argv.append(flag if value is True else f"{flag}={value}")
        stderr_path = workdir / f"server-{port}.stderr.log"
        stdout_path = workdir / f"server-{port}.stdout.log"
        with open(stderr_path, "wb") as err, open(stdout_path, "wb") as out:
            proc = subprocess.Popen(
                argv, cwd=str(workdir), env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=err,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        handle = ServerHandle(proc, port, workdir, database, stderr_path, argv)

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _port_open(port) and _constructed(handle.uri):
                return handle
            time.sleep(0.1)

        if proc.poll() is None:  # never became ready
            handle.stop(grace=2)
            pytest.fail(
                f"server did not accept connections on {port} within "
                f"{STARTUP_TIMEOUT_S}s; argv={argv}\nstderr:\n{handle.stderr_tail(200)}",
                pytrace=False)
        last_error = handle.stderr_text()
        if "address already in use" not in last_error.lower():
            break
    pytest.fail(
        f"server exited during startup with code {proc.returncode}; argv={argv}\n"
        f"stderr:\n{last_error[-8000:]}", pytrace=False)


# ---------------------------------------------------------------------------
# Helpers shared by test modules
# ---------------------------------------------------------------------------


def scalar(conn, sql: str, params=None):
    """Run ``sql`` on a new cursor and return the first column of the first row."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params) if params is not None else cur.execute(sql)
        row = cur.fetchone()
        return None if row is None else row[0]
    finally:
        cur.close()


def rows(conn, sql: str, params=None) -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params) if params is not None else cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()


def run_with_timeout(fn: Callable[[], Any], timeout: float, what: str = "operation"):
    """Run ``fn`` in a daemon thread; fail the test if it does not finish in time."""
    result: dict[str, Any] = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            result["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        pytest.fail(f"{what} did not finish within {timeout:.0f}s", pytrace=False)
    if "error" in result:
        raise result["error"]
    return result.get("value")


# ---------------------------------------------------------------------------
# Type round-trip cases (SQL evaluated both on the server and in-process)
# ---------------------------------------------------------------------------

def _values(sql_type: str, *literals: str) -> str:
    """Ordered rows (k, v) with v of ``sql_type``; a NULL row is always appended."""
    items = [f"({i + 1}, CAST({lit} AS {sql_type}))" for i, lit in enumerate(literals)]
    items.append(f"({len(literals) + 1}, CAST(NULL AS {sql_type}))")
    return f"SELECT k, v FROM (VALUES {', '.join(items)}) t(k, v) ORDER BY k"


TYPE_CASES: dict[str, str] = {
    "tinyint": _values("TINYINT", "-128", "0", "127"),
    "smallint": _values("SMALLINT", "-32768", "32767"),
    "integer": _values("INTEGER", "-2147483648", "2147483647"),
    "bigint": _values("BIGINT", "-9223372036854775808", "9223372036854775807"),
    "utinyint": _values("UTINYINT", "0", "255"),
    "usmallint": _values("USMALLINT", "0", "65535"),
    "uinteger": _values("UINTEGER", "0", "4294967295"),
    "ubigint": _values("UBIGINT", "0", "18446744073709551615"),
    "hugeint": _values("HUGEINT", "-10000000000000000000000000000000000000",
                       "99999999999999999999999999999999999999", "0"),
    "uhugeint": _values("UHUGEINT", "0", "12345678901234567890123456789012345678"),
    "decimal_4_1": _values("DECIMAL(4,1)", "-999.9", "0.5", "999.9"),
    "decimal_18_3": _values("DECIMAL(18,3)", "-999999999999999.999", "123.456"),
    "decimal_38_10": _values("DECIMAL(38,10)", "'9999999999999999999999999999.9999999999'",
                             "'-0.0000000001'"),
    "float": _values("FLOAT", "-3.4e38", "1.5", "'inf'", "'-inf'"),
    "double": _values("DOUBLE", "1e308", "-2.5", "5e-324", "'inf'"),
    "varchar": _values("VARCHAR", "''", "'héllo ✓ 日本'", "repeat('xyz', 1000)"),
    "blob": _values("BLOB", "'\\x00\\xFF\\x10'::BLOB", "''::BLOB", "'abc'::BLOB"),
    "boolean": _values("BOOLEAN", "true", "false"),
    "date": _values("DATE", "'0001-01-01'", "'1970-01-01'", "'2024-02-29'", "'9999-12-31'"),
    "time": _values("TIME", "'00:00:00'", "'12:34:56.789'", "'23:59:59.999999'"),
    "timestamp": _values("TIMESTAMP", "'1970-01-01 00:00:00'", "'2024-02-29 12:34:56.789012'",
                         "'1900-06-15 01:02:03'"),
    "timestamp_s": _values("TIMESTAMP_S", "'2024-02-29 12:34:56'", "'1969-12-31 23:59:59'"),
    "timestamp_ms": _values("TIMESTAMP_MS", "'2024-02-29 12:34:56.789'"),
    "timestamp_ns": _values("TIMESTAMP_NS", "'2024-02-29 12:34:56.123456789'",
                            "'1970-01-01 00:00:00.000000001'"),
    "timestamptz": _values("TIMESTAMPTZ", "'2024-02-29 12:34:56.789+05:30'",
                           "'1999-12-31 23:59:59+00'"),
    "interval": _values("INTERVAL", "INTERVAL '1 year 2 months 3 days 04:05:06.789'",
                        "-INTERVAL 1 DAY", "INTERVAL 0 SECONDS"),
    "uuid": _values("UUID", "'00000000-0000-0000-0000-000000000000'",
                    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'ffffffff-ffff-ffff-ffff-ffffffffffff'"),
    "list": _values("INTEGER[]", "[1, 2, NULL]", "[]"),
    "nested_list": _values("VARCHAR[][]", "[['a', 'b'], [], NULL]", "[]"),
    "fixed_array": _values("INTEGER[3]", "[1, 2, 3]", "[NULL, 5, 6]"),
    "struct": _values("STRUCT(a INTEGER, b VARCHAR)", "{'a': 1, 'b': 'x'}", "{'a': NULL, 'b': NULL}"),
    "nested_struct": _values("STRUCT(a INTEGER[], s STRUCT(x DOUBLE))",
                             "{'a': [1, 2], 's': {'x': 1.5}}"),
    "map": _values("MAP(VARCHAR, INTEGER)", "MAP {'k1': 1, 'k2': 2}", "MAP {}"),
    "enum": _values("ENUM('x', 'y', 'z')", "'x'", "'z'", "'x'"),
    "null": "SELECT 1 AS k, NULL AS v",
}

# One wide row with every type (plus a NULL row), used for schema checks.
ALL_TYPES_SQL = "SELECT * FROM (" + " UNION ALL ".join(
    "SELECT " + ", ".join(
        [f"{i} AS k"] + [
            (f"(SELECT v FROM ({sql}) WHERE k = 1) AS {name}" if i == 1
             else f"(SELECT v FROM ({sql}) WHERE k = 999) AS {name}")
            for name, sql in TYPE_CASES.items()])
    for i in (1, 2)) + ") ORDER BY k"
