"""Catalog metadata: GetObjects, GetTableSchema, GetTableTypes, GetInfo."""

from __future__ import annotations

import adbc_driver_manager
import pyarrow as pa
import pytest

from support import scalar


@pytest.fixture
def objects(conn, unique_name):
    """A schema with two tables and a view, plus a table in ``main``."""
    schema = unique_name("meta")
    names = {
        "schema": schema,
        "t1": unique_name("tab"),
        "t2": unique_name("tab"),
        "view": unique_name("vw"),
        "main_table": unique_name("mt"),
    }
    cur = conn.cursor()
    cur.execute(f"CREATE SCHEMA {schema}")
    cur.execute(f"CREATE TABLE {schema}.{names['t1']} (id INTEGER NOT NULL, name VARCHAR, "
                f"amount DECIMAL(10,2), ts TIMESTAMP)")
    cur.execute(f"CREATE TABLE {schema}.{names['t2']} (x DOUBLE)")
    cur.execute(f"CREATE VIEW {schema}.{names['view']} AS SELECT id FROM {schema}.{names['t1']}")
    cur.execute(f"CREATE TABLE {names['main_table']} (a BIGINT, b BOOLEAN)")
    cur.close()
    names["catalog"] = scalar(conn, "SELECT current_database()")
    return names


def get_objects(conn, **kwargs) -> list[dict]:
    return conn.adbc_get_objects(**kwargs).read_all().to_pylist()


def find_catalog(result, catalog):
    matches = [c for c in result if c["catalog_name"] == catalog]
    assert matches, f"catalog {catalog!r} not in {[c['catalog_name'] for c in result]}"
    return matches[0]


def find_schema(catalog_entry, schema):
    matches = [s for s in (catalog_entry["catalog_db_schemas"] or []) if s["db_schema_name"] == schema]
    assert matches, f"schema {schema!r} not in {[s['db_schema_name'] for s in catalog_entry['catalog_db_schemas'] or []]}"
    return matches[0]


def table_names(schema_entry):
    return {t["table_name"]: t for t in (schema_entry["db_schema_tables"] or [])}


def test_get_objects_catalogs(conn, objects):
    result = get_objects(conn, depth="catalogs")
    entry = find_catalog(result, objects["catalog"])
    assert not entry["catalog_db_schemas"]


def test_get_objects_db_schemas(conn, objects):
    result = get_objects(conn, depth="db_schemas")
    cat = find_catalog(result, objects["catalog"])
    find_schema(cat, "main")
    sch = find_schema(cat, objects["schema"])
    assert not sch["db_schema_tables"]


def test_get_objects_tables(conn, objects):
    result = get_objects(conn, depth="tables", db_schema_filter=objects["schema"])
    cat = find_catalog(result, objects["catalog"])
    tables = table_names(find_schema(cat, objects["schema"]))
    assert set(tables) == {objects["t1"], objects["t2"], objects["view"]}
    assert "VIEW" in tables[objects["view"]]["table_type"].upper()
    assert "VIEW" not in tables[objects["t1"]]["table_type"].upper()
    assert tables[objects["t1"]]["table_type"] == tables[objects["t2"]]["table_type"]
    assert not tables[objects["t1"]]["table_columns"]


@pytest.mark.parametrize("depth", ["columns", "all"])
def test_get_objects_columns(conn, objects, depth):
    result = get_objects(conn, depth=depth, db_schema_filter=objects["schema"],
                         table_name_filter=objects["t1"])
    cat = find_catalog(result, objects["catalog"])
    tables = table_names(find_schema(cat, objects["schema"]))
    assert set(tables) == {objects["t1"]}
    cols = tables[objects["t1"]]["table_columns"]
    assert [c["column_name"] for c in cols] == ["id", "name", "amount", "ts"]
    assert [c["ordinal_position"] for c in cols] == [1, 2, 3, 4]


def test_get_objects_unfiltered_finds_main_table(conn, objects):
    result = get_objects(conn, depth="tables")
    cat = find_catalog(result, objects["catalog"])
    assert objects["main_table"] in table_names(find_schema(cat, "main"))
    assert objects["t1"] in table_names(find_schema(cat, objects["schema"]))


def test_get_objects_column_name_filter(conn, objects):
    result = get_objects(conn, depth="columns", db_schema_filter=objects["schema"],
                         table_name_filter=objects["t1"], column_name_filter="%am%")
    cat = find_catalog(result, objects["catalog"])
    cols = table_names(find_schema(cat, objects["schema"]))[objects["t1"]]["table_columns"]
    assert [c["column_name"] for c in cols] == ["name", "amount"]


