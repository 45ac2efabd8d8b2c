"""Running cases against the reference model: where each open case stands, what it waits for,
whether it is stuck, and the exceptions of every case (handled or not).

Definitions (docs/decisions.md, shared with the demo generator):

- a case is **open** when its last event (side activities ignored) is not a final step;
- the **step it waits for** is the next step the model enables after its last event (an exception
  event is never waited for: after one, its handler is);
- **waited** = now - time of the case's last event; **normal** = the 95th percentile of the
  waiting time before that step (since the case's previous event) over all its occurrences;
- **stuck** = open and (waited > SLA of the step or waited > normal); both reasons are reported;
- **exception events** are handled when their handler follows later in the case.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from models.model import ReferenceModel, humanize_seconds

NORMAL_QUANTILE = 0.95
STUCK_COLUMNS = ["case_id", "step", "owner", "waited_seconds", "sla_seconds", "normal_seconds", "reasons",
                 "last_activity", "last_ts", "source", "waited_working_seconds", "next_steps", "sla_breached",
                 "over_normal", "marking"]
EXC_COLUMNS = ["case_id", "type", "owner", "ts", "handled", "source", "kind", "step", "detail"]


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return now


def _step_table(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> str:
    """A VALUES relation (activity_id, step) for the model-relevant activities."""
    rows = []
    for aid, name in con.execute("SELECT activity_id, name FROM activities").fetchall():
        step = model.task_for(name)
        if step is not None:
            rows.append(f"({int(aid)}, '{step.replace(chr(39), chr(39) * 2)}')")
    if not rows:
        return "(SELECT NULL::INTEGER AS activity_id, NULL::VARCHAR AS step WHERE false)"
    return f"(SELECT * FROM (VALUES {', '.join(rows)}) m(activity_id, step))"


def history(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> tuple[dict[str, float], Counter]:
    """Per step the normal wait (p95 since the previous event) and the directly-follows counts."""
    steps = _step_table(con, model)
    rows = con.execute(
        f"""
        WITH e AS (
            SELECT m.step, e.ts, lag(m.step) OVER w AS prev_step, lag(e.ts) OVER w AS prev_ts
            FROM events e JOIN {steps} m USING (activity_id)
            WINDOW w AS (PARTITION BY e.case_key ORDER BY e.ts, e.event_id))
        SELECT step, prev_step, count(*) AS n,
               quantile_cont(epoch(ts - prev_ts), {NORMAL_QUANTILE}) AS p
        FROM e WHERE prev_ts IS NOT NULL GROUP BY GROUPING SETS ((step), (step, prev_step))
        """).fetchall()
    normal: dict[str, float] = {}
    follows: Counter = Counter()
    for step, prev, n, p in rows:
        if prev is None:
            normal[step] = float(p)
        else:
            follows[(prev, step)] = int(n)
    return normal, follows


def open_cases(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> pd.DataFrame:
    """Open cases: case_key, case_id, trace (steps in order), last activity/step, last_ts, source."""
    steps = _step_table(con, model)
    finals = list(model.final_steps)
    df = con.execute(
        f"""
        WITH e AS (SELECT e.case_key, m.step, a.name AS activity, e.ts, e.event_id, e.source_id
                   FROM events e JOIN {steps} m USING (activity_id) JOIN activities a USING (activity_id)),
        l AS (SELECT case_key, list(step ORDER BY ts, event_id) AS trace,
                     last(step ORDER BY ts, event_id) AS last_step,
                     last(activity ORDER BY ts, event_id) AS last_activity,
                     max(ts) AS last_ts, last(source_id ORDER BY ts, event_id) AS source_id
              FROM e GROUP BY case_key)
        SELECT l.case_key, c.case_id, l.trace, l.last_step, l.last_activity, l.last_ts, s.name AS source
        FROM l JOIN cases c USING (case_key) JOIN sources s USING (source_id)
        WHERE NOT list_contains(?, l.last_step)
        ORDER BY l.last_ts
        """, [finals]).df()
    return df


# --- the net: markings and enabled steps -----------------------------------------------------------

def _enabled(net, marking: Counter) -> list:
    return [t for t in net.transitions
            if t.in_arcs and all(marking[a.source] >= a.weight for a in t.in_arcs)]


def _fire(t, marking: Counter) -> Counter:
    m = Counter(marking)
    for a in t.in_arcs:
        m[a.source] -= a.weight
        if m[a.source] <= 0:
            del m[a.source]
    for a in t.out_arcs:
        m[a.target] += a.weight
    return m


def enabled_steps(net, marking: Counter, limit: int = 500) -> list[str]:
    """Labels of visible transitions enabled in ``marking`` or after invisible transitions only."""
    seen = {frozenset(marking.items())}
    frontier = [Counter(marking)]
    found: dict[str, None] = {}
    while frontier and len(seen) < limit:
        nxt = []
        for m in frontier:
            for t in sorted(_enabled(net, m), key=lambda t: str(t.name)):
                if t.label is not None:
                    found.setdefault(t.label, None)
                else:
                    m2 = _fire(t, m)
                    key = frozenset(m2.items())
                    if key not in seen:
                        seen.add(key)
                        nxt.append(m2)
        frontier = nxt
    return list(found)


def _local_next(model: ReferenceModel, last_step: str) -> list[str]:
    """Steps the model enables right after ``last_step`` (from the tokens its transition produces)."""
    out: dict[str, None] = {}
    for t in model.net.transitions:
        if t.label == last_step:
            m = Counter({a.target: a.weight for a in t.out_arcs})
            for s in enabled_steps(model.net, m):
                out.setdefault(s, None)
    return list(out)


def reached_marking(model: ReferenceModel, trace: list[str]) -> Counter:
    """The marking token replay reaches after ``trace`` (pm4py's replayer)."""
    from pm4py.algo.conformance.tokenreplay import algorithm as token_replay

    from models.conformance import _event_log

    res = token_replay.apply(_event_log([tuple(trace)]), model.net, model.im, model.fm,
                             parameters={"show_progress_bar": False})
    return Counter(dict(res[0]["reached_marking"]))


def waiting_for(model: ReferenceModel, trace: list[str], follows: Counter) -> tuple[str | None, list[str], Counter]:
    """(the step a case waits for, all steps enabled in its marking, the marking)."""
    marking = reached_marking(model, trace) if trace else Counter(model.im)
    enabled = [s for s in enabled_steps(model.net, marking)]
    last = trace[-1] if trace else None
    local = _local_next(model, last) if last is not None else enabled
    candidates = [s for s in local if s not in model.exceptions] or [s for s in enabled if s not in model.exceptions]
    if not candidates:
        return None, enabled, marking
    order = {s: i for i, s in enumerate(candidates)}
    best = max(candidates, key=lambda s: (follows.get((last, s), 0), -order[s]))
    return best, enabled, marking


# --- stuck ----------------------------------------------------------------------------------------------

def stuck(con: duckdb.DuckDBPyConnection, model: ReferenceModel, now: datetime | None = None,
          include_all: bool = False) -> pd.DataFrame:
    """Open cases waiting longer than the SLA of their next step or than history says is normal.

    With ``include_all`` every open case is returned (``stuck`` column says which are stuck).
    """
    now = _now(now)
    normal, follows = history(con, model)
    cases = open_cases(con, model)
    rows = []
    cache: dict[tuple[str, ...], tuple[str | None, list[str], dict[str, int]]] = {}
    for case_id, trace, last_act, last_ts, source in zip(cases["case_id"], cases["trace"], cases["last_activity"],
                                                         cases["last_ts"], cases["source"], strict=False):
        key = tuple(trace)
        if key not in cache:
            step, enabled, marking = waiting_for(model, list(key), follows)
            cache[key] = (step, enabled, {str(p.name): int(n) for p, n in marking.items()})
        step, enabled, marking = cache[key]
        last_ts = pd.Timestamp(last_ts).to_pydatetime()
        waited = (now - last_ts).total_seconds()
        working = model.calendar.working_seconds(last_ts, now) if model.calendar else None
        st = model.steps.get(step) if step else None
        sla = st.sla_seconds if st else None
        sla_working = bool(st and st.sla_working)
        norm = normal.get(step) if step else None
        compare = working if sla_working and working is not None else waited
        breached = sla is not None and compare > sla
        over = norm is not None and waited > norm
        is_stuck = breached or over
        if not (is_stuck or include_all):
            continue
        rows.append({
            "case_id": case_id, "step": step, "owner": model.owner(step), "waited_seconds": waited,
            "sla_seconds": sla, "normal_seconds": norm,
            "reasons": _reasons(step, model.owner(step), waited, working, sla, sla_working, norm, breached, over),
            "last_activity": last_act, "last_ts": last_ts, "source": source, "waited_working_seconds": working,
            "next_steps": enabled, "sla_breached": breached, "over_normal": over, "marking": marking, "stuck": is_stuck,
        })
    cols = STUCK_COLUMNS + ["stuck"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values("waited_seconds", ascending=False, ignore_index=True)


def _reasons(step, owner, waited, working, sla, sla_working, norm, breached, over) -> str:
    at = f"{step} ({owner})" if owner else str(step)
    text = f"waiting {humanize_seconds(waited)} at {at}"
    if working is not None:
        text += f" ({humanize_seconds(working)} working time)"
    parts = [text]
    if sla is not None:
        parts.append(f"SLA {humanize_seconds(sla)}{' working time' if sla_working else ''}"
                     + (" breached" if breached else ""))
    if norm is not None:
        parts.append(f"{NORMAL_QUANTILE:.0%} of cases moved on within {humanize_seconds(norm)}")
    return "; ".join(parts)


# --- exceptions ------------------------------------------------------------------------------------

def exception_events(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> pd.DataFrame:
    """Every exception event with whether its handler followed later in the case."""
    if not model.exceptions:
        return pd.DataFrame(columns=EXC_COLUMNS)
    steps = _step_table(con, model)
    pairs = ", ".join(f"('{e.replace(chr(39), chr(39) * 2)}', '{(h or '').replace(chr(39), chr(39) * 2)}')"
                      for e, h in model.exceptions.items())
    df = con.execute(
        f"""
        WITH e AS (SELECT e.case_key, e.event_id, e.ts, e.source_id, m.step FROM events e JOIN {steps} m USING (activity_id)),
        x AS (SELECT * FROM (VALUES {pairs}) x(exc, handler))
        SELECT c.case_id, x.exc AS type, e.ts, s.name AS source,
               EXISTS (SELECT 1 FROM e h WHERE h.case_key = e.case_key AND h.step = x.handler
                       AND (h.ts > e.ts OR (h.ts = e.ts AND h.event_id > e.event_id))) AS handled,
               x.handler
        FROM e JOIN x ON e.step = x.exc JOIN cases c USING (case_key) JOIN sources s USING (source_id)
        ORDER BY e.ts, e.event_id
        """).df()
    df["owner"] = df["type"].map(model.owner)
    df["kind"] = "exception event"
    df["step"] = df["type"]
    df["detail"] = [f"{t} handled by {h}" if ok else f"{t} not followed by {h}"
                    for t, h, ok in zip(df["type"], df["handler"], df["handled"], strict=False)]
    return df[EXC_COLUMNS]


def exceptions(con: duckdb.DuckDBPyConnection, model: ReferenceModel, now: datetime | None = None,
               deviations: bool = True) -> pd.DataFrame:
    """Exception events, deviations outside the model and the allowlist, and abandoned open cases.

    ``kind`` says which: "exception event", "deviation" or "not final"; ``handled`` is True for an
    exception followed by its handler or an allowlisted deviation.
    """
    frames = [exception_events(con, model)]
    if deviations:
        frames.append(_deviation_exceptions(con, model))
    abandon = getattr(model, "abandoned_after", None)
    if abandon:
        now_ = _now(now)
        oc = open_cases(con, model)
        old = oc[(now_ - pd.to_datetime(oc["last_ts"])).dt.total_seconds() > abandon]
        frames.append(pd.DataFrame({
            "case_id": old["case_id"], "type": "ended in a non-final state", "owner": old["last_step"].map(model.owner),
            "ts": old["last_ts"], "handled": False, "source": old["source"], "kind": "not final",
            "step": old["last_step"], "detail": [f"last event {a}, no event for {humanize_seconds((now_ - pd.Timestamp(t)).total_seconds())}"
                                                  for a, t in zip(old["last_activity"], old["last_ts"], strict=False)]}))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=EXC_COLUMNS)
    return pd.concat(frames, ignore_index=True)[EXC_COLUMNS].sort_values(["ts", "case_id"], ignore_index=True)


def _deviation_exceptions(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> pd.DataFrame:
    from models.conformance import check

    res = check(con, model, "token-replay", precision=False)
    dev = res.cases_df[res.cases_df["deviations"].map(len) > 0]
    if dev.empty:
        return pd.DataFrame(columns=EXC_COLUMNS)
    steps = _step_table(con, model)
    ts_lists = con.execute(
        f"""
        SELECT c.case_id, list(e.ts ORDER BY e.ts, e.event_id) AS ts, list(s.name ORDER BY e.ts, e.event_id) AS src
        FROM events e JOIN {steps} m USING (activity_id) JOIN cases c USING (case_key) JOIN sources s USING (source_id)
        WHERE c.case_id IN (SELECT unnest(?)) GROUP BY c.case_id
        """, [dev["case_id"].tolist()]).fetchall()
    where = {cid: (ts, src) for cid, ts, src in ts_lists}
    rows = []
    for case_id, devs in zip(dev["case_id"], dev["deviations"], strict=False):
        ts, src = where.get(case_id, ([], []))
        for d in devs:
            i = min(max(d["position"] - 1, 0), len(ts) - 1) if ts else None
            rows.append({"case_id": case_id, "type": f"{d['type']}: {d['step']}", "owner": d["owner"],
                         "ts": ts[i] if i is not None else None, "handled": bool(d["allowed"]),
                         "source": src[i] if i is not None else None, "kind": "deviation", "step": d["step"],
                         "detail": (f"{d['type']} {d['step']} " + (f"after {d['after']}" if d["after"] else "at the start")
                                    + (" (accepted by the allowlist)" if d["allowed"] else ""))})
    return pd.DataFrame(rows, columns=EXC_COLUMNS)


def case_position(con: duckdb.DuckDBPyConnection, model: ReferenceModel, case_id: str,
                  now: datetime | None = None) -> dict[str, Any]:
    """Where one case stands: its steps, marking, next enabled steps with owners, and its wait."""
    from processlens.errors import ProcesslensError

    steps = _step_table(con, model)
    row = con.execute(
        f"""
        SELECT list(m.step ORDER BY e.ts, e.event_id), max(e.ts)
        FROM events e JOIN {steps} m USING (activity_id) JOIN cases c USING (case_key) WHERE c.case_id = ?
        """, [str(case_id)]).fetchone()
    if row is None or row[0] is None:
        raise ProcesslensError(f"case {case_id!r} is not in the store", hint="check the case id (processlens stats)")
    trace, last_ts = row
    _, follows = history(con, model)
    step, enabled, marking = waiting_for(model, list(trace), follows)
    is_open = not trace or trace[-1] not in model.final_steps
    now = _now(now)
    waited = (now - last_ts).total_seconds() if is_open else None
    return {
        "case_id": str(case_id), "steps": list(trace), "open": is_open,
        "marking": {p.name: n for p, n in marking.items()},
        "next_steps": [{"step": s, "owner": model.owner(s),
                        "sla_seconds": model.steps[s].sla_seconds if s in model.steps else None} for s in enabled] if is_open else [],
        "waiting_for": step if is_open else None, "owner": model.owner(step) if is_open else None,
        "last_ts": last_ts, "waited_seconds": waited,
        "waited_working_seconds": model.calendar.working_seconds(last_ts, now) if is_open and model.calendar else None,
    }
