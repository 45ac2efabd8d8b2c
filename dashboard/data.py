"""The dashboard's cached data layer.

Every number on a page comes through :func:`get`: it names a pure function (``dashboard.queries``
or an engine adapter in ``dashboard.engines``), runs it on a read-only connection opened for that
one query, and caches the result with ``st.cache_data`` keyed by the store's ``data_version``, the
view filter and the arguments. Nothing holds the DuckDB file between reruns, so ingest jobs and
the coordinator can write in between. When the store is busy (another process is writing) the
last result for the same question is shown with a notice instead of an error.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.filters import ViewFilter
from processlens.errors import ProcesslensError, StoreBusyError

log = logging.getLogger("processlens.dashboard")

#: Seconds a dashboard query waits for a writer before showing cached numbers.
BUSY_TIMEOUT = float(os.environ.get("PROCESSLENS_DASHBOARD_BUSY_TIMEOUT", "3"))
#: Seconds between checks of the store's data version.
VERSION_TTL = float(os.environ.get("PROCESSLENS_DASHBOARD_VERSION_TTL", "2"))
#: With PROCESSLENS_DASHBOARD_TIMING=1 every query's wall time goes to the server log (for profiling).
TIMING = os.environ.get("PROCESSLENS_DASHBOARD_TIMING", "") not in ("", "0")


class EngineMissing(ProcesslensError):
    """A page needs an engine (analytics, models, coordinator) that is not installed yet."""


class NotConfigured(ProcesslensError):
    """A page needs configuration that is missing (a reference model, rules, targets)."""


# -- settings ---------------------------------------------------------------------------------
@st.cache_resource(ttl=30, show_spinner=False)
def _settings_cached(db: str | None, config: str | None):
    from processlens.config import load_settings

    return load_settings(db, config)


def settings():
    """The processlens settings of this server (store path and config from env or arguments)."""
    return _settings_cached(os.environ.get("PROCESSLENS_DB"), os.environ.get("PROCESSLENS_CONFIG"))


def db_path() -> str:
    return str(settings().db_path)


def dashboard_config() -> dict[str, Any]:
    """The ``[dashboard]`` table of processlens.toml."""
    return settings().section("dashboard")


def now() -> datetime:
    """The clock the pages judge waiting times against (naive UTC).

    ``[dashboard] now`` or ``PROCESSLENS_NOW`` (ISO time) wins; a demo store uses the moment its
    world was generated (``world.json`` beside it); otherwise the current time.
    """
    value = (os.environ.get("PROCESSLENS_NOW") or dashboard_config().get("now")
             or settings().section("coordinator").get("now"))
    if not value:
        s = settings()
        for candidate in (Path(s.db_path).parent / "demo-world" / "world.json", s.base_dir / "world.json"):
            try:
                value = json.loads(candidate.read_text(encoding="utf-8")).get("now")
            except (OSError, ValueError):
                continue
            if value:
                break
    if value:
        try:
            ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise NotConfigured(f"'now' is not an ISO time: {value!r}", hint="write it like 2024-05-01T12:00:00Z") from exc
        return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
    return datetime.now(UTC).replace(tzinfo=None)


# -- one lock per process: DuckDB refuses a read-write and a read-only handle on one file in one process
class _ReadWriteLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()


_LOCK = _ReadWriteLock()


#: Seconds the dashboard keeps the store open after its last query (see dashboard.reader): long
#: enough to span a reader's look at a page, so that the next click finds DuckDB's caches warm.
#: processlens writers signal that they wait and get the file within a fraction of a second.
READER_LINGER = float(os.environ.get("PROCESSLENS_DASHBOARD_READER_LINGER", "30"))
_READERS: dict[str, Any] = {}
_READERS_LOCK = threading.Lock()


def reader(db: str):
    """The shared read-only connection of ``db`` in this process (:class:`dashboard.reader.SharedReader`)."""
    from dashboard.reader import SharedReader

    with _READERS_LOCK:
        if db not in _READERS:
            _READERS[db] = SharedReader(db, linger=READER_LINGER, timeout=BUSY_TIMEOUT)
        return _READERS[db]


def run_read(fn, db: str, *args, **kwargs):
    """Run ``fn(con, *args, **kwargs)`` on a cursor of the store's shared read-only connection."""
    _LOCK.acquire_read()
    try:
        with reader(db).cursor() as con:
            return fn(con, *args, **kwargs)
    finally:
        _LOCK.release_read()


