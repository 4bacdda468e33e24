"""Column metadata for BI tools: what JDBC/ODBC-minded clients read from Flight SQL schemas.

GetTables with include_schema (ADBC's get_objects and get_table_schema) carries Flight SQL's column metadata keys
(ARROW:FLIGHT:SQL:TYPE_NAME, PRECISION, SCALE, IS_AUTO_INCREMENT, IS_CASE_SENSITIVE, IS_READ_ONLY,
IS_SEARCHABLE, CATALOG_NAME, DB_SCHEMA_NAME/SCHEMA_NAME, TABLE_NAME), NOT NULL as Arrow nullability, and the
XDBC_* keys ADBC's metadata builder reads. Query results (prepared dataset schemas, GetSchema, FlightInfo and
the stream itself) carry the keys their types tell.

ADBC's Flight SQL driver (1.12 and its main branch) builds get_objects' xdbc_* fields from the Flight SQL keys
for the type name, the scope catalog/schema/table and auto-increment, and from the Arrow type for the data type
codes; it drops the other keys (its metadata builder never hands them on), so xdbc_column_size,
xdbc_decimal_digits and xdbc_nullable are checked here on the schema the server sends, raw.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flightsql_wire import (action_create_prepared_statement, field_bytes, field_varint, pack_any,
                            parse_create_prepared_statement_result, raw_query, schema_from_ipc)
from support import scalar

KEY = "ARROW:FLIGHT:SQL:"

# column -> (DuckDB type, NOT NULL, expected TYPE_NAME, PRECISION, SCALE, get_objects' xdbc_data_type (the driver
# derives it from the Arrow type), IS_CASE_SENSITIVE)
COLUMNS = {
    "id": ("INTEGER DEFAULT nextval('{seq}')", True, "INTEGER", "10", "0", 4, "0"),
    "big": ("BIGINT", True, "BIGINT", "19", "0", -5, "0"),
    "amount": ("DECIMAL(18,3)", True, "DECIMAL(18,3)", "18", "3", 3, "0"),
    "name": ("VARCHAR", False, "VARCHAR", None, None, 12, "1"),
    "ts": ("TIMESTAMP", False, "TIMESTAMP", "26", "6", 93, "0"),
    "tstz": ("TIMESTAMPTZ", False, "TIMESTAMP WITH TIME ZONE", "32", "6", 93, "0"),
    "ts_ns": ("TIMESTAMP_NS", False, "TIMESTAMP_NS", "29", "9", 93, "0"),
    "day": ("DATE", True, "DATE", "10", None, 91, "0"),
    "flag": ("BOOLEAN", False, "BOOLEAN", "1", None, -7, "0"),
    "payload": ("BLOB", False, "BLOB", None, None, -2, "0"),  # the driver's code for Arrow binary
    "tags": ("VARCHAR[]", False, "VARCHAR[]", None, None, None, "0"),
    "point": ("STRUCT(x DOUBLE, y DOUBLE)", False, "STRUCT(x DOUBLE, y DOUBLE)", None, None, None, "0"),
    "ratio": ("DOUBLE", False, "DOUBLE", "53", None, 6, "0"),  # the driver maps float64 to XDBC FLOAT
}


@pytest.fixture
def bi_table(conn, unique_name):
    """A table with many types, NOT NULL columns, a sequence default and a comment, plus a view over it."""
    schema, table, view, seq = unique_name("bi"), unique_name("wide"), unique_name("wide_v"), unique_name("seq")
    cur = conn.cursor()
    cur.execute(f"CREATE SCHEMA {schema}")
    cur.execute(f"CREATE SEQUENCE {schema}.{seq}")
    columns = ", ".join(f"{name} {spec[0].format(seq=f'{schema}.{seq}')}{' NOT NULL' if spec[1] else ''}"
                        for name, spec in COLUMNS.items())
    cur.execute(f"CREATE TABLE {schema}.{table} ({columns})")
    cur.execute(f"COMMENT ON COLUMN {schema}.{table}.amount IS 'money, in euros'")
    cur.execute(f"CREATE VIEW {schema}.{view} AS SELECT id, name FROM {schema}.{table}")
    cur.close()
    return {"catalog": scalar(conn, "SELECT current_database()"), "schema": schema, "table": table,
            "view": view}


def _columns_from_get_objects(conn, names: dict, table: str) -> list[dict]:
    result = conn.adbc_get_objects(depth="all", catalog_filter=names["catalog"], db_schema_filter=names["schema"],
                                   table_name_filter=table).read_all().to_pylist()
    (catalog,) = [c for c in result if c["catalog_name"] == names["catalog"]]
    (schema,) = [s for s in catalog["catalog_db_schemas"] if s["db_schema_name"] == names["schema"]]
    (entry,) = [t for t in schema["db_schema_tables"] if t["table_name"] == table]
    return entry["table_columns"]


def test_get_objects_fills_xdbc_fields(conn, bi_table):
    columns = _columns_from_get_objects(conn, bi_table, bi_table["table"])
    assert [c["column_name"] for c in columns] == list(COLUMNS)
    for column in columns:
        name = column["column_name"]
        _, _, type_name, _, _, code, _ = COLUMNS[name]
        assert column["xdbc_type_name"] == type_name, name
        if code is not None:
            assert column["xdbc_data_type"] == code, name
            assert column["xdbc_sql_data_type"] == code, name
        assert column["xdbc_scope_catalog"] == bi_table["catalog"], name
        assert column["xdbc_scope_schema"] == bi_table["schema"], name
        assert column["xdbc_scope_table"] == bi_table["table"], name
        assert column["xdbc_is_autoincrement"] is (name == "id"), name
    assert [c["ordinal_position"] for c in columns] == list(range(1, len(COLUMNS) + 1))


def test_get_table_schema_carries_flight_sql_keys(conn, bi_table):
    schema = conn.adbc_get_table_schema(bi_table["table"], catalog_filter=bi_table["catalog"],
                                        db_schema_filter=bi_table["schema"])
    assert schema.names == list(COLUMNS)
    for field in schema:
        _, not_null, type_name, precision, scale, _, case_sensitive = COLUMNS[field.name]
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        assert field.nullable is not not_null, field.name
        assert meta[KEY + "TYPE_NAME"] == type_name, field.name
        assert meta.get(KEY + "PRECISION") == precision, field.name
        assert meta.get(KEY + "SCALE") == scale, field.name
        assert meta[KEY + "IS_CASE_SENSITIVE"] == case_sensitive, field.name
        assert meta[KEY + "IS_AUTO_INCREMENT"] == ("1" if field.name == "id" else "0"), field.name
        assert meta[KEY + "IS_READ_ONLY"] == "0", field.name
        assert meta[KEY + "IS_SEARCHABLE"] == "1", field.name
        assert meta[KEY + "CATALOG_NAME"] == bi_table["catalog"], field.name
        assert meta[KEY + "DB_SCHEMA_NAME"] == meta[KEY + "SCHEMA_NAME"] == bi_table["schema"], field.name
        assert meta[KEY + "TABLE_NAME"] == bi_table["table"], field.name


def test_view_columns_are_read_only(conn, bi_table):
    schema = conn.adbc_get_table_schema(bi_table["view"], catalog_filter=bi_table["catalog"],
                                        db_schema_filter=bi_table["schema"])
    assert schema.names == ["id", "name"]
    for field in schema:
        assert field.metadata[(KEY + "IS_READ_ONLY").encode()] == b"1", field.name
        assert field.metadata[(KEY + "TABLE_NAME").encode()] == bi_table["view"].encode()


def _raw_get_tables(server, names: dict, table: str) -> dict[str, pa.Schema]:
    """GetTables(include_schema) over plain pyarrow.flight: {table name: its table_schema}."""
    command = pack_any("CommandGetTables", field_bytes(1, names["catalog"]) + field_bytes(2, names["schema"])
                       + field_bytes(3, table) + field_varint(5, 1))
    client = server.flight_client()
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command))
        result = client.do_get(info.endpoints[0].ticket).read_all()
    finally:
        client.close()
    return {row["table_name"]: pa.ipc.read_schema(pa.py_buffer(row["table_schema"])) for row in result.to_pylist()}


def test_get_tables_schema_carries_xdbc_keys(server, bi_table):
    """The keys get_objects' xdbc_column_size / decimal_digits / nullable / column_def / remarks are meant for."""
    (schema,) = _raw_get_tables(server, bi_table, bi_table["table"]).values()

    def meta(name):
        return {k.decode(): v.decode() for k, v in schema.field(name).metadata.items()}

    assert meta("amount")["XDBC_COLUMN_SIZE"] == "18"
    assert meta("amount")["XDBC_DECIMAL_DIGITS"] == "3"
    assert meta("amount")["XDBC_NUM_PREC_RADIX"] == "10"
    assert meta("amount")["XDBC_NULLABLE"] == "0" and meta("amount")["XDBC_IS_NULLABLE"] == "NO"
    assert meta("amount")["REMARKS"] == "money, in euros"
    assert meta("name")["XDBC_NULLABLE"] == "1" and meta("name")["XDBC_IS_NULLABLE"] == "YES"
    assert "XDBC_COLUMN_SIZE" not in meta("name")  # DuckDB's VARCHAR has no maximum length
    assert meta("id")["XDBC_COLUMN_DEF"].startswith("nextval(")
    assert meta("id")["XDBC_IS_AUTOINCREMENT"] == "true"
    assert meta("tstz")["XDBC_DATETIME_SUB"] == "5" and meta("ts")["XDBC_DATETIME_SUB"] == "3"
    assert meta("day")["XDBC_DATETIME_SUB"] == "1"
    assert meta("ratio")["XDBC_NUM_PREC_RADIX"] == "2"


