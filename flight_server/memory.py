"""How much memory DuckDB may use: the smaller of the configured limit and a share of what the process can have."""

from __future__ import annotations

import re

import psutil

_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Z]*)", text.strip().upper())
    if not match:
        raise ValueError(f"{text!r} is not a size")
    return int(float(match.group(1)) * _UNITS.get(match.group(2) or "B", 1))


def available_bytes() -> int:
    """Physical memory, or the cgroup (container) limit when that is lower."""
    total = psutil.virtual_memory().total
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                raw = handle.read().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total


def effective_limit(configured: str, percentage: float) -> str:
    """DuckDB memory_limit text: min(configured, percentage of available memory)."""
    cap = int(available_bytes() * percentage / 100)
    limit = min(parse_size(configured), cap) if configured else cap
    return f"{max(limit // (1024 * 1024), 64)}MiB"
