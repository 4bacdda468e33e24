"""An interactive SQL shell over Flight SQL (readline history, multi-line statements); also reads piped scripts."""

from __future__ import annotations

import os
import sys
from typing import Callable, TextIO

import adbc_driver_manager
import pyarrow as pa

from .errors import message
from .render import format_table, head

HISTORY_PATH = os.path.join("~", ".duckdb_flight_history")
HISTORY_LENGTH = 2000
PROMPT = "flight> "
CONTINUATION = "   ...> "
HELP = """\
Statements end with ';' and may span lines.
  .tables   list tables
  .help     this text
  .quit     leave (also .exit or Ctrl-D)"""
CLIENT_ERRORS = (adbc_driver_manager.Error, pa.ArrowException, OSError)


def split_statements(text: str) -> tuple[list[str], str]:
    """Complete `;`-terminated statements in `text` and the unfinished rest; quotes are respected and
    -- comments dropped."""
    statements, current, quote, index = [], [], "", 0
    while index < len(text):
        char = text[index]
        if not quote and text.startswith("--", index):
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ";":
            statements.append("".join(current).strip())
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    return [s for s in statements if s], "".join(current)


class Shell:
    """Runs statements and dot commands on one connection, printing tables to `out` and errors to `err`."""

    def __init__(self, conn, max_rows: int = 100, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.conn = conn
        self.max_rows = max_rows
        self.out = out
        self.err = err
        self.failures = 0

    def run(self, read_line: Callable[[str], str | None]) -> None:
        """Reads lines until EOF or .quit; `read_line(prompt)` returns None at the end of input."""
        pending = ""
        while True:
            try:
                line = read_line(CONTINUATION if pending.strip() else PROMPT)
                if line is None:
                    break
                if not pending.strip() and line.strip().startswith("."):
                    if not self.command(line.strip()):
                        break
                    continue
                statements, pending = split_statements(pending + line + "\n")
                for sql in statements:
                    self.execute(sql)
            except KeyboardInterrupt:
                pending = ""
                print("^C", file=self.err)
        if pending.strip():
            self.execute(pending.strip())

    def command(self, line: str) -> bool:
        """Runs one dot command; False means leave the shell."""
        name = line.split()[0].lower()
        if name in (".quit", ".exit"):
            return False
        if name == ".help":
            print(HELP, file=self.out)
        elif name == ".tables":
            self._guarded(self._tables)
        else:
            self._fail(f"unknown command {name}; try .help")
        return True

    def execute(self, sql: str) -> None:
        self._guarded(lambda: self._query(sql))

    def _query(self, sql: str) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            table, total = head(reader, reader.schema, self.max_rows)
        self._show(table, total)

    def _tables(self) -> None:
        objects = self.conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        found = [(catalog["catalog_name"], schema["db_schema_name"], table["table_name"], table["table_type"])
                 for catalog in objects for schema in catalog["catalog_db_schemas"] or []
                 for table in schema["db_schema_tables"] or []]
        names = ("catalog", "schema", "name", "type")
        self._show(pa.table(dict(zip(names, map(list, zip(*found))))) if found
                   else pa.table({name: pa.array([], pa.string()) for name in names}))

    def _show(self, table: pa.Table, total: int | None = None) -> None:
        print(format_table(table, total), file=self.out, flush=True)

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except CLIENT_ERRORS as exc:
            self._fail(message(exc))

    def _fail(self, text: str) -> None:
        self.failures += 1
        print(f"Error: {text}", file=self.err, flush=True)


def piped_reader(stream: TextIO) -> Callable[[str], str | None]:
    """Lines of a script, without prompts."""
    lines = iter(stream)
    return lambda prompt: next(lines, None)


def terminal_reader(history_path: str) -> Callable[[str], str | None]:
    """input() with readline editing; history loads now and is saved by save_history()."""
    import readline

    try:
        readline.read_history_file(history_path)
    except OSError:
        pass
    readline.set_history_length(HISTORY_LENGTH)

    def read(prompt: str) -> str | None:
        try:
            return input(prompt)
        except EOFError:
            print()
            return None
    return read


def save_history(history_path: str) -> None:
    import readline

    try:
        readline.write_history_file(history_path)
    except OSError as exc:
        print(f"warning: could not save history to {history_path}: {exc.strerror}", file=sys.stderr)


def run_shell(conn, max_rows: int = 100, stdin: TextIO = sys.stdin) -> int:
    """The `shell` command: interactive on a terminal, a script runner otherwise (exit 1 if a statement failed)."""
    shell = Shell(conn, max_rows)
    if not stdin.isatty():
        shell.run(piped_reader(stdin))
        return 1 if shell.failures else 0
    history = os.path.expanduser(HISTORY_PATH)
    print("Connected. Statements end with ';'. Type .help for commands.")
    try:
        shell.run(terminal_reader(history))
    finally:
        save_history(history)
    return 0
