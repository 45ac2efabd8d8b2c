"""The ``processlens`` command: a thin shell over the libraries.

Each command group lives in its own module under ``processlens.cli`` and is registered in
:data:`COMMAND_MODULES`. Domain errors (:class:`ProcesslensError`) become one-line messages with
a hint here, at the edge; with ``--json`` they are printed as ``{"error": ...}`` objects.
"""

from __future__ import annotations

import importlib
import json
import sys

import click

from processlens import __version__
from processlens.errors import ProcesslensError

#: (module, attribute) of every command or group; each module owns its commands.
COMMAND_MODULES = [
    ("processlens.cli.ingest_cmds", "ingest"),
    ("processlens.cli.ingest_cmds", "stats"),
    ("processlens.cli.ingest_cmds", "store"),
    ("processlens.cli.demo_cmd", "demo"),
    ("processlens.cli.mine_cmds", "mine"),
    ("processlens.cli.mine_cmds", "discover"),
    ("processlens.cli.check_cmds", "check"),
    ("processlens.cli.check_cmds", "stuck"),
    ("processlens.cli.check_cmds", "exceptions"),
    ("processlens.cli.check_cmds", "model"),
    ("processlens.cli.dashboard_cmd", "dashboard"),
    ("processlens.cli.coordinator_cmds", "coordinator"),
    ("processlens.cli.coordinator_cmds", "actions"),
    ("processlens.cli.coordinator_cmds", "rules"),
]


class Context:
    def __init__(self, db: str | None, config: str | None) -> None:
        self._db = db
        self._config = config
        self._settings = None

    @property
    def settings(self):
        from processlens.config import load_settings

        if self._settings is None:
            self._settings = load_settings(self._db, self._config)
        return self._settings


class ProcesslensGroup(click.Group):
    """Turns domain errors into user messages instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ProcesslensError as exc:
            if "--json" in sys.argv:
                click.echo(json.dumps(exc.to_dict(), default=str))
            else:
                click.secho(f"Error: {exc.message}", fg="red", err=True)
                loc = ", ".join(f"{k} {v}" for k, v in exc.where.items() if v is not None)
                if loc:
                    click.echo(f"  where: {loc}", err=True)
                if exc.hint:
                    click.echo(f"  what to do: {exc.hint}", err=True)
            ctx.exit(2)


@click.group(cls=ProcesslensGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="processlens")
@click.option("--db", envvar="PROCESSLENS_DB", type=click.Path(dir_okay=False),
              help="DuckDB store file [env PROCESSLENS_DB; default data/processlens.duckdb].")
@click.option("--config", envvar="PROCESSLENS_CONFIG", type=click.Path(dir_okay=False),
              help="processlens.toml with jobs, models, rules [env PROCESSLENS_CONFIG; default ./processlens.toml].")
@click.pass_context
def cli(ctx: click.Context, db: str | None, config: str | None) -> None:
    """processlens: process mining and visibility on DuckDB, from ingest to corrective action."""
    ctx.obj = Context(db, config)


def _register() -> None:
    for module, attr in COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # a command group that has not landed yet
            raise
        cli.add_command(getattr(mod, attr))


_register()


def main() -> None:
    cli(prog_name="processlens")
