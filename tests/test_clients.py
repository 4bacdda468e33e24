"""The client toolkit (clients/): the `duckdb-flight` CLI run as a real subprocess against a real server, plus the
library's connect() and AdminClient, and the small pure helpers (statement splitting, batch bounding, rendering)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from clients import cli
from clients.admin import AdminClient, AdminError
from clients.connect import connect, tls_uri
from clients.errors import message
from clients.progress import Progress
from clients.render import format_table, head
from clients.shell import split_statements
from clients.transfer import MAX_BATCH_BYTES, MAX_BATCH_ROWS, bounded
from support import REPO_ROOT, launch_server, rows, scalar


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for this module (file database; backups land in its own work folder)."""
    workdir = tmp_path_factory.mktemp("clients")
    handle = launch_server(workdir, str(workdir / "clients.duckdb"))
    yield handle
    handle.stop()


@pytest.fixture
def run(server, tmp_path):
    """run(*args, stdin=None) -> CompletedProcess of `python -m clients` with FLIGHT_URI set to the server."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FLIGHT_URI": server.uri, "HOME": str(tmp_path)}
    env.pop("FLIGHT_PASSWORD", None)

    def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clients", *args], input=stdin, capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=60)
    return _run


@pytest.fixture
def conn(server):
    with connect(server.uri) as c:
        yield c


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def failed(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("Error: ")
    return proc.stderr


# -- query ---------------------------------------------------------------------------------------------------

def test_query_prints_aligned_table_with_row_cap(run):
    out = ok(run("query", "SELECT i, 'v' || i AS s, repeat('z', 100) AS wide FROM range(250) t(i) ORDER BY i",
                 "--max-rows", "5"))
    lines = out.splitlines()
    assert [name.strip() for name in lines[0].split(" | ")] == ["i", "s", "wide"]
    assert [line.split(" | ")[:2] for line in lines[2:7]] == [[str(i), f"v{i}"] for i in range(5)]
    assert all(len(line) < 70 and line.endswith("…") for line in lines[2:7])  # wide column truncated
    assert lines[7] == "(250 rows; first 5 shown, 245 omitted: raise --max-rows to see more)"


def test_query_nulls_and_small_results(run, server):
    out = ok(run("query", "SELECT 1 AS n, NULL::VARCHAR AS s", "--uri", server.uri))  # options after the command
    assert out.splitlines() == ["n | s", "--+-----", "1 | NULL", "(1 row)"]


@pytest.mark.parametrize("name,fmt", [("out.csv", None), ("out.parquet", None), ("out.arrow", None),
                                      ("out.data", "parquet")])
def test_query_streams_result_to_file(run, tmp_path, name, fmt):
    sql = "SELECT i, i * 2 AS twice, 'row ' || i AS label FROM range(300000) t(i)"
    args = ["query", sql, "--output", str(tmp_path / name)] + (["--format", fmt] if fmt else [])
    assert "wrote 300,000 rows" in ok(run(*args))
    table = _read(tmp_path / name, fmt or name.rsplit(".", 1)[1])
    assert table.num_rows == 300_000
    assert pa.compute.sum(table["twice"]).as_py() == 2 * sum(range(300_000))
    assert table.sort_by("i")["label"][12345].as_py() == "row 12345"
    assert not list(tmp_path.glob("*.partial"))


def _read(path, fmt: str) -> pa.Table:
    if fmt == "csv":
        return pa_csv.read_csv(path)
    if fmt == "parquet":
        return pq.read_table(path)
    with pa.ipc.open_file(path) as reader:
        return reader.read_all()


def test_query_errors_exit_1_without_traceback(run, tmp_path):
    assert "Table with name no_such_table does not exist" in failed(run("query", "SELECT * FROM no_such_table"))
    assert "syntax error" in failed(run("query", "SELEC 1"))
    assert "--format" in failed(run("query", "SELECT 1", "--output", str(tmp_path / "x.unknown")))
    failed(run("query", "SELECT [1] AS l", "--output", str(tmp_path / "l.csv")))  # CSV cannot hold lists
    assert not list(tmp_path.glob("l.csv*"))  # no partial file left behind
    assert "connect" in failed(run("--uri", "grpc://127.0.0.1:9", "query", "SELECT 1")).lower()


# -- load ----------------------------------------------------------------------------------------------------

def _numbers(n: int, start: int = 0, text_width: int = 8) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "amount": pa.array([i % 1000 / 4 for i in range(start, start + n)], pa.float64()),
                     "note": pa.array(["x" * text_width] * n)})


def _totals(conn, table: str) -> tuple[int, int, float]:
    return rows(conn, f"SELECT count(*), sum(id), sum(amount) FROM {table}")[0]


def test_load_parquet_csv_and_json(run, conn, tmp_path):
    # One 150k-row group of ~23 MB: the client must cut it below the driver's 16 MiB message limit.
    big = _numbers(150_000, text_width=150)
    pq.write_table(big, tmp_path / "big.parquet", row_group_size=150_000)
    assert big.nbytes > 16 * 2**20
    pa_csv.write_csv(_numbers(50_000), tmp_path / "part.csv")
    small = _numbers(2_000)
    (tmp_path / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in small.to_pylist()))

    for name, table, source in [("big.parquet", "load_pq", big), ("part.csv", "load_csv", _numbers(50_000)),
                                ("part.jsonl", "load_json", small)]:
        out = ok(run("load", str(tmp_path / name), "--table", table))
        assert out.startswith(f"loaded {source.num_rows:,} rows into {table} from 1 file in ") and "rows/s" in out
        assert _totals(conn, table) == (source.num_rows, sum(range(source.num_rows)),
                                        pa.compute.sum(source["amount"]).as_py())
    assert scalar(conn, "SELECT max(length(note)) FROM load_pq") == 150


def test_load_modes_and_several_files(run, conn, tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(_numbers(1_000), first)
    pq.write_table(_numbers(500, start=1_000), second)
    ok(run("load", str(first), "--table", "modes"))
    assert "already exists" in failed(run("load", str(first), "--table", "modes"))
    ok(run("load", str(second), "--table", "modes", "--mode", "append"))
    assert _totals(conn, "modes")[:2] == (1_500, sum(range(1_500)))
    ok(run("load", str(second), "--table", "modes", "--mode", "replace"))
    assert _totals(conn, "modes")[:2] == (500, sum(range(1_000, 1_500)))
    out = ok(run("load", str(first), str(second), "--table", "modes", "--mode", "replace"))
    assert "loaded 1,500 rows into modes from 2 files" in out
    assert _totals(conn, "modes")[:2] == (1_500, sum(range(1_500)))
    assert "does not exist" in failed(run("load", str(first), "--table", "missing_t", "--mode", "append"))
    assert "nope.csv: [Errno 2]" in failed(run("load", str(tmp_path / "nope.csv"), "--table", "modes"))


# -- operator actions ----------------------------------------------------------------------------------------

def test_admin_commands(run, server):
    health = json.loads(ok(run("health")))
    assert health["status"] == "healthy" and health["query_test"]["success"] is True
    stats = json.loads(ok(run("stats")))
    assert {"service", "metrics", "performance", "system", "sessions", "queue"} <= stats.keys()
    assert json.loads(ok(run("reset-breaker")))["state"] == "closed"
    with AdminClient(server.uri) as admin:
        has_backup = "backup" in admin.actions()
    if has_backup:
        backup = json.loads(ok(run("backup")))
        assert os.path.exists(backup["path"]) and backup["size_bytes"] > 0
    assert "connect" in failed(run("--uri", "grpc://127.0.0.1:9", "health")).lower()


def test_health_exits_1_when_unhealthy(server, monkeypatch, capsys):
    monkeypatch.setitem(cli.ADMIN_ACTIONS, "health", (lambda client: {"status": "unhealthy"}, ""))
    assert cli.main(["--uri", server.uri, "health"]) == 1
    assert json.loads(capsys.readouterr().out) == {"status": "unhealthy"}


# -- shell ---------------------------------------------------------------------------------------------------

def test_shell_runs_a_piped_script(run):
    script = """
        -- a comment line
        CREATE TABLE shell_t (i INTEGER, s VARCHAR);
        INSERT INTO shell_t VALUES (1, 'one;'),
                                   (2, 'two');
        SELECT * FROM no_such_table;
        SELECT i, s FROM shell_t ORDER BY i; SELECT sum(i) AS total FROM shell_t;
        .tables
        .help
        .quit
        SELECT 'never run';
    """
    proc = run("shell", stdin=script)
    assert proc.returncode == 1  # a statement failed
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "no_such_table does not exist" in errors[0]
    out = proc.stdout
    assert "i | s\n--+-----\n1 | one;\n2 | two\n(2 rows)" in out
    assert "total\n-----\n    3\n(1 row)" in out
    assert "shell_t" in out and ".quit" in out and "never run" not in out


def test_shell_exit_code_0_when_all_statements_succeed(run):
    proc = run("shell", stdin="SELECT 42 AS answer\n;\nSELECT 'unterminated at end'")
    assert ok(proc).splitlines()[:4] == ["answer", "------", "    42", "(1 row)"]
    assert "unterminated at end" in proc.stdout


# -- library -------------------------------------------------------------------------------------------------

def test_library_connect_and_admin_client(server):
    with connect(server.uri, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT ? + 1 AS x", parameters=(41,))
        assert cur.fetchall() == [(42,)]
    with AdminClient(server.uri) as admin:
        assert {"health", "statistics", "circuit-breaker-reset"} <= admin.actions().keys()
        assert admin.health()["status"] == "healthy"
        assert admin.statistics()["metrics"]["total_queries"] >= 1
        assert admin.reset_breaker() == {"previous_state": "closed", "state": "closed"}
        with pytest.raises(AdminError, match="unknown action 'nope'") as caught:
            admin.call("nope")
        assert "Python exception" not in str(caught.value)
    with pytest.raises(AdminError):
        AdminClient("grpc://127.0.0.1:9").health()


# -- helpers -------------------------------------------------------------------------------------------------

def test_split_statements():
    assert split_statements("select 1; select 'a;b' -- c;d\n; sel") == (["select 1", "select 'a;b'"], " sel")
    assert split_statements("select 'it''s;';") == (["select 'it''s;'"], "")
    assert split_statements("-- only a comment\n") == ([], "\n")


def test_bounded_batches_stay_under_limits():
    batch = _numbers(200_000, text_width=100).combine_chunks().to_batches()[0]
    pieces = list(bounded(batch))
    assert sum(p.num_rows for p in pieces) == 200_000
    assert all(p.num_rows <= MAX_BATCH_ROWS and p.nbytes <= MAX_BATCH_BYTES * 1.01 for p in pieces)
    assert list(bounded(batch.slice(0, 0))) == []


def test_render_and_messages():
    table, total = head(iter(_numbers(10).to_batches(max_chunksize=3)), _numbers(10).schema, 4)
    assert table.num_rows == 4 and total == 10
    assert format_table(table, total).splitlines()[-1].startswith("(10 rows; first 4 shown, 6 omitted")
    raw = ('INVALID_ARGUMENT: [FlightSQL] Catalog Error: Table with name x does not exist!. '
           'Detail: Python exception: pyarrow.lib.ArrowInvalid: ... (InvalidArgument; Prepare)')
    assert message(RuntimeError(raw)) == "Catalog Error: Table with name x does not exist!"
    assert tls_uri("grpc://h:1") == "grpc+tls://h:1" and tls_uri("grpc+tls://h:1") == "grpc+tls://h:1"


def test_progress_line():
    stream = io.StringIO()
    progress = Progress(stream, enabled=True)
    progress.start_file("a.parquet", 200)
    progress.update(100, 5_000_000)
    progress.finish()
    last = stream.getvalue().split("\r")[-1]
    assert "50%" in last and "a.parquet  total 100 rows" in last and "5.0 MB" in last and "MB/s" in last
