"""Parquet files, read natively by DuckDB (typed columns, streamed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingest.loader import Batch
from ingest.timestamps import quote_literal
from processlens.errors import SourceError


def relation(path: str | Path) -> str:
    """The DuckDB table expression reading this file."""
    return f"read_parquet({quote_literal(str(path))})"


def batches(con: duckdb.DuckDBPyConnection, path: str | Path) -> Iterator[Batch]:
    """One batch for the whole file (DuckDB streams it); rows are numbered in file order."""
    path = Path(path)
    rel = relation(path)
    try:
        names = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
    except duckdb.Error as exc:
        raise SourceError(
            f"cannot read {path} as Parquet: {str(exc).splitlines()[0]}",
            hint="check that the file is a complete Parquet file (not truncated or CSV renamed)",
            where={"file": str(path)},
        ) from exc
    # rows numbered by the reader (``file_row_number``): the loader then reads the file in place
    # instead of copying it into a numbered table
    numbered = (f"(SELECT * EXCLUDE (file_row_number), file_row_number AS __pl_rn "
                f"FROM read_parquet({quote_literal(str(path))}, file_row_number=true))")
    clash = "file_row_number" in names or any(n.startswith("__pl_") for n in names)
    yield Batch(relation=rel if clash else numbered, location=str(path), line_offset=None)