def run_write(fn, db: str | None = None, *args, timeout: float = 30, **kwargs):
    """Run ``fn(con, ...)`` in a read-write connection (enqueueing actions); waits up to ``timeout``."""
    from ingest.store import open_store

    db = db or db_path()
    _LOCK.acquire_write()
    try:
        reader(db).close()  # no query runs now; DuckDB refuses a second handle of another mode in one process
        with open_store(db, read_only=False, timeout=timeout) as con:
            result = fn(con, *args, **kwargs)
    finally:
        _LOCK.release_write()
    _VERSIONS.pop(db, None)
    _ANSWERED.clear()
    st.cache_data.clear()
    return result


# -- the version of the data --------------------------------------------------------------------
_VERSIONS: dict[str, tuple[int, float]] = {}


def _read_version(con) -> int:
    from processlens import snapshot

    return snapshot.remember("dashboard.data_version", lambda: _count_version(con))


def _count_version(con) -> int:
    from ingest.store import data_version

    version = data_version(con)
    # Changes that do not touch events (actions, models) also change what pages show.
    extra = 0
    for table in ("actions", "models", "rule_state"):
        if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0]:
            extra += con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return version * 1_000_003 + extra


def data_version() -> int:
    """The store's data version, checked at most every ``VERSION_TTL`` seconds; the last known one when busy."""
    db = db_path()
    known = _VERSIONS.get(db)
    if known and time.monotonic() - known[1] < VERSION_TTL:
        return known[0]
    try:
        version = run_read(_read_version, db)
    except StoreBusyError:
        _notice_busy()
        return known[0] if known else -1
    _VERSIONS[db] = (version, time.monotonic())
    return version


def timing(what: str, t0: float) -> None:
    """Log ``what`` with the seconds since ``t0`` (only with PROCESSLENS_DASHBOARD_TIMING=1)."""
    if TIMING:
        print(f"[timing] {time.perf_counter() - t0:7.3f}s {what} @{time.time():.3f}", flush=True)


def _notice_busy() -> None:
    try:
        st.session_state["_store_busy"] = True
    except Exception:  # noqa: BLE001 - outside a script run
        pass


