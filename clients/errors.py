"""Turns driver and Flight exceptions into the short message a person wants to read (DuckDB's own text)."""

from __future__ import annotations

import re

_PREFIXES = re.compile(r"^([A-Z_]+: )?(\[FlightSQL\] )?(Flight returned \w+ error, with message: )?")
_TRAILERS = (". Detail: ", ". Vendor code:", ". gRPC client debug context:")
_DRIVER_CONTEXT = re.compile(r"\s*\(\w+; [^()]*\)$")  # e.g. " (InvalidArgument; Prepare)"


def message(exc: BaseException) -> str:
    """The server's message without gRPC status codes, driver context and server-side Python details."""
    text = _PREFIXES.sub("", str(exc).strip())
    for trailer in _TRAILERS:
        cut = text.find(trailer)
        if cut > 0:
            text = text[:cut]
    return _DRIVER_CONTEXT.sub("", text.strip()) or type(exc).__name__