def test_table_schema_matches_streamed_types(conn, bi_table):
    """The metadata rides on the same Arrow types a SELECT * streams."""
    declared = conn.adbc_get_table_schema(bi_table["table"], catalog_filter=bi_table["catalog"],
                                          db_schema_filter=bi_table["schema"])
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {bi_table['schema']}.{bi_table['table']}")
    streamed = cur.fetch_arrow_table().schema
    cur.close()
    assert [(f.name, f.type) for f in declared] == [(f.name, f.type) for f in streamed]


QUERY = ("SELECT 1::INTEGER AS i, 2.5::DECIMAL(9,2) AS d, 'x'::VARCHAR AS s, TIMESTAMPTZ '2024-01-01 00:00:00+00' AS t, "
         "[1, 2] AS l")
QUERY_KEYS = {"i": ("INTEGER", "10", "0"), "d": ("DECIMAL(9,2)", "9", "2"), "s": ("VARCHAR", None, None),
              "t": ("TIMESTAMP WITH TIME ZONE", "32", "6"), "l": ("INTEGER[]", None, None)}


def _assert_query_keys(schema: pa.Schema) -> None:
    assert schema.names == list(QUERY_KEYS)
    for field in schema:
        type_name, precision, scale = QUERY_KEYS[field.name]
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        assert meta[KEY + "TYPE_NAME"] == type_name, field.name
        assert meta.get(KEY + "PRECISION") == precision, field.name
        assert meta.get(KEY + "SCALE") == scale, field.name
        assert meta[KEY + "IS_CASE_SENSITIVE"] == ("1" if field.name == "s" else "0"), field.name
        assert meta[KEY + "IS_SEARCHABLE"] == "1", field.name
        assert KEY + "TABLE_NAME" not in meta, field.name  # DuckDB does not say where a result column came from


