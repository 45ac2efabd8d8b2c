"""PostgreSQL: a query with an incremental cursor column, streamed through a server-side cursor.

Same query contract as :mod:`ingest.sources.sqlite_db` (``:cursor`` placeholder, first run reads
everything or from ``initial_cursor``, batches carry the running watermark). The session runs in
UTC, read-only; ``timestamptz`` values arrive as UTC instants, ``timestamp`` values stay naive and
are read in the mapping's time zone. The watermark is bound as text of unknown type, so
PostgreSQL casts it to the cursor column's type (integer, timestamp, timestamptz, text).

The DSN comes from the job's ``dsn`` (without a password) or from the environment variable named
by ``dsn_env``; libpq's own ``PGPASSWORD`` / ``~/.pgpass`` work too. The DSN is never logged: error
messages show it with the password removed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ingest.loader import Batch
from ingest.sources.sqlite_db import (
    DEFAULT_BATCH_SIZE,
    PLACEHOLDER,
    batches_from_cursor,
    prepare_query,
)
from processlens.errors import SourceError


def redact(dsn: str) -> str:
    """The DSN without its password (for messages)."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = conninfo_to_dict(dsn)
        if "password" in parts:
            parts["password"] = "***"
        return make_conninfo(**{k: v for k, v in parts.items() if v is not None})
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"password=\S+", "password=***", dsn))


def has_password(dsn: str) -> bool:
    try:
        from psycopg.conninfo import conninfo_to_dict

        return bool(conninfo_to_dict(dsn).get("password"))
    except Exception:
        return "password=" in dsn or bool(re.search(r"://[^:/@]*:[^@]+@", dsn))


def to_psycopg(query: str) -> str:
    """``:cursor`` -> ``%(cursor)s``; literal ``%`` doubled for psycopg's parameter syntax."""
    return PLACEHOLDER.sub("%(cursor)s", query.replace("%", "%%"))


def batches(
    dsn: str,
    query: str,
    cursor_column: str | None = None,
    cursor: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    location: str | None = None,
) -> Iterator[Batch]:
    """Stream ``query`` in batches of ``batch_size`` rows through a named (server-side) cursor."""
    import psycopg

    where = location or redact(dsn)
    sql, binds = prepare_query(query, cursor_column, cursor)
    try:
        conn = psycopg.connect(dsn, options="-c TimeZone=UTC -c default_transaction_read_only=on",
                               connect_timeout=15, application_name="processlens-ingest")
    except psycopg.Error as exc:
        raise SourceError(
            f"cannot connect to PostgreSQL at {where}: {str(exc).strip().splitlines()[0]}",
            hint="check the job's dsn / the variable named by dsn_env, and that the server is running",
            where={"postgres": where},
        ) from exc
    try:
        params: dict[str, Any] = {"cursor": cursor} if binds else {}
        with conn.cursor(name="processlens_ingest") as cur:
            cur.itersize = batch_size
            try:
                cur.execute(to_psycopg(sql), params or None)
            except psycopg.Error as exc:
                raise SourceError(
                    f"the query failed on {where}: {str(exc).strip().splitlines()[0]}",
                    hint="check the job's query (it may use :cursor for the watermark)",
                    where={"postgres": where, "query": sql[:200]},
                ) from exc
            columns = [d.name for d in cur.description or []]
            yield from batches_from_cursor(cur.fetchmany, columns, cursor_column, where, batch_size, "_pg_rows")
    except psycopg.Error as exc:
        raise SourceError(
            f"reading from PostgreSQL at {where} failed: {str(exc).strip().splitlines()[0]}",
            hint="the connection was lost or the query failed mid-way; nothing was committed, run the job again",
            where={"postgres": where},
        ) from exc
    finally:
        conn.close()
