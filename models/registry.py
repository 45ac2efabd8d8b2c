"""Models versioned in the store: a new version whenever the model or its annotations change."""

from __future__ import annotations

import duckdb
import pandas as pd

from models.model import ReferenceModel


def register_model(con: duckdb.DuckDBPyConnection, model: ReferenceModel) -> int:
    """Store the model (if its content is new) and return its version; sets ``model.version``/``model_id``."""
    row = con.execute("SELECT model_id, version FROM model_versions WHERE name = ? AND fingerprint = ?",
                      [model.name, model.fingerprint]).fetchone()
    if row is None:
        con.execute("BEGIN TRANSACTION")
        try:
            model_id, version = con.execute(
                "SELECT coalesce((SELECT max(model_id) FROM model_versions), 0) + 1, "
                "coalesce((SELECT max(version) FROM model_versions WHERE name = ?), 0) + 1", [model.name]).fetchone()
            con.execute(
                "INSERT INTO model_versions (model_id, name, version, fingerprint, kind, path, annotations_path, "
                "source_text, annotations_text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [model_id, model.name, version, model.fingerprint, model.kind, model.path, model.annotations_path,
                 model.source_text, model.annotations_text])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        row = (model_id, version)
    model.model_id, model.version = int(row[0]), int(row[1])
    return model.version


def list_models(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """All registered model versions with the last check run of each."""
    return con.execute(
        """
        SELECT m.name, m.version, m.kind, m.path, m.fingerprint[:12] AS fingerprint, m.registered_at,
               r.method AS last_method, r.started_at AS last_checked, r.log_fitness AS last_log_fitness
        FROM model_versions m
        LEFT JOIN (SELECT *, row_number() OVER (PARTITION BY model_id ORDER BY run_id DESC) AS rn
                   FROM conformance_runs) r ON r.model_id = m.model_id AND r.rn = 1
        ORDER BY m.name, m.version
        """).df()
