"""One error shape for the whole project.

Library code raises :class:`ProcesslensError` (or a subclass) with a message that says what went
wrong, *where* (file, line, field, job) and a *hint* that says what to do next. The CLI and the
dashboard turn it into a user message at one edge; nothing else prints tracebacks to users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProcesslensError(Exception):
    message: str
    hint: str | None = None
    where: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        loc = ", ".join(f"{k} {v}" for k, v in self.where.items() if v is not None)
        text = f"{self.message}" + (f" ({loc})" if loc else "")
        if self.hint:
            text += f"\nWhat to do: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint, "where": self.where}


class ConfigError(ProcesslensError):
    """processlens.toml or the environment is wrong."""


class SourceError(ProcesslensError):
    """A source (file, database, API) is unusable as a whole."""


class StoreBusyError(ProcesslensError):
    """The DuckDB store is locked by another writer for longer than we were willing to wait."""


class ModelError(ProcesslensError):
    """A reference model is invalid or unsupported."""


class ActionError(ProcesslensError):
    """A corrective action cannot be dispatched (policy, allowlist, target)."""