# -- the cache ----------------------------------------------------------------------------------
class _Recent(OrderedDict):
    """The ``size`` most recently used entries, shared by threads; ``get`` counts as a use."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._lock = threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            if key not in self:
                return default
            self.move_to_end(key)
            return self[key]

    def put(self, key, value) -> None:
        with self._lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)


_MISSING = object()
_LAST = _Recent(256)


def _resolve(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


#: Name of the registered relation holding a filter's selected case keys on a query's connection.
SELECTION_TABLE = "pl_selected"


@st.cache_data(show_spinner=False, max_entries=200, ttl=6 * 3600)
def _selection(db: str, version: int, flt_key: str) -> Any:
    """The case keys a filter selects (numpy array), computed once per data version and filter."""
    from dashboard.queries import selected_case_keys

    return run_read(selected_case_keys, db, ViewFilter.from_query_params(json.loads(flt_key)))


def _with_selection(con, fn, flt: ViewFilter, keys, **kwargs):
    """``fn(con, flt=..., **kwargs)`` with the filter's cases at hand, the cheapest way.

    A filter the fresh case summaries can answer (time range, sources, variant) becomes a
    condition on ``an_cases``; otherwise (case attributes) the keys selected once per data
    version (``keys()``) are registered on this query's cursor and joined.
    """
    import pandas as pd

    from dashboard.queries import _fresh_aggregates, _source_mask

    if _fresh_aggregates(con):
        mask = _source_mask(con, flt.sources) if flt.sources else None
        if flt.summaries_where(mask)[0] is not None:
            return fn(con, flt=flt.on_summaries(mask), **kwargs)
    con.register(SELECTION_TABLE, pd.DataFrame({"case_key": keys()}))  # gone with the cursor after this call
    return fn(con, flt=flt.with_selection(SELECTION_TABLE), **kwargs)


@st.cache_data(show_spinner="Crunching the numbers…", max_entries=2000, ttl=6 * 3600)
def _cached(ref: str, db: str, version: int, flt_key: str, kwargs_json: str) -> Any:
    fn = _resolve(ref)
    kwargs = json.loads(kwargs_json)
    if flt_key:
        flt = ViewFilter.from_query_params(json.loads(flt_key))
        if flt.is_empty:
            kwargs["flt"] = flt
        else:
            # every query of this filter reads a condition on the case summaries, or joins its case
            # keys selected once per data version (not per query)
            return run_read(_with_selection, db, fn, flt, lambda: _selection(db, version, flt_key), **kwargs)
    return run_read(fn, db, **kwargs)


def _qualified(ref: str) -> str:
    return ref if ":" in ref else f"dashboard.queries:{ref}"


# Background queries call st.cache_data outside a script run: Streamlit warns about the missing
# context on every call, which is expected here.
logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(logging.ERROR)
#: the pages' questions run here, two at a time and in the order asked: a page asks for what it draws
#: first first, and its script goes on drawing while DuckDB (two threads per query) computes the rest;
#: with every question at once, each took as long as all of them together on two cores
_POOL = ThreadPoolExecutor(max_workers=int(os.environ.get("PROCESSLENS_DASHBOARD_QUERY_WORKERS", "2")),
                           thread_name_prefix="processlens-prefetch")
#: the model engines' results (seconds each, once per data version) run beside them, not in their queue
_ENGINE_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="processlens-prefetch-engine")
_PENDING: dict[tuple, Future] = {}
_PENDING_LOCK = threading.RLock()  # re-entrant: a future already done runs _forget at once, under it


#: questions answered in this process (their results are in st.cache_data): a prefetch of one of
#: them is a no-op, instead of unpickling a large cached result in the background only to drop it
_ANSWERED = _Recent(4000)
#: how long an answer is trusted to still be in st.cache_data (its ttl is 6 hours)
_ANSWERED_FOR = 3600.0


def _answered(key: tuple) -> None:
    _ANSWERED.put(key, time.monotonic())


def _quiet(ref: str, db: str, version: int, flt_key: str, kwargs_json: str) -> None:
    try:
        _cached(ref, db, version, flt_key, kwargs_json)
        _answered((ref, db, version, flt_key, kwargs_json))
    except Exception:  # noqa: BLE001 - the page's own get() raises and shows it
        log.debug("prefetch of %s failed", ref, exc_info=True)


def prefetch(ref: str, flt: ViewFilter | None = None, **kwargs) -> Future:
    """Start computing ``get(ref, flt, **kwargs)`` in a background thread and return its future.

    A later :func:`get` of the same question finds the cached result, or waits for the running
    computation (``st.cache_data`` holds one lock per key) instead of starting it twice. Pages
    prefetch their slow engine results first so they compute while the cheap parts render.
    """
    return _prefetch(0.0, ref, flt, kwargs)


def prefetch_later(seconds: float, ref: str, flt: ViewFilter | None = None, **kwargs) -> Future:
    """:func:`prefetch`, started ``seconds`` from now: for answers the page does not show yet (its closed
    tabs), so that they do not share the cores with the browser drawing the page just sent."""
    return _prefetch(seconds, ref, flt, kwargs)


def _prefetch(delay: float, ref: str, flt: ViewFilter | None, kwargs: dict) -> Future:
    key = (_qualified(ref), db_path(), data_version(), flt.key() if flt is not None else "",
           json.dumps(kwargs, sort_keys=True, default=str))
    if time.monotonic() - _ANSWERED.get(key, -_ANSWERED_FOR) < _ANSWERED_FOR:
        done: Future = Future()
        done.set_result(None)
        return done
    with _PENDING_LOCK:
        future = _PENDING.get(key)
        if future is None:
            future = (_LATER_POOL.submit(_quiet_after, time.monotonic() + delay, *key) if delay > 0
                      else _pool_for(key[0]).submit(_quiet, *key))
            _PENDING[key] = future
            future.add_done_callback(lambda _f, k=key: _forget(k))
        return future


def _pool_for(ref: str) -> ThreadPoolExecutor:
    return _ENGINE_POOL if ref.startswith("dashboard.engines:") else _POOL


#: the delayed prefetches wait and run here, one at a time, so that they never hold a worker of the
#: page's own prefetch pool
_LATER_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="processlens-prefetch-later")


def _quiet_after(start: float, *key) -> None:
    time.sleep(max(0.0, start - time.monotonic()))
    _quiet(*key)


def prefetch_selection(flt: ViewFilter | None) -> None:
    """Start selecting ``flt``'s case keys in the background (pages that narrow engine results need them)."""
    if flt is None or flt.is_empty:
        return
    key = ("selection", db_path(), data_version(), flt.key())
    with _PENDING_LOCK:
        if key not in _PENDING:
            future = _POOL.submit(_quiet_selection, *key[1:])
            _PENDING[key] = future
            future.add_done_callback(lambda _f, k=key: _forget(k))


