"""Voronka: sales funnels with honest numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voronka.errors import InputError, MoveError, NotFoundError, StaleDealError, VoronkaError

if TYPE_CHECKING:
    from voronka.service.workspace import Workspace

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import voronka.analytics.events` does not pay for the workspace stack.
    if name == "Workspace":
        from voronka.service.workspace import Workspace

        return Workspace
    if name == "Settings":
        from voronka.settings import Settings

        return Settings
    raise AttributeError(f"module 'voronka' has no attribute {name!r}")


def open(url: str | None = None) -> Workspace:  # noqa: A001 - the documented entry point
    """Open (creating or upgrading) the workspace at a SQLAlchemy URL.

    ``url`` defaults to ``VORONKA_DB`` or ``sqlite:///voronka.db``. PostgreSQL:
    ``postgresql+psycopg://user@host/db``.
    """
    from voronka.service.workspace import Workspace
    from voronka.settings import Settings

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
