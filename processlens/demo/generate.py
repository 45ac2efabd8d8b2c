"""Vectorised simulation of the order-to-cash business with ground-truth labels.

Every case is decided up front (rejected, deviations, exceptions, stuck step), expanded into its
activity sequence and timed step by step (one numpy pass per position, not per event): waiting
time before each step from a capped log-normal scaled by the person's speed, the order's priority
and the Q4 peak, then moved into the person's working hours. Cases still running at ``now`` are
cut there. A repair loop then enforces the clean separation promised in docs/decisions.md:

* ordinary open cases have waited less than 0.9 x min(SLA, median historical wait) of every step
  the model enables next, and never stop right after an exception;
* stuck cases have waited more than 3.15 x max(SLA, largest historical wait) of those steps;

where the historical waits are computed both with and without the help-desk side events and for
the expected predecessor only, so every reasonable reading of the definition gives the same truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from processlens.demo import paths, people
from processlens.demo import spec as s
from processlens.demo.calendar import EPOCH, Calendar

N_ACT = len(s.ACTIVITIES)
EXCEPTIONS = np.array(list(s.EXCEPTION_HANDLER), dtype=np.int8)
INFLIGHT_FACTOR = 0.9
STUCK_FACTOR = 3.15
MAX_ROUNDS = 80


@dataclass
class Events:
    """Flat event arrays sorted by case row, then position."""

    row: np.ndarray
    pos: np.ndarray
    act: np.ndarray
    res: np.ndarray
    ts: np.ndarray  # UTC epoch seconds

    def take(self, idx: np.ndarray) -> Events:
        return Events(self.row[idx], self.pos[idx], self.act[idx], self.res[idx], self.ts[idx])

    def __len__(self) -> int:
        return len(self.row)


@dataclass
class Tickets:
    row: np.ndarray
    opened: np.ndarray
    resolved: np.ndarray
    agent: np.ndarray
    subject: np.ndarray


@dataclass
class Generated:
    cases: pd.DataFrame  # case_id, customer, region, channel, amount, priority, warehouse + labels
    events: Events
    tickets: Tickets
    now: datetime
    rounds: int


# -- waiting-time tables ----------------------------------------------------------------------------
def _wait_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    med = np.full((N_ACT + 1, N_ACT), 3600.0)
    sig = np.full((N_ACT + 1, N_ACT), 0.5)
    cap = np.full((N_ACT + 1, N_ACT), 86400.0)
    for a, w in s.WAIT_BEFORE.items():
        med[:, a], sig[:, a], cap[:, a] = w.median_h * 3600, w.sigma, w.cap_h * 3600
    for (p, a), w in s.WAIT_TRANSITION.items():
        med[p, a], sig[p, a], cap[p, a] = w.median_h * 3600, w.sigma, w.cap_h * 3600
    return med, sig, cap


MED, SIG, CAP = _wait_tables()
WAREHOUSE_ACTS = np.array([a for a, sys in s.SYSTEM.items() if sys == "WMS"])


# -- the cases ---------------------------------------------------------------------------------------
def _day_weights(cal: Calendar, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
    days = np.arange(first, last + 1)
    i = days - cal.first_day
    weekday = cal.weekday[i]
    w = np.array([1.0, 1.08, 1.04, 1.0, 0.92, 0.35, 0.18])[weekday]
    w = w * np.where(cal.is_holiday[i], 0.2, 1.0)
    dates = pd.to_datetime(days, unit="D")
    month = dates.month.to_numpy()
    w = w * np.array([0.85, 0.9, 1.0, 0.95, 0.95, 0.9, 0.85, 0.8, 1.0, 1.1, 1.35, 1.25])[month - 1]
    dom = dates.day.to_numpy()
    w = w * np.where((month == 12) & (dom >= 20), 0.55, 1.0)
    # Black Friday week: the Friday after the fourth Thursday of November, +-3 days
    for y in set(dates.year.to_numpy().tolist()):
        nov1 = date(y, 11, 1)
        thursday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 21)
        bf = (thursday - EPOCH).days + 1
        w = w * np.where(np.abs(days - bf) <= 3, 1.6, 1.0)
    w = w * (1 + 0.12 * (days - first) / 365)
    return days, w / w.sum()


def _customers(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    stems = ["Berger", "Hansen", "Keller", "Lindner", "Albrecht", "Vogel", "Krause", "Hartmann", "Brandt", "Roth",
             "Seidel", "Franke", "Kühn", "Winter", "Sommer", "Graf", "Peters", "Jung", "Haas", "Busch", "Otto", "Lorenz"]
    trades = ["Maschinenbau", "Elektro", "Haustechnik", "Bau", "Logistik", "Metall", "Möbel", "Medizintechnik",
              "Gartenbau", "Druck", "Kälte", "Solar", "Dental", "Optik", "Sanitär", "Werkzeuge"]
    forms = ["GmbH", "AG", "KG", "GmbH & Co. KG", "e.K.", "OHG"]
    size = max(30, n // 20)
    idx = rng.permutation(len(stems) * len(trades) * len(forms))[:size]
    if size > len(idx):  # very large worlds: numbered branches
        idx = np.concatenate([idx, rng.integers(0, len(stems) * len(trades) * len(forms), size - len(idx))])
    names = [f"{stems[i % len(stems)]} {trades[(i // len(stems)) % len(trades)]} {forms[i // (len(stems) * len(trades))]}"
             for i in idx]
    seen: dict[str, int] = {}
    for k, nm in enumerate(names):
        if nm in seen:
            seen[nm] += 1
            names[k] = f"{nm} ({seen[nm]})"
        else:
            seen[nm] = 1
    weights = 1 / np.arange(1, size + 1) ** 0.9
    pay_speed = np.exp(rng.normal(0, 0.35, size))
    choice = rng.choice(size, n, p=weights / weights.sum())
    return np.array(names, dtype=object)[choice], pay_speed[choice]


def sample_cases(n: int, rng: np.random.Generator, cal: Calendar, now_s: int,
                 days: int = s.HISTORY_DAYS) -> dict[str, np.ndarray]:
    """Attributes, creation times and decisions of ``n`` cases."""
    c: dict[str, np.ndarray] = {}
    c["channel"] = rng.choice(len(s.CHANNELS), n, p=s.CHANNEL_SHARE).astype(np.int8)
    c["region"] = rng.choice(len(s.REGIONS), n, p=s.REGION_SHARE).astype(np.int8)
    c["priority"] = rng.choice(len(s.PRIORITIES), n, p=s.PRIORITY_SHARE).astype(np.int8)
    median_amount = np.array([450.0, 2200.0, 7000.0])[c["channel"]]
    c["amount"] = np.round(median_amount * np.exp(rng.normal(0, 0.9, n)), 2)
    c["customer"], c["pay_speed"] = _customers(n, rng)
    # creation time: a day by weekday/holiday/season weights, a time of day by channel
    last_day = int(cal.to_local(np.array([now_s]))[0] // s.DAY)
    day_list, p = _day_weights(cal, last_day - days, last_day)
    day = rng.choice(day_list, n, p=p)
    web_hours = np.array([1, 0.6, 0.3, 0.2, 0.2, 0.4, 1, 2, 3, 4, 4.5, 4.5, 5, 4.5, 4.5, 4.5, 5, 5.5, 6.5, 7.5, 8, 7, 5, 2.5])
    hour = np.where(c["channel"] == 0, rng.choice(24, n, p=web_hours / web_hours.sum()),
                    np.where(c["channel"] == 1, rng.integers(8, 17, n), rng.choice([2, 10, 14], n)))
    sod = hour * 3600 + np.where(c["channel"] == 2, rng.integers(0, 300, n), rng.integers(0, 3600, n))
    start = cal.from_local(day.astype(np.int64) * s.DAY + sod)
    for _ in range(3):
        start = np.where(start >= now_s - 60, start - 7 * s.DAY, start)
    c["start"] = start.astype(np.int64)
    c["q4"] = np.isin(pd.to_datetime(c["start"], unit="s").month.to_numpy(), [11, 12])
    # decisions
    r = s.RATES
    u = lambda: rng.random(n)  # noqa: E731
    c["rejected"] = (u() < r["rejected"] * np.where(c["amount"] > 10000, 2.5, 1.0)).astype(np.int8)
    c["skip_cc"] = ((u() < r["skipped_credit_check"] * np.where(c["priority"] == 2, 3, 1))
                    & (c["rejected"] == 0)).astype(np.int8)
    c["rework"] = np.where(u() < r["rework_loop"], np.where(u() < 0.2, 2, 1), 0).astype(np.int8)
    c["dup_invoice"] = (u() < r["duplicate_invoice"]).astype(np.int8)
    c["wrong_order"] = (u() < r["wrong_order"]).astype(np.int8)
    addr = u() < r["address_invalid"]
    c["addr"] = np.where(addr, np.where(u() < r["address_unhandled"], paths.CONTINUED, paths.HANDLED), paths.NONE).astype(np.int8)
    pay = u() < r["payment_failed"]
    c["pay"] = np.where(pay, np.where(u() < r["payment_unhandled"], paths.CONTINUED, paths.HANDLED), paths.NONE).astype(np.int8)
    c["pay_failures"] = np.where(u() < r["payment_second_failure"], 2, 1).astype(np.int8)
    rejected = c["rejected"] > 0  # a rejected order never reaches the warehouse or the invoice
    for name in ("rework", "dup_invoice", "wrong_order", "addr", "pay"):
        c[name][rejected] = 0
    c["stuck_at"] = np.full(n, -1, dtype=np.int8)
    c["attempt"] = np.zeros(n, dtype=np.int16)
    _choose_stuck(c, rng, now_s)
    return c


def _choose_stuck(c: dict[str, np.ndarray], rng: np.random.Generator, now_s: int) -> None:
    n = len(c["start"])
    k = min(n // 4, max(3, int(round(n * s.RATES["stuck"]))))
    rows = rng.choice(n, k, replace=False)
    steps = np.array(list(s.STUCK_STEPS), dtype=np.int8)
    w = np.array(list(s.STUCK_STEPS.values()))
    # every step at least once when the world is big enough, the rest by weight
    at = np.concatenate([steps[: min(k, len(steps))], rng.choice(steps, max(0, k - len(steps)), p=w / w.sum())])
    c["stuck_at"][rows] = at
    for name in ("rejected", "skip_cc", "rework", "dup_invoice", "wrong_order"):
        c[name][rows] = 0
    c["addr"][rows] = np.where(at == s.CORRECT_ADDRESS, paths.STOPPED,
                               np.where(c["addr"][rows] == paths.HANDLED, paths.HANDLED, paths.NONE))
    c["pay"][rows] = np.where(at == s.RETRY_PAYMENT, paths.STOPPED,
                              np.where(c["pay"][rows] == paths.HANDLED, paths.HANDLED, paths.NONE))
    c["pay_failures"][rows] = np.where(at == s.RETRY_PAYMENT, 1, c["pay_failures"][rows])
    long_wait = np.isin(at, [s.PAYMENT_RECEIVED, s.RETRY_PAYMENT])
    days = np.where(long_wait, rng.uniform(110, 200, k), rng.uniform(18, 45, k))
    c["start"][rows] = now_s - (days * s.DAY).astype(np.int64)


# -- simulation ----------------------------------------------------------------------------------------
def simulate(c: dict[str, np.ndarray], rows: np.ndarray, rng: np.random.Generator, cal: Calendar, now_s: int) -> Events:
    """Events of the given case rows: sequence, resources, waiting times, working hours, cut at now."""
    cols = {name: c[name][rows] for name in paths.DECISIONS}
    r, pos, act = paths.expand(cols)
    row = rows[r]
    n = len(row)
    res = people.assign(act, c["channel"][row], c["amount"][row], rng)
    prev = np.full(n, N_ACT, dtype=np.int64)
    prev[1:] = np.where(pos[1:] > 0, act[:-1], N_ACT)
    a = act.astype(np.int64)
    factor = people.speed(res) * np.array(s.PRIORITY_SPEED)[c["priority"][row]]
    factor = factor * np.where(c["q4"][row] & np.isin(act, WAREHOUSE_ACTS), 1.35, 1.0)
    factor = factor * np.where(np.isin(act, [s.PAYMENT_RECEIVED, s.PAYMENT_FAILED]), c["pay_speed"][row], 1.0)
    wait = np.minimum(CAP[prev, a], MED[prev, a] * np.exp(SIG[prev, a] * rng.standard_normal(n)) * factor)
    wait = np.maximum(wait, 60).astype(np.int64)
    calc = people.calendar(res)
    u = rng.random(n)
    ts = np.empty(n, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    bounds = np.searchsorted(pos[order], np.arange(pos.max() + 2))
    first = order[bounds[0]:bounds[1]]
    ts[first] = cal.snap(c["start"][row[first]], calc[first], u[first])
    for p in range(1, pos.max() + 1):
        sel = order[bounds[p]:bounds[p + 1]]
        ts[sel] = cal.snap(ts[sel - 1] + wait[sel], calc[sel], u[sel])
    keep = (c["stuck_at"][row] >= 0) | (ts < now_s)
    return Events(row, pos, act, res, ts).take(np.flatnonzero(keep))


def _replace(ev: Events, rows: np.ndarray, new: Events) -> Events:
    """``ev`` with the events of ``rows`` replaced by ``new`` (both sorted by row, then position)."""
    mask = np.zeros(max(int(ev.row.max(initial=0)), int(rows.max(initial=0))) + 1, dtype=bool)
    mask[rows] = True
    kept = ev.take(np.flatnonzero(~mask[ev.row]))
    at = np.searchsorted(kept.row, new.row, side="left")
    return Events(*(np.insert(getattr(kept, f), at, getattr(new, f)) for f in ("row", "pos", "act", "res", "ts")))


def _last_index(ev: Events, n: int) -> tuple[np.ndarray, np.ndarray]:
    count = np.bincount(ev.row, minlength=n)
    return count, np.cumsum(count) - 1


# -- help-desk tickets ---------------------------------------------------------------------------------
SUBJECTS = ["Where is my order?", "Change request", "Invoice question", "Product question",
            "Delivery address", "Payment problem"]


def place_tickets(c: dict[str, np.ndarray], ev: Events, rng: np.random.Generator) -> Tickets:
    """Tickets strictly between a case's first and last event (never its last event)."""
    n = len(c["start"])
    count, last = _last_index(ev, n)
    first = last - count + 1
    p = np.where(c["stuck_at"] >= 0, s.RATES["ticket_if_stuck"],
                 np.where((c["addr"] > 0) | (c["pay"] > 0), s.RATES["ticket_if_exception"], s.RATES["ticket"]))
    rows = np.flatnonzero((count >= 2) & (rng.random(n) < p))
    m = count[rows]
    f = first[rows]
    j = (rng.random(len(rows)) * (m - 1)).astype(np.int64)
    later = rng.random(len(rows)) < 0.3
    k = np.where(later, j + (rng.random(len(rows)) * (m - 1 - j)).astype(np.int64), j)
    tj, tj1 = ev.ts[f + j], ev.ts[f + j + 1]
    opened = tj + 1 + (rng.random(len(rows)) * (tj1 - tj - 2)).astype(np.int64)
    tk, tk1 = ev.ts[f + k], ev.ts[f + k + 1]
    lo = np.where(k == j, opened, tk)
    resolved = lo + 1 + (rng.random(len(rows)) * (tk1 - lo - 2)).astype(np.int64)
    agent = people.TEAM_CODES["Customer Service"][
        np.minimum(np.searchsorted(people.TEAM_CUM["Customer Service"], rng.random(len(rows)), side="right"), 3)]
    subject = np.where(c["stuck_at"][rows] >= 0, 0,
                       np.where(c["addr"][rows] > 0, 4, np.where(c["pay"][rows] > 0, 5, rng.integers(0, 4, len(rows)))))
    return Tickets(rows, opened, resolved, agent.astype(np.int16), subject)


