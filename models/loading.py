"""Load a reference model from a file (by extension) or from ``[models]`` in processlens.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.model import ReferenceModel
from processlens.errors import ConfigError, ModelError

FORMATS = {".bpmn": "bpmn", ".xml": "bpmn", ".pnml": "pnml", ".txt": "text", ".model": "text", ".plm": "text"}


def load_model(path: str | Path, annotations: str | Path | None = None) -> ReferenceModel:
    """Read a BPMN, PNML or text-format model; annotations default to a .toml file beside it."""
    from models.annotations import apply_annotations, read_annotations

    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ModelError(f"processlens does not know the model format of {path.name}", where={"file": str(path)},
                         hint="use .bpmn (BPMN 2.0), .pnml (Petri net) or .txt (processlens text format)")
    if kind == "bpmn":
        from models.bpmn import load_bpmn

        model = load_bpmn(path)
    elif kind == "pnml":
        from models.pnml import load_pnml

        model = load_pnml(path)
    else:
        from models.textformat import load_text

        model = load_text(path)
    if annotations is None:
        annotations = next((path.with_suffix(ext) for ext in (".toml", ".yaml", ".yml") if path.with_suffix(ext).exists()), None)
    if annotations is not None:
        data, text = read_annotations(annotations)
        apply_annotations(model, data, text, str(annotations))
    return model


def model_from_settings(settings: Any, name: str | None = None) -> ReferenceModel:
    """The model named ``name`` (or the default) from ``[models]`` of processlens.toml."""
    section = settings.section("models")
    tables = {k: v for k, v in section.items() if isinstance(v, dict)}
    where = {"file": str(settings.config_path) if settings.config_path else None}
    if not tables:
        raise ConfigError("no reference model is configured", where=where,
                          hint='add [models.NAME] with path = "model.bpmn" to processlens.toml, or pass --model PATH')
    if name is None:
        name = section.get("default") or (next(iter(tables)) if len(tables) == 1 else None)
        if name is None:
            raise ConfigError(f"several models are configured ({', '.join(tables)}) and none is the default", where=where,
                              hint='set [models] default = "NAME" or pass --model')
    if name not in tables:
        raise ConfigError(f"no model named {name!r} in [models]", where=where, hint=f"configured: {', '.join(tables)}")
    spec = tables[name]
    if "path" not in spec:
        raise ConfigError(f"[models.{name}] has no path", where=where, hint='add path = "model/NAME.bpmn"')
    ann = spec.get("annotations")
    model = load_model(settings.resolve(spec["path"]), settings.resolve(ann) if ann else None)
    model.name = name
    return model
