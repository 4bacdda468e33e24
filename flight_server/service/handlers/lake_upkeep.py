"""The admin action `lake-upkeep`: DuckLake's housekeeping, run by the server (its SQL needs admin anyway).

Small commits leave rows inlined in the catalog and many small Parquet files; every commit leaves a snapshot.
In one call, in this order: inlined rows are written out to Parquet, adjacent small files are merged,
snapshots older than `older_than_seconds` (JSON body; default 7 days) are expired, and files no snapshot
needs any more are deleted once older than that too. Snapshots younger than --ticket-ttl are always kept, so
the signed tickets still out there can be served.
"""

from __future__ import annotations

import json
import time

from ...engine.errors import QueryError, classify
from ...engine.lake import LAKE

DEFAULT_OLDER_THAN = 7 * 24 * 3600.0


class LakeUpkeepHandlers:
    def action_lake_upkeep(self, context, body: bytes):
        if self.database.settings.lake is None:
            raise QueryError("lake-upkeep: this server serves a DuckDB file, not a lake (--lake-catalog)")
        try:
            options = json.loads(body) if body.strip() else {}
            older_than = float(options.get("older_than_seconds", DEFAULT_OLDER_THAN))
        except (ValueError, TypeError, AttributeError):
            raise QueryError('lake-upkeep: the body is JSON like {"older_than_seconds": 86400}') from None
        if older_than < self.config.ticket_ttl:
            raise QueryError(f"lake-upkeep: older_than_seconds must be at least --ticket-ttl "
                             f"({self.config.ticket_ttl:g}): signed tickets read snapshots that young")
        cutoff = f"now() - to_seconds({older_than!r})"
        steps = {
            "flushed_inlined": f"CALL ducklake_flush_inlined_data('{LAKE}')",
            "merged": f"CALL ducklake_merge_adjacent_files('{LAKE}')",
            "expired_snapshots": f"CALL ducklake_expire_snapshots('{LAKE}', older_than => {cutoff})",
            "deleted_files": f"CALL ducklake_cleanup_old_files('{LAKE}', older_than => {cutoff})",
        }
        report: dict[str, object] = {"older_than_seconds": older_than}
        started = time.perf_counter()
        conn = self.database.connect()
        try:
            for name, sql in steps.items():
                try:
                    report[name] = conn.execute(sql).fetch_arrow_table().num_rows  # rows: files or snapshots
                except Exception as exc:  # noqa: BLE001 - one DuckDB error, classified and sent as it is
                    raise classify(exc) from None
        finally:
            conn.close()
        report["seconds"] = round(time.perf_counter() - started, 3)
        return [json.dumps(report).encode()]
