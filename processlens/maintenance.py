"""Work that follows every ingest commit: keep derived data (analytics aggregates) current.

Ingest stays free of analytics: the commands and the scheduler call :func:`after_ingest` once
new events are committed, so dashboards read maintained aggregates (incremental: only the cases
the new events touched are recomputed) instead of scanning all events.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def after_ingest(con: duckdb.DuckDBPyConnection) -> str:
    """Refresh the analytics aggregates on an open, writable store; returns what was done."""
    from analytics.incremental import refresh

    return refresh(con).mode


def after_ingest_at(db_path: str | Path) -> str | None:
    """Same, opening the store for it; a busy store is left for the next ingest (results stay correct)."""
    from ingest.store import open_store
    from processlens.errors import StoreBusyError

    try:
        with open_store(db_path) as con:
            return after_ingest(con)
    except StoreBusyError:
        return None