def test_prepared_dataset_schema_carries_keys(conn):
    cur = conn.cursor()
    cur.adbc_prepare(QUERY)
    _assert_query_keys(cur.adbc_execute_schema(QUERY))
    cur.close()


def test_statement_get_schema_carries_keys(conn):
    cur = conn.cursor()
    _assert_query_keys(cur.adbc_execute_schema(QUERY))
    cur.close()


def test_executed_query_schema_carries_keys(conn):
    """The result a client fetches (ResultSet metadata, for JDBC) carries them too."""
    cur = conn.cursor()
    cur.execute(QUERY)
    _assert_query_keys(cur.fetch_arrow_table().schema)
    cur.close()


def test_flight_info_and_stream_schemas_carry_keys(server):
    client = server.flight_client()
    try:
        info, table = raw_query(client, QUERY)
    finally:
        client.close()
    _assert_query_keys(info.schema)
    _assert_query_keys(table.schema)
    assert table.num_rows == 1


def test_create_prepared_statement_result_dataset_schema(server):
    client = server.flight_client()
    try:
        results = list(client.do_action(flight.Action("CreatePreparedStatement",
                                                      action_create_prepared_statement(QUERY))))
    finally:
        client.close()
    parsed = parse_create_prepared_statement_result(results[0].body.to_pybytes())
    _assert_query_keys(schema_from_ipc(parsed["dataset_schema"]))