def _quiet_selection(db: str, version: int, flt_key: str) -> None:
    try:
        _selection(db, version, flt_key)
    except Exception:  # noqa: BLE001 - the page's own narrowing raises and shows it
        log.debug("prefetch of the selection failed", exc_info=True)


def _forget(key: tuple) -> None:
    with _PENDING_LOCK:
        _PENDING.pop(key, None)


def get(ref: str, flt: ViewFilter | None = None, **kwargs) -> Any:
    """The result of ``ref`` (``"module:function"``, default module ``dashboard.queries``), cached.

    Raises :class:`ProcesslensError` subclasses with a message and a hint; ``StoreBusyError``
    only when there is no earlier result to show.
    """
    ref = _qualified(ref)
    db = db_path()
    flt_key = flt.key() if flt is not None else ""
    kwargs_json = json.dumps(kwargs, sort_keys=True, default=str)
    last_key = (ref, db, flt_key, kwargs_json)
    t0 = time.perf_counter()
    version = data_version()
    try:
        result = _cached(ref, db, version, flt_key, kwargs_json)
        _answered((ref, db, version, flt_key, kwargs_json))
    except StoreBusyError:
        last = _LAST.get(last_key, _MISSING)
        if last is not _MISSING:
            _notice_busy()
            return last
        raise
    finally:
        if TIMING:
            timing(f"get {ref.removeprefix('dashboard.')} {flt_key or '-'}", t0)
    _LAST.put(last_key, result)
    return result


@dataclass
class Outcome:
    """What :func:`attempt` got: a value, or a message to show instead."""

    value: Any = None
    kind: str = "ok"  # ok | missing | unconfigured | error | busy
    message: str = ""
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


def attempt(ref: str, flt: ViewFilter | None = None, **kwargs) -> Outcome:
    """Like :func:`get`, but turns every failure into an :class:`Outcome` a page can show."""
    try:
        return Outcome(get(ref, flt, **kwargs))
    except EngineMissing as exc:
        return Outcome(kind="missing", message=exc.message, hint=exc.hint)
    except NotConfigured as exc:
        return Outcome(kind="unconfigured", message=exc.message, hint=exc.hint)
    except StoreBusyError as exc:
        return Outcome(kind="busy", message=exc.message, hint=exc.hint)
    except ProcesslensError as exc:
        return Outcome(kind="error", message=exc.message, hint=exc.hint)
    except Exception as exc:  # noqa: BLE001 - shown as a message, logged with its traceback
        log.exception("dashboard query %s failed", ref)
        return Outcome(kind="error", message=f"{type(exc).__name__}: {exc}",
                       hint="this is a bug in processlens; the server log has the details — please report it")


