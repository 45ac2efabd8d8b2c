"""Helpers shared by command modules: store access and output."""

from __future__ import annotations

import json
from typing import Any

import click


def settings(ctx: click.Context):
    return ctx.find_root().obj.settings


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """Print JSON for scripts or a human text."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text if text is not None else json.dumps(data, indent=2, default=str))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripting.")
