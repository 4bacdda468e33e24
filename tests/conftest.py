"""Shared fixtures for the end-to-end suite.

Every test talks to a real ``python -m flight_server`` subprocess through real
clients (the ADBC Flight SQL driver and ``pyarrow.flight``).  One server (file
database) is shared by the whole session; tests that need special flags start
their own through the ``start_server`` factory.  Tests sharing the session
server use unique object names (see the ``unique_name`` fixture).
"""

from __future__ import annotations

import faulthandler
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
for _p in (str(REPO_ROOT), str(TESTS_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from support import ServerHandle, launch_server  # noqa: E402

# Hard per-test watchdog: a hung test dumps all stacks and ends the run
# instead of hanging CI.  Generous: the slowest test takes well under a minute.
TEST_WATCHDOG_S = 300.0


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

_SESSION_SERVER: list[ServerHandle] = []


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> ServerHandle:
    """The shared server: file database, generous pool so tests don't starve."""
    workdir = tmp_path_factory.mktemp("server")
    handle = launch_server(workdir, str(workdir / "shared.duckdb"), pool_size=64)
    _SESSION_SERVER.append(handle)
    yield handle
    handle.stop()
    _SESSION_SERVER.remove(handle)


@pytest.fixture
def start_server(tmp_path) -> Callable[..., ServerHandle]:
    """Factory for a private server: ``start_server(pool_size=2, ...)``.

    ``database=":memory:"`` or a path may be given; default is a file in tmp_path.
    """
    started: list[ServerHandle] = []

    def _start(database: str | None = None, **flags: Any) -> ServerHandle:
        workdir = tmp_path / f"srv{len(started)}"
        handle = launch_server(workdir, database, **flags)
        started.append(handle)
        return handle

    yield _start
    for handle in started:
        handle.stop()


@pytest.fixture
def conn(server):
    """A fresh autocommit ADBC connection to the shared server."""
    c = server.connect()
    yield c
    try:
        c.close()
    finally:
        assert server.alive(), f"server died during the test\n{server.stderr_tail()}"


@pytest.fixture
def conn2(server):
    """A second, independent autocommit connection to the shared server."""
    c = server.connect()
    yield c
    c.close()


@pytest.fixture
def unique_name(request) -> Callable[[str], str]:
    """``unique_name("t")`` -> a table name unique to this test invocation."""
    base = re.sub(r"[^0-9a-zA-Z]+", "_", request.node.name).strip("_").lower()[:40]

    def _make(prefix: str = "t") -> str:
        return f"{prefix}_{base}_{uuid.uuid4().hex[:8]}"

    return _make


# ---------------------------------------------------------------------------
# Hooks: watchdog and server stderr on failure
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(TEST_WATCHDOG_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and _SESSION_SERVER:
        handle = _SESSION_SERVER[0]
        state = "alive" if handle.alive() else f"EXITED ({handle.proc.returncode})"
        report.sections.append(
            (f"shared server stderr (tail, {state})", handle.stderr_tail(40)))
