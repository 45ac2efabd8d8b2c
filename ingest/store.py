"""The DuckDB event store: opening it safely, migrations, and its version counter.

DuckDB allows one process to hold a database file open for writing, and no reader beside it.
processlens therefore never keeps the file open longer than one unit of work: every command,
the dashboard's queries, the scheduler and the coordinator open the store, do their work in a
transaction and close it. :func:`open_store` retries while another process holds the lock, so
concurrent processes queue instead of failing (see docs/architecture.md, "Sharing the store").
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import duckdb

from processlens.errors import StoreBusyError

MIGRATIONS_PACKAGE = "ingest.migrations"
DEFAULT_BUSY_TIMEOUT = float(os.environ.get("PROCESSLENS_BUSY_TIMEOUT", "60"))

#: ``ORDER BY`` that defines the order of events inside a case everywhere in processlens:
#: timestamp first, then the order in which the source delivered them.
EVENT_ORDER = "ts, event_id"


def migrations() -> list[tuple[int, str, str]]:
    """All migrations shipped with the package as (version, name, sql), oldest first."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name[5:-4], entry.read_text(encoding="utf-8")))
    return sorted(found)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "being used by another process" in text


def writer_waiting_path(path: str | Path) -> Path:
    """The marker a writer leaves beside the store while it waits for the file (see :func:`connect`)."""
    path = Path(path)
    return path.with_name(path.name + ".writer-waiting")


def writer_waiting(path: str | Path, stale_after: float = 300) -> bool:
    """True while a writer waits for the store (its marker is younger than ``stale_after`` seconds).

    Readers that keep the file open across several queries (the dashboard's reader) close it when
    they see the marker and open it again only once the writer got its turn, so writers are not starved.
    """
    try:
        return time.time() - writer_waiting_path(path).stat().st_mtime < stale_after
    except OSError:
        return False


def connect(path: str | Path, read_only: bool = False, timeout: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting (with jittered backoff) while another process holds it.

    A writer that has to wait leaves a marker beside the file (:func:`writer_waiting`) until it is in.
    """
    timeout = DEFAULT_BUSY_TIMEOUT if timeout is None else timeout
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    delay = 0.02
    marker: Path | None = None
    try:
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only)
            except duckdb.IOException as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    if _is_lock_error(exc):
                        raise StoreBusyError(
                            f"the store {path} is in use by another process and stayed busy for {timeout:.0f}s",
                            hint="wait for the running ingest or coordinator to finish, or raise PROCESSLENS_BUSY_TIMEOUT",
                            where={"store": str(path)},
                        ) from exc
                    raise
                if not read_only:
                    marker = writer_waiting_path(path)
                    with contextlib.suppress(OSError):
                        marker.write_text(f"{os.getpid()}\n", encoding="utf-8")  # also refreshes its age
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
    finally:
        if marker is not None:
            with contextlib.suppress(OSError):
                marker.unlink()


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def pending_migrations(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Versions shipped with the package that this store has not applied (gaps included)."""
    if not schema_version(con):
        return [v for v, _, _ in migrations()]
    done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    return [v for v, _, _ in migrations() if v not in done]


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations this store has not seen yet, each in its own transaction."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)"
    )
    done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


@contextlib.contextmanager
def open_store(path: str | Path, read_only: bool = False, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store for one unit of work and close it afterwards.

    Writers apply pending migrations on open. A reader of a file that does not exist yet gets a
    fresh in-memory store with the current schema, so empty states render instead of failing.
    """
    path = Path(path)
    if read_only and not path.exists():
        con = duckdb.connect(":memory:")
        migrate(con)
    else:
        con = connect(path, read_only=read_only, timeout=timeout)
        if not read_only:
            migrate(con)
        elif pending_migrations(con):
            con.close()
            with open_store(path, read_only=False, timeout=timeout):
                pass
            con = connect(path, read_only=True, timeout=timeout)
    try:
        yield con
    finally:
        con.close()


def data_version(con: duckdb.DuckDBPyConnection) -> int:
    """A counter bumped by every committed change to the event data (cache key for the dashboard)."""
    row = con.execute("SELECT value FROM store_meta WHERE key = 'data_version'").fetchone()
    return int(row[0]) if row else 0


def bump_data_version(con: duckdb.DuckDBPyConnection) -> int:
    """Increment the data version; call inside the transaction that changed the data."""
    new = data_version(con) + 1
    con.execute(
        "INSERT INTO store_meta VALUES ('data_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [str(new)],
    )
    return new


def compact_events(con: duckdb.DuckDBPyConnection) -> None:
    """Rewrite ``events`` in case/time order so per-case scans read contiguous row groups.

    Appends land at the end of the table; analytics stay correct either way, this only restores
    the physical layout that makes window queries fast. The loader calls it when the unsorted
    tail grows past a fifth of the table.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE TEMP TABLE _sorted AS SELECT * FROM events ORDER BY case_key, ts, event_id")
        con.execute("DELETE FROM events")
        con.execute("INSERT INTO events SELECT * FROM _sorted")
        con.execute("DROP TABLE _sorted")
        con.execute(
            "INSERT INTO store_meta VALUES ('sorted_upto_event_id', (SELECT coalesce(max(event_id), -1)::VARCHAR FROM events)) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    con.execute("CHECKPOINT")
