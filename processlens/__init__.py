"""processlens: process mining and visibility on DuckDB, from ingest to corrective action."""

__version__ = "0.1.0"
