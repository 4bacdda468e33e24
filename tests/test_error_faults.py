"""Engine-level checks, no server: whose fault each error is, what a client may see, what the breaker counts."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from flight_server.engine import errors
from flight_server.engine.incoming import IncomingBatches
from flight_server.resilience.breaker import CLOSED, OPEN, CircuitBreaker


@pytest.fixture(autouse=True)
def server_paths():
    saved = list(errors._server_paths)
    errors.register_server_paths(["/srv/flight/data/flight.duckdb", "/srv/flight/data/tmp"])
    yield
    errors._server_paths[:] = saved


@pytest.mark.parametrize("exc,kind,fault", [
    (duckdb.ParserException("Parser Error: syntax error at or near \"SELEC\""), errors.QueryError, "client"),
    (duckdb.IOException('IO Error: No files found that match the pattern "/data/files/x.csv"'),
     errors.NotFoundError, "user_query"),
    (duckdb.IOException('IO Error: Cannot open file "/data/files/x.csv": Permission denied'),
     errors.QueryError, "user_query"),
    (duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block"), errors.ResourceError,
     "user_query"),
    (duckdb.InterruptException("INTERRUPT Error: Interrupted!"), errors.CancelledError, "user_query"),
    (duckdb.IOException('IO Error: Could not write file "/srv/flight/data/tmp/x.block": No space left on device'),
     errors.ResourceError, "server"),
    (duckdb.IOException('IO Error: Could not read from file "/srv/flight/data/flight.duckdb": Input/output error'),
     errors.InternalError, "server"),
    (duckdb.TransactionException('TransactionContext Error: Failed to commit: Cannot open file '
                                 '"/srv/flight/data/flight.duckdb.wal": Is a directory'), errors.InternalError, "server"),
    (duckdb.FatalException("FATAL Error: Failed: database has been invalidated because of a previous fatal error"),
     errors.InternalError, "server"),
    (duckdb.InternalException("INTERNAL Error: Attempted to access index 3 within vector of size 3"),
     errors.InternalError, "server"),
    (duckdb.TransactionException("TransactionContext Error: Catalog write-write conflict on create with \"t\""),
     errors.ConstraintError, "client"),
])
def test_classify_says_whose_fault(exc, kind, fault):
    error = errors.classify(exc)
    assert type(error) is kind and error.fault == fault
    assert errors.is_server_fault(exc) == (fault == "server")


def test_http_404_is_the_users_not_found():
    error = errors.classify(duckdb.HTTPException("HTTP Error: HTTP GET error on 's3://bucket/x.parquet' (HTTP 404)"))
    assert isinstance(error, errors.NotFoundError) and error.fault == "user_query"


def test_client_message_strips_stack_trace_and_server_paths_but_log_keeps_them():
    text = ("INTERNAL Error: Failed to read /srv/flight/data/flight.duckdb.wal at block 7\n"
            "This error signals an assertion failure within DuckDB.\n\nStack Trace:\n\n"
            "/usr/lib/libduckdb.so(+0x1234) [0x7f]\n  1  duckdb::Exception::Exception()")
    error = errors.classify(duckdb.InternalException(text))
    assert "Stack Trace" not in error.message and "libduckdb" not in error.message
    assert "/srv/flight" not in error.message and "<server file>" in error.message
    assert "assertion failure" in error.message
    assert error.detail == text


def test_user_paths_stay_in_messages():
    error = errors.classify(duckdb.IOException('IO Error: No files found that match the pattern "/srv/files/a.csv"'))
    assert "/srv/files/a.csv" in error.message


def test_breaker_counts_only_server_faults():
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, window=60, reset_timeout=30, clock=lambda: now[0])
    for exc in (duckdb.ParserException("Parser Error: x"), duckdb.OutOfMemoryException("Out of Memory Error: x"),
                duckdb.IOException('IO Error: No files found that match the pattern "/d/x.csv"'),
                duckdb.InterruptException("INTERRUPT Error: Interrupted!"), errors.UnavailableError("pool full"),
                ValueError("bad parameter"), NotImplementedError("no")):
        for _ in range(3):
            breaker.record_failure(exc)
    assert breaker.state == CLOSED
    breaker.record_failure(duckdb.InternalException("INTERNAL Error: boom"))
    breaker.record_failure(duckdb.FatalException("FATAL Error: database has been invalidated"))
    assert breaker.state == OPEN


def _batches(*batches):
    return IncomingBatches(batches[0].schema, iter(batches))


def test_incoming_batches_refuse_a_malformed_batch_naming_the_column():
    declared = pa.schema([("name", pa.string()), ("n", pa.int64())])
    other = pa.record_batch([pa.array([5, 6, 7], pa.int64()), pa.array(["x", "y", "z"])], names=["p", "q"])
    bad = pa.ipc.read_record_batch(other.serialize(), declared)
    incoming = IncomingBatches(declared, iter([bad]))
    with pytest.raises(errors.QueryError) as info:
        list(incoming)
    assert "column 'name'" in info.value.message and incoming.error is info.value
    with pytest.raises(errors.QueryError):
        incoming.check_complete()


def test_incoming_batches_refuse_another_schema():
    first = pa.record_batch([pa.array([1])], names=["a"])
    second = pa.record_batch([pa.array(["x"])], names=["a"])
    with pytest.raises(errors.QueryError) as info:
        list(_batches(first, second))
    assert "does not match the declared schema" in info.value.message


def test_incoming_batches_commit_only_on_a_clean_end():
    batch = pa.record_batch([pa.array([1, 2])], names=["a"])
    clean = _batches(batch, batch)
    assert sum(b.num_rows for b in clean) == 4
    clean.check_complete()
    cancelled = IncomingBatches(batch.schema, iter([batch]), cancelled=lambda: True)
    with pytest.raises(errors.CancelledError):
        list(cancelled)
    with pytest.raises(errors.CancelledError):
        cancelled.check_complete()
    unfinished = _batches(batch)
    with pytest.raises(errors.CancelledError):
        unfinished.check_complete()
