"""Command line: `duckdb-flight-server` / `python -m flight_server` reads the configuration and runs the server."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from typing import NoReturn

from . import __version__
from .config import Config, ConfigError, add_arguments, load


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hash-password"]:
        return hash_password_command()
    if argv[:1] == ["restore"]:
        return restore_command(argv[1:])
    parser = argparse.ArgumentParser(
        prog="duckdb-flight-server", description="Arrow Flight SQL server for DuckDB.",
        epilog="Subcommands: `duckdb-flight-server hash-password` prints a password hash for the users file; "
               "`duckdb-flight-server restore BACKUP_FOLDER` restores a backup (see `restore --help`).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = load(args, os.environ)
        _check_environment(config)
    except ConfigError as exc:
        print(f"duckdb-flight-server: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(config.redacted(), indent=2))
        return 0
    return run(config)


def hash_password_command() -> int:
    """`duckdb-flight-server hash-password`: reads a password (prompt, or stdin when piped), prints its hash."""
    import getpass

    from .auth.passwords import hash_password

    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        print("duckdb-flight-server: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def restore_command(argv: list[str]) -> int:
    """`duckdb-flight-server restore FOLDER`: checks a backup folder and loads it into the database file."""
    from .engine import backup

    parser = argparse.ArgumentParser(
        prog="duckdb-flight-server restore",
        description="Restore a backup written by the backup action into the database file, with the server "
                    "stopped. The backup is checked first (signature, and every file's size and SHA-256); a "
                    "backup that changed since it was written is refused. The database is built in a new file "
                    "and moved into place when complete.")
    parser.add_argument("folder", help="The backup folder (backup-<time> under the backup directory).")
    parser.add_argument("--database", dest="database", default=None, metavar="PATH",
                        help="Database file to restore into [env DUCKDB_DATABASE_PATH; default flight.duckdb "
                             "in the data folder].")
    parser.add_argument("--data-dir", dest="data_dir", default=None, metavar="DIR",
                        help="The server's data folder [env FLIGHT_DATA_DIR; default 'data'].")
    parser.add_argument("--config", metavar="FILE", help="The server's TOML settings (env: FLIGHT_CONFIG).")
    parser.add_argument("--allowed-directories", dest="allowed_directories", default=None, metavar="DIRS",
                        help="The server's sandbox folders: views in the backup may read files there while they "
                             "are created [env FLIGHT_ALLOWED_DIRECTORIES; default 'files' in the data folder].")
    parser.add_argument("--sandbox", dest="sandbox", default=None, metavar="BOOL",
                        help="'false' if the server runs without its sandbox [env FLIGHT_SANDBOX; default true].")
    parser.add_argument("--backup-key", metavar="FILE",
                        help="Key that signed the backup (default: backup.key in the data folder).")
    parser.add_argument("--force", action="store_true",
                        help="Restore even if the database file holds data; that file is kept as "
                             "<file>.pre-restore-<time>.")
    args = parser.parse_args(argv)
    try:
        config = load(args, os.environ)
    except ConfigError as exc:
        print(f"duckdb-flight-server: configuration error: {exc}", file=sys.stderr)
        return 2
    if config.database_path == ":memory:":
        print("duckdb-flight-server: restore needs a database file (--database PATH)", file=sys.stderr)
        return 2
    try:
        key = backup.load_key(args.backup_key or backup.key_path(config.data_dir))
        result = backup.restore(args.folder, config.database_path, key, force=args.force,
                                allowed_directories=tuple(config.allowed_directory_list) if config.sandbox else None)
    except backup.BackupError as exc:
        print(f"duckdb-flight-server: restore refused: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # DuckDB or pyarrow failed while loading; nothing was replaced
        print(f"duckdb-flight-server: restore failed: {exc}", file=sys.stderr)
        return 1
    print(f"restored {result['tables']} tables ({result['rows']} rows) from {args.folder} into "
          f"{result['database']} in {result['seconds']} s")
    if result["previous_database"]:
        print(f"the previous database file is kept as {result['previous_database']}")
    return 0


def _ready(started: dict) -> tuple[bool, dict]:
    if "server" not in started:
        return False, {"starting": True}
    return started["server"].ready()


def _check_environment(config: Config) -> None:
    path = config.database_path
    if path != ":memory:":
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"DUCKDB_DATABASE_PATH: cannot create folder {folder}: {exc.strerror}") from None
        if not os.access(folder, os.W_OK) and not config.read_only:
            raise ConfigError(f"DUCKDB_DATABASE_PATH: folder {folder} is not writable")
    try:
        os.makedirs(config.data_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"FLIGHT_DATA_DIR: cannot create {config.data_dir}: {exc.strerror}") from None
    for name, port in (("FLIGHT_PORT", config.port), ("FLIGHT_HTTP_PORT", config.http_port)):
        _check_port(name, config.host, port)


def _check_port(name: str, host: str, port: int) -> None:
    if port > 0:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise ConfigError(f"{name}: cannot listen on {host}:{port}: {exc.strerror}") from None


def run(config: Config) -> int:
    """Opens the database, starts serving, and shuts down cleanly on SIGTERM/SIGINT."""
    import structlog

    from . import logs
    from .app import build_server
    from .observability.http_port import HealthServer

    # DuckDB scans client streams through pyarrow's Acero, which warns once per batch that
    # network buffers are not 64-byte aligned; that is harmless on every platform we ship for.
    os.environ.setdefault("ACERO_ALIGNMENT_HANDLING", "ignore")
    logs.configure(config.log_level)
    log = structlog.get_logger("flight_server")
    # The HTTP port comes up first (answering "not ready" until the Flight server exists), so a client
    # that sees the Flight port open can rely on the health port too.
    started: dict = {}
    http = None
    try:
        if config.http_port >= 0:
            http = HealthServer(config.host, config.http_port, lambda: _ready(started),
                                lambda: started["server"].metrics.render() if started else b"",
                                live=lambda: started["server"].live() if started else (True, {}))
            http.start()
    except OSError as exc:  # the HTTP port was taken after the check
        print(f"duckdb-flight-server: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        server = started["server"] = build_server(config)
    except ConfigError as exc:
        print(f"duckdb-flight-server: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the database cannot be opened, ...
        print(f"duckdb-flight-server: cannot start: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signalled: list[float] = []

    def on_signal(signum, frame):
        if stop.is_set():
            os._exit(1)
        log.info("shutting down", signal=signal.Signals(signum).name)
        signalled.append(time.monotonic())
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("listening", location=config.location.replace(":0", f":{server.port}"), port=server.port,
             http_port=http.port if http else None, database=config.database_path, version=__version__)
    while not stop.wait(0.5):
        pass
    return _shut_down(server, config.shutdown_grace_period, log, signalled[0])


# After the grace period: at most this long for calls to end (connections still busy after a quarter of it are
# cut) and for the sessions to close; then, if a stalled call still holds a session, at most CHECKPOINT_TIMEOUT
# for the checkpoint. The process exits at most grace period + 3 s after the signal.
STOP_TIMEOUT = 2.0
CHECKPOINT_TIMEOUT = 1.0


def _shut_down(server, grace_period: float, log, started: float) -> NoReturn:
    """Stops admitting statements, gives running ones up to `grace_period` seconds, interrupts the rest,
    closes the Flight port and the sessions, checkpoints, logs `stopped` and exits 0. A client that stalled
    mid-stream (an ingest that stopped sending, a reader that stopped reading) would hold its gRPC call and
    its session forever: after the grace period its connection is cut, every wait is bounded, and what is
    still held then is left to the process exit (what is committed is durable in the database file or its
    WAL, and what a stalled call had open never was). `started`: when the signal came."""
    # While the grace period runs, the WAL goes into the database file (DuckDB allows that beside reads and
    # refuses it while a write is open): the final checkpoint then has little left to do.
    early = threading.Thread(target=_checkpoint_quietly, args=(server.database,), name="early-checkpoint",
                             daemon=True)
    early.start()
    interrupted = server.drain(grace_period)
    left = server.shutdown(timeout=STOP_TIMEOUT)
    # A CHECKPOINT is a write transaction of its own: while the early one runs, DuckDB refuses the final one
    # ("other write transactions active"), which a quick shutdown would reach first.
    early.join(CHECKPOINT_TIMEOUT)
    if server.auth is not None:  # closed sessions' revocations fsync'd (at most 1 s old) before the exit
        _bounded(server.auth.signer.close, CHECKPOINT_TIMEOUT)
    stalled = left["calls_left"] or left["sessions_left"]
    # A session left open is a cursor of the database's root connection, and closing the root waits for
    # it: then only checkpoint, itself bounded, and leave the rest to the process exit.
    checkpoint = _bounded(server.database.checkpoint if stalled else server.database.close,
                          CHECKPOINT_TIMEOUT if stalled else None)
    # The HTTP port stays up to the exit: /health/ready has answered 503 (draining) since the signal.
    log.info("stopped", seconds=round(time.monotonic() - started, 3), grace_period=grace_period,
             interrupted=interrupted, checkpoint=checkpoint, **left)
    # Nothing is left to do: leave without the interpreter's teardown, which would join the threads stalled
    # calls still hold and spends up to a second finalizing gRPC, pyarrow and DuckDB objects (time that counts
    # against `docker stop`'s 10 s).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _checkpoint_quietly(database) -> None:
    try:
        conn = database.connect()
        try:
            conn.execute("CHECKPOINT")
        finally:
            conn.close()
    except Exception:  # a write transaction is open, a read-only database, ...: the final checkpoint does it
        pass


def _bounded(step, timeout: float | None) -> str:
    """Runs `step` for at most `timeout` seconds (None: until done); says how it went."""
    outcome = ["not finished"]

    def run():
        try:
            step()
            outcome[0] = "done"
        except Exception as exc:  # DuckDB refuses while a stalled call holds a write transaction, I/O, ...
            outcome[0] = f"failed: {str(exc).splitlines()[0][:200]}"

    worker = threading.Thread(target=run, name="shutdown-step", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0]
