"""Validation of a reference model: soundness, connectedness, and how it fits the log's activities."""

from __future__ import annotations

import difflib
from typing import Any

import duckdb

from models.model import ReferenceModel

STATE_LIMIT = 20000  # reachable markings explored for the soundness check


def _issue(level: str, message: str, hint: str | None = None, **where: Any) -> dict[str, Any]:
    return {"level": level, "message": message, "hint": hint, "where": where}


def structure_issues(model: ReferenceModel) -> list[dict[str, Any]]:
    """Disconnected places/transitions, dead tasks, and (for small nets) WF-net soundness."""
    net, im, fm = model.net, model.im, model.fm
    issues: list[dict[str, Any]] = []
    succ: dict[Any, set] = {}
    pred: dict[Any, set] = {}
    for a in net.arcs:
        succ.setdefault(a.source, set()).add(a.target)
        pred.setdefault(a.target, set()).add(a.source)

    def reach(starts, edges):
        seen, stack = set(starts), list(starts)
        while stack:
            n = stack.pop()
            for m in edges.get(n, ()):
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        return seen

    fwd = reach(list(im), succ)
    back = reach(list(fm), pred)
    for t in sorted(net.transitions, key=lambda t: str(t.name)):
        if t.label is None:
            continue
        if t not in fwd:
            issues.append(_issue("error", f"step {t.label!r} cannot be reached from the start",
                                 "connect it to the flow or remove it", element=str(t.name)))
        elif t not in back:
            issues.append(_issue("error", f"from step {t.label!r} the process can never reach its end",
                                 "add a path from it to an end event", element=str(t.name)))
    if not issues:
        issues += soundness_issues(model)
    return issues


def soundness_issues(model: ReferenceModel) -> list[dict[str, Any]]:
    """Workflow-net soundness on the reachability graph (bounded): option to complete, proper
    completion, no dead steps. Larger state spaces are reported as undecided."""
    from collections import Counter

    from models.running import _enabled, _fire

    net = model.net
    start = Counter(model.im)
    final = frozenset(Counter(model.fm).items())
    key0 = frozenset(start.items())
    states = {key0: start}
    edges: dict[frozenset, set[frozenset]] = {}
    fired: set = set()
    frontier = [key0]
    while frontier:
        k = frontier.pop()
        m = states[k]
        edges[k] = set()
        for t in _enabled(net, m):
            m2 = _fire(t, m)
            k2 = frozenset(m2.items())
            fired.add(t)
            edges[k].add(k2)
            if k2 not in states:
                if len(states) >= STATE_LIMIT:
                    return [_issue("info", f"soundness not decided: more than {STATE_LIMIT:,} reachable states")]
                if any(n > 1000 for n in m2.values()):
                    return [_issue("error", "the model is unbounded: tokens pile up without limit",
                                   "check loops that start parallel branches without joining them")]
                states[k2] = m2
                frontier.append(k2)
    issues = []
    pred: dict[frozenset, set[frozenset]] = {}
    for k, outs in edges.items():
        for k2 in outs:
            pred.setdefault(k2, set()).add(k)
    can_end = {final} if final in states else set()
    stack = list(can_end)
    while stack:
        k = stack.pop()
        for p in pred.get(k, ()):
            if p not in can_end:
                can_end.add(p)
                stack.append(p)
    stuck_states = [k for k in states if k not in can_end]
    if stuck_states:
        example = sorted(str(p) for p, _ in stuck_states[0])
        issues.append(_issue("error", f"the model is not sound: {len(stuck_states)} reachable state(s) can never reach the end "
                             f"(for example with tokens on {', '.join(example[:4])})",
                             "check that every parallel split has a matching join and every choice a matching merge"))
    fm = Counter(model.fm)
    improper = [k for k in states if k != final and all(dict(k).get(p, 0) >= n for p, n in fm.items())]
    if improper:
        issues.append(_issue("error", "the model is not sound: a case can reach the end while work is still pending",
                             "join parallel branches before the end event"))
    for t in sorted(net.transitions, key=lambda t: str(t.name)):
        if t.label is not None and t not in fired:
            issues.append(_issue("error", f"step {t.label!r} can never happen (dead)", "check the gateways before it",
                                 element=str(t.name)))
    return issues


def log_issues(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> list[dict[str, Any]]:
    """Model tasks no log activity maps to, and log activities that map to no task (with close matches)."""
    rows = con.execute("SELECT a.name, count(*) FROM events e JOIN activities a USING (activity_id) GROUP BY a.name").fetchall()
    if not rows:
        return []
    counts = dict(rows)
    mapped = {model.task_for(a): a for a in counts if model.task_for(a) is not None}
    labels = model.labels
    issues = []
    unknown = sorted(a for a in counts if model.task_for(a) is not None and model.task_for(a) not in labels)
    for task in sorted(labels - set(mapped)):
        close = difflib.get_close_matches(task, unknown, n=3, cutoff=0.6)
        hint = (f"log activities with a similar name: {', '.join(repr(c) for c in close)}; map one with "
                f"[mapping] \"{close[0]}\" = \"{task}\" in the annotations") if close else \
            "no log activity is similar; check the model or add a [mapping] entry in the annotations"
        issues.append(_issue("warning", f"model task {task!r} has no activity in the log", hint, task=task))
    for act in unknown:
        close = difflib.get_close_matches(act, sorted(labels), n=3, cutoff=0.6)
        hint = (f"did you mean {', '.join(repr(c) for c in close)}? map it with [mapping] \"{act}\" = \"{close[0]}\"" if close
                else "add it to the model, map it with [mapping], or list it in [model] ignore")
        issues.append(_issue("warning", f"log activity {act!r} ({counts[act]:,} events) is not a model task", hint, activity=act))
    return issues


def validate(model: ReferenceModel, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, Any]:
    """All issues of ``model`` (and against the store's activities when ``con`` is given)."""
    issues = structure_issues(model)
    if con is not None:
        issues += log_issues(con, model)
    issues += [_issue("warning", w) for w in model.warnings]
    for step in sorted(model.steps.values(), key=lambda s: s.name):
        if step.name in model.labels and not step.exception and step.owner is None:
            issues.append(_issue("info", f"step {step.name!r} has no owner",
                                 "put it in a lane or set [steps.\"NAME\"] owner in the annotations", task=step.name))
    return {"model": model.describe(), "valid": not any(i["level"] == "error" for i in issues), "issues": issues}
