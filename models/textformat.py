"""A short text format for people without a BPMN modeller. It compiles to the same model.

```
process order_to_cash
# lane OWNER: steps...
lane Sales: Create Order, Approve Order, Reject Order, Close Order
lane Finance: Check Credit, Create Invoice, Retry Payment, Payment Received
start Create Order
Create Order -> Check Credit
Check Credit -> Approve Order | Reject Order     # choice (exclusive)
Approve Order -> Pick Goods + Send Mail          # parallel split; "A + B -> C" joins
Pack Goods -> Ship Goods
exception Address Invalid instead of Ship Goods -> Correct Address   # boundary event on Ship Goods
Correct Address -> Ship Goods
sla Check Credit 1d
sla Approve Order 2d working                     # in working time (see the annotations' calendar)
final Close Order, Reject Order
```
"""

from __future__ import annotations

import re
from pathlib import Path

from models.model import ReferenceModel, parse_duration
from processlens.errors import ModelError


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _alternatives(text: str) -> tuple[str, list[str]]:
    """("xor"|"and", names) of one side of an arrow."""
    if "+" in text and "|" in text:
        raise ValueError("mix of | and + on one side; split it into two lines with a named step between")
    op = "and" if "+" in text else "xor"
    parts = [p.strip() for p in re.split(r"[|+]", text)]
    if any(not p for p in parts):
        raise ValueError("empty step name")
    return op, parts


