"""Voronka: sales funnels with honest numbers."""

from __future__ import annotations

from voronka.errors import InputError, MoveError, NotFoundError, StaleDealError, VoronkaError
from voronka.service.workspace import Workspace
from voronka.settings import Settings

__version__ = "0.1.0"


def open(url: str | None = None) -> Workspace:  # noqa: A001 - the documented entry point
    """Open (creating or upgrading) the workspace at a SQLAlchemy URL.

    ``url`` defaults to ``VORONKA_DB`` or ``sqlite:///voronka.db``. PostgreSQL:
    ``postgresql+psycopg://user@host/db``.
    """
    engine_url = Settings.from_env(url).db
    store = Workspace.connect(engine_url)
    return store  # type: ignore[return-value]


__all__ = [
    "InputError",
    "MoveError",
    "NotFoundError",
    "StaleDealError",
    "VoronkaError",
    "Workspace",
    "open",
]
