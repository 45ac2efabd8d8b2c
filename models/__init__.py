"""Reference workflow models, conformance checking and running cases (stuck, exceptions).

Public API (see docs/decisions.md): :func:`load_model`, :func:`model_from_settings`,
:func:`register_model`, :func:`check`, :func:`stuck`, :func:`exceptions`, :func:`case_position`.
"""

from models.conformance import ConformanceResult, check
from models.loading import load_model, model_from_settings
from models.model import AllowedDeviation, Calendar, ReferenceModel, Step
from models.registry import list_models, register_model

__all__ = [
    "AllowedDeviation", "Calendar", "ConformanceResult", "ReferenceModel", "Step", "case_position", "check",
    "exceptions", "list_models", "load_model", "model_from_settings", "register_model", "stuck",
]


def __getattr__(name: str):
    if name in ("stuck", "exceptions", "case_position", "open_cases"):
        from models import running

        return getattr(running, name)
    raise AttributeError(name)
