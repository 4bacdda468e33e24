"""Flight SQL wire format: messages, Any packing, result schemas and SqlInfo (no DuckDB here)."""
