"""What every command shares: the workspace from --db, the error path, and output formats."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from voronka.domain.parse import parse_time
from voronka.errors import VoronkaError
from voronka.service.workspace import Workspace
from voronka.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

F = TypeVar("F", bound=Callable[..., Any])


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FORMAT_OPTION = typer.Option(Format.table, "--format", "-f", help="Output: table, json or csv.")


@dataclass
class State:
    settings: Settings
    debug: bool = False
    _ws: Workspace | None = None

    def workspace(self) -> Workspace:
        if self._ws is None:
            self._ws = Workspace.connect(self.settings.db)
        return self._ws

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None


_STATE: ContextVar[State] = ContextVar("voronka_cli_state")


def set_state(value: State) -> None:
    _STATE.set(value)


def state() -> State:
    return _STATE.get()


def workspace() -> Workspace:
    return state().workspace()


def out() -> Console:
    return Console(highlight=False, soft_wrap=False, width=200 if not sys.stdout.isatty() else None)


def guard(fn: F) -> F:
    """Turn Voronka's errors into `Error: ...` on stderr and exit code 1 (a traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (VoronkaError, SQLAlchemyError) as exc:
            if state().debug:
                raise
            message = str(exc)
            if isinstance(exc, SQLAlchemyError):
                message = (
                    f"The workspace database failed: {exc.__class__.__name__}: "
                    f"{exc.args[0] if exc.args else exc}. "
                    f"Check --db / VORONKA_DB ({state().settings.db})."
                )
            typer.echo(f"Error: {message}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def when(value: str | None, what: str = "--at time") -> Any:
    return None if value is None else parse_time(value, what=what)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def print_csv(frame: pd.DataFrame) -> None:
    typer.echo(frame.to_csv(index=False), nl=False)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"[{low:.1%}–{high:.1%}]"


def days(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"
