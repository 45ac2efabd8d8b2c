"""Ingest: pull event logs from source systems into the DuckDB event store."""