def clear() -> None:
    """Forget every cached result (after a write from this process)."""
    _VERSIONS.clear()
    _ANSWERED.clear()
    _NARROWED.clear()
    _MASKS.clear()
    _MEMO.clear()
    _INDEX_BUILDS.clear()
    st.cache_data.clear()


_NARROWED = _Recent(32)
_MEMO = _Recent(256)


def memo(name: str, flt: ViewFilter | None, build, **params) -> Any:
    """``build()``, kept in memory per data version, filter and ``params`` (not pickled, not copied).

    For what a page derives from cached results: Plotly figures (building one with plotly.express
    costs 0.1–0.3 s, handing a built one to ``st.plotly_chart`` a few ms) and joins of large
    cached tables. ``build`` must depend only on the store's data, the filter and ``params``;
    callers must not modify the result.
    """
    key = (name, db_path(), data_version(), flt.key() if flt is not None else "",
           json.dumps(params, sort_keys=True, default=str))
    value = _MEMO.get(key, _MISSING)
    if value is _MISSING:
        value = build()
        _MEMO.put(key, value)
    return value


#: With PROCESSLENS_DASHBOARD_PAIR_INDEXES=0 the pages compute filtered waiting-time statistics in
#: DuckDB instead of from in-memory pair indexes (about 13 bytes per directly-follows pair each).
PAIR_INDEXES = os.environ.get("PROCESSLENS_DASHBOARD_PAIR_INDEXES", "1") not in ("", "0")
_INDEX_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="processlens-pair-index")
_INDEX_BUILDS: dict[tuple[str, int, str], Future] = {}


def warm_pair_indexes(groupings: tuple[str, ...]) -> None:
    """Build the store's pair indexes ``groupings`` (:mod:`analytics.pair_index`) in the background,
    one job at a time, once per data version: the page's filtered waiting times then come from memory.

    Called by the router with the open page's or tab's (``views.open_pair_indexes``), before any
    filter is set, so that the first filter change finds them built (1.3-1.9 s each at 10M events).
    """
    if not PAIR_INDEXES or not groupings:
        return
    try:
        db, version = db_path(), data_version()
    except Exception:  # noqa: BLE001 - no store yet, or it is busy: the queries use DuckDB meanwhile
        return
    with _PENDING_LOCK:
        for old in [k for k in _INDEX_BUILDS if k[0] == db and k[1] != version]:
            del _INDEX_BUILDS[old]
        missing = tuple(g for g in groupings if (db, version, g) not in _INDEX_BUILDS)
        if missing:
            job = _INDEX_POOL.submit(_build_pair_indexes, db, missing)
            for grouping in missing:
                _INDEX_BUILDS[(db, version, grouping)] = job


def _build_pair_indexes(db: str, groupings: tuple[str, ...]) -> None:
    from analytics import pair_index
    from analytics.incremental import is_fresh

    def build(con) -> None:
        if not is_fresh(con):  # without fresh aggregates the queries scan the events, not an_edges
            return
        for grouping in groupings:  # each is used as soon as it is built
            t0 = time.perf_counter()
            pair_index.ensure(con, grouping)
            timing(f"pair index {grouping}", t0)

    try:
        run_read(build, db)
    except Exception:  # noqa: BLE001 - a missing index only makes filtered queries use DuckDB
        log.warning("building the pair indexes %s of %s failed", ", ".join(groupings), db, exc_info=True)


