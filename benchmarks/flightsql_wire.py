"""Flight SQL messages on the wire, for the benchmark's own Flight SQL code.

Used by the minimal Flight SQL server (``baselines/minimal_flightsql.py``)
and by the lean pyarrow.flight client (``targets.py``).  Every Flight SQL
command travels as a ``google.protobuf.Any`` in a descriptor's ``cmd``, a
ticket or an action body.  The message classes are the generated ones that
ship with this repository (``flight_server.protocol.flight_sql_pb2``): the
wire format only, none of the server's logic.
"""

from __future__ import annotations

import sys
from pathlib import Path

from google.protobuf import any_pb2

try:
    from flight_server.protocol import flight_sql_pb2 as sql_pb2
except ImportError:  # running from a checkout without `pip install .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from flight_server.protocol import flight_sql_pb2 as sql_pb2

__all__ = ["sql_pb2", "pack", "unpack"]

_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."


def pack(message) -> bytes:
    """Serialize ``message`` wrapped in an ``Any``."""
    wrapper = any_pb2.Any()
    wrapper.Pack(message)
    return wrapper.SerializeToString()


def unpack(data: bytes):
    """Decode an ``Any`` holding a Flight SQL message; return the message.

    Raises ``ValueError`` for anything that is not a Flight SQL message.
    """
    wrapper = any_pb2.Any()
    wrapper.ParseFromString(data)
    if not wrapper.type_url.startswith(_PREFIX):
        raise ValueError(f"not a Flight SQL message: {wrapper.type_url!r}")
    cls = getattr(sql_pb2, wrapper.type_url[len(_PREFIX):], None)
    if cls is None:
        raise ValueError(f"unknown Flight SQL message: {wrapper.type_url!r}")
    message = cls()
    wrapper.Unpack(message)
    return message
