"""The server as seen by a bare ``pyarrow.flight`` client (no Flight SQL driver in between)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import flightsql_wire as wire
from support import ALL_TYPES_SQL, scalar

REQUIRED_ACTIONS = {
    "CreatePreparedStatement", "ClosePreparedStatement", "BeginTransaction", "EndTransaction",
    "CancelFlightInfo", "SetSessionOptions", "GetSessionOptions", "CloseSession",
}

GARBAGE = [b"garbage", b"\xff\xff\xff\xff\xff", b"\x0a\xff\x01short"]


@pytest.fixture
def client(server):
    c = server.flight_client()
    yield c
    c.close()


def assert_server_still_answers(server, client):
    info, table = wire.raw_query(client, "SELECT 41 + 1 AS answer")
    assert table.to_pylist() == [{"answer": 42}]
    c = server.connect()
    try:
        assert scalar(c, "SELECT 'ok'") == "ok"
    finally:
        c.close()


def test_list_actions(client):
    names = {a.type if hasattr(a, "type") else a[0] for a in client.list_actions()}
    missing = REQUIRED_ACTIONS - names
    assert not missing, f"missing actions: {sorted(missing)} (have {sorted(names)})"


@pytest.mark.parametrize("payload", GARBAGE, ids=["ascii", "ff", "truncated"])
def test_garbage_ticket(server, client, payload):
    with pytest.raises(pa.ArrowInvalid) as info:
        client.do_get(flight.Ticket(payload)).read_all()
    assert "Traceback" not in str(info.value)
    assert_server_still_answers(server, client)


@pytest.mark.parametrize("payload", GARBAGE, ids=["ascii", "ff", "truncated"])
def test_garbage_command_descriptor(server, client, payload):
    with pytest.raises(pa.ArrowInvalid) as info:
        client.get_flight_info(flight.FlightDescriptor.for_command(payload))
    assert "Traceback" not in str(info.value)
    assert_server_still_answers(server, client)


@pytest.mark.parametrize("payload", GARBAGE, ids=["ascii", "ff", "truncated"])
def test_garbage_create_prepared_statement_body(server, client, payload):
    with pytest.raises(pa.ArrowInvalid) as info:
        list(client.do_action(flight.Action("CreatePreparedStatement", payload)))
    assert "Traceback" not in str(info.value)
    assert_server_still_answers(server, client)


def test_unknown_prepared_statement_handle(server, client):
    descriptor = flight.FlightDescriptor.for_command(
        wire.command_prepared_statement_query(b"no-such-handle"))
    with pytest.raises(pa.ArrowException) as info:
        client.get_flight_info(descriptor)
    assert "Traceback" not in str(info.value)
    assert_server_still_answers(server, client)


def test_statement_query_flow(client):
    info, table = wire.raw_query(client, "SELECT i, 'v' || i AS s FROM range(5) t(i) ORDER BY i")
    assert info.schema.names == ["i", "s"]
    assert table.schema.equals(info.schema)
    assert table.to_pylist() == [{"i": i, "s": f"v{i}"} for i in range(5)]
    assert len(info.endpoints) >= 1


def test_raw_types_match_duckdb_exactly(client):
    expected = duckdb.connect().execute(ALL_TYPES_SQL).to_arrow_table()
    info, table = wire.raw_query(client, ALL_TYPES_SQL)
    for got, want in zip(table.schema, expected.schema):
        assert got.type == want.type, f"{want.name}: server {got.type} != duckdb {want.type}"
    assert table.schema.equals(expected.schema)
    # FlightInfo.schema must describe the stream exactly (the Go driver checks this)
    assert info.schema.equals(table.schema), f"FlightInfo:\n{info.schema}\nstream:\n{table.schema}"
    assert table.equals(expected)


def test_get_flight_info_executes_dml_once_without_do_get(server, client, unique_name):
    t = unique_name()
    c = server.connect()
    try:
        cur = c.cursor()
        cur.execute(f"CREATE TABLE {t} (i INTEGER)")
        cur.close()
        info = client.get_flight_info(flight.FlightDescriptor.for_command(
            wire.command_statement_query(f"INSERT INTO {t} VALUES (1), (2)")))
        # executed at GetFlightInfo time, even though nothing was fetched
        assert scalar(c, f"SELECT count(*) FROM {t}") == 2
        # fetching the result must not run the statement again
        for ep in info.endpoints:
            client.do_get(ep.ticket).read_all()
        assert scalar(c, f"SELECT count(*) FROM {t}") == 2
    finally:
        c.close()


def test_get_flight_info_executes_ddl_without_do_get(server, client, unique_name):
    t = unique_name()
    client.get_flight_info(flight.FlightDescriptor.for_command(
        wire.command_statement_query(f"CREATE TABLE {t} AS SELECT 5 AS v")))
    c = server.connect()
    try:
        assert scalar(c, f"SELECT v FROM {t}") == 5
    finally:
        c.close()


def test_prepared_statement_flow(client):
    results = list(client.do_action(flight.Action(
        "CreatePreparedStatement", wire.action_create_prepared_statement(
            "SELECT i * 2 AS doubled FROM range(3) t(i) ORDER BY i"))))
    assert len(results) == 1
    prepared = wire.parse_create_prepared_statement_result(results[0].body.to_pybytes())
    assert prepared["handle"]
    dataset_schema = wire.schema_from_ipc(prepared["dataset_schema"])
    assert dataset_schema is not None and dataset_schema.names == ["doubled"]
    assert dataset_schema.field("doubled").type == pa.int64()

    info = client.get_flight_info(flight.FlightDescriptor.for_command(
        wire.command_prepared_statement_query(prepared["handle"])))
    table = pa.concat_tables([client.do_get(ep.ticket).read_all() for ep in info.endpoints])
    assert table.to_pylist() == [{"doubled": 0}, {"doubled": 2}, {"doubled": 4}]
    # executing the same prepared statement again works
    info = client.get_flight_info(flight.FlightDescriptor.for_command(
        wire.command_prepared_statement_query(prepared["handle"])))
    table = pa.concat_tables([client.do_get(ep.ticket).read_all() for ep in info.endpoints])
    assert table.num_rows == 3

    list(client.do_action(flight.Action(
        "ClosePreparedStatement", wire.action_close_prepared_statement(prepared["handle"]))))
    # a closed handle is gone
    with pytest.raises(pa.ArrowException):
        client.get_flight_info(flight.FlightDescriptor.for_command(
            wire.command_prepared_statement_query(prepared["handle"])))


def test_get_catalogs_command(server, client):
    info = client.get_flight_info(flight.FlightDescriptor.for_command(wire.command_get_catalogs()))
    table = pa.concat_tables([client.do_get(ep.ticket).read_all() for ep in info.endpoints])
    assert table.schema.names == ["catalog_name"]
    c = server.connect()
    try:
        current = scalar(c, "SELECT current_database()")
    finally:
        c.close()
    assert current in table["catalog_name"].to_pylist()


def test_query_error_over_raw_flight(server, client):
    with pytest.raises(pa.ArrowInvalid) as info:
        wire.raw_query(client, "SELEC 1")
    assert "syntax error" in str(info.value)
    assert "Traceback" not in str(info.value)
    assert_server_still_answers(server, client)



def test_raw_session_options_report_catalog_and_schema(server, client):
    results = list(client.do_action(flight.Action("GetSessionOptions", b"")))
    assert len(results) == 1
    options = wire.parse_session_options(results[0].body.to_pybytes())
    c = server.connect()
    try:
        current = scalar(c, "SELECT current_database()")
    finally:
        c.close()
    assert options.get("catalog") == current, options
    assert options.get("schema") == "main", options


def test_raw_set_session_option_schema(client, unique_name):
    schema = unique_name("s")
    wire.raw_query(client, f"CREATE SCHEMA {schema}")
    list(client.do_action(flight.Action(
        "SetSessionOptions", wire.set_session_string_option("schema", schema))))
    _, table = wire.raw_query(client, "SELECT current_schema() AS s")
    assert table.to_pylist() == [{"s": schema}]
    results = list(client.do_action(flight.Action("GetSessionOptions", b"")))
    assert wire.parse_session_options(results[0].body.to_pybytes()).get("schema") == schema


def test_raw_close_session_drops_session_state(server, client, unique_name):
    t = unique_name("tmp")
    wire.raw_query(client, f"CREATE TEMP TABLE {t} AS SELECT 1 AS x")
    assert wire.raw_query(client, f"SELECT x FROM {t}")[1].to_pylist() == [{"x": 1}]
    list(client.do_action(flight.Action("CloseSession", b"")))
    # the next call starts a fresh session: the temp table is gone
    with pytest.raises(pa.ArrowInvalid) as info:
        wire.raw_query(client, f"SELECT x FROM {t}")
    assert "does not exist" in str(info.value)
    assert_server_still_answers(server, client)
