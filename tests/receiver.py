"""A real HTTP receiver on 127.0.0.1 for coordinator tests and benchmarks.

It records every request (path, headers, body, whether it was answered with success) and can be
told to fail the next N requests, answer with a given status, or be slow. Duplicates of an
idempotency key are answered 200 and counted, as a well-behaved receiver would.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


class Receiver:
    """``with Receiver() as r: ... r.url ...``; thread-safe counters."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.fail_next = 0
        self.fail_status = 500
        self.delay = 0.0
        self.status = 200
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real webhook endpoints

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if rec.delay:
                    time.sleep(rec.delay)
                with rec._lock:
                    if rec.fail_next > 0:
                        rec.fail_next -= 1
                        status = rec.fail_status
                    else:
                        status = rec.status
                    rec.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                out = b'{"ok": true}' if status < 300 else b'{"ok": false}'
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_PUT = do_PATCH = _serve

        return Handler

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- what arrived ------------------------------------------------------------------------------
    def succeeded(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def keys(self) -> list[str]:
        """Idempotency keys of successful requests, with repetitions."""
        return [r.key for r in self.succeeded()]

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        """Wait until ``n`` distinct keys were delivered successfully."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.keys())) >= n:
                return True
            time.sleep(0.02)
        return False


# -- a tiny store and config for coordinator tests -------------------------------------------------
TINY_CSV = """case,activity,timestamp,resource
c1,Create Order,2026-01-01 08:00:00,ann
c1,Check Credit,2026-01-01 09:00:00,bob
c2,Create Order,2026-01-01 08:30:00,ann
c3,Create Order,2026-01-01 10:00:00,ann
c3,Check Credit,2026-01-01 11:00:00,bob
c3,Approve Order,2026-01-01 12:00:00,cy
"""


def make_store(db_path, tmp_dir, csv_text: str = TINY_CSV, name: str = "erp.csv") -> None:
    """Load a small CSV into a fresh store file with the real loader."""
    from pathlib import Path

    from ingest.api import ingest_file
    from ingest.store import open_store

    path = Path(tmp_dir) / name
    path.write_text(csv_text)
    with open_store(db_path) as con:
        ingest_file(con, path, case="case", activity="activity", timestamp="timestamp", resource="resource",
                    source="ERP", progress=False)


def write_config(path, db_path, body: str):
    """Write processlens.toml with the store path and ``body``; returns loaded Settings."""
    from pathlib import Path

    from processlens.config import load_settings

    Path(path).write_text(f'[store]\npath = "{Path(db_path).as_posix()}"\n\n{body}')
    return load_settings(config=path)


def main() -> None:
    """``python tests/receiver.py --port 9999``: print every request that arrives (for the demo)."""
    import argparse
    import os

    from coordinator.channels import verify

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, default=9999)
    args = ap.parse_args()
    rec = Receiver()
    rec.server.server_close()
    rec.server = ThreadingHTTPServer(("127.0.0.1", args.port), rec._handler())
    secret = os.environ.get("PROCESSLENS_WEBHOOK_SECRET", "")
    print(f"listening on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    threading.Thread(target=rec.server.serve_forever, daemon=True).start()
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            for r in rec.requests[seen:]:
                body = r.json
                ok = verify(r.body, r.headers.get("x-processlens-signature"), secret) if secret else None
                print(f"{r.path} key={r.key} signature={'valid' if ok else 'INVALID' if ok is False else 'unchecked'} "
                      f"kind={body.get('kind')} case={body.get('case_id')} {body.get('text', '')}", flush=True)
            seen = len(rec.requests)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
