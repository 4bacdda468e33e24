"""Baseline: the barest pyarrow.flight server over DuckDB (benchmark only).

    python benchmarks/baselines/bare_flight.py --port N --database FILE

* ``DoGet``: the ticket is SQL text; the result streams as DuckDB's Arrow
  record batches.  Statements without a result (INSERT) answer their row count.
* ``DoPut``: the descriptor's path is a table name; the stream becomes that
  table (``CREATE OR REPLACE TABLE ... AS SELECT * FROM stream``).

No Flight SQL, no auth, no logs, no limits: the floor for what any Arrow
Flight server over DuckDB can cost.  One DuckDB cursor per call.
"""

from __future__ import annotations

import duckdb
import pyarrow.flight as flight

from common import parse_server_args, stream_query


class BareFlightServer(flight.FlightServerBase):
    def __init__(self, location: str, database: str):
        self._db = duckdb.connect(database)  # before serving starts in __init__
        super().__init__(location)

    def do_get(self, context, ticket):
        return stream_query(self._db, ticket.ticket.decode())[1]

    def do_put(self, context, descriptor, reader, writer):
        table = descriptor.path[0].decode()
        cur = self._db.cursor()
        try:
            cur.register("incoming", reader.to_reader())
            cur.execute(f'CREATE OR REPLACE TABLE "{table}" AS SELECT * FROM incoming')
        finally:
            cur.close()


def main() -> None:
    a = parse_server_args(__doc__)
    BareFlightServer(f"grpc://127.0.0.1:{a.port}", a.database).serve()


if __name__ == "__main__":
    main()
