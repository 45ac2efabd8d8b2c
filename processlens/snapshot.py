"""Facts about a store that cannot change while it is held read-only, worked out once per hold.

A read-only DuckDB handle keeps every writer out of the file (DuckDB's file lock), so while the
dashboard's shared reader (:class:`dashboard.reader.SharedReader`) is open, questions such as
"are the analytics aggregates fresh?" or "which tables exist?" have one answer. They cost 3–7 ms
each (``information_schema`` and ``an_state`` reads) and every dashboard query used to ask them
again: about a fifth of a filter change's queries at 1M events.

The reader runs each query inside :func:`frozen` with a dict that lives as long as that open
handle; :func:`remember` answers from it. Outside such a scope (ingest, the CLI, tests on a
read-write connection) :func:`remember` simply computes, so callers need not know who holds
the store.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_FACTS: ContextVar[dict[Hashable, Any] | None] = ContextVar("processlens_snapshot_facts", default=None)


@contextmanager
def frozen(facts: dict[Hashable, Any]) -> Iterator[None]:
    """Within this block the store does not change: :func:`remember` keeps its answers in ``facts``."""
    token = _FACTS.set(facts)
    try:
        yield
    finally:
        _FACTS.reset(token)


def remember(key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, once per frozen store for ``key`` (every call outside :func:`frozen`)."""
    facts = _FACTS.get()
    if facts is None:
        return compute()
    try:
        return facts[key]
    except KeyError:
        value = facts[key] = compute()
        return value


def is_frozen() -> bool:
    """Whether the current code runs inside :func:`frozen` (for tests)."""
    return _FACTS.get() is not None
