"""``processlens dashboard``: serve the Streamlit dashboard; ``dashboard user add`` manages local users."""

from __future__ import annotations

import click

from processlens.cli.common import emit, json_option, settings


@click.group(invoke_without_command=True)
@click.option("--port", default=8501, show_default=True, type=int, help="Port to serve on.")
@click.option("--address", default=None, help="Address to listen on (default 127.0.0.1; others need a login configured).")
@click.option("--open/--no-open", "open_browser", default=False, help="Open a browser window.")
@click.option("--coordinator/--no-coordinator", default=True, show_default=True,
              help="Also run the coordinator loop (when rules are configured) while the dashboard is up.")
@click.pass_context
def dashboard(ctx: click.Context, port: int, address: str | None, open_browser: bool, coordinator: bool) -> None:
    """Serve the dashboard on http://localhost:PORT for the store and processlens.toml in use."""
    if ctx.invoked_subcommand is not None:
        return
    from dashboard.server import resolve_address
    from processlens.service import has_rules, serve

    s = settings(ctx)
    host = resolve_address(s, address)
    click.echo(f"processlens dashboard on http://{'localhost' if host in ('127.0.0.1', '::1') else host}:{port} "
               f"(store {s.db_path}); Ctrl-C stops it.")
    if coordinator and has_rules(s):
        click.echo("coordinator loop running beside it (--no-coordinator to leave it off)")
    ctx.exit(serve(s, port=port, open_browser=open_browser, address=host, coordinator=coordinator))


@dashboard.group("user")
def user() -> None:
    """Local dashboard users (when [dashboard.auth] mode = "local")."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["leadership", "operator", "analyst", "admin"]), required=True,
              help="leadership reads; operator also acts; analyst also edits models/rules; admin also sources/users.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters.")
@click.option("--display-name", default="", help="Name shown in the dashboard.")
@json_option
@click.pass_context
def user_add(ctx: click.Context, name: str, role: str, password: str, display_name: str, as_json: bool) -> None:
    """Add or replace a user in the users file (passwords are stored as bcrypt hashes)."""
    from dashboard.auth import save_user, users_file

    path = users_file(settings(ctx))
    save_user(path, name, role, password, display_name)
    emit({"user": name, "role": role, "file": str(path)}, as_json, f"{name} ({role}) saved in {path}")


@user.command("list")
@json_option
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List the users of the users file (names and roles, never hashes)."""
    from dashboard.auth import load_users, users_file

    path = users_file(settings(ctx))
    users = [{"user": n, "role": u["role"], "name": u.get("name", "")} for n, u in load_users(path).items()]
    emit(users, as_json, "\n".join(f"{u['user']}\t{u['role']}" for u in users) or f"no users in {path}")
