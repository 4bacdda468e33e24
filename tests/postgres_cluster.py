"""A private PostgreSQL server in a temp folder, for the lake's catalog in tests and benchmarks.

initdb/pg_ctl/createdb from /usr/lib/postgresql/*/bin or PATH (installed with apt-get when missing and running
as root); initdb refuses root, so as root the tools run as the `postgres` user. Trust authentication, loopback
only, the unix socket in the temp folder.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile

HOST = "127.0.0.1"
_TOOLS = ("initdb", "pg_ctl", "createdb")
_names = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be installed or started here; the message says why."""


def bin_dir(install: bool = True) -> str | None:
    """A folder holding initdb, pg_ctl and createdb (installed with apt-get when missing, as root)."""
    def find() -> str | None:
        which = shutil.which("initdb")
        for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True) + \
                ([os.path.dirname(which)] if which else []):
            if all(os.path.exists(os.path.join(folder, tool)) for tool in _TOOLS):
                return folder
        return None
    found = find()
    if found is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 600}
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            subprocess.run(["apt-get", "update"], env=env, check=False, **quiet)
            subprocess.run(["apt-get", "install", "-y", "postgresql"], env=env, check=False, **quiet)
        except (OSError, subprocess.TimeoutExpired):
            pass
        found = find()
    return found


class PostgresCluster:
    """A PostgreSQL server of its own: trust authentication on loopback, socket in its folder."""

    def __init__(self, tools: str, folder: str, port: int, as_user: list[str]):
        self.bin_dir, self.folder, self.port, self._as_user = tools, folder, port, as_user

    @classmethod
    def start(cls, port: int) -> PostgresCluster:
        tools = bin_dir()
        if tools is None:
            raise PostgresUnavailable("PostgreSQL is not installed and could not be installed "
                                      "(apt-get install -y postgresql)")
        folder = tempfile.mkdtemp(prefix="flight-pg-")
        as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as another user")
            try:
                shutil.chown(folder, "postgres")
            except (LookupError, OSError) as exc:
                raise PostgresUnavailable(f"no postgres user to run PostgreSQL as: {exc}") from None
            as_user = ["runuser", "-u", "postgres", "--"]
        cluster = cls(tools, folder, port, as_user)
        data = os.path.join(folder, "data")
        done = cluster.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
        if done.returncode == 0:
            options = f"-p {port} -k {folder} -c listen_addresses={HOST} -c fsync=off -c max_connections=200"
            done = cluster.run("pg_ctl", "-D", data, "-o", options, "-l", os.path.join(folder, "log"), "-w", "start")
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise PostgresUnavailable(f"PostgreSQL did not start: {done.stderr.strip()[-300:]}")
        return cluster

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self._as_user + [os.path.join(self.bin_dir, tool), *args], capture_output=True,
                              text=True, timeout=timeout, cwd=self.folder)

    def create_database(self) -> str:
        """A new, empty database; the catalog connection string for it."""
        name = f"lake_{os.getpid()}_{next(_names)}"
        done = self.run("createdb", "-h", HOST, "-p", str(self.port), "-U", "postgres", name)
        if done.returncode != 0:
            raise RuntimeError(f"createdb failed: {done.stderr}")
        return f"postgres:host={HOST} port={self.port} dbname={name} user=postgres"

    def stop(self) -> None:
        self.run("pg_ctl", "-D", os.path.join(self.folder, "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
