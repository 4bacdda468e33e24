"""What the baseline server scripts share: their command line, result streaming."""

from __future__ import annotations

import argparse

import pyarrow as pa
import pyarrow.flight as flight

# ~11 MB of lineitem per batch: under the ADBC driver's 16 MiB gRPC message limit.
BATCH_ROWS = 1 << 16


def parse_server_args(doc: str, token: bool = False) -> argparse.Namespace:
    """``--port N --database FILE`` (and ``--token T``) of a baseline server."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    p.add_argument("--database", required=True, help="DuckDB file to serve")
    if token:
        p.add_argument("--token", required=True, help="token clients must present")
    return p.parse_args()


def stream_query(db, sql: str, params=None) -> tuple[pa.Schema, flight.GeneratorStream]:
    """Run ``sql`` on a new cursor of ``db``: (result schema, stream of its batches).

    The cursor closes once the stream has been sent (or abandoned).
    """
    cur = db.cursor()
    try:
        cur.execute(sql, params) if params else cur.execute(sql)
        reader = cur.to_arrow_reader(BATCH_ROWS)
    except Exception:
        cur.close()
        raise

    def batches():
        try:
            yield from reader
        finally:
            cur.close()

    return reader.schema, flight.GeneratorStream(reader.schema, batches())
