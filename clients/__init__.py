"""Client helpers for the DuckDB Flight SQL server (connection helpers, admin actions, CLI)."""
