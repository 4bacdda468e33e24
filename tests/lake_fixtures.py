"""Fixtures for servers over a DuckLake: a private PostgreSQL cluster (the lake's catalog) in a temp folder,
moto's S3 server on loopback (the lake's data), and several server processes over one lake.

PostgreSQL comes from postgres_cluster.py; without it the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from postgres_cluster import PostgresCluster, PostgresUnavailable
from support import HOST, ServerHandle, free_port, launch_server

CLUSTER_SECRET = "test-cluster-secret"


@pytest.fixture(scope="session")
def postgres():
    try:
        cluster = PostgresCluster.start(free_port())
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()


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
