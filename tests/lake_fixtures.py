"""Fixtures for servers over a DuckLake: a private PostgreSQL cluster (the lake's catalog) in a temp folder,
moto's S3 server on loopback (the lake's data), and several server processes over one lake.

PostgreSQL: initdb/pg_ctl from PATH or /usr/lib/postgresql/*/bin (installed with apt-get when missing and
running as root); initdb refuses root, so it then runs as the `postgres` user. Without PostgreSQL the tests
that need it are skipped with the reason.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from support import HOST, ServerHandle, free_port, launch_server

CLUSTER_SECRET = "test-cluster-secret"
_names = itertools.count(1)


_TOOLS = ("initdb", "pg_ctl", "createdb")


def _bin_dir() -> str | None:
    """A folder holding initdb, pg_ctl and createdb (installed with apt-get when missing, as root)."""
    def find() -> str | None:
        which = shutil.which("initdb")
        for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True) + \
                ([os.path.dirname(which)] if which else []):
            if all(os.path.exists(os.path.join(folder, tool)) for tool in _TOOLS):
                return folder
        return None
    found = find()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
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

    def __init__(self, bin_dir: str, folder: str, port: int, as_user: list[str]):
        self.bin_dir, self.folder, self.port, self._as_user = bin_dir, folder, port, as_user

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self._as_user + [os.path.join(self.bin_dir, tool), *args], capture_output=True,
                              text=True, timeout=timeout, cwd=self.folder)

    def create_database(self) -> str:
        """A new, empty database; the catalog connection string for it."""
        name = f"lake_{os.getpid()}_{next(_names)}"
        done = self.run("createdb", "-h", HOST, "-p", str(self.port), "-U", "postgres", name)
        if done.returncode != 0:
            pytest.fail(f"createdb failed: {done.stderr}")
        return f"postgres:host={HOST} port={self.port} dbname={name} user=postgres"

    def stop(self) -> None:
        self.run("pg_ctl", "-D", os.path.join(self.folder, "data"), "-m", "immediate", "stop")


@pytest.fixture(scope="session")
def postgres():
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed and could not be installed (apt-get install -y postgresql)")
    folder = tempfile.mkdtemp(prefix="flight-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        try:
            shutil.chown(folder, "postgres")
        except (LookupError, OSError) as exc:
            pytest.skip(f"no postgres user to run PostgreSQL as: {exc}")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    cluster = PostgresCluster(bin_dir, folder, port, as_user)
    data = os.path.join(folder, "data")
    done = cluster.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed: {done.stderr.strip()[-300:]}")
    options = f"-p {port} -k {folder} -c listen_addresses={HOST} -c fsync=off -c max_connections=200"
    done = cluster.run("pg_ctl", "-D", data, "-o", options, "-l", os.path.join(folder, "log"), "-w", "start")
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {done.stderr.strip()[-300:]}")
    yield cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory):
    """moto's S3 server on loopback with a bucket `lake`: (port, boto3 client)."""
    pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    s3 = boto3.client("s3", endpoint_url=f"http://{HOST}:{port}", aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    yield port, s3
    proc.terminate()
    proc.wait(timeout=10)


def s3_environment(port: int) -> dict[str, str]:
    """The DUCKDB_S3_* settings that point a node at moto (credentials from the environment)."""
    return {"DUCKDB_S3_ACCESS_KEY_ID": "test", "DUCKDB_S3_SECRET_ACCESS_KEY": "test",
            "DUCKDB_S3_REGION": "us-east-1", "DUCKDB_S3_ENDPOINT": f"{HOST}:{port}",
            "DUCKDB_S3_URL_STYLE": "path", "DUCKDB_S3_USE_SSL": "false"}


@pytest.fixture
def lake_nodes(tmp_path):
    """Factory: start(n, catalog, data_path, **flags) -> n servers over one lake, sharing the cluster secret."""
    started: list[ServerHandle] = []

    def start(count: int, catalog: str, data_path: str, **flags) -> list[ServerHandle]:
        flags.setdefault("cluster_secret", CLUSTER_SECRET)
        nodes = []
        for _ in range(count):
            workdir = tmp_path / f"node{len(started)}"
            node = launch_server(workdir, None, lake_catalog=catalog, lake_data_path=data_path, **flags)
            started.append(node)
            nodes.append(node)
        return nodes

    yield start
    for node in started:
        node.stop()


def local_data_path(tmp_path: Path) -> str:
    return str(tmp_path / "lake-data")
