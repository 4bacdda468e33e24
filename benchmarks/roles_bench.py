"""Cost of the role decision per statement (roles.check, in-process), and a record of every decision.

    python benchmarks/roles_bench.py                  # microseconds per check: SELECT 1, TPC-H Q1, Q6, corpus
    python benchmarks/roles_bench.py --save a.json    # also write every decision (role and reason)
    python benchmarks/roles_bench.py --compare a.json # fail if any decision differs from a saved run

To compare two versions of the code, run it once with PYTHONPATH pointing at each (e.g. a `git archive` of
the older commit): the corpus uses one fixed folder (/tmp/roles-bench), so the statements are the same text.
The policy is built like the server's (app.build_policy): database, WAL, spill folder, users file, backups.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(HERE, "..", "tests"))

from flight_server.auth import roles  # noqa: E402
from flight_server.engine.database import Database, EngineSettings  # noqa: E402

FOLDER = "/tmp/roles-bench"


def build(folder: str):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, "files"))
    database = Database(EngineSettings(database_path=os.path.join(folder, "flight.duckdb"),
                                       allowed_directories=(os.path.join(folder, "files"),),
                                       temp_directory=os.path.join(folder, "tmp")))
    database.connect().execute("CREATE TABLE t (a INTEGER); CREATE SEQUENCE s")
    db = os.path.realpath(os.path.join(folder, "flight.duckdb"))
    data = os.path.realpath(folder)
    protected = [db] + [db + s for s in (".wal", ".wal.recovery", ".wal.checkpoint", ".tmp")] + [
        os.path.join(data, "tmp"), os.path.join(data, "users.json"), os.path.join(data, "backups"),
        os.path.join(data, "initial-admin-password"), os.path.join(data, "revoked-tokens.json"),
        os.path.join(data, "backup.key")]
    policy = roles.Policy(protected_paths=tuple(protected), table_functions=database.table_functions,
                          parse=database.parse)
    return database, policy


def statements(folder: str) -> dict[str, str]:
    """name -> SQL: TPC-H Q1..Q22, the role corpus and its disguises (tests/test_roles.py), path literals."""
    import tpch
    from test_roles import CORPUS, DISGUISES, HOSTILE

    found = {f"tpch-q{n}": sql for n, sql in sorted(tpch.tpch_queries(tuple(range(1, 23))).items())}
    db = os.path.realpath(os.path.join(folder, "flight.duckdb"))
    for index, (sql, _) in enumerate(CORPUS):
        found[f"corpus-{index}"] = sql.format(db=db, files=os.path.join(folder, "files"),
                                              tmp=os.path.join(folder, "tmp"), backups=os.path.join(folder, "backups"))
    for index, (sql, _) in enumerate(HOSTILE):
        for number, disguise in enumerate(DISGUISES):
            found[f"hostile-{index}-{number}"] = disguise(sql)
    for number, path in enumerate(_path_literals(folder)):
        found[f"path-{number}"] = f"SELECT * FROM read_blob('{path}')"
    return found


def _path_literals(folder: str) -> list[str]:
    rel = os.path.relpath(folder)
    return ["x", "1998-12-01", "", ".", "..", "/", "~", "~/x", "file://x", "FILE:///etc", f"{folder}",
            f"{folder}/", f"{folder}//tmp", f"{folder}/tmp/", f"{folder}/./tmp", f"{folder}/files/../tmp",
            f"{folder}/TMP", f"{folder}/tmp*", f"{folder}/tm?", f"{folder}/t[m]p", f"{folder}/**/x",
            f"{folder}/flight.duckdb.wal", f"{folder}/flight.duckdbx", f"file://{folder}/users.json",
            f"{rel}/tmp/x", f"{rel}/files/../backups", f"/nonexistent/../{folder}/tmp", "s3://b/x",
            f"{folder}/files/x.csv", "it''s"]


def decisions(database, policy, found: dict[str, str]) -> dict[str, list[str] | str]:
    result: dict[str, list[str] | str] = {}
    for name, sql in found.items():
        try:
            parsed = database.parse(sql)
        except Exception:
            result[name] = "unparsable"
            continue
        result[name] = [f"{d.role}: {d.reason}" for d in (roles.decide(s, policy) for s in parsed)]
    return result


def per_check_us(policy, parsed, number: int, repeat: int) -> float:
    """Best of `repeat` runs in this thread's CPU time: on a shared machine the minimum is the stable figure."""
    roles.check("admin", parsed, policy)  # first call outside the timing
    runs = timeit.repeat(lambda: roles.check("admin", parsed, policy), timer=time.thread_time, number=number,
                         repeat=repeat)
    return min(runs) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--save")
    parser.add_argument("--compare")
    parser.add_argument("--number", type=int, default=100)
    args = parser.parse_args()
    database, policy = build(FOLDER)
    found = statements(FOLDER)
    parsed = {}
    for name, sql in found.items():
        try:
            parsed[name] = database.parse(sql)
        except Exception:
            pass
    timed = {"SELECT 1": database.parse("SELECT 1"), "TPC-H Q1": parsed["tpch-q1"], "TPC-H Q6": parsed["tpch-q6"]}
    for label, statement in timed.items():
        print(f"{label:12} {per_check_us(policy, statement, args.number, 40):8.1f} us per check")
    for prefix in ("tpch-", "corpus-", "path-"):
        names = [n for n in parsed if n.startswith(prefix)]
        mean = sum(per_check_us(policy, parsed[n], max(1, args.number // 5), 15) for n in names) / len(names)
        print(f"{prefix + '*':12} {mean:8.1f} us per check (mean of {len(names)})")
    found_decisions = decisions(database, policy, found)
    if args.save:
        with open(args.save, "w") as out:
            json.dump(found_decisions, out, indent=1, sort_keys=True)
    if args.compare:
        with open(args.compare) as source:
            saved = json.load(source)
        differ = {n: (saved.get(n), found_decisions.get(n)) for n in set(saved) | set(found_decisions)
                  if saved.get(n) != found_decisions.get(n)}
        for name, (before, after) in sorted(differ.items()):
            print(f"DIFFERS {name}: {before} -> {after}")
        print(f"{len(found_decisions)} statements compared, {len(differ)} differ")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
