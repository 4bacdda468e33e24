"""Baseline: DuckDB's own Quack remote protocol server (benchmark only).

    python benchmarks/baselines/quack_server.py --port N --database FILE --token T

Opens ``FILE``, loads the ``quack`` extension (``duckdb-extension-quack``, same
DuckDB version) and ``httpfs`` (the server's HTTP layer needs it) from their
pip packages with ``LOAD`` (never ``INSTALL``), runs
``CALL quack_serve('quack:127.0.0.1:N', token => T)`` and keeps the process
alive until SIGTERM.  Clients connect with ``adbc-driver-quack``.
"""

from __future__ import annotations

import os
import signal
import threading

import duckdb

from common import parse_server_args


def packaged_extension(module_name: str, name: str) -> str:
    """Path of ``name``'s binary shipped in the ``module_name`` pip package."""
    module = __import__(module_name)
    path = os.path.join(os.path.dirname(module.__file__), "extensions",
                        "v" + duckdb.__version__, f"{name}.duckdb_extension")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{name} extension not found at {path}")
    return path


def main() -> None:
    a = parse_server_args(__doc__, token=True)
    con = duckdb.connect(a.database)
    con.execute(f"LOAD '{packaged_extension('duckdb_extension_httpfs', 'httpfs')}'")
    con.execute(f"LOAD '{packaged_extension('duckdb_extension_quack', 'quack')}'")
    con.execute("CALL quack_serve(?, token => ?)", [f"quack:127.0.0.1:{a.port}", a.token])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    con.execute("CALL quack_stop(?)", [f"quack:127.0.0.1:{a.port}"])
    con.close()


if __name__ == "__main__":
    main()