def test_xdbc_type_info_lists_duckdb_time_types(server):
    client = server.flight_client()
    try:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(pack_any("CommandGetXdbcTypeInfo", b"")))
        table = client.do_get(info.endpoints[0].ticket).read_all()
    finally:
        client.close()
    rows = {row["type_name"]: row for row in table.to_pylist()}
    assert {"TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIME_NS", "UHUGEINT"} <= set(rows)
    assert (rows["TIMESTAMP_NS"]["minimum_scale"], rows["TIMESTAMP_NS"]["maximum_scale"]) == (9, 9)
    assert rows["TIMESTAMP"]["column_size"] == 26
    assert [r["data_type"] for r in table.to_pylist()] == sorted(r["data_type"] for r in table.to_pylist())


def test_many_tables_in_one_call_get_their_own_types(server, conn, unique_name):
    """GetTables for many tables at once (as BI tools ask at connect): every table's schema is the one its
    SELECT * streams, column for column, with its own type names."""
    from support import TYPE_CASES

    schema = unique_name("many")
    cur = conn.cursor()
    cur.execute(f"CREATE SCHEMA {schema}")
    names = sorted(TYPE_CASES)
    for index, case in enumerate(names):
        # Tables of different widths, so columns of different tables interleave in column order.
        extra = ", ".join(f"{i} AS k{i}" for i in range(index % 4))
        cur.execute(f"CREATE TABLE {schema}.t_{case} AS SELECT {extra + ', ' if extra else ''}v "
                    f"FROM ({TYPE_CASES[case]})")
    cur.execute(f"CREATE VIEW {schema}.v_all AS SELECT * FROM {schema}.t_list, {schema}.t_struct")
    catalog = scalar(conn, "SELECT current_database()")
    declared = _raw_get_tables(server, {"catalog": catalog, "schema": schema}, "%")
    assert set(declared) == {f"t_{case}" for case in names} | {"v_all"}
    for table, table_schema in declared.items():
        cur.execute(f"SELECT * FROM {schema}.{table}")
        streamed = cur.fetch_arrow_table().schema
        assert [(f.name, f.type) for f in table_schema] == [(f.name, f.type) for f in streamed], table
        cur.execute(f"SELECT data_type FROM duckdb_columns() WHERE schema_name = '{schema}' "
                    f"AND table_name = '{table}' ORDER BY column_index")
        assert [f.metadata[(KEY + "TYPE_NAME").encode()].decode() for f in table_schema] == \
            [row[0] for row in cur.fetchall()], table
    cur.close()
