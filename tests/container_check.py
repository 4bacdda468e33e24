"""The container, tested for real (driven by container_check.sh once the image is built).

Runs the image with a named volume and ports published on 127.0.0.1, waits for Docker to call it healthy,
queries it through ADBC from the host with the admin password the server wrote into the volume, stops it
with `docker stop` (Docker's default 10 s) while a query runs, and expects exit code 0 and a `stopped` log
record; then starts a new container on the same volume and expects the data intact. Containers and the
volume are removed at the end, the image is kept.

    python tests/container_check.py IMAGE
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as flight

import flightsql_wire as wire  # beside this file

HEAVY = "SELECT sum(hash(i)) FROM range(20000000000) t(i)"
DOCKER_STOP_DEFAULT = 10.0
MEMORY = "2g"


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


class Check:
    def __init__(self, image: str, run_id: str):
        self.image = image
        self.run_id = run_id
        self.label = f"flight-check={run_id}"
        self.volume = f"flight-check-{run_id}"
        self.figures: dict[str, object] = {}
        self.password = ""

    # -- one container ------------------------------------------------------

    def start(self, name: str) -> tuple[str, float]:
        """Runs a container on the volume; returns its name and the seconds until Docker called it healthy."""
        started = time.monotonic()
        docker("run", "-d", "--name", name, "--label", self.label, "--memory", MEMORY,
               "-v", f"{self.volume}:/data", "-p", "127.0.0.1::31337", "-p", "127.0.0.1::8080", self.image)
        deadline = started + 120
        while True:
            status = docker("inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", name)
            if status == "running healthy":
                return name, time.monotonic() - started
            if not status.startswith("running") or time.monotonic() > deadline:
                raise AssertionError(f"{name} is '{status}', not healthy:\n{self.logs(name)[-3000:]}")
            time.sleep(0.2)

    def port(self, name: str, inside: int) -> int:
        return int(docker("port", name, f"{inside}/tcp").splitlines()[0].rsplit(":", 1)[1])

    def logs(self, name: str) -> str:
        result = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60)
        return result.stdout + result.stderr

    def connect(self, name: str):
        self.password = docker("exec", name, "cat", "/data/initial-admin-password")
        return flightsql.connect(f"grpc://127.0.0.1:{self.port(name, 31337)}", autocommit=True,
                                 db_kwargs={"username": "admin", "password": self.password})

    def stop(self, name: str) -> tuple[float, int, dict]:
        """`docker stop` with Docker's default timeout; returns its seconds, the exit code and the stopped record
        (with `signal_after`: seconds from `docker stop` to the server's "shutting down" record, and
        `exited_after`: from its "stopped" record to Docker's exit time)."""
        started, wall = time.monotonic(), time.time()
        docker("stop", name, timeout=60)
        took = time.monotonic() - started
        code = int(docker("inspect", "-f", "{{.State.ExitCode}}", name))
        records = {}
        for line in self.logs(name).splitlines():
            if line.startswith("{") and ('"stopped"' in line or '"shutting down"' in line):
                record = json.loads(line)
                records[record.get("event")] = record
        record = records.get("stopped", {})
        if record and "shutting down" in records:
            finished = docker("inspect", "-f", "{{.State.FinishedAt}}", name)
            record["signal_after"] = round(_epoch(records["shutting down"]["timestamp"]) - wall, 2)
            record["exited_after"] = round(_epoch(finished) - _epoch(record["timestamp"]), 2)
        return took, code, record

    def stall_an_ingest(self, name: str) -> tuple:
        """Starts an ingest into `stalled`, sends one batch and never ends the stream (client, open writer)."""
        client = flight.FlightClient(f"grpc://127.0.0.1:{self.port(name, 31337)}")
        options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("admin", self.password)])
        schema = pa.schema([("a", pa.int64())])
        descriptor = flight.FlightDescriptor.for_command(wire.command_statement_ingest("stalled"))
        writer, _ = client.do_put(descriptor, schema, options)
        writer.write_batch(pa.record_batch([pa.array(range(1000), pa.int64())], schema=schema))
        return client, writer

    # -- the check ----------------------------------------------------------

    def run(self) -> None:
        docker("volume", "create", "--label", self.label, self.volume)
        first, self.figures["healthy_s"] = self.start(f"flight-check-{self.run_id}-1")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port(first, 8080)}/health/ready", timeout=5) as answer:
            assert answer.status == 200, answer.status
        with self.connect(first) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept AS SELECT range AS i, 'row ' || range AS s FROM range(100000)")
            cur.execute("INSERT INTO kept VALUES (100000, 'last')")
            cur.execute("SELECT count(*), sum(i) FROM kept")
            assert cur.fetchone() == (100001, 5000050000)
            cur.execute("SELECT current_setting('memory_limit')")
            self.figures["memory_limit"] = cur.fetchone()[0]  # 75% of --memory, from the cgroup

        running = threading.Event()
        outcome: dict[str, str] = {}

        def long_query():  # plain Flight: GetFlightInfo runs the query
            client = flight.FlightClient(f"grpc://127.0.0.1:{self.port(first, 31337)}")
            try:
                options = flight.FlightCallOptions(headers=[client.authenticate_basic_token("admin", self.password)])
                descriptor = flight.FlightDescriptor.for_command(wire.command_statement_query(HEAVY))
                running.set()
                client.get_flight_info(descriptor, options)
                outcome["result"] = "finished"
            except Exception as exc:  # noqa: BLE001 - interrupted by the shutdown
                outcome["result"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            finally:
                client.close()

        worker = threading.Thread(target=long_query, daemon=True)
        worker.start()
        assert running.wait(30)
        stalled, _ = self.stall_an_ingest(first)
        time.sleep(2.0)  # the query is running in DuckDB
        took, code, record = self.stop(first)
        stalled.close()
        worker.join(timeout=10)
        self.figures.update(docker_stop_s=round(took, 2), exit_code=code, stopped=record,
                            long_query=outcome.get("result"))
        assert code == 0, f"exit code {code} after {took:.1f} s:\n{self.logs(first)[-3000:]}"
        assert took < DOCKER_STOP_DEFAULT, f"docker stop took {took:.1f} s"
        assert record, f"no `stopped` log record:\n{self.logs(first)[-3000:]}"
        assert record.get("checkpoint") == "done", record
        assert record.get("interrupted", 0) >= 1, f"the long query was not running at the stop: {record}"
        assert record.get("connections_cut", 0) >= 1, f"the stalled ingest was not cut off: {record}"

        second, self.figures["healthy_again_s"] = self.start(f"flight-check-{self.run_id}-2")
        with self.connect(second) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(i), max(s) FILTER (WHERE i = 100000) FROM kept")
            assert cur.fetchone() == (100001, 5000050000, "last"), "data changed across the restart"
            cur.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'stalled'")
            assert cur.fetchone() == (0,), "the stalled ingest left a table"
        took, code, record = self.stop(second)
        self.figures.update(idle_docker_stop_s=round(took, 2), idle_exit_code=code, idle_stopped=record)
        assert code == 0 and record, f"idle stop: exit code {code}, record {record}"

    def clean_up(self) -> None:
        names = docker("ps", "-aq", "--filter", f"label={self.label}", check=False).split()
        if names:
            docker("rm", "-f", *names, check=False)
        docker("volume", "rm", "-f", self.volume, check=False)


def _epoch(timestamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time in UTC (Docker's nanoseconds cut to microseconds)."""
    day, _, clock = timestamp.rstrip("Z").partition("T")
    whole, _, fraction = clock.partition(".")
    parsed = datetime.datetime.fromisoformat(f"{day}T{whole}").replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp() + float("0." + (fraction or "0"))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    check = Check(argv[0], os.environ.get("FLIGHT_CHECK_ID") or f"{os.getpid()}")
    try:
        check.run()
    except AssertionError as exc:
        print(f"container check FAILED: {exc}\nfigures so far: {json.dumps(check.figures)}", file=sys.stderr)
        return 1
    finally:
        check.clean_up()
    for key, value in check.figures.items():
        print(f"  {key}: {round(value, 2) if isinstance(value, float) else value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
