"""Reusable pieces of dashboard pages: layout, KPI tiles, charts, process maps, timelines, tables."""
