"""The shortcuts that make the role decision cheap (auth/roles.py, auth/sql_scan.py), attacked.

roles._resolve replaces os.path.realpath(os.path.join(cwd, literal)) with a walk that stops at the first
name that does not exist; sql_scan remembers spans it has read. Both must give exactly what the plain
computation gives, whatever the file system holds: symbolic links in the working directory, in the home
folder, deep in a path, looping or dangling, names that look like dates, '..' after a missing name, globs.
"""

from __future__ import annotations

import itertools
import os
import random

import duckdb
import pytest

from flight_server.auth import roles, sql_scan


def _reference(value: str, cwd: str) -> str:
    """What the role check computed before the shortcut (and still must): realpath of the joined name."""
    if value.lower().startswith("file://"):
        value = value[7:]
    return os.path.realpath(os.path.join(cwd, os.path.expanduser(value)))


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    """data/ (the server's files), work/ (the working directory, full of links into data/), home/."""
    data, work, home = tmp_path / "data", tmp_path / "work", tmp_path / "home"
    for folder in (data / "tmp", data / "backups", work / "real" / "deeper", work / "files", home):
        folder.mkdir(parents=True)
    (data / "flight.duckdb").write_text("db")
    (work / "plainfile").write_text("x")
    links = {
        work / "link_data": "../data",  # relative link to the data folder
        work / "abs_data": str(data),  # absolute link
        work / "1998-09-02": str(data / "flight.duckdb"),  # a "date" literal that is a link to the database
        work / "real" / "inner": "../../data",  # a link below a real folder
        work / "real" / "deeper" / "up": "..",  # a link to a parent
        work / "chain": "link_data",  # a link to a link
        work / "loop": "loop",  # a loop
        work / "dangling": "nowhere/at/all",
        work / "dangling_data": str(data / "not-yet"),  # dangling, into the data folder
        home / "mine": str(data),
        work / "star*": str(data),  # a name with glob characters that exists
    }
    for link, target in links.items():
        link.symlink_to(target)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    protected = (str(data / "flight.duckdb"), str(data / "flight.duckdb") + ".wal", str(data / "tmp"),
                 str(data / "backups"))
    return data, work, home, roles.Policy(protected_paths=protected, cwd=str(work))


NAMES = ["", ".", "..", "link_data", "abs_data", "1998-09-02", "real", "inner", "deeper", "up", "chain", "loop",
         "dangling", "dangling_data", "plainfile", "missing", "files", "flight.duckdb", "tmp", "backups", "*",
         "**", "?", "[t]mp", "star*", "FLIGHT.DUCKDB", "data", "work", "mine", "x.csv"]


def _values(data, work) -> list[str]:
    """Literals built from the names above, relative, absolute, with every prefix the check handles."""
    rng = random.Random(11)
    found = set()
    for count in (1, 2, 3):
        for names in itertools.product(NAMES, repeat=count) if count < 3 else \
                (tuple(rng.choice(NAMES) for _ in range(3)) for _ in range(3000)):
            found.add("/".join(names))
    found |= {f"{data}/{v}" for v in list(found)[:800]} | {f"{work}/{v}" for v in list(found)[:800]}
    found |= {v + "/" for v in list(found)[:500]} | {v.replace("/", "//") for v in list(found)[:500]}
    prefixes = ["file://", "FILE://", "~/", "~", "/", "./", "//"]
    found |= {p + v for p in prefixes for v in list(found)[:400]}
    found |= {f"{data}/flight.duckdb", f"{data}/flight.duckdb.wal", f"{data}/tmp/x", f"{data}//tmp",
              f"{data}/./tmp/", f"{work}/missing/../link_data/flight.duckdb", "missing/../1998-09-02",
              f"/nonexistent/../{data}/tmp", "~root", "~nosuchuser/x", "file://~/mine/tmp"}
    return sorted(v for v in found if v)


def test_resolve_is_realpath_whatever_the_links(tree):
    data, work, _, policy = tree
    cwd = policy.derived.cwd
    values = _values(data, work)
    assert len(values) > 3000
    differ = [(v, roles._resolve(v, cwd), _reference(v, cwd)) for v in values
              if roles._resolve(v, cwd) != _reference(v, cwd)]
    assert differ == []


def _decision(sql: str, policy: roles.Policy) -> str:
    return max((roles.decide(s, policy).role for s in duckdb.connect().extract_statements(sql)),
               key=lambda role: roles._RANK[role])


