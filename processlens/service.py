"""The service a user starts: the dashboard and, beside it, the coordinator loop.

``processlens dashboard`` and ``processlens demo`` run both, so corrective actions are decided
and delivered while people look at the dashboard. The loop runs in a child process of its own
(it opens the store only for short units of work, see docs/architecture.md) and stops with the
dashboard.
"""

from __future__ import annotations

import subprocess
import sys

from processlens.config import Settings


def coordinator_command(settings: Settings) -> list[str]:
    cmd = [sys.executable, "-m", "processlens", "--db", str(settings.db_path)]
    if settings.config_path:
        cmd += ["--config", str(settings.config_path)]
    return [*cmd, "coordinator", "run"]


def has_rules(settings: Settings) -> bool:
    return bool(settings.raw.get("rules"))


def start_coordinator(settings: Settings) -> subprocess.Popen | None:
    """Start the coordinator loop when rules are configured; None otherwise."""
    if not has_rules(settings):
        return None
    return subprocess.Popen(coordinator_command(settings), stdin=subprocess.DEVNULL)


def stop(child: subprocess.Popen | None, timeout: float = 15) -> None:
    if child is None or child.poll() is not None:
        return
    child.terminate()  # the loop finishes its current round on SIGTERM
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def serve(settings: Settings, port: int = 8501, open_browser: bool = False, address: str | None = None,
          coordinator: bool = True) -> int:
    """Serve the dashboard until interrupted, with the coordinator loop beside it."""
    from dashboard.server import serve as serve_dashboard

    child = start_coordinator(settings) if coordinator else None
    try:
        return serve_dashboard(settings, port=port, open_browser=open_browser, address=address)
    finally:
        stop(child)
