"""BPMN 2.0 import as drawn in Camunda Modeler, bpmn.io or exported by Signavio.

The control flow goes through pm4py's own BPMN importer and BPMN → Petri net conversion, so a
plain BPMN model gives exactly the net pm4py gives. On top of it this module reads what the
drawing says about the business:

- **lanes** give the owner of each task;
- **timer boundary events** give the SLA of the task they are attached to (``timeDuration``,
  ISO 8601 such as ``P2D``);
- **error, escalation and message boundary events** and the path behind them are handled
  exception paths: the event (named like the source-system event, e.g. "Address Invalid") may
  happen instead of the task it is attached to, and the first task behind it is its handler;
- tasks directly before an end event are **final states**.

Elements whose meaning would be silently lost (sub-processes, call activities, event-based
and complex gateways, intermediate events) are rejected with their ids.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from models.model import ReferenceModel, parse_duration
from processlens.errors import ModelError

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
UNSUPPORTED = {
    "subProcess": "flatten the sub-process into the parent process",
    "adHocSubProcess": "flatten the sub-process into the parent process",
    "transaction": "flatten the transaction into the parent process",
    "callActivity": "replace the call activity by the tasks it calls",
    "eventBasedGateway": "use an exclusive gateway",
    "complexGateway": "use exclusive, parallel or inclusive gateways",
    "intermediateCatchEvent": "remove the intermediate event or model it as a task",
    "intermediateThrowEvent": "remove the intermediate event or model it as a task",
}
EXCEPTION_KINDS = ("error", "escalation", "message", "signal", "conditional", "compensate")


def _local(tag: str) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def parse_xml(data: bytes, path: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ModelError(f"{Path(path).name} is not well-formed XML: {exc}", where={"file": path, "line": exc.lineno},
                         hint="open it in a BPMN modeller and export it again") from exc


def inspect(root: etree._Element, path: str) -> dict:
    """Lanes, boundary events and unsupported elements found in the XML."""
    unsupported = []
    lanes: dict[str, str] = {}
    boundary = []
    names: dict[str, str] = {}
    for el in root.iter():
        tag = _local(el.tag)
        el_id = el.get("id")
        if el_id and el.get("name") is not None:
            names[el_id] = " ".join(el.get("name").split())
        if tag in UNSUPPORTED:
            unsupported.append((tag, el_id, el.get("name"), el.sourceline))
        elif tag == "lane":
            lane_name = " ".join((el.get("name") or el_id or "").split())
            for ref in el.findall(f"{{{BPMN_NS}}}flowNodeRef"):
                if ref.text:
                    lanes[ref.text.strip()] = lane_name
        elif tag == "boundaryEvent":
            kind = "none"
            duration = None
            for child in el:
                ctag = _local(child.tag)
                if ctag.endswith("EventDefinition"):
                    kind = ctag[: -len("EventDefinition")]
                    if kind == "timer":
                        for t in child:
                            if _local(t.tag) in ("timeDuration", "timeDate", "timeCycle"):
                                duration = ((t.text or "").strip(), _local(t.tag))
            boundary.append({"id": el_id, "name": " ".join((el.get("name") or "").split()), "kind": kind,
                             "attached": el.get("attachedToRef"), "duration": duration,
                             "interrupting": el.get("cancelActivity", "true") != "false", "line": el.sourceline})
    processes = [el for el in root.iter(f"{{{BPMN_NS}}}process")
                 if any(_local(c.tag) in ("task", "startEvent", "sequenceFlow") or _local(c.tag).endswith("Task") for c in el)]
    if len(processes) > 1:
        ids = ", ".join(f"{p.get('id')}" + (f" ({p.get('name')})" if p.get("name") else "") for p in processes)
        raise ModelError(f"{Path(path).name} draws {len(processes)} pools with their own process ({ids}); "
                         "processlens checks one process per model",
                         where={"file": path, "line": processes[1].sourceline, "element": processes[1].get("id")},
                         hint="keep the process of your organisation and draw the others' work as lanes, or split the file")
    if unsupported:
        listed = "; ".join(f"{t} id={i}" + (f" ({n})" if n else "") + f" at line {ln}" for t, i, n, ln in unsupported)
        raise ModelError(f"{Path(path).name} uses BPMN elements processlens cannot check: {listed}",
                         where={"file": path, "line": unsupported[0][3], "element": unsupported[0][1]},
                         hint="; ".join(sorted({f"{t}: {UNSUPPORTED[t]}" for t, *_ in unsupported})))
    return {"lanes": lanes, "boundary": boundary, "names": names}


def _pm4py_graph(data: bytes):
    from pm4py.objects.bpmn.importer.variants import lxml as bpmn_lxml

    return bpmn_lxml.import_from_string(data)


def _rewire_boundary_events(graph, info: dict, path: str) -> dict[str, str | None]:
    """Turn boundary events with outgoing flows into alternatives of the task they are attached to.

    Returns {exception event name: handler task name} for the named exception events.
    """
    from pm4py.objects.bpmn.obj import BPMN

    nodes = {n.get_id(): n for n in graph.get_nodes()}
    exceptions: dict[str, str | None] = {}
    for b in info["boundary"]:
        node = nodes.get(b["id"])
        if node is None:
            continue
        task = nodes.get(b["attached"])
        if task is None:
            raise ModelError(f"boundary event {b['id']} is attached to {b['attached']!r}, which is not in the model",
                             where={"file": path, "line": b["line"], "element": b["id"]}, hint="fix attachedToRef")
        out_flows = [f for f in graph.get_flows() if f.get_source() is node]
        in_flows = [f for f in graph.get_flows() if f.get_target() is node]
        for f in in_flows:
            graph.remove_flow(f)
        if not out_flows:
            graph.remove_node(node)  # an SLA timer or a marker without a path: no control flow
            continue
        if not b["interrupting"]:
            info.setdefault("warnings", []).append(
                f"non-interrupting boundary event {b['id']} has a path behind it; it is checked as an alternative "
                "to the task it is attached to")
        named = b["kind"] != "timer" and bool(b["name"])
        if named:
            replacement = BPMN.Task(id=b["id"], name=b["name"], process=node.get_process())
        else:
            replacement = BPMN.ExclusiveGateway(id=b["id"], name="", process=node.get_process())
        for f in out_flows:
            graph.remove_flow(f)
        graph.remove_node(node)
        graph.add_node(replacement)
        for f in out_flows:
            target = f.get_target()
            graph.add_flow(BPMN.SequenceFlow(replacement, target, id=f.get_id(), process=f.get_process()))
        split = BPMN.ExclusiveGateway(id=f"{b['id']}__split", name="", process=task.get_process())
        graph.add_node(split)
        for f in [f for f in graph.get_flows() if f.get_target() is task]:
            graph.remove_flow(f)
            graph.add_flow(BPMN.SequenceFlow(f.get_source(), split, id=f.get_id(), process=f.get_process()))
        graph.add_flow(BPMN.SequenceFlow(split, task, id=f"{b['id']}__to_task", process=task.get_process()))
        graph.add_flow(BPMN.SequenceFlow(split, replacement, id=f"{b['id']}__to_event", process=task.get_process()))
        if named:
            exceptions[b["name"]] = _first_task_after(graph, replacement)
    return exceptions


def _first_task_after(graph, node) -> str | None:
    from pm4py.objects.bpmn.obj import BPMN

    seen, frontier = set(), [node]
    while frontier:
        nxt = []
        for n in frontier:
            for f in graph.get_flows():
                if f.get_source() is n and f.get_target() not in seen:
                    t = f.get_target()
                    seen.add(t)
                    if isinstance(t, BPMN.Task):
                        return t.get_name()
                    nxt.append(t)
        frontier = nxt
    return None


def _final_tasks(graph) -> set[str]:
    from pm4py.objects.bpmn.obj import BPMN

    finals: set[str] = set()
    frontier = [n for n in graph.get_nodes() if isinstance(n, BPMN.EndEvent)]
    seen = set(frontier)
    while frontier:
        nxt = []
        for n in frontier:
            for f in graph.get_flows():
                if f.get_target() is n and f.get_source() not in seen:
                    s = f.get_source()
                    seen.add(s)
                    if isinstance(s, BPMN.Task):
                        finals.add(s.get_name())
                    elif isinstance(s, BPMN.Gateway):
                        nxt.append(s)
        frontier = nxt
    return finals


def load_bpmn(path: str | Path) -> ReferenceModel:
    """Read a BPMN 2.0 file into a :class:`ReferenceModel` (before annotations)."""
    import pm4py

    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist", where={"file": str(path)}, hint="check the path")
    data = path.read_bytes()
    root = parse_xml(data, str(path))
    info = inspect(root, str(path))
    graph = _pm4py_graph(data)
    from pm4py.objects.bpmn.obj import BPMN

    tasks = [n for n in graph.get_nodes() if isinstance(n, BPMN.Task)]
    if not tasks:
        raise ModelError(f"{path.name} has no tasks", where={"file": str(path)},
                         hint="draw the process with tasks named like the activities in the event log")
    task_ids = {n.get_id(): n.get_name() for n in tasks}
    exceptions = _rewire_boundary_events(graph, info, str(path))
    finals = _final_tasks(graph)
    warnings = list(info.get("warnings", []))
    net, im, fm = pm4py.convert_to_petri_net(graph)
    model = ReferenceModel(name=path.stem, kind="bpmn", net=net, im=im, fm=fm, path=str(path),
                           source_text=data.decode("utf-8", errors="replace"), final_steps=finals,
                           exceptions=exceptions, warnings=warnings)
    for tid, name in task_ids.items():
        step = model.step(name)
        step.element_id = tid
        step.owner = info["lanes"].get(tid)
    for b in info["boundary"]:
        attached = task_ids.get(b["attached"])
        if b["kind"] == "timer" and attached and b["duration"]:
            text, kind = b["duration"]
            if kind != "timeDuration":
                model.warnings.append(f"timer {b['id']} uses {kind}; only timeDuration gives an SLA")
                continue
            model.step(attached).sla_seconds = parse_duration(text, {"file": str(path), "line": b["line"], "element": b["id"]})
        elif b["kind"] in EXCEPTION_KINDS and b["name"]:
            step = model.step(b["name"])
            step.exception = True
            step.element_id = b["id"]
            step.owner = info["lanes"].get(b["id"]) or info["lanes"].get(b["attached"])
            handler = exceptions.get(b["name"])
            if handler:
                model.step(handler).handles = b["name"]
    return model
