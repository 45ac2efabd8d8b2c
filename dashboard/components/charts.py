"""Small Vega-Lite charts for pages that must render fast in the browser.

Streamlit loads Plotly's front-end bundle (4.7 MB) with the first Plotly chart of a browser
session, which takes 1.3–2 s on a 2-core machine; its Vega-Lite bundle takes 0.3–0.6 s. The
Health page, where every session lands, uses these; the analysis pages keep Plotly. The specs are
written as plain Vega-Lite dicts for ``st.vega_lite_chart``: building and validating an Altair
chart cost 20–40 ms per chart on every rerun.
"""

from __future__ import annotations

from typing import Any

Spec = dict[str, Any]


def _field(name: str) -> str:
    """A column name as a Vega-Lite field (dots and brackets would otherwise address nested data)."""
    return name.replace("\\", "\\\\").replace(".", "\\.").replace("[", "\\[").replace("]", "\\]")


def lines(x: str, y: str, color: str, height: int = 320) -> Spec:
    """A line chart with points, one line per value of ``color``, temporal ``x``."""
    fx, fy, fc = _field(x), _field(y), _field(color)
    return {
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": fx, "type": "temporal", "title": None},
            "y": {"field": fy, "type": "quantitative", "title": y},
            "color": {"field": fc, "type": "nominal", "title": None, "legend": {"orient": "top"}},
            "tooltip": [{"field": fx, "type": "temporal", "title": x}, {"field": fc, "type": "nominal", "title": color},
                        {"field": fy, "type": "quantitative", "format": ",", "title": y}],
        },
        "height": height,
    }


def hbars(x: str, y: str, color: str | None = None, scheme: str = "orangered", fill: str | None = None,
          x_title: str | None = None, height: int = 300) -> Spec:
    """Horizontal bars of ``x`` per ``y`` (largest on top), coloured by a numeric ``color`` or one ``fill``."""
    fx, fy = _field(x), _field(y)
    enc: Spec = {
        "x": {"field": fx, "type": "quantitative", "title": x_title or x},
        "y": {"field": fy, "type": "nominal", "title": None, "sort": "-x"},
        "tooltip": [{"field": fy, "type": "nominal", "title": y},
                    {"field": fx, "type": "quantitative", "format": ",", "title": x}],
    }
    if color:
        fc = _field(color)
        enc["color"] = {"field": fc, "type": "quantitative", "title": color, "scale": {"scheme": scheme}}
        enc["tooltip"].append({"field": fc, "type": "quantitative", "format": ".1f", "title": color})
    mark: Spec = {"type": "bar"}
    if fill:
        mark["color"] = fill
    return {"mark": mark, "encoding": enc, "height": height}
