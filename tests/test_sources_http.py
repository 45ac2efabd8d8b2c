"""HTTP jobs against a real HTTP server on 127.0.0.1: pagination styles, since-cursor, auth, retries, rate limit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from jobrun import run_named_job

from ingest.jobs import read_cursor
from ingest.sources.http_api import HttpOptions, RateLimiter, batches, retry_after_seconds
from ingest.store import open_store
from processlens.config import load_settings

TOKEN = "s3cret-token-value"


class Api:
    """State of the fake payment provider: records, failure injection, what it saw."""

    def __init__(self) -> None:
        self.records = [self.record(i) for i in range(1, 24)]
        self.fail: dict[str, list[int]] = {}  # path -> statuses to answer before succeeding (consumed)
        self.fail_always: dict[tuple[str, int], int] = {}  # (path, page) -> status
        self.retry_after: str | None = None
        self.requests: list[dict] = []

    @staticmethod
    def record(i: int) -> dict:
        return {"id": f"p{i}", "order_id": f"O-{(i + 1) // 2}", "type": "Payment Received" if i % 2 else "Payment Failed",
                "updated_at": f"2024-04-01T10:{i:02d}:00Z", "amount": 10.5 * i}

    def since(self, q: dict) -> list[dict]:
        since = q.get("since", [None])[0]
        return [r for r in self.records if since is None or r["updated_at"] > since]


def make_handler(api: Api):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def send(self, status: int, body: object, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            q = parse_qs(url.query)
            api.requests.append({"path": url.path, "query": q, "auth": self.headers.get("Authorization")})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.send(401, {"error": "unauthorized"})
            queued = api.fail.get(url.path)
            if queued:
                status = queued.pop(0)
                headers = {"Retry-After": api.retry_after} if status == 429 and api.retry_after else {}
                return self.send(status, {"error": "try later"}, headers)
            if url.path == "/slow":  # answers later than the client waits
                time.sleep(1.5)
                return self.send(200, [])
            page = int(q.get("page", ["1"])[0])
            if (url.path, page) in api.fail_always:
                return self.send(api.fail_always[(url.path, page)], {"error": "broken"})
            rows = api.since(q)
            size = int(q.get("per_page", ["5"])[0])
            if url.path == "/link":  # Link header
                chunk = rows[(page - 1) * size: page * size]
                more = page * size < len(rows)
                headers = {"Link": f'</link?page={page + 1}&per_page={size}>; rel="next"'} if more else {}
                return self.send(200, {"data": chunk}, headers)
            if url.path == "/body":  # next link in the body (relative)
                chunk = rows[(page - 1) * size: page * size]
                nxt = f"/body?page={page + 1}" if page * size < len(rows) else None
                return self.send(200, {"data": chunk, "next": nxt})
            if url.path == "/pages":  # page numbers, bare list
                return self.send(200, rows[(page - 1) * size: page * size])
            if url.path == "/tokens":  # opaque cursor token
                start = int(q.get("cursor", ["0"])[0] or 0)
                chunk = rows[start: start + size]
                token = str(start + size) if start + size < len(rows) else None
                return self.send(200, {"items": chunk, "meta": {"next_cursor": token}})
            return self.send(404, {"error": "no such endpoint"})

    return Handler


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def job_settings(tmp_path: Path, url: str, extra: str = ""):
    (tmp_path / "processlens.toml").write_text(f"""
[store]
path = "store.duckdb"

