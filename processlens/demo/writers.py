"""Write the generated business into each system's native form (set-wise, through DuckDB).

* ERP: SQLite ``erp.sqlite`` with ``orders`` and ``order_status_history`` (UTC text timestamps);
* WMS: ``wms/wms_YYYY-MM-DD.csv``, one ``;``-separated file per local day, naive Europe/Berlin
  times in the German format ``DD.MM.YYYY HH:MM:SS``;
* Helpdesk: ``helpdesk/tickets.json``, a list of tickets (the ticket names the order) with their
  events (which carry only the ticket id), times with their UTC offset;
* PSP: ``psp/events.jsonl``, one payment event per line, ISO 8601 times with ``Z``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from processlens.demo import people
from processlens.demo import spec as s
from processlens.demo.calendar import Calendar
from processlens.demo.generate import SUBJECTS, Generated

ORDERS_DDL = """CREATE TABLE orders (
    order_id   TEXT PRIMARY KEY,
    customer   TEXT NOT NULL,
    region     TEXT NOT NULL,
    channel    TEXT NOT NULL,
    amount     REAL NOT NULL,
    currency   TEXT NOT NULL,
    priority   TEXT NOT NULL,
    created_at TEXT NOT NULL
)"""
HISTORY_DDL = """CREATE TABLE order_status_history (
    history_id INTEGER PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders(order_id),
    status     TEXT NOT NULL,
    changed_at TEXT NOT NULL,  -- UTC, 'YYYY-MM-DD HH:MM:SS'
    changed_by TEXT
)"""


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def register(con: duckdb.DuckDBPyConnection, gen: Generated, cal: Calendar) -> None:
    """Tables ``c`` (cases), ``e`` (model events), ``t`` (ticket events) and name tables in ``con``."""
    ev = gen.events
    cases = gen.cases
    con.register("c", cases[["case_id", "customer", "region", "channel", "amount", "priority", "warehouse", "number"]])
    con.register("e", pd.DataFrame({
        "number": cases["number"].to_numpy()[ev.row], "pos": ev.pos, "act": ev.act.astype(np.int16),
        "res": ev.res, "ts": ev.ts, "off": cal.offset(ev.ts),
    }))
    tk = gen.tickets
    number = cases["number"].to_numpy()[tk.row]
    order = np.argsort(tk.opened, kind="stable")
    ticket_no = np.empty(len(order), dtype=np.int64)
    ticket_no[order] = np.arange(1, len(order) + 1)
    both = np.concatenate([tk.opened, tk.resolved])
    con.register("t", pd.DataFrame({
        "ticket_no": np.concatenate([ticket_no, ticket_no]),
        "number": np.concatenate([number, number]),
        "act": np.concatenate([np.full(len(order), s.OPEN_TICKET), np.full(len(order), s.RESOLVE_TICKET)]).astype(np.int16),
        "res": np.concatenate([tk.agent, tk.agent]),
        "subject": np.concatenate([tk.subject, tk.subject]).astype(np.int16),
        "ts": both, "off": cal.offset(both),
    }))
    con.register("a", pd.DataFrame({"act": np.arange(len(s.ACTIVITIES), dtype=np.int16), "name": s.ACTIVITIES}))
    con.register("r", pd.DataFrame({"res": np.arange(len(people.RESOURCES), dtype=np.int16), "name": people.RESOURCES}))
    con.register("subj", pd.DataFrame({"subject": np.arange(len(SUBJECTS), dtype=np.int16), "name": SUBJECTS}))


def system_acts(system: str) -> str:
    return "(" + ", ".join(str(a) for a, sys in s.SYSTEM.items() if sys == system) + ")"


def write_erp(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The ERP database; returns the number of status-history rows."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute(ORDERS_DDL)
        db.execute(HISTORY_DDL)
        cur = con.execute(
            """SELECT c.case_id, c.customer, c.region, c.channel, c.amount, 'EUR', c.priority,
                      strftime(epoch_ms(f.ts * 1000), '%Y-%m-%d %H:%M:%S')
               FROM c JOIN (SELECT number, min(ts) AS ts FROM e GROUP BY number) f USING (number)
               ORDER BY c.number"""
        )
        while rows := cur.fetchmany(100_000):
            db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        cur = con.execute(
            f"""SELECT row_number() OVER (ORDER BY e.ts, e.number, e.pos), c.case_id, a.name,
                       strftime(epoch_ms(e.ts * 1000), '%Y-%m-%d %H:%M:%S'), r.name
                FROM e JOIN c USING (number) JOIN a USING (act) LEFT JOIN r USING (res)
                WHERE e.act IN {system_acts('ERP')}
                ORDER BY e.ts, e.number, e.pos"""
        )
        n = 0
        while rows := cur.fetchmany(100_000):
            db.executemany("INSERT INTO order_status_history VALUES (?, ?, ?, ?, ?)", rows)
            n += len(rows)
        db.execute("CREATE INDEX order_status_history_changed_at ON order_status_history (changed_at)")
        db.commit()
    finally:
        db.close()
    return n


def write_wms(con: duckdb.DuckDBPyConnection, folder: Path) -> tuple[int, int]:
    """One CSV per local day; returns (rows, files)."""
    folder.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE wms AS
            SELECT strftime(epoch_ms((e.ts + e.off) * 1000), '%Y-%m-%d') AS day,
                   c.case_id AS "Order Ref", a.name AS "Event",
                   strftime(epoch_ms((e.ts + e.off) * 1000), '%d.%m.%Y %H:%M:%S') AS "Timestamp",
                   r.name AS "Operator", c.warehouse AS "Warehouse", e.ts, e.number, e.pos
            FROM e JOIN c USING (number) JOIN a USING (act) LEFT JOIN r USING (res)
            WHERE e.act IN {system_acts('WMS')}
            ORDER BY day, e.ts, e.number, e.pos"""
    )
    days = [d for (d,) in con.execute("SELECT DISTINCT day FROM wms ORDER BY day").fetchall()]
    for day in days:
        target = folder / f"wms_{day}.csv"
        con.execute(
            f"""COPY (SELECT "Order Ref", "Event", "Timestamp", "Operator", "Warehouse" FROM wms
                      WHERE day = '{day}' ORDER BY ts, number, pos)
                TO {_q(target)} (FORMAT CSV, HEADER true, DELIMITER ';')"""
        )
    n = con.execute("SELECT count(*) FROM wms").fetchone()[0]
    con.execute("DROP TABLE wms")
    return n, len(days)


