"""Which client connections are open: gRPC names a call's peer ("ipv4:127.0.0.1:53122"), and the kernel knows
which TCP connections to the Flight port are still established. A session whose connections are all gone
belongs to a client that closed, crashed or was killed."""

from __future__ import annotations

import psutil


def _ip(text: str) -> str:
    text = text.strip("[]")
    return text[7:] if text.lower().startswith("::ffff:") else text  # an IPv4 client of a dual-stack socket


def client_address(peer: str) -> str | None:
    """'ip port' of a gRPC peer ('ipv4:1.2.3.4:5', 'ipv6:[::1]:5'); None for other transports."""
    scheme, _, rest = peer.partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return None
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return None
    return f"{_ip(host)} {port}"


def client_host(peer: str) -> str:
    """The client's IP address (who a call counts as when there is no authentication)."""
    address = client_address(peer)
    return address.split(" ")[0] if address else peer


class LiveConnections:
    """Callable: the 'ip port' names of the TCP connections established to `port` now (None: cannot tell)."""

    def __init__(self, port: int):
        self.port = port

    def __call__(self) -> set[str] | None:
        try:
            connections = psutil.Process().net_connections(kind="tcp")
        except (psutil.Error, OSError):
            return None
        return {f"{_ip(c.raddr.ip)} {c.raddr.port}" for c in connections
                if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.laddr and c.laddr.port == self.port}
