"""The app for ``uvicorn voronka.web.asgi:app`` (several workers): the workspace comes from $VORONKA_DB."""

from __future__ import annotations

from voronka.settings import Settings
from voronka.web.app import create_app

app = create_app(Settings.from_env().db)
