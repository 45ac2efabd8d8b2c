"""Reference workflow models, conformance checking and running cases (stuck, exceptions).

Public API (see docs/decisions.md): :func:`load_model`, :func:`model_from_settings`,
:func:`register_model`, :func:`check`, :func:`stuck`, :func:`exceptions`, :func:`case_position`.
"""

from models.conformance import ConformanceResult, check
from models.loading import load_model, model_from_settings
from models.model import AllowedDeviation, Calendar, ReferenceModel, Step
from models.registry import list_models, register_model
from models.running import case_position, exceptions, open_cases, stuck

__all__ = [
    "AllowedDeviation", "Calendar", "ConformanceResult", "ReferenceModel", "Step", "case_position", "check",
    "exceptions", "list_models", "load_model", "model_from_settings", "open_cases", "register_model", "stuck",
]
