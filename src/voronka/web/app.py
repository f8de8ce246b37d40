"""The app factory: ``create_app(url)`` gives the FastAPI app of one workspace (pages, static files, /api/v1).

Errors have one shape everywhere in the API: ``{"error": {"status": 409, "code": "stale", "message": "..."}}``;
pages show the same message on an error page (or as JSON to the board's scripts, which ask for JSON).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import plotly
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from voronka.errors import InputError, MoveError, NotFoundError, StaleDealError, VoronkaError
from voronka.service.workspace import Workspace
from voronka.store import quick_move
from voronka.store.engine import WriterLock, writer_lock
from voronka.web.access import Forbidden
from voronka.web.i18n import Translator
from voronka.web.quick import QuickMoveLane
from voronka.web.security import CsrfError, LoginRequired

_HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

_STATUS: list[tuple[type[Exception], int, str]] = [
    (LoginRequired, 401, "unauthenticated"),
    (CsrfError, 403, "csrf"),
    (Forbidden, 403, "forbidden"),
    (NotFoundError, 404, "not_found"),
    (StaleDealError, 409, "stale"),
    (MoveError, 422, "move_refused"),
    (InputError, 422, "invalid"),
    (VoronkaError, 400, "error"),
]


class SqliteWriteQueue:
    """On SQLite, run requests that may write (POST, PATCH, ...) one at a time, in arrival order.

    SQLite has one writer at a time; concurrent writers wait in SQLite's busy handler, which sleeps in steps of
    up to 100 ms, so that under load most of a write's time is sleeping. Queuing them here instead costs nothing
    while the lock is free and keeps each write as fast as alone. Reads (GET) never wait here: they run
    concurrently on WAL snapshots. One asyncio lock per event loop (the server has one; each test client has its
    own, and between those SQLite's own locking still keeps writes apart). Between worker processes
    (``--workers``) the file's :class:`~voronka.store.engine.WriterLock` queues them: taken here when it is
    free, else waited for on a worker thread, so that the event loop serves reads meanwhile.
    """

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: Any, enabled: bool, writer: WriterLock | None = None) -> None:
        self.app = app
        self.enabled = enabled
        self.writer = writer
        self.locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not self.enabled or scope["type"] != "http" or scope["method"] in self.SAFE:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        lock = self.locks.get(loop)
        if lock is None:
            lock = self.locks[loop] = asyncio.Lock()
        async with lock:
            held = self.writer is not None and await _take(self.writer)
            try:
                await self.app(scope, receive, send)
            finally:
                if held:
                    self.writer.release()  # type: ignore[union-attr]


async def _take(writer: WriterLock) -> bool:
    """Take the writer lock: at once when free, else on a worker thread (given back if the request is cancelled
    while it waits)."""
    if writer.acquire(blocking=False):
        return True
    waiting = asyncio.ensure_future(run_in_threadpool(writer.acquire))
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError:
        waiting.add_done_callback(lambda done: done.result() and writer.release())
        raise


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def create_app(db: str | Workspace, *, secure_cookies: bool = False) -> FastAPI:
    """The web app of the workspace at ``db`` (a URL, or an open Workspace)."""
    from voronka.web import api, pages

    ws = db if isinstance(db, Workspace) else Workspace.connect(db)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """While the server runs (on its event loop): PostgreSQL connections for quick moves, closed at the end."""
        moves = quick_move.AsyncMoves(ws.engine) if ws.engine.dialect.name == "postgresql" else None
        app.state.async_moves = moves
        try:
            yield
        finally:
            app.state.async_moves = None
            if moves is not None:
                await moves.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Voronka API",
        version="1",
        description="Sales funnels with honest numbers. Authenticate with `Authorization: Bearer vk_...` "
        "(make a token with `voronka user token LOGIN`). Errors: "
        '`{"error": {"status": ..., "code": ..., "message": ...}}`.',
        docs_url=None,  # served below with the vendored Swagger UI: no CDN
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.ws = ws
    sqlite = ws.engine.dialect.name == "sqlite"
    app.state.inline_db = sqlite  # see access.in_db
    # API moves by token as one statement (web.quick), on the loop's own connections while the lifespan runs.
    app.state.quick_moves = quick_move.supported(ws.engine)
    app.state.async_moves = None
    app.state.secure_cookies = secure_cookies
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.globals["languages"] = {"en": "English", "ru": "Русский"}
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    @app.get("/api/v1/docs", include_in_schema=False)
    def api_docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="Voronka API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        )

    @app.get("/static-plotly/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        """Plotly's own bundle from the installed package: the charts work offline."""
        return FileResponse(PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.add_middleware(QuickMoveLane, state=app.state)  # inside the write queue: its SQLite writes queue too
    app.add_middleware(SqliteWriteQueue, enabled=sqlite, writer=writer_lock(ws.engine))
    # The routers' routes themselves, not include_router: FastAPI (0.16x) builds an included router's routes again
    # for every app, on its first request (about 0.2 s); these routes were built once, when their modules loaded,
    # with their prefix, tags and responses already in them.
    app.router.routes.extend([*api.router.routes, *pages.router.routes])
    _handlers(app)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(VoronkaError)
    async def voronka_error(request: Request, exc: VoronkaError) -> Response:
        status, code = next((s, c) for t, s, c in _STATUS if isinstance(exc, t))
        if isinstance(exc, LoginRequired) and not _wants_json(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return _error(request, status, code, str(exc))

    @app.exception_handler(SQLAlchemyError)
    async def db_error(request: Request, exc: SQLAlchemyError) -> Response:
        return _error(request, 503, "database", f"The workspace database failed ({exc.__class__.__name__}); try again.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}
        message = str(exc.detail) if exc.detail else "Error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"No page at {request.url.path}."
        return _error(request, exc.status_code, codes.get(exc.status_code, "error"), message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        text = "; ".join(f"{d['where']}: {d['problem']}" for d in details)
        return _error(request, 422, "invalid", f"Invalid request: {text}", details)


def _error(request: Request, status: int, code: str, message: str, details: Any = None) -> Response:
    if _wants_json(request):
        return JSONResponse(error_body(status, code, message, details), status_code=status)
    t = Translator(getattr(request.state, "lang", "en"))
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "error.html",
        {"t": t, "_": t.gettext, "status": status, "message": message, "account": None},
        status_code=status,
    )
