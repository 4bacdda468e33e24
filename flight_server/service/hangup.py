"""Ends the TCP connections clients hold to the Flight port, from the server's side, at shutdown.

gRPC's shutdown waits for every call in flight, and pyarrow offers no deadline for it; a call whose client
stalled mid-stream (an ingest that stopped sending, a reader that stopped reading) never ends by itself.
Shutting down the socket under it is what a dropped network does: gRPC cancels the calls on that
connection, a stalled ingest reads "cancelled" and rolls back, and the sessions, the checkpoint and gRPC's
shutdown can all finish."""

from __future__ import annotations

import os
import socket

import psutil


def hang_up_clients(port: int) -> int:
    """Shuts down every connected TCP socket whose local port is `port`; returns how many."""
    try:
        connections = psutil.Process().net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return 0
    count = 0
    for conn in connections:
        if conn.fd < 0 or not conn.raddr or not conn.laddr or conn.laddr.port != port:
            continue
        try:
            # A duplicate of gRPC's descriptor: shutdown() acts on the connection, close() only on the copy.
            with socket.socket(fileno=os.dup(conn.fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
            count += 1
        except OSError:
            pass  # closed meanwhile
    return count
