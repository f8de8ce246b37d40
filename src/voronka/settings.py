"""Settings, read once where the program starts and passed down; nothing is read at import time."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DB = "sqlite:///voronka.db"


@dataclass(frozen=True)
class Settings:
    """``db``: the workspace's SQLAlchemy URL (``--db``, else ``VORONKA_DB``, else ``sqlite:///voronka.db``)."""

    db: str = DEFAULT_DB

    @classmethod
    def from_env(cls, db: str | None = None) -> Settings:
        return cls(db=db or os.environ.get("VORONKA_DB") or DEFAULT_DB)