def compile_text(text: str, path: str = "<text>") -> ReferenceModel:
    """Compile the text format to a :class:`ReferenceModel` through a BPMN graph."""
    import pm4py
    from pm4py.objects.bpmn.obj import BPMN

    name = Path(path).stem
    owners: dict[str, str] = {}
    slas: dict[str, tuple[float, bool]] = {}
    finals: list[str] = []
    start: str | None = None
    edges: list[tuple[str, list[str], str, list[str], int]] = []  # (op_in, sources, op_out, targets, line)
    exceptions: list[tuple[str, str, str, int]] = []  # (event, attached task, handler, line)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = {"file": path, "line": lineno}
        try:
            if m := re.fullmatch(r"process\s+(.+)", line):
                name = m.group(1).strip()
            elif m := re.fullmatch(r"lane\s+([^:]+):\s*(.+)", line):
                for step in _names(m.group(2)):
                    owners[step] = m.group(1).strip()
            elif m := re.fullmatch(r"start\s+(.+)", line):
                start = m.group(1).strip()
            elif m := re.fullmatch(r"final\s+(.+)", line):
                finals += _names(m.group(1))
            elif m := re.fullmatch(r"sla\s+(.+?)\s+(\S+)(\s+working)?", line):
                slas[m.group(1).strip()] = (parse_duration(m.group(2), where), bool(m.group(3)))
            elif m := re.fullmatch(r"exception\s+(.+?)\s+instead of\s+(.+?)\s*->\s*(.+)", line):
                exceptions.append((m.group(1).strip(), m.group(2).strip(), m.group(3).strip(), lineno))
            elif "->" in line:
                parts = [p.strip() for p in line.split("->")]
                for left, right in zip(parts, parts[1:], strict=False):
                    op_in, sources = _alternatives(left)
                    op_out, targets = _alternatives(right)
                    edges.append((op_in, sources, op_out, targets, lineno))
            else:
                raise ValueError("not a known statement")
        except ValueError as exc:
            raise ModelError(f"cannot read line {lineno} of {Path(path).name}: {raw.strip()!r} ({exc})", where=where,
                             hint="statements: process, lane, start, final, sla, exception ... instead of ... -> ..., A -> B | C, A -> B + C") from exc
    steps: list[str] = []
    for _, sources, _, targets, _ in edges:
        for s in sources + targets:
            if s not in steps:
                steps.append(s)
    for _ev, att, handler, lineno in exceptions:
        for s in (att, handler):
            if s not in steps:
                raise ModelError(f"line {lineno}: {s!r} is not a step of any transition", where={"file": path, "line": lineno},
                                 hint="add the transitions of the step first")
    if not steps:
        raise ModelError(f"{Path(path).name} has no transitions", where={"file": path}, hint="write lines like 'A -> B'")
    exc_names = {e for e, *_ in exceptions}
    for label, stepset in (("lane", owners), ("sla", slas)):
        for s in stepset:
            if s not in steps and s not in exc_names:
                raise ModelError(f"{label} names {s!r}, which is in no transition", where={"file": path}, hint="check the spelling")
    start = start or steps[0]
    targets_all = {t for _, _, _, ts, _ in edges for t in ts}
    if start not in steps:
        raise ModelError(f"start step {start!r} is in no transition", where={"file": path}, hint="check the spelling")

    g = BPMN(name=name)
    tasks = {s: BPMN.Task(id=f"task_{i}", name=s) for i, s in enumerate(steps)}
    for ev, _, _, _ in exceptions:
        tasks[ev] = BPMN.Task(id=f"task_{len(tasks)}", name=ev)
    for t in tasks.values():
        g.add_node(t)
    counter = iter(range(10**9))

    def flow(a, b):
        g.add_flow(BPMN.SequenceFlow(a, b, id=f"flow_{next(counter)}"))

    def gateway(op: str):
        gw = (BPMN.ParallelGateway if op == "and" else BPMN.ExclusiveGateway)(id=f"gw_{next(counter)}")
        g.add_node(gw)
        return gw

    # the entry of a task: a split gateway when exceptions may happen instead of it
    entry = dict(tasks)
    for ev, att, handler, _ in exceptions:
        split = gateway("xor")
        flow(split, tasks[att])
        flow(split, tasks[ev])
        flow(tasks[ev], entry.get(handler, tasks[handler]))
        entry[att] = split
    for op_in, sources, op_out, targets, _ in edges:
        src = tasks[sources[0]]
        if len(sources) > 1:
            join = gateway(op_in)
            for s in sources:
                flow(tasks[s], join)
            src = join
        if len(targets) > 1:
            split = gateway(op_out)
            flow(src, split)
            for t in targets:
                flow(split, entry[t])
        else:
            flow(src, entry[targets[0]])
    begin = BPMN.NormalStartEvent(id="start", name="start")
    g.add_node(begin)
    flow(begin, entry[start])
    finals = finals or [s for s in steps if not any(s in srcs for _, srcs, _, _, _ in edges)]
    end = BPMN.NormalEndEvent(id="end", name="end")
    g.add_node(end)
    for f in finals:
        if f not in tasks:
            raise ModelError(f"final step {f!r} is in no transition", where={"file": path}, hint="check the spelling")
        flow(tasks[f], end)
    unreachable = [s for s in steps if s != start and s not in targets_all and s not in {h for *_, h, _ in exceptions}]
    if unreachable:
        raise ModelError(f"step(s) {unreachable} cannot be reached from {start!r}", where={"file": path},
                         hint="add a transition into them or name them with 'start'")
    net, im, fm = pm4py.convert_to_petri_net(g)
    model = ReferenceModel(name=name, kind="text", net=net, im=im, fm=fm, path=path, source_text=text,
                           final_steps=set(finals))
    for s in steps:
        model.step(s).owner = owners.get(s)
    for ev, att, handler, _ in exceptions:
        step = model.step(ev)
        step.exception = True
        step.owner = owners.get(ev, owners.get(att))
        model.exceptions[ev] = handler
        model.step(handler).handles = ev
    for s, (secs, working) in slas.items():
        model.step(s).sla_seconds = secs
        model.step(s).sla_working = working
    return model


def load_text(path: str | Path) -> ReferenceModel:
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist", where={"file": str(path)}, hint="check the path")
    return compile_text(path.read_text(encoding="utf-8"), str(path))
