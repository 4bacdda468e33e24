"""What the machine was doing while the benchmark ran, and what it is."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version


class CpuAccount:
    """Measure how much CPU *other* processes used while the benchmark ran.

    foreign CPU = machine busy time - this process - its children (servers,
    CLI subprocesses; recorded with :meth:`record` before they stop).
    Background work (builds, test suites) skews results, mostly concurrency.
    """

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.children_cpu = 0.0
        self._t0 = time.monotonic()
        self._busy0 = self._busy()
        self._self0 = self._own()

    def _busy(self) -> float:
        t = self._psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _own(self) -> float:
        t = self._psutil.Process().cpu_times()
        return t.user + t.system

    def record(self, pid: int) -> None:
        """Add a child's CPU time (call just before stopping it)."""
        with contextlib.suppress(Exception):
            t = self._psutil.Process(pid).cpu_times()
            self.children_cpu += t.user + t.system

    def add(self, seconds: float) -> None:
        """Add CPU seconds of reaped children measured elsewhere."""
        self.children_cpu += seconds

    def summary(self) -> str:
        """Human-readable share of the machine used by other processes."""
        wall = time.monotonic() - self._t0
        foreign = max(0.0, self._busy() - self._busy0 - (self._own() - self._self0)
                      - self.children_cpu)
        share = foreign / (wall * (os.cpu_count() or 1)) * 100
        return (f"other processes used {foreign:.0f} CPU-s in {wall:.0f}s "
                f"({share:.0f}% of the machine{'; results are noisy' if share > 5 else ''})")


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def code_version(repo: str) -> str:
    """The checkout's commit, and whether the working tree differs from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    return f"code: commit {head}" + (" with uncommitted changes" if dirty else "")


def machine_info() -> str:
    """One markdown line describing the machine and library versions."""
    libs = ["duckdb", "pyarrow", "adbc-driver-flightsql", "adbc-driver-quack",
            "duckdb-extension-quack"]
    return (f"Machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"python {platform.python_version()}; "
            + ", ".join(f"{d} {_version(d)}" for d in libs))
