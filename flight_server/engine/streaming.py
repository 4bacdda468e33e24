"""A result on its way to a client: yields DuckDB's record batches in wire-sized pieces, and writes the rest to
a spill file when its connection must run another statement (DuckDB ends a connection's open result then)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pyarrow as pa

from .errors import EngineError, ResourceError, classify
from .read_ahead import ReadAhead
from .spill import SpillFile, SpillSpace

# Clients refuse messages over 16 MiB by default; stay well below it.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Batches fetched ahead of the one being sent. Two keep DuckDB busy while one is on the wire; more would only
# hold memory (each batch is up to a few MiB).
READ_AHEAD = 2


class ResultStream:
    """Wraps one result reader. Iterating takes the session lock per batch, never while the batch is sent."""

    def __init__(self, reader: pa.RecordBatchReader, lock: threading.RLock,
                 on_batch: Callable[[], None] | None = None,
                 set_running: Callable[[object | None], None] | None = None,
                 space: SpillSpace | None = None, account: tuple[str, str] = ("", "")):
        self._reader: pa.RecordBatchReader | None = reader
        self._on_batch = on_batch  # keeps the session from looking idle while it streams
        self._set_running = set_running  # tells the session whose work a batch fetch is
        self.marker: object | None = None  # the streaming call's marker
        self._space = space  # where the rest goes when the connection is needed (SpillSpace.default() if None)
        self._account = account  # (user, session) the spill files are counted against
        self._spill: SpillFile | None = None
        self._error: EngineError | None = None  # why the rest of the result was dropped
        self._memory = 0  # bytes of `complete` counted against the space's memory budget
        self._idle_since: float | None = None  # when the client was last handed a batch (None: not waiting)
        # Called (outside the session lock) before DuckDB is asked for a batch: the service takes back an
        # execution slot the stream gave up while its client stalled.
        self.before_fetch: Callable[[], None] | None = None
        self._lock = lock
        self.schema = reader.schema
        self.finished = False
        self.rows_sent = 0
        self.bytes_sent = 0
        self._client_gone: Callable[[], bool] | None = None
        self.complete: pa.Table | None = None  # set by read_ahead when the whole result is small
        self._head: list[pa.RecordBatch] = []

    def read_ahead(self) -> None:
        """Reads the start of the result now (call with the session lock held). A result that ends within
        two batches and one message is kept whole, so DoGet can send it without calling back into Python."""
        head = []
        try:
            for _ in range(2):
                head.append(self._reader.read_next_batch())
        except StopIteration:
            table = pa.Table.from_batches(head, self.schema)
            if table.nbytes <= MAX_MESSAGE_BYTES:
                self._reader = None
                if not self.space.hold_memory(table.nbytes):
                    self._head = head  # no room in memory: it goes to a spill file like a long result
                    self.spill("small results already fill --max-result-memory")
                    if self._error is not None:
                        self.finished = True
                        raise self._error
                    return
                self._memory = table.nbytes
                self.complete = table
                self.finished = True
                self.rows_sent, self.bytes_sent = table.num_rows, table.nbytes
                return
        except Exception as exc:
            self.finished = True
            self._reader = None
            raise classify(exc) from None
        # Longer results: the batches already read go out first.
        self._head = head

    def attach(self, client_gone: Callable[[], bool]) -> None:
        """While a call streams this result, `client_gone` tells whether its client has left."""
        with self._lock:
            self._client_gone = client_gone

    def detach(self) -> None:
        """The streaming call has ended: a result it did not finish is dropped, never read any further."""
        with self._lock:
            self._client_gone = None
        if not self.finished:
            self.close()

    @property
    def space(self) -> SpillSpace:
        if self._space is None:
            self._space = SpillSpace.default()
        return self._space

    @property
    def streaming(self) -> bool:
        """Whether a call is sending this result now."""
        return self._client_gone is not None and not self.finished

    @property
    def on_engine(self) -> bool:
        """Whether the rest still comes from DuckDB (not from memory or a spill file)."""
        return self._reader is not None and not self.finished

    def stalled_for(self) -> float:
        """Seconds since the client was handed its last batch without asking for the next (0 while DuckDB
        works on a batch, before the first and after the last)."""
        since = self._idle_since
        return 0.0 if since is None or self.finished else time.monotonic() - since

    def spill(self, why: str = "the session ran another statement before this result was read") -> None:
        """Writes what DuckDB has not yet sent to a spill file (call with the session lock held). A result
        that does not fit the spill caps is dropped; its client gets the reason when it asks for more."""
        if self.finished or self._spill is not None or self._error is not None:
            return
        if self._client_gone is not None and self._client_gone():
            self.close()  # nobody will read the rest: drop it instead of producing it
            return
        user, session = self._account
        spill = self.space.open(self.schema, user, session)
        try:
            for batch in self._head:
                spill.write(batch)
            self._head = []
            while self._reader is not None:
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    break
                spill.write(batch)
            spill.finish()
            self._spill = spill
        except Exception as exc:
            spill.discard()
            self._head = []
            error = classify(exc)
            if isinstance(error, ResourceError):
                self.space.dropped += 1
                error = ResourceError(
                    f"result dropped: {why}, and the rest of it did not fit on disk: {error.message}")
            self._error = error
        finally:
            self._close_reader()

    def _close_reader(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:
                pass
            self._reader = None

    def release_memory(self) -> None:
        """The whole small result is no longer kept here (handed to its call, or dropped)."""
        if self._memory:
            self.space.free_memory(self._memory)
            self._memory = 0

    def close(self, error: EngineError | None = None) -> None:
        """Drops the rest of the result; with `error`, a call still sending it fails with that error instead of
        ending as if the result were complete."""
        with self._lock:
            if error is not None and not self.finished:
                self._error = error
            else:
                self.finished = True
            self._head = []
            self._close_reader()
            if self._spill is not None:
                self._spill.discard()
                self._spill = None
            self.release_memory()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        """The batches, cut to wire size. A helper thread fetches up to READ_AHEAD batches ahead, so DuckDB
        produces the next batch while gRPC serializes and sends this one (the two take turns otherwise)."""
        # Every fetch goes through _next(), so the stream's rules still hold: the session lock per batch,
        # spilling when the connection is needed, the slot taken back after a stall, the call marker for cancels.
        ahead = ReadAhead(iter(self._next, None), READ_AHEAD, "result-read-ahead")
        try:
            while True:
                self._idle_since = None
                batch = next(ahead, None)
                if batch is None:
                    return
                self.rows_sent += batch.num_rows
                self.bytes_sent += batch.nbytes
                if batch.nbytes <= MAX_MESSAGE_BYTES or batch.num_rows <= 1:
                    self._idle_since = time.monotonic()
                    yield batch
                    continue
                pieces = -(-batch.nbytes // MAX_MESSAGE_BYTES)
                step = max(1, -(-batch.num_rows // pieces))
                for offset in range(0, batch.num_rows, step):
                    self._idle_since = time.monotonic()
                    yield batch.slice(offset, step)
        finally:
            self._idle_since = None
            # Not waited for: the thread may be inside DuckDB for one batch; close() handles the reader.
            ahead.close(wait=False)

    def _next(self) -> pa.RecordBatch | None:
        if self.before_fetch is not None and self.on_engine and not self._head:
            self.before_fetch()
        with self._lock:
            if self.finished:
                return None
            if self._on_batch is not None:
                self._on_batch()
            if self._head:
                return self._head.pop(0)
            if self._spill is not None:
                batch = self._spill.read_next()
                if batch is None:
                    self.close()
                return batch
            if self._error is not None:
                self.finished = True
                raise self._error
            try:
                if self._set_running is not None:
                    self._set_running(self.marker)
                return self._reader.read_next_batch()
            except StopIteration:
                self.finished = True
                self._reader = None
                return None
            except Exception as exc:
                self.finished = True
                raise classify(exc) from None
            finally:
                if self._set_running is not None:
                    self._set_running(None)

    def to_reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, iter(self))

