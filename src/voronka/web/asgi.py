"""The app for ``uvicorn voronka.web.asgi:app`` (several workers): the workspace comes from $VORONKA_DB, and
$VORONKA_SECURE_COOKIES=1 marks cookies Secure (``voronka serve --workers N`` sets both)."""

from __future__ import annotations

import os

from voronka.settings import Settings
from voronka.web.app import create_app

app = create_app(Settings.from_env().db, secure_cookies=os.environ.get("VORONKA_SECURE_COOKIES") == "1")
