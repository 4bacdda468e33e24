"""Arrow Flight SQL server for DuckDB."""

__version__ = "0.1.0"