@pytest.mark.parametrize("literal", [
    "1998-09-02",  # looks like a date, is a link to the database
    "link_data/flight.duckdb", "link_data/tmp", "link_data/tmp/", "link_data//tmp/x", "./link_data/./tmp",
    "abs_data/flight.duckdb.wal", "chain/backups/b.parquet", "real/inner/flight.duckdb",
    "real/deeper/up/inner/tmp", "missing/../link_data/flight.duckdb", "files/../link_data/tmp",
    "file://link_data/flight.duckdb", "FILE://abs_data/tmp", "~/mine/flight.duckdb", "file://~/mine/tmp/x",
    "link_data/tmp/*", "link_data/tmp/**/x.csv", "star*/flight.duckdb", "star*/tmp/[a-z]*",
])
def test_links_into_the_server_files_are_refused(tree, literal):
    _, _, _, policy = tree
    assert _decision(f"SELECT * FROM read_blob('{literal}')", policy) == roles.NOBODY


@pytest.mark.parametrize("literal", [
    "1998-09-03", "missing/flight.duckdb", "dangling/tmp", "loop/tmp", "plainfile/tmp", "files/x.csv",
    "link_data/other.csv", "~/x", "file://files/x.csv", "%special%requests%",
])
def test_names_outside_the_server_files_pass(tree, literal):
    _, _, _, policy = tree
    assert _decision(f"SELECT * FROM read_blob('{literal}')", policy) == roles.READ


def test_a_link_made_after_the_first_check_is_seen(tree):
    """Nothing about the literal's own path is remembered between checks: a link made later (by someone
    with shell access) counts from the next statement on."""
    data, work, _, policy = tree
    sql = "SELECT * FROM read_blob('later/flight.duckdb')"
    assert _decision(sql, policy) == roles.READ
    (work / "later").symlink_to(data)
    assert _decision(sql, policy) == roles.NOBODY
    (work / "later").unlink()
    (work / "later").mkdir()
    (work / "later" / "flight.duckdb").symlink_to(data / "flight.duckdb")
    assert _decision(sql, policy) == roles.NOBODY


def test_a_dangling_link_into_the_data_folder_is_refused_once_it_lands(tree):
    data, _, _, policy = tree
    sql = "SELECT * FROM read_blob('dangling_data')"
    assert _decision(sql, policy) == roles.READ  # data/not-yet is not protected
    (data / "not-yet").symlink_to(data / "tmp")
    assert _decision(sql, policy) == roles.NOBODY  # now a link to a link into tmp


def test_working_directory_given_as_a_link(tree, tmp_path):
    """A policy whose cwd is a link resolves relative names from the link's target, as realpath did."""
    data, work, _, policy = tree
    (tmp_path / "cwd-link").symlink_to(data)
    through_link = roles.Policy(protected_paths=policy.protected_paths, cwd=str(tmp_path / "cwd-link"))
    assert _decision("SELECT * FROM read_blob('tmp/x')", through_link) == roles.NOBODY
    assert _decision("SELECT * FROM read_blob('flight.duckdb')", through_link) == roles.NOBODY
    assert _decision("SELECT * FROM read_blob('other')", through_link) == roles.READ


def test_working_directory_inside_a_protected_folder_refuses_every_relative_name(tree):
    data, _, _, policy = tree
    inside = roles.Policy(protected_paths=policy.protected_paths, cwd=str(data / "tmp"))
    assert _decision("SELECT 'BUILDING'", inside) == roles.NOBODY
    assert _decision("SELECT '/elsewhere'", inside) == roles.READ


def test_policy_derived_parts_are_computed_once(tree):
    _, _, _, policy = tree
    assert policy.derived is policy.derived
    assert policy.derived.protected_urls == ()
    lake = roles.Policy(protected_urls=("S3://Lake/Data/",))
    assert _decision("SELECT * FROM read_parquet('s3://lake/data/x.parquet')", lake) == roles.NOBODY
    assert _decision("SELECT * FROM read_parquet('s3://lake/other/x.parquet')", lake) == roles.READ


# --- the remembered spans of sql_scan ---------------------------------------------------------------------

_PIECES = ["SELECT", " ", "\n", "a", "_b1", "$x", "1", "1.5", "0x1F", "1e3", "'s'", "'it''s'", "$$d$$", "$t$q$t$",
           '"Q"', '"a""b"', "(", ")", "::", "->", ",", ";", "--c\n", "/*c*/", "/* /* */", "E'x\\'y'", "é", "*",
           "-", "/", "'", '"', "$", "1a", "FROM", "t", "[", "]", "..", "@"]


