"""Run one configured ingest job on its store, as ``processlens ingest run JOB`` does (for source tests)."""

from __future__ import annotations

from ingest.jobs import load_jobs, run_job
from ingest.loader import RunResult
from ingest.store import open_store


def run_named_job(settings, name: str | None = None) -> RunResult:
    """The job called ``name`` (the first one when None), run in one store session; its result."""
    specs = load_jobs(settings)
    spec = specs[0] if name is None else next(j for j in specs if j.name == name)
    with open_store(settings.db_path) as con:
        return run_job(con, spec)