[jobs.psp]
kind = "http"
source = "PSP"
url = "{url}"
auth_env = "TEST_PSP_TOKEN"
auth_prefix = "Bearer "
cursor = "updated_at"
backoff = 0.01
max_backoff = 0.05
{extra}
[jobs.psp.mapping]
case = "order_id"
activity = "type"
timestamp = "updated_at"
record_id = "id"
""", encoding="utf-8")
    return load_settings(config=tmp_path / "processlens.toml")


def run(settings):
    return run_named_job(settings)


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("TEST_PSP_TOKEN", TOKEN)


@pytest.mark.parametrize("path, extra", [
    ("/link", 'records_path = "data"\nparams = { per_page = 4 }'),
    ("/body", 'records_path = "data"\npagination = "next_link"'),
    ("/pages", 'pagination = "page"\npage_size_param = "per_page"\npage_size = 5'),
    ("/tokens", 'records_path = "items"\npagination = "cursor"\nnext_cursor_path = "meta.next_cursor"'),
])
def test_pagination_styles_load_every_record_once(tmp_path, api, path, extra):
    state, base = api
    settings = job_settings(tmp_path, base + path, extra)
    res = run(settings)
    assert res.status == "succeeded", res.error
    assert res.rows_loaded == len(state.records)
    assert res.cursor == max(r["updated_at"] for r in state.records)
    with open_store(settings.db_path, read_only=True) as con:
        ids = {r[0] for r in con.execute("SELECT record_id FROM events").fetchall()}
        amount = con.execute("SELECT attrs->>'amount' FROM events WHERE record_id = 'p3'").fetchone()[0]
    assert ids == {r["id"] for r in state.records}
    assert float(amount) == 31.5
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in state.requests)


def test_since_cursor_is_sent_and_only_new_records_load(tmp_path, api):
    state, base = api
    settings = job_settings(tmp_path, base + "/body", 'records_path = "data"')
    first = run(settings)
    state.requests.clear()
    state.records.append(state.record(40))
    second = run(settings)
    assert second.rows_loaded == 1 and second.duplicates_skipped == 0
    assert state.requests[0]["query"]["since"] == [first.cursor]
    with open_store(settings.db_path, read_only=True) as con:
        assert read_cursor(con, "psp") == "2024-04-01T10:40:00Z"


def test_retries_503_and_429_with_retry_after(tmp_path, api):
    state, base = api
    state.fail["/body"] = [503, 502, 429]
    state.retry_after = "1"
    settings = job_settings(tmp_path, base + "/body", 'records_path = "data"')
    res = run(settings)
    assert res.status == "succeeded", res.error
    assert res.rows_loaded == len(state.records)
    assert len(state.requests) == 3 + 5  # three failures, then five pages of five


def test_retry_after_is_honoured_and_backoff_grows(api):
    state, base = api
    state.fail["/body"] = [429, 503, 503]
    state.retry_after = "7"
    slept: list[float] = []
    import duckdb

    con = duckdb.connect()
    opts = HttpOptions(url=base + "/body", records_path="data", backoff=1.0, max_backoff=100, auth_prefix="Bearer ")
    pages = list(batches(con, opts, auth_value=TOKEN, sleep=slept.append))
    assert len(pages) == 5
    assert slept[0] == 7.0  # Retry-After wins over the backoff
    assert 0.5 * 2 <= slept[1] < 1.5 * 2 and 0.5 * 4 <= slept[2] < 1.5 * 4  # 2nd, 3rd attempt: base x 2^n, jittered


def test_exhausted_retries_fail_with_url_and_status_and_commit_nothing(tmp_path, api):
    state, base = api
    state.fail_always[("/body", 3)] = 500  # pages 1 and 2 succeed first
    settings = job_settings(tmp_path, base + "/body", 'records_path = "data"\nmax_retries = 2')
    res = run(settings)
    assert res.status == "failed"
    assert "/body?page=3" in res.error and "HTTP 500" in res.error and "3 attempts" in res.error
    with open_store(settings.db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert read_cursor(con, "psp") is None
        assert con.execute("SELECT status FROM ingest_runs").fetchall() == [("failed",)]


def test_connection_refused_is_retried_then_fails(tmp_path):
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/body"
    settings = job_settings(tmp_path, url, "max_retries = 2\ntimeout = 2")
    res = run(settings)
    assert res.status == "failed" and url in res.error and "3 attempts" in res.error


def test_wrong_credentials_fail_without_showing_them(tmp_path, api, monkeypatch):
    state, base = api
    monkeypatch.setenv("TEST_PSP_TOKEN", "wrong-" + TOKEN)
    settings = job_settings(tmp_path, base + "/body", 'records_path = "data"')
    res = run(settings)
    assert res.status == "failed" and "401" in res.error and "auth_env" in res.error
    assert len(state.requests) == 1  # 401 is not retried
    with open_store(settings.db_path, read_only=True) as con:
        stored = json.dumps(con.execute("SELECT * FROM ingest_runs").fetchall(), default=str) + json.dumps(
            con.execute("SELECT config FROM sources").fetchall())
    assert TOKEN not in stored and TOKEN not in res.error


def test_missing_auth_variable_names_it(tmp_path, api, monkeypatch):
    _, base = api
    monkeypatch.delenv("TEST_PSP_TOKEN")
    res = run(job_settings(tmp_path, base + "/body", 'records_path = "data"'))
    assert res.status == "failed" and "TEST_PSP_TOKEN" in res.error


def test_rate_limiter_spaces_requests():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.wait()
    assert slept == [0.25] * 4
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_timeouts_are_retried_then_fail_with_the_url(tmp_path, api):
    state, base = api
    settings = job_settings(tmp_path, base + "/slow", "timeout = 0.3\nmax_retries = 1")
    res = run(settings)
    assert res.status == "failed" and "/slow" in res.error and "Timeout" in res.error and "2 attempts" in res.error
    assert len(state.requests) == 2
