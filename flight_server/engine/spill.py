"""Disk for results that must leave their DuckDB connection before the client has read them.

DuckDB ends a connection's open result when that connection runs its next statement. A result the client has
not read yet (parked after GetFlightInfo, or half sent) is then written here as an Arrow IPC stream file and
sent from that file later, batch by batch: server memory stays bounded whatever clients leave unread. The
files are counted against one cap shared with DuckDB's own spill files (--max-temp-directory-size), and
against caps per user and per session; a result that does not fit is dropped, and its client is told why when
it fetches it. Small results kept whole in memory are counted against a memory budget; past it they are
written here too.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter

import pyarrow as pa

from .errors import ResourceError

_PREFIX = "result-"
_SUFFIX = ".arrows"


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.0f} MB"


class SpillSpace:
    """The spill folder and its caps (bytes): `limit` for everything in the temp folder (DuckDB's own spill
    files in `duckdb_directory` included), `per_user` and `per_session` for result files; `memory` for small
    results kept whole in memory."""

    def __init__(self, directory: str, limit: int, per_user: int | None = None, per_session: int | None = None,
                 memory: int = 64 * 10**6, duckdb_directory: str | None = None):
        self.directory = directory
        self.limit = limit
        self.per_user = per_user or limit
        self.per_session = per_session or self.per_user
        self.memory = memory
        self.duckdb_directory = duckdb_directory
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):  # left by a server that did not stop cleanly
            if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
                try:
                    os.remove(os.path.join(directory, name))
                except OSError:
                    pass
        self._lock = threading.Lock()
        self.used = 0
        self.memory_used = 0
        self._by_user: Counter[str] = Counter()
        self._by_session: Counter[str] = Counter()
        self._duckdb_bytes = 0
        self._duckdb_checked = 0.0
        self.dropped = 0

    @classmethod
    def default(cls) -> SpillSpace:
        """A space without caps in the system's temp folder (the engine used without a server)."""
        global _DEFAULT
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                folder = os.path.join(tempfile.gettempdir(), f"duckdb-flight-results-{os.getpid()}")
                _DEFAULT = cls(folder, shutil.disk_usage(tempfile.gettempdir()).free)
            return _DEFAULT

    # -- accounting -------------------------------------------------------

    def _duckdb_usage(self) -> int:
        """Bytes of DuckDB's own spill files (checked at most once a second)."""
        now = time.monotonic()
        if self.duckdb_directory and now - self._duckdb_checked > 1.0:
            total = 0
            try:
                with os.scandir(self.duckdb_directory) as entries:
                    for entry in entries:
                        if entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                pass
            self._duckdb_bytes, self._duckdb_checked = total, now
        return self._duckdb_bytes

    def charge(self, user: str, session: str, nbytes: int) -> None:
        """Counts `nbytes` more for `user` and `session`; ResourceError (nothing counted) when a cap would be
        passed."""
        with self._lock:
            duckdb_bytes = self._duckdb_usage()
            if self.used + duckdb_bytes + nbytes > self.limit:
                raise ResourceError(
                    f"the spill space is full ({_mb(self.used)} of results and {_mb(duckdb_bytes)} of DuckDB "
                    f"spill files, max_temp_directory_size={_mb(self.limit)})")
            if self._by_user[user] + nbytes > self.per_user:
                raise ResourceError(f"this user's spilled results reached max_spill_per_user={_mb(self.per_user)}")
            if self._by_session[session] + nbytes > self.per_session:
                raise ResourceError(
                    f"this session's spilled results reached max_spill_per_session={_mb(self.per_session)}")
            self._add(user, session, nbytes)

    def refund(self, user: str, session: str, nbytes: int) -> None:
        with self._lock:
            self._add(user, session, -nbytes)

    def _add(self, user: str, session: str, nbytes: int) -> None:
        self.used += nbytes
        self._by_user[user] += nbytes
        self._by_session[session] += nbytes
        for counter, key in ((self._by_user, user), (self._by_session, session)):
            if counter[key] <= 0:
                del counter[key]

    def hold_memory(self, nbytes: int) -> bool:
        """Reserves memory for a small result kept whole; False when the budget has no room for it."""
        with self._lock:
            if self.memory_used + nbytes > self.memory:
                return False
            self.memory_used += nbytes
            return True

    def free_memory(self, nbytes: int) -> None:
        with self._lock:
            self.memory_used -= nbytes

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"spilled_bytes": self.used, "spill_limit_bytes": self.limit,
                    "whole_results_bytes": self.memory_used, "dropped_results": self.dropped}

    # -- files ------------------------------------------------------------

    def open(self, schema: pa.Schema, user: str, session: str) -> SpillFile:
        return SpillFile(self, schema, user, session)


class SpillFile:
    """One result written once as an Arrow IPC stream, then read back one batch at a time (never whole, never
    memory-mapped: mapped pages would count as the server's memory). Deleted when read, dropped or closed."""

    def __init__(self, space: SpillSpace, schema: pa.Schema, user: str, session: str):
        self.space = space
        self.user = user
        self.session = session
        self.path = os.path.join(space.directory, f"{_PREFIX}{secrets.token_hex(12)}{_SUFFIX}")
        self.size = 0
        self._sink: pa.NativeFile | None = pa.OSFile(self.path, "wb")
        self._writer: pa.ipc.RecordBatchStreamWriter | None = pa.ipc.new_stream(self._sink, schema)
        self._source: pa.NativeFile | None = None
        self._reader: pa.ipc.RecordBatchStreamReader | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        """Appends a batch; ResourceError when it would pass a cap (the caller then discards the file)."""
        estimate = batch.nbytes + 1024
        self.space.charge(self.user, self.session, estimate)
        self.size += estimate
        self._writer.write_batch(batch)
        actual = self._sink.tell()
        self.space.refund(self.user, self.session, self.size - actual)
        self.size = actual

    def finish(self) -> None:
        """Ends writing; the file is read from its start from now on."""
        self._writer.close()
        self._sink.close()
        self._writer = self._sink = None
        self._source = pa.OSFile(self.path, "rb")
        self._reader = pa.ipc.open_stream(self._source)

    def read_next(self) -> pa.RecordBatch | None:
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            return None

    def discard(self) -> None:
        for handle in (self._writer, self._sink, self._source):
            if handle is not None:
                try:
                    handle.close()
                except Exception:
                    pass
        self._writer = self._sink = self._source = self._reader = None
        try:
            os.remove(self.path)
        except OSError:
            pass
        if self.size:
            self.space.refund(self.user, self.session, self.size)
            self.size = 0


_DEFAULT: SpillSpace | None = None
_DEFAULT_LOCK = threading.Lock()
