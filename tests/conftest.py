"""Shared fixtures: real logs from ../shared/data/real, fresh stores."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("PROCESSLENS_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


def real_log(relative: str) -> Path:
    """Path of a file in the shared real-data folder, or skip the test with the reason."""
    path = REAL_DATA / relative
    if not path.exists():
        pytest.skip(f"real log {relative} not found under {REAL_DATA} (set PROCESSLENS_REAL_DATA to its folder)")
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.duckdb"


@pytest.fixture
def store(db_path: Path):
    from ingest.store import open_store

    with open_store(db_path) as con:
        yield con


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
