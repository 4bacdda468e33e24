"""Client helpers for the DuckDB Flight SQL server (connection helpers, admin actions, CLI)."""

from .admin import AdminClient, AdminError
from .connect import connect

__all__ = ["AdminClient", "AdminError", "connect"]
