"""Small Vega-Lite charts (Altair) for pages that must render fast in the browser.

Streamlit loads Plotly's front-end bundle (4.7 MB) with the first Plotly chart of a browser
session, which takes 2–2.6 s on a 2-core machine; its Vega-Lite bundle takes 0.3–0.6 s and an
Altair chart is built in milliseconds on the server. The Health page, where every session lands,
uses these; the analysis pages keep Plotly.
"""

from __future__ import annotations

import altair as alt
import pandas as pd


def lines(df: pd.DataFrame, x: str, y: str, color: str, height: int = 320) -> alt.Chart:
    """A line chart with points, one line per value of ``color``, temporal ``x``."""
    return (alt.Chart(df).mark_line(point=True)
            .encode(x=alt.X(x, type="temporal", title=None), y=alt.Y(y, type="quantitative"),
                    color=alt.Color(color, type="nominal", title=None, legend=alt.Legend(orient="top")),
                    tooltip=[alt.Tooltip(x, type="temporal"), alt.Tooltip(color, type="nominal"),
                             alt.Tooltip(y, type="quantitative", format=",")])
            .properties(height=height))


def hbars(df: pd.DataFrame, x: str, y: str, color: str | None = None, scheme: str = "orangered",
          fill: str | None = None, x_title: str | None = None, height: int = 300) -> alt.Chart:
    """Horizontal bars of ``x`` per ``y`` (largest on top), coloured by a numeric ``color`` or one ``fill``."""
    enc = dict(x=alt.X(x, type="quantitative", title=x_title or x),
               y=alt.Y(y, type="nominal", title=None, sort="-x"),
               tooltip=[alt.Tooltip(y, type="nominal"), alt.Tooltip(x, type="quantitative", format=",")])
    if color:
        enc["color"] = alt.Color(color, type="quantitative", scale=alt.Scale(scheme=scheme))
        enc["tooltip"].append(alt.Tooltip(color, type="quantitative", format=".1f"))
    mark = alt.Chart(df).mark_bar(color=fill) if fill else alt.Chart(df).mark_bar()
    return mark.encode(**enc).properties(height=height)