# -- historical waits ---------------------------------------------------------------------------------
def _grouped(target: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and maximum of ``w`` per activity code in ``target`` (NaN where absent)."""
    med = np.full(N_ACT, np.nan)
    mx = np.full(N_ACT, np.nan)
    order = np.argsort(target.astype(np.int16), kind="stable")
    edges = np.searchsorted(target[order], np.arange(N_ACT + 1))
    for a in range(N_ACT):
        chunk = w[order[edges[a]:edges[a + 1]]]
        if len(chunk):
            med[a] = np.median(chunk)
            mx[a] = chunk.max()
    return med, mx


def wait_stats(ev: Events, tk: Tickets) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the smallest median and the largest maximum waiting time over the readings
    (model events only; with help-desk events; expected predecessor only). NaN without history."""
    same = ev.row[1:] == ev.row[:-1]
    ts = ev.ts[1:][same]
    prev = ev.ts[:-1][same]
    row = ev.row[1:][same]
    target = ev.act[1:][same].astype(np.int64)
    before = ev.act[:-1][same].astype(np.int64)
    w = ts - prev
    # with side events: the latest ticket event of the case before this event, if later than prev
    n = int(ev.row.max()) + 1 if len(ev) else 0
    opened = np.full(n, -1, dtype=np.int64)
    resolved = np.full(n, -1, dtype=np.int64)
    opened[tk.row] = tk.opened
    resolved[tk.row] = tk.resolved
    o, r = opened[row], resolved[row]
    prev_side = np.maximum(prev, np.maximum(np.where(o < ts, o, -1), np.where(r < ts, r, -1)))
    expected = np.zeros((N_ACT, N_ACT), dtype=bool)
    for a, steps in s.ENABLED_STEPS.items():
        for st in steps:
            expected[a, st] = True
    exp = expected[before, target]
    med = np.full(N_ACT, np.inf)
    mx = np.full(N_ACT, -np.inf)
    for t, ww in ((target, w), (target, ts - prev_side), (target[exp], w[exp])):
        m, x = _grouped(t, ww)
        med = np.fmin(med, m)
        mx = np.fmax(mx, x)
    return np.where(np.isfinite(med), med, np.nan), np.where(np.isfinite(mx), mx, np.nan)


def bounds(med: np.ndarray, mx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per last activity: the longest an ordinary open case may wait, the shortest a stuck one may."""
    inflight = np.zeros(N_ACT)
    stuck = np.full(N_ACT, np.inf)
    for a, steps in s.ENABLED_STEPS.items():
        lo = min(min(s.SLA_SECONDS[st], med[st] if np.isfinite(med[st]) else 0.0) for st in steps)
        inflight[a] = 0.0 if a in s.EXCEPTION_HANDLER else INFLIGHT_FACTOR * lo
        hi = max(max(s.SLA_SECONDS[st], mx[st] if np.isfinite(mx[st]) else s.WAIT_BEFORE[st].cap_h * 3600 * 3) for st in steps)
        stuck[a] = STUCK_FACTOR * hi
    return inflight, stuck


# -- the whole world -------------------------------------------------------------------------------------
def generate(n_cases: int, seed: int, now: datetime, log=None, days: int = s.HISTORY_DAYS) -> Generated:
    """Simulate ``n_cases`` cases and repair until the truth's separation guarantees hold."""
    if n_cases < 1:
        raise ValueError("a demo world needs at least one case")
    say = log or (lambda msg: None)
    rng = np.random.default_rng(seed)
    now_s = int(now.timestamp())
    now_date = now.astimezone(UTC).date()
    cal = Calendar(now_date - timedelta(days=s.HISTORY_DAYS + 700), now_date + timedelta(days=400))
    c = sample_cases(n_cases, rng, cal, now_s, days)
    all_rows = np.arange(n_cases)
    ev = simulate(c, all_rows, rng, cal, now_s)
    say(f"simulated {len(ev):,} events")
    dev_flags = ("skip_cc", "rework", "dup_invoice", "wrong_order")
    for rnd in range(1, MAX_ROUNDS + 1):
        count, last = _last_index(ev, n_cases)
        has = count > 0
        last_act = np.where(has, ev.act[np.maximum(last, 0)], -1)
        last_ts = np.where(has, ev.ts[np.maximum(last, 0)], now_s)
        open_ = has & ~np.isin(last_act, list(s.FINAL))
        stuck = c["stuck_at"] >= 0
        inflight = open_ & ~stuck
        # open ordinary cases carry no deviations and no unhandled-then-continued exceptions
        deviating = inflight & (np.any([c[f] > 0 for f in dev_flags], axis=0)
                                | (c["addr"] == paths.CONTINUED) | (c["pay"] == paths.CONTINUED))
        if deviating.any():
            rows = np.flatnonzero(deviating)
            for f in dev_flags:
                c[f][rows] = 0
            c["addr"][rows] = np.where(c["addr"][rows] == paths.CONTINUED, paths.NONE, c["addr"][rows])
            c["pay"][rows] = np.where(c["pay"][rows] == paths.CONTINUED, paths.NONE, c["pay"][rows])
            ev = _replace(ev, rows, simulate(c, rows, rng, cal, now_s))
            continue
        tickets = place_tickets(c, ev, rng)
        med, mx = wait_stats(ev, tickets)
        lim_in, lim_stuck = bounds(med, mx)
        waited = now_s - last_ts
        la = np.maximum(last_act, 0)
        bad_in = (~has & ~stuck) | (inflight & ~(waited < lim_in[la]))
        bad_stuck = stuck & (~has | ~(waited > lim_stuck[la] * 1.02) | ~open_)
        say(f"round {rnd}: {int(inflight.sum()):,} open, {int(stuck.sum()):,} stuck; repairing "
            f"{int(bad_in.sum()):,} open and {int(bad_stuck.sum()):,} stuck cases")
        if not bad_in.any() and not bad_stuck.any():
            return _finish(c, ev, tickets, now, rnd)
        rows_in = np.flatnonzero(bad_in)
        c["attempt"][rows_in] += 1
        retry = c["attempt"][rows_in] <= 4
        fresh = now_s - 60 - (rng.random(len(rows_in)) * min(40, days) * s.DAY).astype(np.int64)
        c["start"][rows_in] = np.where(retry, fresh, c["start"][rows_in] - 8 * 7 * s.DAY)
        rows_st = np.flatnonzero(bad_stuck)
        need = lim_stuck[la[rows_st]] * rng.uniform(1.15, 2.5, len(rows_st))
        c["start"][rows_st] -= (need - waited[rows_st]).astype(np.int64) + s.DAY
        rows = np.concatenate([rows_in, rows_st])
        ev = _replace(ev, rows, simulate(c, rows, rng, cal, now_s))
    raise RuntimeError(f"the demo generator did not converge in {MAX_ROUNDS} rounds (seed {seed})")


def _finish(c: dict[str, np.ndarray], ev: Events, tickets: Tickets, now: datetime, rounds: int) -> Generated:
    """Number the cases by creation time and attach their labels."""
    n = len(c["start"])
    count, last = _last_index(ev, n)
    first_ts = ev.ts[last - count + 1]
    order = np.lexsort((np.arange(n), first_ts))
    number = np.empty(n, dtype=np.int64)
    number[order] = np.arange(1, n + 1)
    width = max(7, len(str(n)))
    case_id = np.array([f"SO-{k:0{width}d}" for k in number], dtype=object)
    # unhandled exceptions: an exception not followed later in the case by its handler
    last_handler = {h: np.full(n, -1) for h in s.EXCEPTION_HANDLER.values()}
    for h, arr in last_handler.items():
        sel = ev.act == h
        np.maximum.at(arr, ev.row[sel], ev.pos[sel])
    first_unhandled = np.full(n, -1, dtype=np.int64)
    first_unhandled_pos = np.full(n, np.iinfo(np.int64).max)
    for exc, h in s.EXCEPTION_HANDLER.items():
        sel = np.flatnonzero((ev.act == exc) & (last_handler[h][ev.row] <= ev.pos))
        pos = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(pos, ev.row[sel], ev.pos[sel])
        better = pos < first_unhandled_pos
        first_unhandled[better] = exc
        first_unhandled_pos[better] = pos[better]
    frame = pd.DataFrame({
        "case_id": case_id,
        "customer": c["customer"],
        "region": np.array(s.REGIONS, dtype=object)[c["region"]],
        "channel": np.array(s.CHANNELS, dtype=object)[c["channel"]],
        "amount": c["amount"],
        "priority": np.array(s.PRIORITIES, dtype=object)[c["priority"]],
        "warehouse": np.array(s.WAREHOUSE_OF_REGION, dtype=object)[c["region"]],
        "number": number,
        "stuck_at": c["stuck_at"],
        "unhandled": first_unhandled,
        "skipped_credit_check": c["skip_cc"] > 0,
        "duplicate_invoice": c["dup_invoice"] > 0,
        "rework_loop": c["rework"] > 0,
        "wrong_order": c["wrong_order"] > 0,
    })
    return Generated(cases=frame, events=ev, tickets=tickets, now=now, rounds=rounds)


def truth(gen: Generated) -> dict[str, dict]:
    """``{case_id: {"stuck", "stuck_at", "unhandled_exception", "deviations"}}`` for every case."""
    f = gen.cases.sort_values("number")
    names = np.array([*s.ACTIVITIES, None], dtype=object)
    stuck_at = names[np.where(f["stuck_at"].to_numpy() >= 0, f["stuck_at"].to_numpy(), len(s.ACTIVITIES))]
    unhandled = names[np.where(f["unhandled"].to_numpy() >= 0, f["unhandled"].to_numpy(), len(s.ACTIVITIES))]
    dev = {d: f[d].to_numpy() for d in s.DEVIATIONS}
    out = {}
    for i, cid in enumerate(f["case_id"].to_numpy()):
        out[cid] = {
            "stuck": stuck_at[i] is not None,
            "stuck_at": stuck_at[i],
            "unhandled_exception": unhandled[i],
            "deviations": [d for d in s.DEVIATIONS if dev[d][i]],
        }
    return out


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
