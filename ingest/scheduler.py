"""Run ingest jobs on their schedules: ``every 30s`` / ``every 5m`` / ``every 1h`` / ``every 1d`` or cron.

Each cycle reads when every scheduled job last started (``ingest_runs``, any status, so a failing
job is retried at its interval rather than in a tight loop), runs the jobs that are due one after
another, logs one line per run, and sleeps until the next job is due (at most ``tick`` seconds;
``[scheduler] tick`` in processlens.toml, default 5). A job that has never run is due at once.
Cron expressions (5 fields, via croniter) are evaluated in UTC. A failing job does not stop the others; when the store stays busy (another process holds it)
the cycle is skipped and retried on the next one. Jobs without ``schedule`` only run by
``processlens ingest run``.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.jobs import JobSpec, load_jobs, run_job
from processlens.config import Settings
from processlens.errors import ConfigError, ProcesslensError, StoreBusyError

EVERY = re.compile(r"^\s*every\s+(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\s*$", re.I)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Schedule:
    """``interval`` seconds, or a cron expression."""

    text: str
    interval: float | None = None
    cron: str | None = None

    def next_after(self, last: datetime) -> datetime:
        """The first due time after a run that started at ``last`` (naive UTC)."""
        if self.interval is not None:
            return last + timedelta(seconds=self.interval)
        from croniter import croniter

        return croniter(self.cron, last).get_next(datetime)


def parse_schedule(text: str) -> Schedule:
    """``every 30s`` / ``every 5 minutes`` / ``every 1h`` or a 5-field cron expression."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"schedule {text!r} is not a string", hint='use "every 10m" or a cron expression like "*/10 * * * *"')
    m = EVERY.match(text)
    if m:
        seconds = float(m.group(1)) * UNIT_SECONDS[m.group(2)[0].lower()]
        if seconds <= 0:
            raise ConfigError(f"schedule {text!r} has a zero interval", hint='use e.g. "every 30s"')
        return Schedule(text=text, interval=seconds)
    from croniter import croniter

    if not croniter.is_valid(text.strip()):
        raise ConfigError(f"schedule {text!r} is neither 'every N s|m|h|d' nor a valid cron expression",
                          hint='write e.g. "every 10m" or "*/10 * * * *" (minute hour day month weekday)')
    return Schedule(text=text, cron=text.strip())


def last_starts(con) -> dict[str, datetime]:
    """When each job last started a run (naive UTC)."""
    return {job: ts for job, ts in con.execute("SELECT job, max(started_at) FROM ingest_runs GROUP BY job").fetchall()}


def due_jobs(jobs: list[JobSpec], last: dict[str, datetime], now: datetime) -> list[JobSpec]:
    """The scheduled jobs whose next due time is not after ``now``."""
    due = []
    for job in jobs:
        if not job.schedule:
            continue
        prev = last.get(job.name)
        if prev is None or parse_schedule(job.schedule).next_after(prev) <= now:
            due.append(job)
    return due


def seconds_until_next(jobs: list[JobSpec], last: dict[str, datetime], now: datetime) -> float | None:
    times = []
    for job in jobs:
        if job.schedule and job.name in last:
            times.append((parse_schedule(job.schedule).next_after(last[job.name]) - now).total_seconds())
        elif job.schedule:
            times.append(0.0)
    return max(0.0, min(times)) if times else None


def _default_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run_cycle(settings: Settings, jobs: list[JobSpec], log: Callable[[str], None], busy_timeout: float | None = None
              ) -> dict[str, datetime]:
    """One pass: run every due job; return the last start times seen (for sleeping)."""
    from ingest.store import open_store

    try:
        with open_store(settings.db_path, timeout=busy_timeout) as con:
            last = last_starts(con)
    except StoreBusyError as exc:
        log(f"{_now():%Y-%m-%d %H:%M:%S}Z store busy, retrying next cycle: {exc.message}")
        return {}
    for job in due_jobs(jobs, last, _now()):
        stamp = f"{_now():%Y-%m-%d %H:%M:%S}Z"
        try:
            with open_store(settings.db_path, timeout=busy_timeout) as con:
                result = run_job(con, job)
        except StoreBusyError as exc:
            log(f"{stamp} {job.name}: store busy, retrying next cycle ({exc.message})")
            continue
        except ProcesslensError as exc:
            log(f"{stamp} {job.name}: FAILED: {exc.message}")
            continue
        except Exception as exc:  # a broken job must not stop the scheduler
            log(f"{stamp} {job.name}: FAILED: {type(exc).__name__}: {exc}")
            continue
        if result.status == "succeeded":
            log(f"{stamp} {result.summary()}")
            if result.rows_loaded or result.resolved_pending:
                from processlens.maintenance import after_ingest_at

                after_ingest_at(settings.db_path)
        else:
            log(f"{stamp} {job.name}: FAILED: {result.error}")
        last[job.name] = _now()
    return last


def run_scheduler(
    settings: Settings,
    once: bool = False,
    max_cycles: int | None = None,
    tick: float | None = None,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run scheduled jobs until stopped (Ctrl-C), after one cycle with ``once``, or after ``max_cycles``.

    Returns the number of cycles run.
    """
    log = log or _default_log
    sched_cfg = settings.section("scheduler") if "scheduler" in settings.raw else {}
    tick = float(tick if tick is not None else sched_cfg.get("tick", 5.0))
    busy_timeout = sched_cfg.get("busy_timeout")
    jobs = [j for j in load_jobs(settings) if j.schedule]
    if not jobs:
        raise ConfigError("no job has a schedule", hint='add schedule = "every 10m" (or a cron expression) to a [jobs.NAME] table',
                          where={"file": str(settings.config_path) if settings.config_path else None})
    log(f"{_now():%Y-%m-%d %H:%M:%S}Z scheduler: " + ", ".join(f"{j.name} ({j.schedule})" for j in jobs))
    cycles = 0
    try:
        while True:
            last = run_cycle(settings, jobs, log, busy_timeout)
            cycles += 1
            if once and last and not due_jobs(jobs, last, _now()):  # tell when something will happen
                upcoming = sorted((parse_schedule(j.schedule).next_after(last[j.name]), j.name) for j in jobs if j.name in last)
                if upcoming:
                    log(f"{_now():%Y-%m-%d %H:%M:%S}Z next due: {upcoming[0][1]} at {upcoming[0][0]:%Y-%m-%d %H:%M:%S}Z")
            if once or (max_cycles is not None and cycles >= max_cycles):
                return cycles
            wait = seconds_until_next(jobs, last, _now()) if last else tick
            sleep(min(tick, wait if wait is not None else tick))
    except KeyboardInterrupt:
        log(f"{_now():%Y-%m-%d %H:%M:%S}Z scheduler stopped")
        return cycles
