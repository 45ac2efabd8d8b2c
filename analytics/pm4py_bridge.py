"""The only place analytics imports pm4py: model discovery and BPMN / PNML export.

The inductive miner (pm4py's IM, or IMf with a noise threshold) works on the variants of the
log — pm4py first compresses a log to its variant counts (a UVCL) and mines that. processlens
hands in the variant counts computed in DuckDB, so the discovered model is the one
``pm4py.discover_petri_net_inductive`` gives on the same log, without pm4py reading the events.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from analytics.filters import Filter
from analytics.variants import variants
from processlens.errors import ProcesslensError


class DiscoveryError(ProcesslensError):
    """The log cannot be turned into a model."""


@dataclass
class DiscoveredModel:
    tree: Any  # pm4py ProcessTree
    net: Any  # pm4py PetriNet
    initial_marking: Any
    final_marking: Any
    bpmn: Any  # pm4py BPMN
    noise: float

    @property
    def bpmn_xml(self) -> str:
        import pm4py

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.bpmn"
            # the auto layout needs Graphviz's ``dot``; without it the diagram keeps pm4py's default positions
            pm4py.write_bpmn(self.bpmn, str(path), auto_layout=shutil.which("dot") is not None)
            return path.read_text(encoding="utf-8")

    @property
    def pnml(self) -> str:
        import pm4py

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pnml"
            pm4py.write_pnml(self.net, self.initial_marking, self.final_marking, str(path))
            return path.read_text(encoding="utf-8")

    def write(self, path: str | Path) -> Path:
        """Write BPMN 2.0 XML (``.bpmn``) or PNML (``.pnml``), chosen by the file name."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".bpmn", ".pnml"):
            raise DiscoveryError(f"cannot write a model as {path.name}", where={"file": str(path)},
                                 hint="name the output file *.bpmn (BPMN 2.0) or *.pnml (Petri net)")
        path.write_text(self.bpmn_xml if suffix == ".bpmn" else self.pnml, encoding="utf-8")
        return path


def variant_log(con: duckdb.DuckDBPyConnection, flt: Filter | None = None) -> Counter:
    """pm4py's UVCL (variant tuple -> number of cases) from DuckDB."""
    v = variants(con, flt)
    return Counter({tuple(acts): int(n) for acts, n in zip(v["activities"], v["cases"], strict=True)})


def discover(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, noise: float = 0.2,
             miner: str = "variants") -> DiscoveredModel:
    """Inductive miner on the filtered log, as tree, Petri net and BPMN.

    ``miner="variants"`` (default): IMf with ``noise`` (IM at 0) on the variant counts — pm4py's result on the
    log. ``miner="dfg"``: IMd on the directly-follows graph computed in DuckDB — pm4py's result on that DFG,
    for logs with very many variants (``noise`` does not apply).
    """
    if not 0.0 <= noise <= 1.0:
        raise DiscoveryError(f"noise threshold {noise} is not between 0 and 1", where={"field": "noise"},
                             hint="use e.g. 0.2 to leave out infrequent behaviour, 0 to keep all")
    if miner not in ("variants", "dfg"):
        raise DiscoveryError(f"unknown miner {miner!r}", hint="use variants or dfg", where={"field": "miner"})
    if miner == "dfg":
        from analytics.dfg import dfg

        result = dfg(con, flt)
        if not result.cases:
            raise DiscoveryError("no cases to discover a model from", hint="widen the filter or ingest data first")
        return from_dfg(result, noise)
    uvcl = variant_log(con, flt)
    if not uvcl:
        raise DiscoveryError("no cases to discover a model from", hint="widen the filter or ingest data first")
    return from_variants(uvcl, noise)


def from_dfg(result, noise: float = 0.0) -> DiscoveredModel:
    """IMd on a DFG from DuckDB, as ``pm4py.discover_process_tree_inductive`` does on a pm4py DFG object."""
    import pm4py
    from pm4py.algo.discovery.inductive.dtypes.im_dfg import InductiveDFG
    from pm4py.algo.discovery.inductive.dtypes.im_ds import IMDataStructureDFG
    from pm4py.algo.discovery.inductive.variants.imd import IMD
    from pm4py.objects.dfg.obj import DFG
    from pm4py.objects.process_tree.utils import generic as pt_util
    from pm4py.objects.process_tree.utils.generic import tree_sort

    graph = {(s, t): int(n) for s, t, n in zip(result.edges["source"], result.edges["target"], result.edges["frequency"],
                                                strict=True)}
    obj = DFG(graph, start_activities=dict(result.start_activities), end_activities=dict(result.end_activities))
    params = {"noise_threshold": noise, "multiprocessing": False, "disable_fallthroughs": False}
    tree = IMD(params).apply(IMDataStructureDFG(InductiveDFG(dfg=obj, skip=False)), params)
    tree = pt_util.fold(tree)
    tree_sort(tree)
    net, im, fm = pm4py.convert_to_petri_net(tree)
    return DiscoveredModel(tree=tree, net=net, initial_marking=im, final_marking=fm, bpmn=pm4py.convert_to_bpmn(tree),
                           noise=noise)


def from_variants(uvcl: Counter, noise: float = 0.2) -> DiscoveredModel:
    """What ``pm4py.algo.discovery.inductive.algorithm.apply`` does after compressing a log to variants."""
    import pm4py
    from pm4py.algo.discovery.inductive.dtypes.im_ds import IMDataStructureUVCL
    from pm4py.algo.discovery.inductive.variants.im import IMUVCL
    from pm4py.algo.discovery.inductive.variants.imf import IMFUVCL
    from pm4py.objects.process_tree.utils import generic as pt_util
    from pm4py.objects.process_tree.utils.generic import tree_sort

    params = {"noise_threshold": noise, "multiprocessing": False, "disable_fallthroughs": False}
    miner = IMFUVCL(params) if noise > 0 else IMUVCL(params)
    tree = miner.apply(IMDataStructureUVCL(Counter(uvcl)), params)
    tree = pt_util.fold(tree)
    tree_sort(tree)
    net, im, fm = pm4py.convert_to_petri_net(tree)
    bpmn = pm4py.convert_to_bpmn(tree)
    return DiscoveredModel(tree=tree, net=net, initial_marking=im, final_marking=fm, bpmn=bpmn, noise=noise)