def _read(sql: str):
    try:
        return sql_scan.tokens(sql)
    except sql_scan.Unclassifiable as exc:
        return str(exc)


def test_remembered_spans_read_as_fresh_ones():
    """The same statements, read with an empty memory and with one filled by every other statement, give
    the same tokens or the same refusal."""
    rng = random.Random(5)
    statements = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    fresh = []
    for sql in statements:
        sql_scan._SPANS.clear()
        fresh.append(_read(sql))
    warm = [_read(sql) for sql in statements]
    assert warm == fresh
    assert any(isinstance(result, str) for result in fresh) and any(isinstance(r, list) for r in fresh)
    assert len(sql_scan._SPANS) <= sql_scan._SPANS_MAX_ENTRIES


def test_remembered_spans_are_bounded_and_errors_are_not_remembered():
    sql_scan._SPANS.clear()
    for number in range(sql_scan._SPANS_MAX_ENTRIES + 10):
        sql_scan.tokens(f"SELECT c{number}")
    assert len(sql_scan._SPANS) <= sql_scan._SPANS_MAX_ENTRIES
    long_literal = "'" + "x" * (sql_scan._SPANS_MAX_LENGTH + 1) + "'"
    sql_scan.tokens("SELECT " + long_literal)
    assert not any(span.startswith(long_literal) for _, span in sql_scan._SPANS)
    sql_scan._SPANS.clear()
    with pytest.raises(sql_scan.Unclassifiable):
        sql_scan.tokens("SELECT 1 /* /* */ , 2")
    with pytest.raises(sql_scan.Unclassifiable):
        sql_scan.tokens("SELECT 1 /* /* */ , 2")  # refused again, not read from memory
    assert all(not span.startswith("1 /*") for _, span in sql_scan._SPANS)


def test_token_fields():
    found = sql_scan.tokens('SELECT "My""Col", \'it\'\'s\', $t$x$t$ FROM T')
    assert [(t.kind, t.text, t.word, t.offset) for t in found] == [
        ("word", "SELECT", "select", 0), ("quoted", '"My""Col"', 'my"col', 7), ("operator", ",", "", 16),
        ("string", "'it''s'", "", 18), ("operator", ",", "", 25), ("string", "$t$x$t$", "", 27),
        ("word", "FROM", "from", 35), ("word", "T", "t", 40)]
    assert [t.value for t in found if t.kind == "string"] == ["it's", "x"]


# --- the reserved names of a lake (admin only), found from the text first ---------------------------------

def _reserved_reference(sql: str, names: tuple[str, ...]) -> str | None:
    """The check before the text shortcut: every token's word against the prefixes."""
    found = sql_scan.tokens(sql)
    return next((t.word for t in found if t.word and t.word.startswith(names)), None)


@pytest.mark.parametrize("names", [("__ducklake_metadata_",), ("a\"b",), ("ÄRGER_",), ("Upper_",), ("x", "__y")])
def test_reserved_names_are_found_as_the_token_walk_finds_them(names):
    policy = roles.Policy(admin_names=names)
    rng = random.Random(3)
    pieces = ["SELECT", " ", "FROM", "__ducklake_metadata_lake", "__DuckLake_Metadata_L", '"__DUCKLAKE_METADATA_q"',
              '"a""b"', "a", "b", '"', "'__ducklake_metadata_lake'", "ärger_x", "ÄRGER_X", "upper_x", "Upper_x",
              "x1", "__y", ".", ",", "(", ")", "_", "__ducklake_metadata", "\"\"\"a\"\"b\"", "ς", "Σ"]
    checked = 0
    for _ in range(4000):
        sql = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        try:
            expected = _reserved_reference(sql, names)
        except sql_scan.Unclassifiable:
            continue
        checked += 1
        assert roles._reserved_name(sql_scan.tokens(sql), sql, policy.derived) == expected, sql
    assert checked > 1000


def test_reserved_names_need_admin():
    policy = roles.Policy(admin_names=("__ducklake_metadata_",))
    for sql, role in [("SELECT * FROM __DuckLake_Metadata_lake.t", roles.ADMIN),
                      ('SELECT * FROM "__ducklake_metadata_lake"."t"', roles.ADMIN),
                      ("SELECT '__ducklake_metadata_lake'", roles.READ), ("SELECT 1 AS __ducklake_metadata", roles.READ),
                      ("SELECT 1", roles.READ)]:
        assert _decision(sql, policy) == role, sql
