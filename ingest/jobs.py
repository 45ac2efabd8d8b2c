"""Ingest jobs declared in ``processlens.toml`` (``[jobs.NAME]`` tables) and how they run.

A job names a kind of source, where it is, how its columns map onto events (``[jobs.NAME.mapping]``,
see :class:`ingest.mapping.Mapping`), an optional schedule and, for incremental sources, the
cursor column. Each run opens the store, reads the job's cursor from ``cursors``, streams the
source through the :class:`~ingest.loader.Loader` and commits data, cursor and run record in one
transaction. Errors name the job, the key and the config file.

Kinds and their keys (besides ``kind``, ``source``, ``schedule``, ``description``, ``mapping``):

=========  ================================================================================
csv        path, sep, encoding
parquet    path
xes        path
json       path, records_path, format (auto | lines | document)
sqlite     path, query, cursor, initial_cursor, batch_size
postgres   dsn or dsn_env, query, cursor, initial_cursor, batch_size
http       url, records_path, cursor, initial_cursor, since_param, params, headers, auth_env,
           auth_header, auth_prefix, pagination, next_path, page_param, start_page,
           page_size_param, page_size, cursor_param, next_cursor_path, rate_limit, timeout,
           max_retries, backoff, max_backoff, max_retry_after, max_pages
folder     path, pattern, file_kind, sep, encoding, records_path, format, min_age
=========  ================================================================================
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ingest.loader import Batch, Loader, RunResult, failure_message
from ingest.mapping import Mapping
from processlens.config import Settings
from processlens.errors import ConfigError, ProcesslensError

COMMON_KEYS = {"kind", "source", "schedule", "description", "mapping"}
KIND_KEYS: dict[str, set[str]] = {
    "csv": {"path", "sep", "encoding"},
    "parquet": {"path"},
    "xes": {"path"},
    "json": {"path", "records_path", "format"},
    "sqlite": {"path", "query", "cursor", "initial_cursor", "batch_size"},
    "postgres": {"dsn", "dsn_env", "query", "cursor", "initial_cursor", "batch_size"},
    "http": {"url", "records_path", "cursor", "initial_cursor", "since_param", "params", "headers", "auth_env",
             "auth_header", "auth_prefix", "pagination", "next_path", "page_param", "start_page", "page_size_param",
             "page_size", "cursor_param", "next_cursor_path", "rate_limit", "timeout", "max_retries", "backoff",
             "max_backoff", "max_retry_after", "max_pages"},
    "folder": {"path", "pattern", "file_kind", "sep", "encoding", "records_path", "format", "min_age"},
}
REQUIRED: dict[str, list[str]] = {
    "csv": ["path"], "parquet": ["path"], "xes": ["path"], "json": ["path"],
    "sqlite": ["path", "query"], "postgres": ["query"], "http": ["url"], "folder": ["path"],
}
PATH_KINDS = {"csv", "parquet", "xes", "json", "sqlite", "folder"}


@dataclass
class JobSpec:
    """One ``[jobs.NAME]`` table, validated; ``options`` holds the kind-specific keys."""

    name: str
    kind: str
    source: str
    mapping: Mapping
    schedule: str | None = None
    path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    config_file: Path | None = None

    @property
    def cursor_column(self) -> str | None:
        return self.options.get("cursor")

    def public_config(self) -> dict[str, Any]:
        """What is recorded with the source: no secrets (DSNs and auth come from the environment)."""
        cfg: dict[str, Any] = {"job": self.name, "kind": self.kind}
        if self.path:
            cfg["path"] = str(self.path)
        for k, v in self.options.items():
            if k not in {"dsn", "headers"}:
                cfg[k] = v
        return cfg


def _where(settings: Settings, name: str | None = None) -> dict[str, Any]:
    where: dict[str, Any] = {"file": str(settings.config_path) if settings.config_path else None}
    if name:
        where["table"] = f"[jobs.{name}]"
    return where


def _no_config_hint() -> str:
    return ("looked at --config, the PROCESSLENS_CONFIG variable and ./processlens.toml; "
            "create processlens.toml with [jobs.NAME] tables (see docs/decisions.md) or pass --config")


def parse_job(name: str, table: Any, settings: Settings) -> JobSpec:
    """Validate one ``[jobs.NAME]`` table into a :class:`JobSpec`."""
    where = _where(settings, name)
    if not isinstance(table, dict):
        raise ConfigError(f"[jobs.{name}] must be a table", hint=f"write it as [jobs.{name}] with key = value lines",
                          where=where)
    kind = table.get("kind")
    if kind not in KIND_KEYS:
        raise ConfigError(
            f"job '{name}' has kind {kind!r}" if kind else f"job '{name}' has no 'kind'",
            hint=f"set kind to one of: {', '.join(KIND_KEYS)}", where=where,
        )
    allowed = COMMON_KEYS | KIND_KEYS[kind]
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"job '{name}' has unknown key(s) {unknown} for kind {kind!r}",
                          hint=f"valid keys for a {kind} job: {', '.join(sorted(allowed))}", where=where)
    missing = [k for k in REQUIRED[kind] if not table.get(k)]
    if kind == "postgres" and not (table.get("dsn") or table.get("dsn_env")):
        missing.append("dsn or dsn_env")
    if missing:
        raise ConfigError(f"job '{name}' ({kind}) needs {', '.join(repr(m) for m in missing)}",
                          hint="add the key(s) to its table", where=where)
    mapping_table = table.get("mapping")
    if not isinstance(mapping_table, dict):
        raise ConfigError(f"job '{name}' has no [jobs.{name}.mapping] table",
                          hint="name the columns: case (or correlation), activity, timestamp", where=where)
    try:
        mapping = Mapping.from_dict(mapping_table, where=f"[jobs.{name}.mapping]")
    except ConfigError as exc:
        exc.where = {**where, **exc.where, "table": f"[jobs.{name}.mapping]"}
        raise
    schedule = table.get("schedule")
    if schedule is not None:
        from ingest.scheduler import parse_schedule

        try:
            parse_schedule(schedule)
        except ConfigError as exc:
            raise ConfigError(f"job '{name}': {exc.message}", hint=exc.hint, where={**where, "key": "schedule"}) from exc
    options = {k: v for k, v in table.items() if k not in COMMON_KEYS and k != "path"}
    _check_types(name, kind, options, where)
    if kind == "postgres" and table.get("dsn"):
        from ingest.sources.postgres_db import has_password

        if has_password(table["dsn"]):
            raise ConfigError(
                f"job '{name}' has a password in its dsn; secrets are not read from the config file",
                hint="put the DSN in an environment variable and name it with dsn_env (or use PGPASSWORD / ~/.pgpass)",
                where={**where, "key": "dsn"},
            )
    return JobSpec(
        name=name, kind=kind, source=str(table.get("source") or name), mapping=mapping, schedule=schedule,
        path=settings.resolve(table["path"]) if kind in PATH_KINDS and table.get("path") else None,
        options=options, description=str(table.get("description", "")), config_file=settings.config_path,
    )


def _check_types(name: str, kind: str, options: dict[str, Any], where: dict[str, Any]) -> None:
    numbers = {"batch_size", "start_page", "page_size", "rate_limit", "timeout", "max_retries", "backoff",
               "max_backoff", "max_retry_after", "max_pages", "min_age"}
    tables = {"params", "headers"}
    for key, value in options.items():
        bad = (key in numbers and (isinstance(value, bool) or not isinstance(value, int | float))) or (
            key in tables and not isinstance(value, dict)) or (
            key not in numbers | tables and key != "initial_cursor" and not isinstance(value, str))
        if bad:
            expected = "a number" if key in numbers else "a table" if key in tables else "a string"
            raise ConfigError(f"job '{name}': '{key}' must be {expected}, not {value!r}",
                              hint=f"fix '{key}' in the job's table", where={**where, "key": key})
        if key in numbers and value < 0:
            raise ConfigError(f"job '{name}': '{key}' must not be negative", hint=f"fix '{key}'", where={**where, "key": key})


def load_jobs(settings: Settings) -> list[JobSpec]:
    """All jobs of the config file, in the order they are declared."""
    jobs = settings.section("jobs")
    return [parse_job(name, table, settings) for name, table in jobs.items()]


def read_cursor(con: duckdb.DuckDBPyConnection, job: str) -> str | None:
    rows = con.execute("SELECT value FROM cursors WHERE job = ?", [job]).fetchall()  # fetchall: no open result
    return rows[0][0] if rows else None


def _env(spec: JobSpec, var: str, key: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise ConfigError(
            f"job '{spec.name}': the environment variable {var} (named by '{key}') is not set",
            hint=f"export {var}=... in the environment that runs processlens",
            where={"file": str(spec.config_file) if spec.config_file else None, "table": f"[jobs.{spec.name}]"},
        )
    return value


def source_batches(con: duckdb.DuckDBPyConnection, spec: JobSpec) -> Iterator[Batch]:
    """The job's batches; runs lazily inside the loader's transaction (so failures are recorded)."""
    o = spec.options
    cursor = read_cursor(con, spec.name)
    if cursor is None and o.get("initial_cursor") is not None:
        from ingest.sources.sqlite_db import encode_cursor

        cursor = encode_cursor(o["initial_cursor"])
    if spec.kind == "csv":
        from ingest.sources import csv_file

        yield from csv_file.batches(con, spec.path, spec.mapping.key_columns, sep=o.get("sep"),
                                     encoding=o.get("encoding"), stream=True)
    elif spec.kind == "parquet":
        from ingest.sources import parquet_file

        yield from parquet_file.batches(con, spec.path)
    elif spec.kind == "xes":
        from ingest.sources import xes_file

        yield from xes_file.batches(con, spec.path)
    elif spec.kind == "json":
        from ingest.sources import json_file

        yield from json_file.batches(con, spec.path, records_path=o.get("records_path"), fmt=o.get("format", "auto"))
    elif spec.kind == "sqlite":
        from ingest.sources import sqlite_db

        yield from sqlite_db.batches(spec.path, o["query"], o.get("cursor"), cursor,
                                     batch_size=int(o.get("batch_size", sqlite_db.DEFAULT_BATCH_SIZE)))
    elif spec.kind == "postgres":
        from ingest.sources import postgres_db

        dsn = _env(spec, o["dsn_env"], "dsn_env") if o.get("dsn_env") else o["dsn"]
        yield from postgres_db.batches(dsn, o["query"], o.get("cursor"), cursor,
                                       batch_size=int(o.get("batch_size", postgres_db.DEFAULT_BATCH_SIZE)))
    elif spec.kind == "http":
        from ingest.sources import http_api

        auth = _env(spec, o["auth_env"], "auth_env") if o.get("auth_env") else None
        yield from http_api.batches(con, http_api.HttpOptions.from_options(o), cursor=cursor, auth_value=auth)
    elif spec.kind == "folder":
        from ingest.sources import drop_folder

        yield from drop_folder.batches(con, spec.name, spec.path, spec.mapping, **{
            k: v for k, v in o.items() if k in {"pattern", "file_kind", "sep", "encoding", "records_path", "format", "min_age"}})
    else:  # pragma: no cover - parse_job validated the kind
        raise ConfigError(f"job '{spec.name}': unknown kind {spec.kind!r}")


def run_job(con: duckdb.DuckDBPyConnection, spec: JobSpec, progress: bool = False) -> RunResult:
    """Run one job on an open store. A failure is recorded in ``ingest_runs`` and returned as a
    failed :class:`RunResult` (its data rolled back); interrupts propagate."""
    loader = Loader(con, job=spec.name, source=spec.source, kind=spec.kind, mapping=spec.mapping,
                    progress=progress, config=spec.public_config())
    try:
        return loader.run_with_fallback(lambda: source_batches(con, spec))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        message = failure_message(exc)
        if loader.result is not None and loader.result.status == "failed":
            return loader.result
        return RunResult(run_id=0, job=spec.name, status="failed", error=message)


def select_jobs(settings: Settings, names: list[str] | None = None) -> list[JobSpec]:
    """The named jobs (all when ``names`` is empty); unknown names are a ConfigError listing the known ones."""
    jobs = load_jobs(settings)
    if not jobs:
        raise ConfigError(
            "no ingest jobs are configured" + (f" in {settings.config_path}" if settings.config_path else
                                                " (no processlens.toml found)"),
            hint="add [jobs.NAME] tables to processlens.toml; " + _no_config_hint() if not settings.config_path
            else "add [jobs.NAME] tables (kind, path or query, [jobs.NAME.mapping])",
            where=_where(settings),
        )
    if not names:
        return jobs
    by_name = {j.name: j for j in jobs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"unknown job(s) {', '.join(unknown)}",
                          hint=f"the jobs in {settings.config_path} are: {', '.join(by_name)}", where=_where(settings))
    return [by_name[n] for n in names]


def run_jobs(settings: Settings, names: list[str] | None = None, progress: bool = False) -> list[RunResult]:
    """Run jobs one after another, each in its own store session; one failing does not stop the rest."""
    from ingest.store import open_store

    results = []
    for spec in select_jobs(settings, names):
        try:
            with open_store(settings.db_path) as con:
                results.append(run_job(con, spec, progress=progress))
        except ProcesslensError as exc:  # e.g. the store stayed busy
            results.append(RunResult(run_id=0, job=spec.name, status="failed", error=failure_message(exc)))
    if any(r.rows_loaded or r.resolved_pending for r in results):
        from processlens.maintenance import after_ingest_at

        after_ingest_at(settings.db_path)
    return results
