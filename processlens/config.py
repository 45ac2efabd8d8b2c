"""Configuration: command-line options over environment variables over ``processlens.toml``.

Lookup order for the store path: ``--db`` > ``PROCESSLENS_DB`` > ``[store] path`` in the config
file > ``data/processlens.duckdb``. The config file is ``--config`` > ``PROCESSLENS_CONFIG`` >
``./processlens.toml``. Errors name every place that was looked at.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processlens.errors import ConfigError

DEFAULT_DB = Path("data/processlens.duckdb")
DEFAULT_CONFIG = Path("processlens.toml")


@dataclass
class Settings:
    """Resolved settings of one invocation."""

    db_path: Path
    config_path: Path | None
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table", where={"file": self.config_path})
        return value

    @property
    def base_dir(self) -> Path:
        """Relative paths in the config file are relative to the file's folder."""
        return self.config_path.parent if self.config_path else Path.cwd()

    def resolve(self, path: str | Path) -> Path:
        p = Path(os.path.expandvars(str(path))).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file; ``include = ["other.toml", ...]`` merges further files (tables merged)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}",
            hint="fix the syntax at the line named above",
            where={"file": str(path)},
        ) from exc
    for inc in data.pop("include", []):
        inc_path = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        if not inc_path.exists():
            raise ConfigError(f"{path} includes {inc}, which does not exist", where={"file": str(path)},
                              hint=f"create {inc_path} or remove it from 'include'")
        for key, value in read_toml(inc_path).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**value, **data[key]}
            else:
                data.setdefault(key, value)
    return data


def load_settings(db: str | Path | None = None, config: str | Path | None = None) -> Settings:
    """Resolve the store path and the config file for this invocation."""
    looked: list[str] = []
    config_path: Path | None = None
    if config is not None:
        config_path = Path(config)
        if not config_path.exists():
            raise ConfigError(
                f"config file {config_path} does not exist",
                hint="pass an existing file with --config, or omit it to use ./processlens.toml",
            )
    else:
        env = os.environ.get("PROCESSLENS_CONFIG")
        if env:
            looked.append(f"PROCESSLENS_CONFIG={env}")
            if not Path(env).exists():
                raise ConfigError(
                    f"PROCESSLENS_CONFIG points to {env}, which does not exist",
                    hint="unset PROCESSLENS_CONFIG or point it at a processlens.toml",
                )
            config_path = Path(env)
        elif DEFAULT_CONFIG.exists():
            config_path = DEFAULT_CONFIG
    db_path = Path(db) if db is not None else Path(os.environ["PROCESSLENS_DB"]) if os.environ.get("PROCESSLENS_DB") else None
    if config_path is None:
        config_path = remembered_config(db_path or DEFAULT_DB)
    raw = read_toml(config_path) if config_path else {}
    if config_path:
        apply_edits(raw, read_edits(config_path))
    settings = Settings(db_path=DEFAULT_DB, config_path=config_path.resolve() if config_path else None, raw=raw)
    if db_path is not None:
        settings.db_path = db_path
    elif "path" in raw.get("store", {}):
        settings.db_path = settings.resolve(raw["store"]["path"])
    return settings


CONFIG_META_KEY = "config_path"


def remembered_config(db_path: Path) -> Path | None:
    """The config file a store was last loaded with (``store_meta.config_path``), if it still exists.

    ``processlens demo`` records its world's processlens.toml there, so that ``processlens
    dashboard`` or ``processlens coordinator run`` on the demo store find its models and rules
    without ``--config``. A busy or unreadable store simply yields None.
    """
    if not db_path.exists():
        return None
    try:
        import duckdb

        con = duckdb.connect(str(db_path), read_only=True)
    except Exception:
        return None
    try:
        row = con.execute("SELECT value FROM store_meta WHERE key = ?", [CONFIG_META_KEY]).fetchone()
    except Exception:
        row = None
    finally:
        con.close()
    if row and row[0] and Path(row[0]).exists():
        return Path(row[0])
    return None


def remember_config(con, config_path: Path) -> None:
    """Record ``config_path`` in the store (see :func:`remembered_config`)."""
    con.execute(
        "INSERT INTO store_meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [CONFIG_META_KEY, str(Path(config_path).resolve())],
    )


#: Changes made in the dashboard (rules, targets) live beside the config file, never inside it,
#: so the hand-written file keeps its comments; each ``[section.name]`` here replaces the one of
#: the same name in processlens.toml (and its includes).
EDITS_FILE = "processlens.edited.toml"


def edits_path(config_path: Path) -> Path:
    return Path(config_path).parent / EDITS_FILE


def read_edits(config_path: Path) -> dict[str, Any]:
    path = edits_path(config_path)
    return read_toml(path) if path.exists() else {}


def apply_edits(raw: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    """Merge edits into a config: per section, entries replace those of the same name."""
    for section, entries in edits.items():
        if isinstance(entries, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **entries}
        else:
            raw[section] = entries
    return raw


def save_edit(settings: Settings, section: str, name: str, value: dict[str, Any] | None) -> Path:
    """Record (or with ``None`` remove) ``[section.name]`` in the edits file; returns its path.

    The caller validates ``value`` first. Raises ConfigError when no config file is in use.
    """
    import tomli_w

    if settings.config_path is None:
        raise ConfigError("there is no processlens.toml to save the change beside",
                          hint="start processlens with --config PATH (or PROCESSLENS_CONFIG)")
    edits = read_edits(settings.config_path)
    table = edits.setdefault(section, {})
    if value is None:
        table.pop(name, None)
    else:
        table[name] = value
    path = edits_path(settings.config_path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(edits), encoding="utf-8")
    tmp.replace(path)  # atomic: a crash leaves the old or the new file, never half of one
    settings.raw = apply_edits(read_toml(settings.config_path), edits)
    return path
