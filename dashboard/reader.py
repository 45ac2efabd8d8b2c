"""One read-only connection per store, shared by the dashboard's queries while they come in bursts.

Opening the DuckDB file costs 0.04–0.06 s (the catalog is read and the schema version checked);
a page with a filter runs ten to twenty queries, so opening per query cost 0.3 s of a filter
change on a 1M-event store. The dashboard therefore keeps one read-only handle while queries
arrive and hands each query its own cursor. DuckDB lets no process write while another holds
the file, so the handle is closed:

- after ``linger`` seconds without a query (the dashboard uses 30 s: reopening a 10M-event store
  costs 0.3 s and drops DuckDB's cached blocks, so a reader's look at a page should not close it;
  other programs that write the file without processlens's signal wait that long at most), and
- as soon as the running queries end once a writer signals that it waits
  (:func:`ingest.store.writer_waiting`); new queries then wait for the writer to get in and
  finish, up to the busy timeout, and raise :class:`StoreBusyError` after it (the page shows its
  last numbers).

While the handle is open the file cannot change, so each query runs inside
:func:`processlens.snapshot.frozen`: facts such as "are the aggregates fresh?" are read once per
open handle, not once per query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ingest.store import connect, open_store, pending_migrations, writer_waiting
from processlens import snapshot
from processlens.errors import StoreBusyError


class SharedReader:
    """A lazily opened read-only connection to ``db``; :meth:`cursor` gives each query its own cursor."""

    def __init__(self, db: str | Path, linger: float = 1.0, timeout: float = 3.0) -> None:
        self.db = Path(db)
        self.linger = linger
        self.timeout = timeout
        self._con: duckdb.DuckDBPyConnection | None = None
        self._active = 0
        self._last_used = 0.0
        self._cond = threading.Condition()
        self._closer: threading.Thread | None = None
        self._facts: dict = {}  # processlens.snapshot's answers for the handle now open
        self.opened = 0  # how many times the file was opened (for tests and profiling)

    @property
    def is_open(self) -> bool:
        return self._con is not None

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on the shared connection for one query; waits while a writer has its turn."""
        if not self.db.exists():  # nothing to share: an empty in-memory store per query
            with open_store(self.db, read_only=True, timeout=self.timeout) as con:
                yield con
            return
        cur, facts = self._acquire()
        try:
            with snapshot.frozen(facts):  # nobody writes the file while this handle is open
                yield cur
        finally:
            try:
                cur.close()
            finally:
                self._release()

    def close(self) -> None:
        """Close the shared connection now (the caller makes sure no query is running)."""
        with self._cond:
            self._close()

    # -- internals ------------------------------------------------------------------------------
    def _acquire(self) -> tuple[duckdb.DuckDBPyConnection, dict]:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while writer_waiting(self.db):
                if self._active == 0:
                    self._close()  # let the writer in
                if time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"the store {self.db} is being written by another process",
                        hint="the numbers shown are the last ones read; they refresh once the write is done",
                        where={"store": str(self.db)},
                    )
                self._cond.wait(0.05)
            if self._con is None:
                self._con = self._open(max(deadline - time.monotonic(), 0.1))
                self._facts = {}
                self.opened += 1
                self._start_closer()
            self._active += 1
            return self._con.cursor(), self._facts

    def _release(self) -> None:
        with self._cond:
            self._active -= 1
            self._last_used = time.monotonic()
            if self._active == 0 and writer_waiting(self.db):
                self._close()
            self._cond.notify_all()

    def _open(self, timeout: float) -> duckdb.DuckDBPyConnection:
        con = connect(self.db, read_only=True, timeout=timeout)
        if pending_migrations(con):  # a store written by an older version: a writer migrates it once
            con.close()
            with open_store(self.db, read_only=False, timeout=timeout):
                pass
            con = connect(self.db, read_only=True, timeout=timeout)
        return con

    def _close(self) -> None:
        if self._con is not None and self._active == 0:
            self._con.close()
            self._con = None

    def _start_closer(self) -> None:
        if self._closer is not None and self._closer.is_alive():
            return
        self._closer = threading.Thread(target=self._close_when_idle, name="processlens-reader-closer", daemon=True)
        self._closer.start()

    def _close_when_idle(self) -> None:
        while True:
            time.sleep(min(0.2, self.linger / 2))
            with self._cond:
                if self._con is None:
                    return
                idle = self._active == 0 and time.monotonic() - self._last_used >= self.linger
                if idle or (self._active == 0 and writer_waiting(self.db)):
                    self._close()
                    self._cond.notify_all()
                    return
