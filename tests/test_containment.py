"""Issue 10: no user locks everyone out; memory and faults stay contained.

Real server subprocesses, real ADBC and pyarrow.flight clients:

- unread results spill to files (server RSS stays under DuckDB's memory_limit plus a fixed overhead) and the
  files go away when read or when their session ends;
- a reader that stops reading gives up its execution slot after --stall-timeout;
- a user holding every session, or flooding the server with failing queries, leaves other users served
  within a second;
- a client killed inside a transaction stops blocking writers within --idle-in-transaction-timeout, and
  its session is reclaimed (the pool does not fill up with dead clients).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import adbc_driver_manager
import psutil
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

from support import REPO_ROOT, rows, scalar
from test_streaming import RssSampler

MB = 1024 * 1024
PARKED_ROWS = 150_000_000
PARKED_SQL = f"SELECT range FROM range({PARKED_ROWS})"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def users_file(folder: Path, **roles: str) -> tuple[str, dict[str, str]]:
    """A users file with one user per keyword (name=role); returns its path and the passwords."""
    from flight_server.auth.passwords import hash_password

    passwords = {name: f"{name}-password-{os.getpid()}" for name in roles}
    lines = []
    for name, role in roles.items():
        lines += [f"[users.{name}]", f'password_hash = "{hash_password(passwords[name])}"', f'role = "{role}"', ""]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "users.toml"
    path.write_text("\n".join(lines))
    return str(path), passwords


def as_user(srv, passwords, name: str, **kwargs):
    return srv.connect(db_kwargs={"username": name, "password": passwords[name]}, **kwargs)


def flight_as(srv, passwords, name: str) -> tuple[flight.FlightClient, flight.FlightCallOptions]:
    """A pyarrow.flight client with its own bearer token (so its own session)."""
    client = flight.FlightClient(srv.uri)
    header = client.authenticate_basic_token(name, passwords[name])
    return client, flight.FlightCallOptions(headers=[header])


def time_to_serve(conn, sql: str = "SELECT 42", expected=42, budget: float = 30.0) -> float:
    """Seconds until `conn` (connected, logged in, no session on the server yet) runs `sql`, retrying
    refusals; fails after `budget` seconds."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < budget:
        try:
            assert scalar(conn, sql) == expected
            return time.monotonic() - started
        except adbc_driver_manager.Error as exc:
            last = exc
            time.sleep(0.05)
    pytest.fail(f"not served within {budget}s: {last}")


def health(srv, action: str = "health") -> dict:
    client = flight.FlightClient(srv.uri)
    try:
        return json.loads(next(iter(client.do_action(flight.Action(action, b"")))).body.to_pybytes())
    finally:
        client.close()


def _active_sessions(srv) -> int:
    """Sessions open on a server without authentication, not counting the one asking."""
    return health(srv, "statistics")["sessions"]["active"]


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*") if f.is_file()) if folder.exists() else 0


def drain_sum(reader) -> tuple[int, int]:
    rows_seen = total = 0
    for chunk in reader:
        rows_seen += chunk.data.num_rows
        total += pc.sum(chunk.data.column(0)).as_py() or 0
    return rows_seen, total


# ---------------------------------------------------------------------------
# memory: unread results go to spill files
# ---------------------------------------------------------------------------

# The README's ceiling: DuckDB's memory_limit plus a fixed overhead (Python, pyarrow, gRPC, DuckDB's code)
# plus --max-result-memory plus about 8 MiB per session holding an unread result.
OVERHEAD = 300 * MB
RESULT_MEMORY = 64 * 1000 * 1000


