"""Moving data in and out: files through SQL, S3 against a local S3-compatible server, plain Arrow Flight,
extensions from installed packages."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest

from lake_fixtures import moto_s3, s3_environment  # noqa: F401 - moto_s3 is a fixture
from support import REPO_ROOT, free_port


@pytest.fixture
def files_server(start_server, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    return start_server(allowed_directories=str(folder)), folder


def test_files_through_sql(files_server):
    server, folder = files_server
    pq.write_table(pa.table({"id": range(1000), "grp": [i % 7 for i in range(1000)]}), folder / "part1.parquet")
    pq.write_table(pa.table({"id": range(1000, 1500), "grp": [i % 7 for i in range(500)]}), folder / "part2.parquet")
    (folder / "people.csv").write_text("name,age\nada,36\nalan,41\n")
    (folder / "events.json").write_text('{"kind": "click", "meta": {"x": 3}}\n{"kind": "view", "meta": {"x": 5}}\n')
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*), sum(id) FROM read_parquet('{folder}/part*.parquet')")
        assert cur.fetchall() == [(1500, sum(range(1500)))]
        cur.execute(f"CREATE TABLE parts AS SELECT * FROM read_parquet('{folder}/*.parquet')")
        cur.execute("SELECT count(*) FROM parts")
        assert cur.fetchall() == [(1500,)]
        cur.execute(f"SELECT name, age FROM read_csv('{folder}/people.csv') ORDER BY age")
        assert cur.fetchall() == [("ada", 36), ("alan", 41)]
        cur.execute(f"SELECT kind, meta.x FROM read_json('{folder}/events.json') ORDER BY kind")
        assert cur.fetchall() == [("click", 3), ("view", 5)]
        cur.execute("""SELECT json_extract_string('{"a": {"b": "deep"}}', '$.a.b'), """
                    """json_extract('{"n": [1, 2, 3]}', '$.n[1]')::INT""")
        assert cur.fetchall() == [("deep", 2)]
        cur.execute(f"COPY (SELECT * FROM parts WHERE grp = 3) TO '{folder}/out.parquet' "
                    "(FORMAT PARQUET, COMPRESSION ZSTD)")
    written = pq.ParquetFile(folder / "out.parquet")
    assert written.metadata.num_rows == sum(1 for i in list(range(1000)) + list(range(500)) if i % 7 == 3)
    assert written.metadata.row_group(0).column(0).compression == "ZSTD"


def test_plain_flight_put_get_list(start_server):
    server = start_server()
    client = server.flight_client()
    table = pa.table({"id": pa.array(range(200_000), pa.int64()), "v": pa.array(range(200_000), pa.float64())})
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("plain_t"), table.schema)
    writer.write_table(table, max_chunksize=50_000)
    writer.done_writing()
    writer.close()
    append = flight.FlightCallOptions(headers=[(b"x-flight-ingest-mode", b"append")])
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("main", "plain_t"), table.schema, options=append)
    writer.write_table(table.slice(0, 1000))
    writer.done_writing()
    writer.close()
    info = client.get_flight_info(flight.FlightDescriptor.for_path("plain_t"))
    assert info.schema.names == ["id", "v"]
    pulled = client.do_get(info.endpoints[0].ticket).read_all()
    assert pulled.num_rows == 201_000
    sql = flight.FlightDescriptor.for_command("SELECT count(*) AS n, sum(id) AS s FROM plain_t")
    result = client.do_get(client.get_flight_info(sql).endpoints[0].ticket).read_all().to_pylist()
    assert result == [{"n": 201_000, "s": sum(range(200_000)) + sum(range(1000))}]
    listed = {tuple(p.decode() for p in f.descriptor.path): f.schema.names for f in client.list_flights()}
    assert any(path[-1] == "plain_t" and names == ["id", "v"] for path, names in listed.items())
    # append to a missing table fails and creates nothing
    with pytest.raises(KeyError) as info_err:  # NOT_FOUND
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("missing_t"), table.schema, options=append)
        writer.write_table(table.slice(0, 10))
        writer.done_writing()
        writer.close()
    assert "does not exist" in str(info_err.value)


def test_packaged_extension_loads_and_missing_one_stops_startup(start_server, tmp_path):
    server = start_server(extensions="tpch")
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CALL dbgen(sf=0.01)")
        cur.execute("SELECT count(*) FROM lineitem")
        assert cur.fetchall()[0][0] > 50_000
    result = subprocess.run(
        [sys.executable, "-m", "flight_server", "--auth", "none", "--port", str(free_port()), "--http-port", "-1",
         "--data-dir", str(tmp_path), "--extensions", "nosuchext"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 2
    assert "duckdb-extension-nosuchext" in result.stderr


def test_s3_read_write_files(start_server, moto_s3, monkeypatch, tmp_path):
    port, s3 = moto_s3
    for name, value in s3_environment(port).items():
        monkeypatch.setenv(name, value)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"k": range(100)}), sink)
    s3.put_object(Bucket="lake", Key="in/a.parquet", Body=sink.getvalue().to_pybytes())
    server = start_server(enable_s3="true", allowed_directories=str(tmp_path))
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT sum(k) FROM read_parquet('s3://lake/in/a.parquet')")
        assert cur.fetchall() == [(4950,)]
        cur.execute("COPY (SELECT * FROM range(10) t(i)) TO 's3://lake/out/b.parquet' (FORMAT PARQUET)")
        cur.execute("COPY (SELECT * FROM range(5) t(i)) TO 's3://lake/out/c.parquet' (FORMAT PARQUET)")
        # S3 globs are off (s3_url_compatibility_mode keeps URL parameters from overriding the server's S3
        # settings, and takes globs with it): name the files.
        cur.execute("SELECT count(*) FROM read_parquet(['s3://lake/out/b.parquet', 's3://lake/out/c.parquet'])")
        assert cur.fetchall() == [(15,)]
        with pytest.raises(Exception) as info:
            cur.execute("SELECT * FROM read_csv('/etc/passwd')")
        assert "Permission" in str(info.value)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="lake", Prefix="out/")["Contents"]}
    assert keys == {"out/b.parquet", "out/c.parquet"}
