"""The demo world: an order-to-cash business across four systems (ERP SQLite, warehouse CSV
exports, help-desk JSON, payment-provider JSON lines), with ground-truth labels.

``build_world(out_dir, cases=5000, seed=7, now=None) -> World`` writes it; see data/demo/README.md.
"""

from processlens.demo.world import World, build_world

__all__ = ["World", "build_world"]
