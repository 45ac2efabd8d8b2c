"""HTTP JSON APIs: pagination, a since-cursor, auth from the environment, retries, rate limit.

Pagination styles (``pagination``):

- ``auto`` (default): follow a ``Link: <...>; rel="next"`` header, else a next-page URL in the
  body at ``next_path`` (default ``next``), else stop;
- ``link_header`` / ``next_link``: only the header / only the body link (relative links allowed);
- ``page``: ``page_param`` (default ``page``) counts up from ``start_page`` (default 1), with
  ``page_size_param``/``page_size`` when given; stops at an empty page or one shorter than page_size;
- ``cursor``: an opaque token from the body at ``next_cursor_path`` (default ``next_cursor``) is
  sent back as ``cursor_param`` (default ``cursor``); stops when the token is missing or repeats;
- ``none``: one request.

Records are found in each page at ``records_path`` (same syntax as JSON files, e.g. ``data`` or
``orders[].events``; default: the body when it is a list, or its only list of objects). With
``cursor`` (a record field, e.g. ``updated_at``) the largest value seen becomes the job's watermark
and the next run sends it as ``since_param`` (default ``since``).

The header ``auth_header`` (default ``Authorization``) gets ``auth_prefix`` + the value of the
environment variable named by ``auth_env``; it is never logged or put in messages. Connection
errors, timeouts, 429 and 5xx are retried ``max_retries`` times with exponential backoff and jitter
(``backoff`` seconds doubling up to ``max_backoff``), honouring ``Retry-After`` up to
``max_retry_after``. Requests are spaced to at most ``rate_limit`` per second. When retries are
exhausted the run fails with the URL and the last status; since pages are loaded inside the run's
transaction, nothing of a failed run is committed.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urljoin

import duckdb
import httpx

from ingest.loader import Batch
from ingest.sources.json_file import arrow_table, iter_records, records_to_table
from ingest.sources.sqlite_db import encode_cursor, max_value
from processlens.errors import SourceError

RETRY_STATUS = {429, 500, 502, 503, 504}
STYLES = {"auto", "link_header", "next_link", "page", "cursor", "none"}


@dataclass
class HttpOptions:
    url: str
    records_path: str | None = None
    cursor: str | None = None
    since_param: str = "since"
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth_header: str = "Authorization"
    auth_prefix: str = ""
    pagination: str = "auto"
    next_path: str = "next"
    page_param: str = "page"
    start_page: int = 1
    page_size_param: str | None = None
    page_size: int | None = None
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"
    rate_limit: float | None = None
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0
    max_pages: int = 100_000

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> HttpOptions:
        known = {f.name for f in fields(cls)}
        opts = cls(**{k: v for k, v in options.items() if k in known})
        if opts.pagination not in STYLES:
            raise SourceError(f"unknown pagination {opts.pagination!r}", hint=f"use one of: {', '.join(sorted(STYLES))}",
                              where={"url": opts.url})
        return opts


class RateLimiter:
    """Spaces calls at least ``1 / rate`` seconds apart (no limit when rate is falsy)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.clock, self.sleep = clock, sleep
        self._next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) x base x 2^attempt, capped."""
    return min(cap, base * (2 ** attempt)) * (0.5 + random.random())


def body_path(body: Any, path: str) -> Any:
    """Value at a dotted path in a JSON body, or None."""
    node = body
    for part in path.split(".") if path else []:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


class Fetcher:
    """GET with retries, backoff, Retry-After and a rate limit; never shows the auth value."""

    def __init__(self, opts: HttpOptions, auth_value: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.opts = opts
        headers = {"Accept": "application/json", "User-Agent": "processlens-ingest", **opts.headers}
        if auth_value:
            headers[opts.auth_header] = opts.auth_prefix + auth_value
        self.client = httpx.Client(headers=headers, timeout=opts.timeout, follow_redirects=True)
        self.limiter = RateLimiter(opts.rate_limit, sleep=sleep)
        self.sleep = sleep
        self.requests = 0

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        o = self.opts
        last = "no answer"
        for attempt in range(o.max_retries + 1):
            self.limiter.wait()
            self.requests += 1
            try:
                resp = self.client.get(url, params=params)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = backoff_delay(attempt, o.backoff, o.max_backoff)
            else:
                if resp.status_code < 400:
                    return resp
                last = f"HTTP {resp.status_code} {resp.reason_phrase}".strip()
                if resp.status_code not in RETRY_STATUS:
                    raise SourceError(
                        f"{_shown(resp.request.url)} answered {last}",
                        hint=_hint(resp.status_code), where={"url": _shown(resp.request.url), "status": resp.status_code},
                    )
                delay = backoff_delay(attempt, o.backoff, o.max_backoff)
                ra = retry_after_seconds(resp.headers.get("Retry-After"))
                if ra is not None:
                    delay = min(ra, o.max_retry_after)
            if attempt < o.max_retries:
                self.sleep(delay)
        shown = str(httpx.URL(url).copy_merge_params(params)) if params else url  # URL(..., params=None) drops the query
        raise SourceError(
            f"{shown} failed after {o.max_retries + 1} attempts; last: {last}",
            hint="the API is down, overloaded or unreachable; nothing of this run was committed - run the job again later",
            where={"url": shown},
        )


def _shown(url: httpx.URL | str) -> str:
    return str(url)


def _hint(status: int) -> str:
    if status in (401, 403):
        return "the API refused the credentials: check the variable named by auth_env (and auth_header/auth_prefix)"
    if status == 404:
        return "check the job's url"
    return "check the job's url and parameters"


def _link_next(resp: httpx.Response) -> str | None:
    link = resp.links.get("next")
    return urljoin(str(resp.url), link["url"]) if link and link.get("url") else None


def pages(fetcher: Fetcher, opts: HttpOptions, cursor: str | None) -> Iterator[tuple[str, Any]]:
    """Yield ``(url, body)`` for every page."""
    params: dict[str, Any] = dict(opts.params)
    if cursor is not None and opts.cursor:
        params[opts.since_param] = cursor
    style = opts.pagination
    page = opts.start_page
    if style == "page":
        params[opts.page_param] = page
        if opts.page_size_param and opts.page_size:
            params[opts.page_size_param] = opts.page_size
    url: str | None = opts.url
    seen: set[str] = set()
    for _ in range(opts.max_pages):
        resp = fetcher.get(url, params=params or None)
        shown = str(resp.url)
        try:
            body = resp.json()
        except ValueError as exc:
            raise SourceError(f"{shown} did not return JSON ({resp.headers.get('content-type', 'no content type')})",
                              hint="check the job's url: it must point at a JSON API endpoint", where={"url": shown}) from exc
        yield shown, body
        seen.add(shown)
        if style == "none":
            return
        if style == "page":
            n = sum(1 for _ in iter_records(body, opts.records_path)) if body else 0
            if n == 0 or (opts.page_size and n < opts.page_size):
                return
            page += 1
            params[opts.page_param] = page
            continue
        if style == "cursor":
            token = body_path(body, opts.next_cursor_path)
            if token in (None, "") or params.get(opts.cursor_param) == token:
                return
            params[opts.cursor_param] = token
            continue
        nxt = _link_next(resp) if style in ("auto", "link_header") else None
        if nxt is None and style in ("auto", "next_link"):
            link = body_path(body, opts.next_path)
            nxt = urljoin(shown, link) if isinstance(link, str) and link else None
        if nxt is None or nxt in seen:
            return
        url, params = nxt, {}  # a next link carries its own query
    raise SourceError(f"{opts.url} returned more than max_pages={opts.max_pages} pages",
                      hint="raise max_pages for this job, or check that the API's pagination ends", where={"url": opts.url})


def batches(
    con: duckdb.DuckDBPyConnection,
    opts: HttpOptions,
    cursor: str | None = None,
    auth_value: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Batch]:
    """One batch per page; each carries the watermark reached so far."""
    fetcher = Fetcher(opts, auth_value, sleep=sleep)
    high: Any = None
    offset = 0
    try:
        for url, body in pages(fetcher, opts, cursor):
            records, rejects = [], []
            try:
                found = list(iter_records(body, opts.records_path))
            except SourceError as exc:
                raise SourceError(f"{url}: {exc.message}", hint=exc.hint, where={"url": url}) from exc
            for key, rec, reason in found:
                if reason:
                    rejects.append({"record_key": key, "reason": reason, "raw": rec})
                else:
                    records.append(rec)
            if opts.cursor:
                high = max_value(high, [r.get(opts.cursor) for r in records])
            data = None
            if records:  # typed on a cursor of its own: an error there must not abort the run's transaction
                work = con.cursor()
                try:
                    records_to_table(work, "_http_page", records, location=url)
                    data = arrow_table(work, "SELECT * FROM _http_page")
                finally:
                    work.close()
            batch = Batch(relation="_http_page" if records else "", data=data, location=url, line_offset=None,
                          position_offset=offset, source_rejects=rejects, schemaless=True,
                          cursor=encode_cursor(high) if opts.cursor and high is not None else None)
            offset += len(records)
            yield batch
    finally:
        fetcher.close()
