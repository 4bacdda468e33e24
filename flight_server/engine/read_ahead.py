"""Iterates a source on a helper thread, a few items ahead of the consumer: while the consumer works on one
batch (gRPC sending a result, DuckDB scanning an upload), the next ones are already being produced (pyarrow and
DuckDB release the GIL while they read, validate and produce). Used for results on their way out
(streaming.py) and client batches on their way in (incoming.py)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

_END = object()


class ReadAhead:
    """An iterator over `source`, `depth` items ahead. The thread starts at the first next(); it ends at the
    source's end, on an error (handed to the consumer, which raises it) or at close()."""

    def __init__(self, source: Iterator, depth: int, name: str):
        self._source = source
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()
        self._name = name
        self._thread: threading.Thread | None = None
        self._done = False

    def __iter__(self) -> Iterator:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        item = self._queue.get()
        if item is _END or isinstance(item, BaseException):
            self._done = True
            if item is _END:
                raise StopIteration
            raise item
        return item

    def close(self, wait: bool = True) -> None:
        """Stops the thread at its next step; with `wait`, returns once it has ended (it may be producing one
        item)."""
        self._stopped.set()
        if wait and self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False
