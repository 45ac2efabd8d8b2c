"""Start the dashboard: ``streamlit run dashboard/app.py`` with the store and config of these settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from processlens.errors import ConfigError

APP = Path(__file__).with_name("app.py")
LOCAL = ("127.0.0.1", "localhost", "::1")

THEME = {
    "theme.base": "light",
    "theme.primaryColor": "#1f5fa8",
    "theme.backgroundColor": "#ffffff",
    "theme.secondaryBackgroundColor": "#f3f6fa",
    "theme.textColor": "#1b2631",
}


def command(port: int, address: str, open_browser: bool = False) -> list[str]:
    """The ``streamlit run`` command line."""
    args = [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.port", str(port), "--server.address", address,
            "--server.headless", "false" if open_browser else "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.showErrorDetails", "none", "--client.toolbarMode", "minimal",
            "--server.runOnSave", "false",
            # Streamlit runs a full gc.collect() after every script run by default: with a large
            # store's results cached in memory that costs about 0.3 s per rerun and holds the GIL.
            "--runner.postScriptGC", "false"]
    for key, value in THEME.items():
        args += [f"--{key}", value]
    return args


def environment(settings) -> dict[str, str]:
    env = dict(os.environ)
    env["PROCESSLENS_DB"] = str(Path(settings.db_path).resolve())
    if settings.config_path:
        env["PROCESSLENS_CONFIG"] = str(Path(settings.config_path).resolve())
    else:
        env.pop("PROCESSLENS_CONFIG", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def resolve_address(settings, address: str | None) -> str:
    """Where to listen: the argument, ``[dashboard] address``, else 127.0.0.1.

    Without a login configured everyone is an admin, so listening beyond this machine is refused.
    """
    from dashboard.auth import auth_config

    address = address or settings.section("dashboard").get("address") or "127.0.0.1"
    if address not in LOCAL and auth_config(settings)["mode"] == "none":
        raise ConfigError(f"refusing to serve the dashboard on {address} without a login",
                          hint='set [dashboard.auth] mode = "local" (users file) or "oidc" in processlens.toml, '
                               "or serve on 127.0.0.1")
    return address


def start(settings, port: int = 8501, open_browser: bool = False, address: str | None = None,
          quiet: bool = False) -> subprocess.Popen:
    """Start the server in a child process and return it (not waiting for it to answer)."""
    address = resolve_address(settings, address)
    out = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(command(port, address, open_browser), env=environment(settings), stdout=out, stderr=out)


def wait_until_up(port: int, address: str = "127.0.0.1", timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
    """Block until the server answers its health check."""
    host = "127.0.0.1" if address in ("0.0.0.0", "::") else address
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the dashboard server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"the dashboard did not answer on port {port} within {timeout:.0f}s")


def serve(settings, port: int = 8501, open_browser: bool = False, address: str | None = None) -> int:
    """Run the dashboard until interrupted (Ctrl-C); returns the server's exit code."""
    proc = start(settings, port, open_browser, address)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: proc.terminate())  # stop the child with us
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