def test_table_name_filter_patterns(conn, unique_name):
    prefix = unique_name("pat")
    cur = conn.cursor()
    for suffix in ("abc", "abd", "xyz"):
        cur.execute(f"CREATE TABLE {prefix}_{suffix} (i INTEGER)")
    cur.close()
    catalog = scalar(conn, "SELECT current_database()")

    def names(pattern):
        result = get_objects(conn, depth="tables", db_schema_filter="main", table_name_filter=pattern)
        entries = [c for c in result if c["catalog_name"] == catalog]
        if not entries:
            return set()
        out = set()
        for s in entries[0]["catalog_db_schemas"] or []:
            out |= set(table_names(s))
        return out

    assert names(f"{prefix}_ab_") == {f"{prefix}_abc", f"{prefix}_abd"}
    assert names(f"{prefix}%") == {f"{prefix}_abc", f"{prefix}_abd", f"{prefix}_xyz"}
    assert names(f"{prefix}_x%") == {f"{prefix}_xyz"}
    assert names(f"{prefix}_abc") == {f"{prefix}_abc"}
    assert names(f"{prefix}_zz%") == set()


def test_db_schema_filter_patterns(conn, objects):
    def schemas(pattern):
        result = get_objects(conn, depth="db_schemas", db_schema_filter=pattern)
        cat = find_catalog(result, objects["catalog"])
        return {s["db_schema_name"] for s in cat["catalog_db_schemas"] or []}

    assert schemas("ma_n") == {"main"}
    assert objects["schema"] in schemas(objects["schema"][:6] + "%")
    assert "main" not in schemas(objects["schema"][:6] + "%")
    assert schemas("no_such_schema_%") == set()


def test_catalog_filter_patterns(conn, objects):
    catalog = objects["catalog"]
    result = get_objects(conn, depth="catalogs", catalog_filter=catalog[:2] + "%")
    assert catalog in {c["catalog_name"] for c in result}
    result = get_objects(conn, depth="catalogs", catalog_filter="zz_no_such_catalog%")
    assert catalog not in {c["catalog_name"] for c in result}


def test_table_types_filter(conn, objects):
    view_type = next(t for t in conn.adbc_get_table_types() if "VIEW" in t.upper())
    result = get_objects(conn, depth="tables", db_schema_filter=objects["schema"],
                         table_types_filter=[view_type])
    cat = find_catalog(result, objects["catalog"])
    assert set(table_names(find_schema(cat, objects["schema"]))) == {objects["view"]}


def test_get_table_schema(conn, objects):
    schema = conn.adbc_get_table_schema(objects["main_table"])
    assert schema.names == ["a", "b"]
    assert [f.type for f in schema] == [pa.int64(), pa.bool_()]

    schema = conn.adbc_get_table_schema(objects["t1"], db_schema_filter=objects["schema"])
    assert schema.names == ["id", "name", "amount", "ts"]
    assert [f.type for f in schema] == [pa.int32(), pa.string(), pa.decimal128(10, 2), pa.timestamp("us")]


def test_get_table_schema_matches_query_schema(conn, objects):
    declared = conn.adbc_get_table_schema(objects["t1"], db_schema_filter=objects["schema"])
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {objects['schema']}.{objects['t1']}")
    streamed = cur.fetch_arrow_table().schema
    cur.close()
    assert [(f.name, f.type) for f in declared] == [(f.name, f.type) for f in streamed]


def test_get_table_schema_missing_table(conn, unique_name):
    with pytest.raises(adbc_driver_manager.Error) as info:
        conn.adbc_get_table_schema(unique_name("nope"))
    assert info.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND


def test_get_table_types(conn, objects):
    types = conn.adbc_get_table_types()
    assert isinstance(types, list) and types
    assert all(isinstance(t, str) and t for t in types)
    assert any("VIEW" in t.upper() for t in types)
    result = get_objects(conn, depth="tables", db_schema_filter=objects["schema"])
    cat = find_catalog(result, objects["catalog"])
    for entry in table_names(find_schema(cat, objects["schema"])).values():
        assert entry["table_type"] in types


def test_get_info(conn):
    info = conn.adbc_get_info()
    assert "duckdb" in str(info.get("vendor_name", "")).lower(), info
    assert str(info.get("vendor_version", "")).strip(), info
    assert "flight sql" in str(info.get("driver_name", "")).lower(), info
    assert str(info.get("driver_version", "")).strip(), info
    assert str(info.get("driver_arrow_version", "")).strip(), info


def test_metadata_sees_other_sessions_new_table(conn, conn2, unique_name):
    t = unique_name()
    cur = conn2.cursor()
    cur.execute(f"CREATE TABLE {t} (z INTEGER)")
    cur.close()
    schema = conn.adbc_get_table_schema(t)
    assert schema.names == ["z"]


def test_get_table_schema_of_view(conn, objects):
    schema = conn.adbc_get_table_schema(objects["view"], db_schema_filter=objects["schema"])
    assert schema.names == ["id"]
    assert schema.field("id").type == pa.int32()


def test_get_table_schema_all_types_matches_query(conn, unique_name):
    from support import ALL_TYPES_SQL

    t = unique_name()
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {t} AS {ALL_TYPES_SQL}")
    cur.execute(f"SELECT * FROM {t}")
    streamed = cur.fetch_arrow_table().schema
    cur.close()
    declared = conn.adbc_get_table_schema(t)
    assert declared.names == streamed.names
    for d, s in zip(declared, streamed):
        assert d.type == s.type, f"{s.name}: GetTables schema {d.type} != query schema {s.type}"
