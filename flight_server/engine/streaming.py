"""A result on its way to a client: yields DuckDB's record batches in wire-sized pieces, and can read the rest
into memory when its connection must run another statement (DuckDB ends a connection's open result then)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pyarrow as pa

from .errors import classify

# Clients refuse messages over 16 MiB by default; stay well below it.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class ResultStream:
    """Wraps one result reader. Iterating takes the session lock per batch, never while the batch is sent."""

    def __init__(self, reader: pa.RecordBatchReader, lock: threading.RLock,
                 on_batch: Callable[[], None] | None = None,
                 set_running: Callable[[object | None], None] | None = None):
        self._reader: pa.RecordBatchReader | None = reader
        self._on_batch = on_batch  # keeps the session from looking idle while it streams
        self._set_running = set_running  # tells the session whose work a batch fetch is
        self.marker: object | None = None  # the streaming call's marker
        self._buffered: list[pa.RecordBatch] | None = None
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
                self.complete = table
                self.finished = True
                self._reader = None
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

    def materialize(self) -> None:
        """Reads what DuckDB has not yet sent into memory (call with the session lock held)."""
        if self.finished or self._buffered is not None:
            return
        if self._client_gone is not None and self._client_gone():
            self.close()  # nobody will read the rest: drop it instead of producing it
            return
        try:
            self._buffered = self._head + (list(self._reader) if self._reader is not None else [])
            self._head = []
        except Exception as exc:
            self._buffered = []
            self._error = classify(exc)
        self._reader = None

    def close(self) -> None:
        with self._lock:
            self.finished = True
            self._buffered = []
            if self._reader is not None:
                try:
                    self._reader.close()
                except Exception:
                    pass
                self._reader = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            batch = self._next()
            if batch is None:
                return
            self.rows_sent += batch.num_rows
            self.bytes_sent += batch.nbytes
            if batch.nbytes <= MAX_MESSAGE_BYTES or batch.num_rows <= 1:
                yield batch
                continue
            pieces = -(-batch.nbytes // MAX_MESSAGE_BYTES)
            step = max(1, -(-batch.num_rows // pieces))
            for offset in range(0, batch.num_rows, step):
                yield batch.slice(offset, step)

    def _next(self) -> pa.RecordBatch | None:
        with self._lock:
            if self.finished:
                return None
            if self._on_batch is not None:
                self._on_batch()
            if self._head:
                return self._head.pop(0)
            if self._buffered is not None:
                if self._buffered:
                    return self._buffered.pop(0)
                error = getattr(self, "_error", None)
                self.finished = True
                if error is not None:
                    raise error
                return None
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