def attempt_filtered(ref: str, flt: ViewFilter | None = None, **kwargs) -> Outcome:
    """An engine result computed once for all cases (cached), then narrowed to the filter's cases (if any).

    Engines such as stuck-case detection and conformance cost seconds on large stores; filtering
    their cached result keeps a filter change fast. The narrowed result is kept in memory per data
    version and filter too (no unpickling of a 100k-case table on every rerun); callers must not
    modify it in place.
    """
    filtered = flt is not None and not flt.is_empty
    key = (_qualified(ref), db_path(), data_version(), flt.key() if filtered else "",
           json.dumps(kwargs, sort_keys=True, default=str))
    known = _NARROWED.get(key)
    if known is not None:
        return known
    # the all-cases result is kept here too: unpickling a 1M-case table from st.cache_data costs 0.1 s a rerun
    result = _narrow(attempt_filtered(ref, None, **kwargs), flt) if filtered else attempt(ref, None, **kwargs)
    if result.ok:
        _NARROWED.put(key, result)
    return result


def _selected_mask(flt: ViewFilter):
    """A boolean array indexed by ``case_key``: True for the cases ``flt`` selects (built once per data
    version and filter: a page narrows several engine results with it in one run)."""
    from analytics.pair_index import selection_mask

    key = (db_path(), data_version(), flt.key())
    mask = _MASKS.get(key)
    if mask is None:
        mask = selection_mask(_selection(*key))
        _MASKS.put(key, mask)
    return mask


#: the latest filters' case masks (a byte per case: about 1 MB each at 10M events)
_MASKS = _Recent(8)


def rows_in_filter(df, flt: ViewFilter | None):
    """A boolean array over the rows of an all-cases engine result ``df``: True where the row's case
    is one ``flt`` selects (all True without a filter; None when the frame names no cases).

    Indexes the filter's case-key mask by the frame's ``case_key`` column; a frame without keys
    compares case ids (slower). Counting with it is much cheaper than narrowing a large frame.
    """
    import numpy as np

    if "case_id" not in df:
        return None
    if flt is None or flt.is_empty:
        return np.ones(len(df), dtype=bool)
    if "case_key" in df:
        sel = _selected_mask(flt)
        keys = df["case_key"].to_numpy(dtype=np.int64)
        ok = (keys >= 0) & (keys < len(sel))
        out = np.zeros(len(keys), dtype=bool)
        out[ok] = sel[keys[ok]]
        return out
    ids = attempt("selected_case_ids", flt)
    if not ids.ok or ids.value is None:
        return None
    # object dtype: pandas' string-dtype isin is ten times slower on 100k ids
    return df["case_id"].astype(str).astype(object).isin(list(ids.value)).to_numpy()


def count_in_filter(df, flt: ViewFilter | None, where=None) -> int:
    """How many rows of an all-cases engine result ``df`` belong to the cases ``flt`` selects (and
    have ``where``, a boolean array over the rows, set), without narrowing the frame itself."""
    import numpy as np

    rows = rows_in_filter(df, flt)
    rows = np.ones(len(df), dtype=bool) if rows is None else rows
    if where is not None:
        rows = rows & np.asarray(where, dtype=bool)
    return int(rows.sum())


def _narrow(result: Outcome, flt: ViewFilter) -> Outcome:
    import pandas as pd

    if not result.ok:
        return result
    frames = [result.value] if isinstance(result.value, pd.DataFrame) else (
        [result.value["per_case"]] if isinstance(result.value, dict) and isinstance(result.value.get("per_case"), pd.DataFrame)
        else [])
    rows = rows_in_filter(frames[0], flt) if frames else None
    if rows is None:
        return result
    if isinstance(result.value, pd.DataFrame):
        return Outcome(result.value[rows])
    value = result.value
    pc = value["per_case"][rows]
    narrowed = {**value, "per_case": pc, "cases": len(pc)}
    if "fitting" in pc:
        narrowed["fitting_cases"] = int(pc["fitting"].fillna(False).astype(bool).sum())
    narrowed["filtered"] = True
    return Outcome(narrowed)
