"""The coordinator loop: evaluate rules, dispatch the outbox, sleep, repeat.

``run_once`` is one cycle (what ``processlens coordinator run --once`` does); ``run_loop`` repeats
it every ``[coordinator] interval`` and wakes early for a retry that falls due. Each step opens
the store only for its unit of work, so ingest and the dashboard keep working alongside.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coordinator.dispatcher import Dispatcher, DispatchStats
from coordinator.engine import Evaluation, evaluate
from coordinator.rules import CoordinatorSettings
from ingest.store import open_store
from processlens.errors import ProcesslensError

log = logging.getLogger("processlens.coordinator")


@dataclass
class CycleResult:
    evaluation: Evaluation | None
    dispatch: DispatchStats
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"evaluation": self.evaluation.to_dict() if self.evaluation else None,
                "dispatch": self.dispatch.to_dict(), "error": self.error}


def evaluate_rules(settings: Any, now: datetime | None = None) -> Evaluation:
    """Open the store, evaluate every rule, commit the decided actions, close."""
    with open_store(settings.db_path) as con:
        return evaluate(con, settings, now)


def run_once(settings: Any, now: datetime | None = None, dispatcher: Dispatcher | None = None,
             evaluate_first: bool = True, stop: threading.Event | None = None) -> CycleResult:
    """One cycle: evaluate the rules, then deliver everything that is due now."""
    own = dispatcher is None
    dispatcher = dispatcher or Dispatcher.from_settings(settings)
    try:
        ev = evaluate_rules(settings, now) if evaluate_first else None
        stats = dispatcher.drain(stop=stop)
    finally:
        if own:
            dispatcher.stopped()
            dispatcher.close()
    return CycleResult(ev, stats)


def run_loop(settings: Any, *, max_cycles: int | None = None, stop: threading.Event | None = None,
             on_cycle: Any = None, install_signals: bool = True) -> None:
    """Run cycles until stopped (SIGTERM/SIGINT finish the current round, then exit)."""
    stop = stop or threading.Event()
    if install_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    cs = CoordinatorSettings.from_settings(settings)
    dispatcher = Dispatcher.from_settings(settings)
    cycles = 0
    next_eval = 0.0
    try:
        while not stop.is_set():
            import time

            evaluate_now = time.monotonic() >= next_eval
            try:
                result = run_once(settings, dispatcher=dispatcher, evaluate_first=evaluate_now, stop=stop)
            except ProcesslensError as exc:
                log.error("coordinator cycle failed: %s", exc.message)
                result = CycleResult(None, DispatchStats(), exc.message)
            except Exception as exc:  # keep the service alive; the next cycle tries again
                log.exception("coordinator cycle failed")
                result = CycleResult(None, DispatchStats(), f"{type(exc).__name__}: {exc}")
            if evaluate_now:
                next_eval = time.monotonic() + cs.interval
            if on_cycle:
                on_cycle(result)
            cycles += 1
            if max_cycles and cycles >= max_cycles:
                break
            try:
                due = dispatcher.next_due_in()
            except ProcesslensError:
                due = None
            wait = max(next_eval - time.monotonic(), 0.0)
            if due is not None:
                wait = min(wait, due + 0.01)
            stop.wait(max(wait, 0.05))
    finally:
        dispatcher.stopped()
        dispatcher.close()
