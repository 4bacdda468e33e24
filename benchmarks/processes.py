"""Start and stop the benchmark's server processes (loopback only, free ports).

Every server is a subprocess with its output in a log file; it is ready when
its port accepts TCP connections, and it is terminated (SIGTERM, then
SIGKILL) when the ``with`` block is left, however it is left.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Ask the OS for a currently free loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def tail(path: Path, n: int = 30) -> str:
    """Last ``n`` lines of a text file (for server diagnostics)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM ``proc``; SIGKILL it if it has not exited within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def python_env() -> dict[str, str]:
    """Environment for Python subprocesses: the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def serving(args: list[str], port: int, log_path: Path, startup_timeout: float,
            log: Callable[[str], None],
            on_stop: Callable[[int], None] | None = None) -> Iterator[subprocess.Popen]:
    """Run ``python ARGS...`` until the ``with`` block ends; yield the process.

    Waits until ``port`` accepts connections (raising with the log tail if the
    process exits or the timeout passes first).  ``on_stop(pid)`` runs just
    before the process is stopped (CPU accounting).
    """
    cmd = [sys.executable, *args]
    log(f"starting: {' '.join(cmd)}")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=python_env(), stdout=log_file,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + startup_timeout
        while not port_open(port):
            if proc.poll() is not None:
                raise RuntimeError(f"exited with code {proc.returncode} before listening; "
                                   f"log tail:\n{tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not listening on port {port} after {startup_timeout:.0f}s; "
                                   f"log tail:\n{tail(log_path)}")
            time.sleep(0.1)
        log(f"ready on port {port} (pid {proc.pid})")
        yield proc
    finally:
        if on_stop is not None:
            on_stop(proc.pid)
        t0 = time.perf_counter()
        stop_process(proc)
        log(f"stopped pid {proc.pid} in {time.perf_counter() - t0:.1f}s (exit code {proc.returncode})")
