"""Client record batches on their way into DuckDB.

pyarrow reads IPC batches without full validation and DuckDB's Arrow scan trusts what it is given, so a
batch whose buffers do not fit its schema (bad offsets, flipped validity bits, dictionary indices out of
range, corrupt view buffers, another schema's batch) could crash the process. Every batch a client sends is
therefore checked here first: its schema must equal the declared one and `validate(full=True)` (C++, once
per batch, never per row in Python) must pass. The first bad batch ends the upload with a QueryError naming
the column.

`IncomingBatches` also records whether the client's stream ended cleanly, so that ingest commits only then:
a stream that ends because the call was cancelled or the client vanished must not commit what came so far.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa

from .errors import CancelledError, EngineError, QueryError
from .read_ahead import ReadAhead

_IN_COLUMN = re.compile(r"^In column (\d+): (?:\w+: )?")


class IncomingBatches:
    """An iterable of validated record batches from a client, with the declared `schema`.

    `cancelled()` (optional) tells whether the call carrying the batches was cancelled; it is asked when
    the stream ends, since a client that dies mid-upload looks like a normal end of stream to the reader.
    """

    def __init__(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                 cancelled: Callable[[], bool] | None = None):
        self.schema = schema
        self._batches = iter(batches)
        self._cancelled = cancelled
        self.error: EngineError | None = None
        self.ended_cleanly = False
        self.batches_read = 0
        self._prefetch: ReadAhead | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = next(self._batches)
            except StopIteration:
                break
            except EngineError as exc:
                self.error = exc
                raise
            except Exception as exc:  # the IPC reader refused a message: malformed client data
                self.error = QueryError(f"could not read record batch {self.batches_read + 1} of the upload: "
                                        f"{_first_line(exc)}")
                raise self.error from None
            if batch is None:
                continue
            self.batches_read += 1
            self.error = invalid_batch(batch, self.schema, self.batches_read)
            if self.error is not None:
                raise self.error
            yield batch
        if self._cancelled is not None and self._cancelled():
            self.error = CancelledError("the upload was cancelled or its client went away before the stream "
                                        "ended; nothing was written")
            raise self.error
        self.ended_cleanly = True

    def reader(self) -> pa.RecordBatchReader:
        """The batches as a RecordBatchReader (for DuckDB's Arrow scan). A helper thread reads and validates
        up to two batches ahead, so the checks overlap DuckDB's work instead of adding to it. Call close()
        when DuckDB is done with the reader."""
        self._prefetch = ReadAhead(iter(self), depth=2, name="ingest-read-ahead")
        return pa.RecordBatchReader.from_batches(self.schema, self._prefetch)

    def close(self) -> None:
        """Stops the read-ahead thread and waits for it: the client's stream must not be touched once the call
        that owns it has returned."""
        if self._prefetch is not None:
            self._prefetch.close()

    def read_all(self) -> list[pa.RecordBatch]:
        return list(self)

    def check_complete(self) -> None:
        """Raises unless every batch was read and valid and the call was not cancelled: call this right
        before committing."""
        if self.error is not None:
            raise self.error
        if not self.ended_cleanly or (self._cancelled is not None and self._cancelled()):
            raise CancelledError("the upload did not end normally; nothing was written")


def invalid_batch(batch: pa.RecordBatch, schema: pa.Schema, number: int = 1) -> QueryError | None:
    """Why `batch` must not reach DuckDB, or None when it is sound and matches `schema`."""
    if not batch.schema.equals(schema):
        return QueryError(f"record batch {number} does not match the declared schema: it has "
                          f"({_describe(batch.schema)}), the stream declared ({_describe(schema)})")
    try:
        batch.validate(full=True)
    except (pa.ArrowException, ValueError) as exc:
        text = _first_line(exc)
        found = _IN_COLUMN.match(text)
        if found and int(found.group(1)) < len(schema):
            field = schema.field(int(found.group(1)))
            return QueryError(f"record batch {number}, column {field.name!r} ({field.type}) is malformed: "
                              f"{text[found.end():]}")
        return QueryError(f"record batch {number} is malformed: {text}")
    return None


def _describe(schema: pa.Schema) -> str:
    text = ", ".join(f"{field.name} {field.type}" for field in schema)
    return text if len(text) <= 300 else text[:297] + "..."


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:500] if lines else type(exc).__name__
