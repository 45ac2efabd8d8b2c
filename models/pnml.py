"""PNML Petri nets (with initial and final marking) as reference models."""

from __future__ import annotations

from pathlib import Path

from models.model import ReferenceModel
from processlens.errors import ModelError


def load_pnml(path: str | Path) -> ReferenceModel:
    """Read a PNML file through pm4py; a missing final marking is derived from the sink places."""
    import pm4py
    from pm4py.objects.petri_net.obj import Marking

    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist", where={"file": str(path)}, hint="check the path")
    data = path.read_bytes()
    from models.bpmn import parse_xml

    parse_xml(data, str(path))  # well-formedness with a line number
    try:
        net, im, fm = pm4py.read_pnml(str(path))
    except Exception as exc:  # pm4py raises bare exceptions on malformed nets
        raise ModelError(f"{path.name} is not a PNML Petri net pm4py can read: {exc}", where={"file": str(path)},
                         hint="export it again as PNML 2009 (place/transition net)") from exc
    if not im:
        raise ModelError(f"{path.name} has no initial marking", where={"file": str(path)},
                         hint="put a token (<initialMarking>) on the start place")
    if not fm:
        fm = Marking({p: 1 for p in net.places if not p.out_arcs})
    model = ReferenceModel(name=path.stem, kind="pnml", net=net, im=im, fm=fm, path=str(path),
                           source_text=data.decode("utf-8", errors="replace"))
    sinks = {p for p in fm}
    for t in net.transitions:
        if t.label is not None:
            model.step(t.label)
            if any(a.target in sinks for a in t.out_arcs):
                model.final_steps.add(t.label)
    return model
