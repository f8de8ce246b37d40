"""`voronka serve` (the web app) and `voronka user add|list|password|token`."""

from __future__ import annotations

import typer

from voronka.cli._common import guard, out, state
from voronka.errors import InputError

app = typer.Typer(help="Users of the web app: add, list, set a password, make an API token.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.command("serve")(serve)
    root.add_typer(app, name="user")


@guard
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    db: str = typer.Option(None, "--db", help="Workspace database URL (overrides the global --db)."),
    secure_cookies: bool = typer.Option(False, "--secure-cookies", help="Mark cookies Secure (serve over HTTPS)."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Serve the web app: the board, deal cards, dashboards and the JSON API (/api/v1/docs)."""
    import uvicorn

    from voronka.service.workspace import Workspace
    from voronka.web.app import create_app

    if not 0 < port < 65536:
        raise InputError(f"--port {port}: give a port between 1 and 65535.")
    url = db or state().settings.db
    ws = Workspace.connect(url)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    out().print(f"Voronka on http://{shown}:{port}/ (workspace {ws.url}); API docs at /api/v1/docs. Ctrl+C stops.")
    if workers > 1:
        ws.close()
        import os

        os.environ["VORONKA_DB"] = url
        os.environ["VORONKA_SECURE_COOKIES"] = "1" if secure_cookies else ""
        uvicorn.run("voronka.web.asgi:app", host=host, port=port, workers=workers, log_level="warning")
        return
    uvicorn.run(create_app(ws, secure_cookies=secure_cookies), host=host, port=port, log_level="warning")


@app.command("add")
@guard
def add(
    login: str = typer.Argument(..., help="The login to sign in with, e.g. anna."),
    role: str = typer.Option("manager", help="admin, head or manager."),
    name: str = typer.Option(
        None,
        help="Display name (deals' owner name); default the login. An existing user "
        "of that name (e.g. an imported manager) gets the login.",
    ),
    password: str = typer.Option(None, help="The password (at least 8 characters); asked for when not given."),
    lang: str = typer.Option(None, help="Interface language: en or ru; default from the browser."),
) -> None:
    """Add a user who can sign in to the web app."""
    from voronka.service.accounts import add_account

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    acc = add_account(state().workspace(), login, password, name=name, role=role, locale=lang)
    out().print(f"User {acc.name!r} signs in as {acc.login!r} ({acc.role}).")


@app.command("list")
@guard
def list_users() -> None:
    """List users with their logins and roles."""
    from voronka.service.accounts import accounts

    for a in accounts(state().workspace()):
        typer.echo(f"{a.id}\t{a.login or '-'}\t{a.role}\t{a.name}")


@app.command("password")
@guard
def password(
    login: str = typer.Argument(..., help="The user's login."),
    password: str = typer.Option(None, help="The new password; asked for when not given."),
) -> None:
    """Set a user's password (their sessions end)."""
    from voronka.service.accounts import set_password

    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    set_password(state().workspace(), login, password)
    out().print(f"Password of {login!r} changed.")


@app.command("token")
@guard
def token(
    login: str = typer.Argument(..., help="The user's login."),
    name: str = typer.Option("api", help="What the token is for."),
) -> None:
    """Make an API token for /api/v1 (printed once, alone on the line)."""
    from voronka.service.accounts import create_token

    typer.echo(create_token(state().workspace(), login, name))
