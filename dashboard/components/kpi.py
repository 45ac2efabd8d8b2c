"""KPI tiles with the change against the previous period and red/amber/green against targets.

Targets live in processlens.toml::

    [dashboard.targets]
    median_throughput_days = { green = 7, red = 14 }   # green at or below 7, red at or above 14
    on_time_share = { green = 0.9, red = 0.75 }        # higher is better: green at or above 0.9
    stuck_cases = { green = 0, red = 20 }

A target whose ``green`` is below its ``red`` means lower is better, and the other way round.
"""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

RAG_ICON = {"green": ":green[●]", "amber": ":orange[●]", "red": ":red[●]", None: ""}


def rag(value: float | None, target: Any) -> str | None:
    """``green``, ``amber`` or ``red`` for ``value`` against a ``{green, red}`` target; None without one."""
    if value is None or target is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(target, int | float):
        target = {"green": target, "red": target}
    try:
        green, red = float(target["green"]), float(target["red"])
    except (KeyError, TypeError, ValueError):
        return None
    if green <= red:  # lower is better
        return "green" if value <= green else ("red" if value >= red and value > green else "amber")
    return "green" if value >= green else ("red" if value <= red else "amber")


def tile(label: str, value: str, delta: str | None = None, *, status: str | None = None,
         lower_is_better: bool = False, help: str | None = None, key: str | None = None) -> None:
    """One metric tile; ``status`` puts a coloured dot before the label."""
    prefix = RAG_ICON.get(status, "")
    st.metric(f"{prefix} {label}".strip(), value, delta, border=True, help=help,
              delta_color="inverse" if lower_is_better else "normal")


def change(current: float | None, previous: float | None, unit: str = "", as_percent_points: bool = False) -> str | None:
    """Text of the change against the previous period, e.g. ``+12`` or ``-1.5 d`` or ``+3 pp``."""
    if current is None or previous is None:
        return None
    if any(isinstance(v, float) and math.isnan(v) for v in (current, previous)):
        return None
    diff = current - previous
    if as_percent_points:
        return f"{100 * diff:+.0f} pp"
    if unit:
        return f"{diff:+.1f} {unit}"
    return f"{diff:+,.0f}"