def test_parked_results_spill_and_rss_stays_bounded(start_server):
    """Ten 150M-row results executed and never fetched, each pushed out of its connection by the next
    statement. Before: each was read into Python memory (136 MB -> 1364 MB for one). Now: spill files, RSS
    stays under memory_limit + overhead; what does not fit the spill caps is dropped with a clear error; files
    are deleted when read and when the session ends."""
    srv = start_server(memory_limit="512MB", worker_threads=2, max_temp_directory_size="3GB",
                       max_spill_per_user="3GB", max_spill_per_session="1500MB")
    spill_dir = srv.workdir / "data" / "tmp" / "results"
    sessions = 5
    ceiling = 512 * MB + OVERHEAD + RESULT_MEMORY + sessions * 8 * MB
    clients = [flight.FlightClient(srv.uri) for _ in range(sessions)]
    tickets = []
    with RssSampler(srv.proc.pid) as sampler:
        for client in clients:
            for _ in range(2):  # the second execution pushes the first result out of the connection
                info = client.get_flight_info(flight.FlightDescriptor.for_command(PARKED_SQL))
                tickets.append((client, info.endpoints[0].ticket))
            # ... and any statement pushes out the second
            info = client.get_flight_info(flight.FlightDescriptor.for_command("SELECT 1 AS one"))
            assert client.do_get(info.endpoints[0].ticket).read_all().column(0).to_pylist() == [1]
        spilled = folder_bytes(spill_dir)
        # The first result of the first session was spilled whole: it streams back complete and correct.
        client, ticket = tickets[0]
        assert drain_sum(client.do_get(ticket)) == (PARKED_ROWS, PARKED_ROWS * (PARKED_ROWS - 1) // 2)
    print(f"\nparked 10 x {PARKED_ROWS:,} rows: peak RSS {sampler.peak / MB:.0f} MB "
          f"(ceiling {ceiling / MB:.0f} MB), spill files {spilled / MB:.0f} MB")
    assert sampler.peak < ceiling, f"server RSS peaked at {sampler.peak / MB:.0f} MB"
    assert 1000 * MB < spilled <= 3000 * 1000 * 1000, spilled

    # Results that did not fit the caps were dropped; fetching one says why.
    errors = []
    for client, ticket in tickets[1:]:
        try:
            reader = client.do_get(ticket)
            drain_sum(reader)
        except flight.FlightError as exc:
            errors.append(str(exc))
    assert any("did not fit on disk" in e and "max_spill_per_session" in e for e in errors), errors
    assert any("did not fit on disk" in e and "spill space is full" in e for e in errors), errors

    # Fetched and dropped results leave no files behind; closing the clients ends their sessions (their
    # connections are gone) and with them any file left.
    for client in clients:
        client.close()
    deadline = time.monotonic() + 10
    while folder_bytes(spill_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert folder_bytes(spill_dir) == 0, list(spill_dir.iterdir())
    assert srv.alive()


def test_half_read_stream_spills_and_completes(start_server):
    """A stream half read when its session runs another statement continues from its spill file, complete."""
    srv = start_server(memory_limit="256MB", worker_threads=2)
    conn = srv.connect()
    n = 30_000_000
    first = conn.cursor()
    first.execute(f"SELECT range FROM range({n})")
    reader = first.fetch_record_batch()
    head = reader.read_next_batch()
    with RssSampler(srv.proc.pid) as sampler:
        assert scalar(conn, "SELECT 7") == 7  # pushes the rest of the first result to a file
        seen, total = head.num_rows, pc.sum(head.column(0)).as_py()
        for batch in reader:
            seen += batch.num_rows
            total += pc.sum(batch.column(0)).as_py()
    first.close()
    assert (seen, total) == (n, n * (n - 1) // 2)
    assert sampler.peak < 256 * MB + OVERHEAD + RESULT_MEMORY, f"{sampler.peak / MB:.0f} MB"
    conn.close()


# ---------------------------------------------------------------------------
# lockouts
# ---------------------------------------------------------------------------


def test_stalled_readers_give_up_their_slots(start_server, tmp_path):
    """Four readers take every execution slot, read one batch and stop. After --stall-timeout they give
    their slots up: another user is served, and the stalled readers still get their whole result when they
    read on."""
    path, passwords = users_file(tmp_path / "users", hog="read", other="read")
    srv = start_server(auth="password", users_file=path, max_concurrent_statements=4,
                       max_statements_per_user=4, queue_timeout=20, stall_timeout=1)
    n = 20_000_000
    other = as_user(srv, passwords, "other")  # logged in before the readers start (a login takes ~0.1-1 s)
    readers = []
    for _ in range(4):
        client, options = flight_as(srv, passwords, "hog")
        info = client.get_flight_info(flight.FlightDescriptor.for_command(f"SELECT range FROM range({n})"),
                                      options)
        reader = client.do_get(info.endpoints[0].ticket, options)
        first = reader.read_chunk().data
        readers.append((client, reader, first))
    waited = time_to_serve(other)  # from the moment the last reader stopped reading
    other.close()
    print(f"\nstalled readers holding every slot: another user served after {waited:.2f}s (stall timeout 1s)")
    assert waited < 2.5, waited
    deadline = time.monotonic() + 3  # the last reader stalled a little later than the first
    while health(srv)["admission"]["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health(srv)["admission"]["running"] == 0  # the stalled streams hold no slot
    # The stalled readers read on: each gets a slot back and the whole result.
    for client, reader, first in readers:
        seen = first.num_rows + sum(chunk.data.num_rows for chunk in reader)
        assert seen == n
        client.close()


def test_stalled_reader_keeps_slot_when_stall_timeout_is_off(start_server, tmp_path):
    """The control for the test above: with --stall-timeout 0 the stalled readers keep their slots and
    another statement is refused after the queue timeout."""
    path, passwords = users_file(tmp_path / "users", hog="read", other="read")
    srv = start_server(auth="password", users_file=path, max_concurrent_statements=2,
                       max_statements_per_user=2, queue_timeout=2, stall_timeout=0)
    held = []
    for _ in range(2):
        client, options = flight_as(srv, passwords, "hog")
        info = client.get_flight_info(flight.FlightDescriptor.for_command("SELECT range FROM range(50000000)"),
                                      options)
        reader = client.do_get(info.endpoints[0].ticket, options)
        reader.read_chunk()
        held.append((client, reader))
    conn = as_user(srv, passwords, "other")
    seen = {}
    probe = threading.Timer(1.0, lambda: seen.update(health(srv)))
    probe.start()
    with pytest.raises(adbc_driver_manager.Error, match="admission wait exceeded"):
        scalar(conn, "SELECT 1")
    conn.close()
    probe.join()
    assert seen["status"] == "degraded" and seen["admission"]["queued"] == 1, seen
    for client, _ in held:
        client.close()


def test_user_with_every_session_does_not_lock_out_others(start_server, tmp_path):
    """One user opens as many sessions as the pool holds; another user is still served at once (the first
    user's oldest idle session is reclaimed), and the first user cannot take more than the pool either."""
    path, passwords = users_file(tmp_path / "users", hog="read", other="read")
    srv = start_server(auth="password", users_file=path, pool_size=8)  # 4 sessions per user
    hogs = [as_user(srv, passwords, "hog") for _ in range(8)]
    for i, conn in enumerate(hogs):
        assert scalar(conn, f"SELECT {i}") == i
    other = as_user(srv, passwords, "other")
    waited = time_to_serve(other)
    other.close()
    print(f"\nuser holding all 8 sessions: another user served after {waited:.3f}s")
    assert waited < 1.0, waited
    # The hog's most recent sessions were kept; its oldest idle one made room.
    assert scalar(hogs[-1], "SELECT 'still here'") == "still here"
    # A session of the other user with a temp table survives more hog sessions: the hog reclaims its own.
    mine = as_user(srv, passwords, "other")
    cur = mine.cursor()
    cur.execute("CREATE TEMP TABLE keep AS SELECT 1 AS x")
    cur.close()
    more = [as_user(srv, passwords, "hog") for _ in range(8)]
    for conn in more:
        assert scalar(conn, "SELECT 1") == 1
    assert scalar(mine, "SELECT x FROM keep") == 1
    for conn in hogs + more + [mine]:
        try:
            conn.close()
        except Exception:
            pass


FAILING_SQL = ("SELECT sum(CASE WHEN range = 60000000 THEN error('flood') ELSE range END) "
               "FROM range(100000000)")


def test_failing_query_flood_leaves_others_served(start_server, tmp_path):
    """A user floods the server from 12 threads with queries that run a while and then fail; another user's
    statements are still served within a second (the flood gets its share of the slots, no more)."""
    path, passwords = users_file(tmp_path / "users", flood="read", other="read")
    srv = start_server(auth="password", users_file=path, max_concurrent_statements=4, worker_threads=2)
    stop = threading.Event()
    counts = {"failed": 0, "refused": 0}

    def flood():
        conn = as_user(srv, passwords, "flood")
        while not stop.is_set():
            try:
                scalar(conn, FAILING_SQL)
            except adbc_driver_manager.Error as exc:
                counts["refused" if "max_statements_per_user" in str(exc) else "failed"] += 1
        conn.close()

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(12)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    other = as_user(srv, passwords, "other")
    latencies = []
    for _ in range(10):
        started = time.monotonic()
        assert scalar(other, "SELECT 42") == 42
        latencies.append(time.monotonic() - started)
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(30)
    other.close()
    print(f"\nfailing-query flood ({counts}): other user's SELECT max {max(latencies):.3f}s")
    assert counts["failed"] > 0 and counts["refused"] > 0, counts
    assert max(latencies) < 1.0, latencies


# ---------------------------------------------------------------------------
# vanished clients
# ---------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    import adbc_driver_flightsql.dbapi as flightsql
    conn = flightsql.connect(sys.argv[1], autocommit=False)
    cur = conn.cursor()
    cur.execute(f"UPDATE accounts SET balance = balance + 1 WHERE id = {sys.argv[2]}")
    print("holding", flush=True)
    time.sleep(600)
""")


def _accounts(srv):
    """Creates the table the transaction tests fight over; returns the (autocommit) connection used."""
    conn = srv.connect()
    cur = conn.cursor()
    cur.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
    cur.execute("INSERT INTO accounts SELECT range, 0 FROM range(1, 5)")
    cur.close()
    return conn


def _holder(srv, row: int = 1) -> subprocess.Popen:
    """A client process holding a write transaction that updated row `row`."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, srv.uri, str(row)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "holding":
        proc.kill()
        pytest.fail(f"holder did not start: {proc.stderr.read() if proc.poll() is not None else 'timeout'}")
    return proc


def _update_until_it_works(conn, budget: float) -> tuple[float, int]:
    """Seconds until an UPDATE of every held row commits, and how many conflicts it met on the way."""
    started = time.monotonic()
    conflicts = 0
    while True:
        try:
            cur = conn.cursor()
            cur.execute("UPDATE accounts SET balance = balance + 100")
            cur.close()
            return time.monotonic() - started, conflicts
        except adbc_driver_manager.Error as exc:
            assert "Conflict" in str(exc), exc
            conflicts += 1
            if time.monotonic() - started > budget:
                pytest.fail(f"still conflicting after {budget}s")
            time.sleep(0.05)


def test_killed_clients_release_transactions_and_sessions(start_server):
    """Four clients SIGKILLed inside write transactions on a pool of four: others first meet the conflict,
    then (well within the idle-in-transaction timeout: their connections are gone) update the rows and get
    sessions again. (The timeout is 10 s here so that the holders, which take a second each to start, keep
    their transactions until they are killed.)"""
    srv = start_server(pool_size=4, idle_in_transaction_timeout=10, max_sessions_per_user=4)
    _accounts(srv).close()
    holders = [_holder(srv)]
    # While the first holder lives, a writer conflicts with it.
    probe = srv.connect()
    with pytest.raises(adbc_driver_manager.Error, match="Conflict"):
        cur = probe.cursor()
        cur.execute("UPDATE accounts SET balance = balance + 100 WHERE id = 1")
    probe.close()
    deadline = time.monotonic() + 10  # the probe's and the setup's sessions go (their connections closed)
    while _active_sessions(srv) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    holders += [_holder(srv, row) for row in (2, 3, 4)]  # the pool of 4 is now full of transactions
    assert _active_sessions(srv) == 4
    for proc in holders:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    killed = time.monotonic()
    conn = srv.connect()
    waited = time_to_serve(conn, budget=20)
    updated, conflicts = _update_until_it_works(conn, budget=20)
    total = time.monotonic() - killed
    print(f"\n4 clients killed in transactions (pool 4): new session after {waited:.2f}s, "
          f"update after {total:.2f}s ({conflicts} conflicts)")
    assert total < 10, total  # gone connections are noticed within about 1.5 s
    # the killed clients' +1s were rolled back
    assert rows(conn, "SELECT balance FROM accounts ORDER BY id") == [(100,)] * 4
    conn.close()
    assert srv.alive()


def test_quiet_client_in_transaction_is_rolled_back(start_server):
    """A client that stays connected but goes quiet inside a transaction is rolled back after
    --idle-in-transaction-timeout; its late commit fails clearly, and the writer it blocked goes on."""
    srv = start_server(idle_in_transaction_timeout=2)
    setup = _accounts(srv)
    quiet = srv.connect(autocommit=False)
    cur = quiet.cursor()
    cur.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
    cur.close()
    updated, conflicts = _update_until_it_works(setup, budget=15)
    print(f"\nquiet client in a transaction: writer unblocked after {updated:.2f}s ({conflicts} conflicts)")
    assert conflicts > 0
    assert 1.5 < updated < 2 + 2.5, updated
    with pytest.raises(adbc_driver_manager.Error, match="transaction not found"):
        quiet.commit()
    assert rows(setup, "SELECT balance FROM accounts WHERE id = 1") == [(100,)]
    setup.close()
    try:
        quiet.close()
    except Exception:
        pass


def test_busy_transaction_is_not_cut_short(start_server):
    """The idle-in-transaction timeout counts quiet time only: a transaction whose client keeps working
    outlives it."""
    srv = start_server(idle_in_transaction_timeout=1)
    conn = srv.connect(autocommit=False)
    cur = conn.cursor()
    cur.execute("CREATE TABLE steady (i INTEGER)")
    for i in range(8):
        cur.execute(f"INSERT INTO steady VALUES ({i})")
        time.sleep(0.4)
    cur.close()
    conn.commit()
    assert scalar(conn, "SELECT count(*) FROM steady") == 8
    conn.close()


def test_session_closed_under_a_stalled_stream_fails_it(start_server):
    """A reader stalled past the session idle timeout loses its session; reading on, it gets an error, never
    a result silently cut short."""
    srv = start_server(session_idle_timeout=1, stall_timeout=0)
    client = flight.FlightClient(srv.uri)
    n = 50_000_000
    info = client.get_flight_info(flight.FlightDescriptor.for_command(f"SELECT range FROM range({n})"))
    reader = client.do_get(info.endpoints[0].ticket)
    seen = reader.read_chunk().data.num_rows
    time.sleep(3)
    with pytest.raises(flight.FlightError, match="session was closed while this result was being sent"):
        for chunk in reader:
            seen += chunk.data.num_rows
    assert seen < n
    assert health(srv, "statistics")["sessions"]["reclaimed"].get("idle", 0) >= 1
    client.close()