def _iso_offset(col: str) -> str:
    return (f"strftime(epoch_ms(({col}.ts + {col}.off) * 1000), '%Y-%m-%dT%H:%M:%S') || "
            f"CASE WHEN {col}.off = 7200 THEN '+02:00' ELSE '+01:00' END")


def write_helpdesk(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int]:
    """The ticket export; returns (tickets, events)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"""COPY (
            SELECT printf('T-%06d', t.ticket_no) AS ticket_id,
                   c.case_id AS order_ref,
                   any_value(subj.name) AS subject,
                   any_value(CASE WHEN t.ticket_no % 7 = 0 THEN 'high' ELSE 'normal' END) AS priority,
                   any_value(CASE t.ticket_no % 3 WHEN 0 THEN 'email' WHEN 1 THEN 'portal' ELSE 'phone' END) AS channel,
                   min({_iso_offset('t')}) AS created,
                   'solved' AS status,
                   list({{'event_id': printf('TE-%07d', t.ticket_no * 2 - 1 + (t.act = {s.RESOLVE_TICKET})::INT),
                          'ticket_id': printf('T-%06d', t.ticket_no),
                          'type': a.name, 'at': {_iso_offset('t')}, 'agent': r.name}} ORDER BY t.ts) AS events
            FROM t JOIN c USING (number) JOIN a USING (act) LEFT JOIN r USING (res) JOIN subj USING (subject)
            GROUP BY t.ticket_no, c.case_id
            ORDER BY t.ticket_no
        ) TO {_q(path)} (FORMAT JSON, ARRAY true)"""
    )
    return con.execute("SELECT count(DISTINCT ticket_no), count(*) FROM t").fetchone()


def write_psp(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Payment provider events as JSON lines; returns the number of events."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"""COPY (
            SELECT printf('evt_%010d', row_number() OVER (ORDER BY e.ts, e.number, e.pos)) AS id,
                   printf('pay_%08d', e.number) AS payment_id,
                   c.case_id AS order_ref, a.name AS type,
                   strftime(epoch_ms(e.ts * 1000), '%Y-%m-%dT%H:%M:%SZ') AS created,
                   c.amount AS amount, 'EUR' AS currency,
                   r.name AS initiated_by
            FROM e JOIN c USING (number) JOIN a USING (act) LEFT JOIN r USING (res)
            WHERE e.act IN {system_acts('PSP')}
            ORDER BY e.ts, e.number, e.pos
        ) TO {_q(path)} (FORMAT JSON)"""
    )
    return con.execute(f"SELECT count(*) FROM e WHERE act IN {system_acts('PSP')}").fetchone()[0]
