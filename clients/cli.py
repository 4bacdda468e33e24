"""The `duckdb-flight` command: queries, file exports and loads, operator actions and a SQL shell for the server."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import adbc_driver_manager
import pyarrow as pa

from .admin import AdminClient, AdminError
from .connect import DEFAULT_URI, connect
from .errors import message
from .progress import Progress
from .render import format_table, head
from .shell import run_shell
from .transfer import EXPORT_EXTENSIONS, LOAD_MODES, FormatError, LoadError, export, infer_format, load

ERRORS = (AdminError, LoadError, FormatError, adbc_driver_manager.Error, pa.ArrowException, OSError)
ADMIN_ACTIONS = {
    "health": (AdminClient.health, "server health report (exit 1 when unhealthy)"),
    "stats": (AdminClient.statistics, "server statistics"),
    "reset-breaker": (AdminClient.reset_breaker, "close the circuit breaker"),
    "backup": (AdminClient.backup, "export the database to a backup folder on the server"),
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ERRORS as exc:
        print(f"Error: {message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duckdb-flight", parents=[_connection_options(argparse.SUPPRESS)],
        description="Client for the DuckDB Arrow Flight SQL server.",
        epilog="Environment: FLIGHT_URI, FLIGHT_PASSWORD. Connection options may also follow the command.")
    parser.set_defaults(uri=os.environ.get("FLIGHT_URI", DEFAULT_URI), user=None,
                        password=os.environ.get("FLIGHT_PASSWORD"), tls_root_certs=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_connection_options(argparse.SUPPRESS)]

    query = commands.add_parser("query", parents=common, help="run one SQL statement")
    query.add_argument("sql", metavar="SQL")
    query.add_argument("--output", "-o", metavar="FILE", help="stream the result into FILE instead of printing")
    query.add_argument("--format", choices=sorted(set(EXPORT_EXTENSIONS.values())),
                       help="output file format (default: from the FILE extension)")
    _max_rows(query)
    query.set_defaults(handler=cmd_query)

    loader = commands.add_parser("load", parents=common, help="load Parquet, CSV or JSON-lines files into a table")
    loader.add_argument("files", nargs="+", metavar="FILE")
    loader.add_argument("--table", "-t", required=True)
    loader.add_argument("--mode", choices=LOAD_MODES, default="create",
                        help="for the first file (default: create); further files are appended")
    loader.add_argument("--format", choices=("parquet", "csv", "json"),
                        help="input format (default: from each file extension)")
    loader.set_defaults(handler=cmd_load)

    for name, (_, summary) in ADMIN_ACTIONS.items():
        commands.add_parser(name, parents=common, help=summary).set_defaults(handler=cmd_admin)

    shell = commands.add_parser("shell", parents=common, help="interactive SQL shell (or run a script from stdin)")
    _max_rows(shell)
    shell.set_defaults(handler=cmd_shell)
    return parser


def _connection_options(default) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("connection")
    group.add_argument("--uri", default=default, help=f"server URI (env FLIGHT_URI; default {DEFAULT_URI})")
    group.add_argument("--user", default=default, help="user name for Basic authentication")
    group.add_argument("--password", default=default, help="password (env FLIGHT_PASSWORD)")
    group.add_argument("--tls-root-certs", default=default, metavar="PEM_FILE",
                       help="trusted CA certificates; implies TLS")
    return options


def _max_rows(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-rows", type=int, default=100, metavar="N",
                        help="print at most N rows of a result (default: 100)")


def _connect(args):
    return connect(args.uri, user=args.user, password=args.password, tls_root_certs=args.tls_root_certs)


def cmd_query(args) -> int:
    fmt = infer_format(args.output, args.format, EXPORT_EXTENSIONS) if args.output else None
    if args.format and not args.output:
        raise FormatError("--format needs --output")
    started = time.monotonic()
    with _connect(args) as conn, conn.cursor() as cursor:
        cursor.execute(args.sql)
        reader = cursor.fetch_record_batch()
        if fmt:
            rows = export(reader, args.output, fmt)
            print(f"wrote {rows:,} rows to {args.output} ({fmt}) in {time.monotonic() - started:.2f} s")
        else:
            table, total = head(reader, reader.schema, args.max_rows)
            print(format_table(table, total))
    return 0


def cmd_load(args) -> int:
    with _connect(args) as conn:
        result = load(conn, args.files, args.table, args.mode, args.format, Progress())
    print(result.summary(args.table))
    return 0


def cmd_admin(args) -> int:
    action = ADMIN_ACTIONS[args.command][0]
    with AdminClient(args.uri, args.user, args.password, args.tls_root_certs) as client:
        answer = action(client)
    print(json.dumps(answer, indent=2))
    return 1 if args.command == "health" and answer.get("status") == "unhealthy" else 0


def cmd_shell(args) -> int:
    with _connect(args) as conn:
        return run_shell(conn, args.max_rows)
