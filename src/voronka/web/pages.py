"""The pages: sign-in, the board, the deal card, the dashboard, settings. Server-rendered; htmx swaps parts."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from voronka.domain.deal import ActivityKind, classify_move
from voronka.domain.parse import parse_time
from voronka.domain.pipeline import Pipeline, StageKind
from voronka.errors import InputError, NotFoundError, VoronkaError
from voronka.io.export import write_frame
from voronka.service import accounts
from voronka.service.accounts import Session
from voronka.web import access, analysis, dashboard, importing
from voronka.web.access import visible_activity_deal, visible_deal, workspace
from voronka.web.board import CARDS_PER_COLUMN, BoardFilters, build_board, column_cards, filter_choices
from voronka.web.i18n import LANGUAGES, Translator, negotiate
from voronka.web.security import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    check_csrf,
    current_session,
    new_login_csrf,
    page_session,
    set_session_cookie,
)

router = APIRouter(include_in_schema=False)
SessionDep = Annotated[Session, Depends(page_session)]
Id = Annotated[int, PathParam(ge=1, le=access.DB_INT_MAX)]
Version = Annotated[int, Form(ge=1, le=access.DB_INT_MAX)]


def _lang(request: Request, session: Session | None) -> str:
    lang = negotiate(
        session.account.locale if session else None,
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
    )
    request.state.lang = lang
    return lang


def render(request: Request, template: str, session: Session | None, status: int = 200, **values: Any) -> Response:
    t = Translator(_lang(request, session))
    ws = workspace(request)
    context = {
        "t": t,
        "_": t.gettext,
        "account": session.account if session else None,
        "csrf": session.csrf if session else "",
        "lang": t.lang,
        "pipelines": ws.pipelines() if session else [],
        "StageKind": StageKind,
        **values,
    }
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


# -- signing in -------------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
    token = new_login_csrf()
    response = render(request, "login.html", None, login_csrf=token, next=_safe_next(next), error=error)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=3600)
    return response


def _safe_next(target: str) -> str:
    """Only paths of this site (no other hosts) after signing in."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@router.post("/login")
def login(
    request: Request,
    login: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    t = Translator(_lang(request, None))
    if not cookie or cookie != csrf:
        return _login_again(request, t.gettext("The sign-in form expired. Please try again."), 403)
    ws = workspace(request)
    account = accounts.authenticate(ws, login, password)
    if account is None:
        return _login_again(request, t.gettext("Wrong login or password."), 401)
    token, sess = accounts.start_session(ws, account)
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(
        response, token, secure=request.app.state.secure_cookies, max_age=int(accounts.SESSION_DAYS * 86400)
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


def _login_again(request: Request, error: str, status: int) -> Response:
    token = new_login_csrf()
    response = render(request, "login.html", None, status=status, login_csrf=token, next="/", error=error)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=3600)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, session, csrf)
    accounts.end_session(workspace(request), request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.post("/lang")
def set_language(
    request: Request,
    lang: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Switch the interface language: saved for the signed-in user, and in a cookie for the sign-in page."""
    if lang not in LANGUAGES:
        raise InputError(f"Unknown language {lang!r}: use one of {', '.join(LANGUAGES)}.")
    sess = current_session(request)
    if sess is not None:
        check_csrf(request, sess, csrf)
        accounts.set_locale(workspace(request), sess.account.id, lang)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


@router.get("/")
def home(request: Request, session: SessionDep) -> Response:
    pipes = workspace(request).pipelines()
    if not pipes:
        return render(request, "error.html", session, status=404, status_code=404, message=_no_pipelines(request))
    return RedirectResponse(f"/board/{pipes[0].id}", status_code=303)


def _no_pipelines(request: Request) -> str:
    return "This workspace has no funnels yet: create one with `voronka pipeline create` or build the demo."


# -- the board --------------------------------------------------------------------------------------------


def _pipe(request: Request, pipeline_id: Id) -> Pipeline:
    return workspace(request).pipeline(pipeline_id)


def _filters(request: Request, session: Session) -> BoardFilters:
    q = request.query_params
    f = BoardFilters.parse(**{k: q.get(k) for k in ("owner", "source", "segment", "created_from", "created_to", "q")})
    owner = access.owner_scope(session.account, f.owner)
    return BoardFilters(owner, f.source, f.segment, f.created_from, f.created_to, f.q)


@router.get("/board/{pipeline_id}", response_class=HTMLResponse)
def board(request: Request, pipeline_id: Id, session: SessionDep) -> Response:
    ws = workspace(request)
    pipe = _pipe(request, pipeline_id)
    f = _filters(request, session)
    columns = build_board(ws, pipe, f)
    choices = filter_choices(ws, pipe)
    if not session.account.sees_all:
        choices["owner"] = [session.account.name]
    template = (
        "_board.html"
        if request.headers.get("hx-request") and request.headers.get("hx-target") == "board"
        else "board.html"
    )
    return render(
        request,
        template,
        session,
        pipe=pipe,
        columns=columns,
        filters=f,
        choices=choices,
        query=urlencode(f.query()),
        limit=CARDS_PER_COLUMN,
    )


@router.get("/board/{pipeline_id}/column/{stage_id}", response_class=HTMLResponse)
def board_column(
    request: Request,
    pipeline_id: Id,
    stage_id: Id,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=access.DB_INT_MAX)] = 0,
) -> Response:
    if offset < 0:
        raise InputError(f"offset {offset}: give 0 or more.")
    ws = workspace(request)
    pipe = _pipe(request, pipeline_id)
    stage = pipe.stage(stage_id)
    f = _filters(request, session)
    cards = column_cards(ws, pipe, stage, f, offset=offset)
    return render(
        request,
        "_cards.html",
        session,
        pipe=pipe,
        stage=stage,
        cards=cards,
        next_offset=offset + len(cards),
        has_more=len(cards) == CARDS_PER_COLUMN,
        query=urlencode(f.query()),
    )


# -- moves and edits --------------------------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.post("/deals/{deal_id}/move")
def move(
    request: Request,
    deal_id: Id,
    session: SessionDep,
    stage: Annotated[str, Form()],
    version: Version,
    reason: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Move a deal (from the board's drag, or the card's buttons); refused when the deal changed meanwhile."""
    check_csrf(request, session, csrf)
    ws = workspace(request)
    deal = visible_deal(ws, session.account, deal_id)
    try:
        moved = ws.move_deal(
            deal.id,
            int(stage) if stage.isdigit() else stage,
            reason=reason or None,
            comment=comment or None,
            by=session.account.name,
            by_id=session.account.id,
            expected_version=version,
        )
    except VoronkaError as exc:
        if _wants_json(request):
            raise
        return deal_page(request, deal_id, session, error=str(exc), status=_status_of(exc))
    if _wants_json(request):
        after = ws.deal(deal.id)
        return JSONResponse({"id": after.id, "stage_id": moved.stage_id, "version": after.version})
    return RedirectResponse(f"/deals/{deal_id}", status_code=303)


def _status_of(exc: Exception) -> int:
    from voronka.web.app import _STATUS

    return next(s for t, s, _c in _STATUS if isinstance(exc, t))


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
def deal_view(request: Request, deal_id: Id, session: SessionDep) -> Response:
    return deal_page(request, deal_id, session)


def deal_page(
    request: Request, deal_id: int, session: Session, error: str | None = None, status: int = 200
) -> Response:
    ws = workspace(request)
    deal = visible_deal(ws, session.account, deal_id)
    pipe = ws.pipeline(deal.pipeline_id)
    moves = ws.history(deal.id)
    stages = {s.id: s for p in ws.pipelines() for s in p.stages}
    timeline = []
    prev = None
    for m in moves:
        dst = stages[m.stage_id]
        src = stages.get(m.from_stage_id) if m.from_stage_id else None
        timeline.append({"move": m, "stage": dst, "from": src, "kind": classify_move(src, dst).value})
        prev = m
    del prev
    return render(
        request,
        "deal.html",
        session,
        status=status,
        deal=deal,
        pipe=pipe,
        stage=pipe.stage(deal.stage_id) if deal.pipeline_id == pipe.id else None,
        timeline=list(reversed(timeline)),
        activities=ws.activities(deal.id),
        kinds=[k.value for k in ActivityKind],
        error=error,
        owners=ws.users() if session.account.sees_all else [session.account.name],
        now=datetime.now(UTC),
    )


@router.post("/deals/{deal_id}/edit")
def edit_deal(
    request: Request,
    deal_id: Id,
    session: SessionDep,
    version: Version,
    title: Annotated[str, Form()] = "",
    amount: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "RUB",
    source: Annotated[str, Form()] = "",
    segment: Annotated[str, Form()] = "",
    owner: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    ws = workspace(request)
    deal = visible_deal(ws, session.account, deal_id)
    fields: dict[str, Any] = {
        "title": title,
        "amount": amount.strip() or None,
        "currency": currency,
        "source": source.strip(),
        "segment": segment.strip(),
    }
    if session.account.sees_all and owner.strip():
        fields["owner"] = owner.strip()
    try:
        access.check_edit(session.account, fields)
        ws.update_deal(deal.id, expected_version=version, **fields)
    except VoronkaError as exc:
        return deal_page(request, deal_id, session, error=str(exc), status=_status_of(exc))
    return RedirectResponse(f"/deals/{deal_id}", status_code=303)


@router.post("/deals/{deal_id}/activities")
def add_activity(
    request: Request,
    deal_id: Id,
    session: SessionDep,
    kind: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    due: Annotated[str, Form()] = "",
    done: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    ws = workspace(request)
    deal = visible_deal(ws, session.account, deal_id)
    try:
        ws.add_activity(
            deal.id,
            kind,
            due_at=parse_time(due, what="due date") if due.strip() else None,
            done=bool(done),
            by=session.account.name,
            note=note.strip() or None,
        )
    except VoronkaError as exc:
        return deal_page(request, deal_id, session, error=str(exc), status=_status_of(exc))
    return RedirectResponse(f"/deals/{deal_id}", status_code=303)


@router.post("/activities/{activity_id}/complete")
def complete_activity(
    request: Request, activity_id: Id, session: SessionDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(request, session, csrf)
    ws = workspace(request)
    deal = visible_activity_deal(ws, session.account, activity_id)
    ws.complete_activity(activity_id)
    return RedirectResponse(f"/deals/{deal.id}", status_code=303)


# -- the dashboard ----------------------------------------------------------------------------------------


def _dashboard(request: Request, pipeline_id: Id, session: Session) -> dashboard.Dashboard:
    q = request.query_params
    by = (q.get("by") or "").strip() or None
    if by is not None and by not in dashboard.BREAKDOWNS:
        raise InputError(f"Unknown breakdown {by!r}: use one of {', '.join(dashboard.BREAKDOWNS)}.")
    start, end = dashboard.parse_period(q.get("from"), q.get("to"))
    pipe = _pipe(request, pipeline_id)
    return dashboard.build_dashboard(workspace(request), pipe, session.account, start=start, end=end, by=by)


@router.get("/dashboard/{pipeline_id}", response_class=HTMLResponse)
def dashboard_page(request: Request, pipeline_id: Id, session: SessionDep) -> Response:
    d = _dashboard(request, pipeline_id, session)
    t = Translator(_lang(request, session))
    q = request.query_params
    return render(
        request,
        "dashboard.html",
        session,
        d=d,
        pipe=d.pipeline,
        charts={
            "funnel": dashboard.funnel_chart(d, t),
            "reasons": dashboard.reasons_chart(d, t),
            "time": dashboard.time_chart(d, t),
        },
        reasons=dashboard.table(d, "reasons", t),
        period={"from": q.get("from", ""), "to": q.get("to", ""), "by": q.get("by", "")},
        query=urlencode({k: v for k, v in q.items() if k in ("from", "to", "by") and v}),
        breakdowns=dashboard.BREAKDOWNS,
    )


@router.get("/dashboard/{pipeline_id}/export/{name}.{fmt}")
def export_table(request: Request, pipeline_id: Id, name: str, fmt: str, session: SessionDep) -> Response:
    """A dashboard table as CSV (the locale's separators) or XLSX, written by :func:`voronka.io.export.write_frame`."""
    if name not in dashboard.TABLES:
        raise NotFoundError(f"No table {name!r}: use one of {', '.join(dashboard.TABLES)}.")
    if fmt not in ("csv", "xlsx"):
        raise NotFoundError(f"No format {fmt!r}: use csv or xlsx.")
    d = _dashboard(request, pipeline_id, session)
    t = Translator(_lang(request, session))
    frame = dashboard.table(d, name, t)
    folder = Path(tempfile.mkdtemp(prefix="voronka-export-"))
    path = write_frame(frame, folder / f"{name}.{fmt}", locale=t.lang)
    media = "text/csv" if fmt == "csv" else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def cleanup() -> None:
        path.unlink(missing_ok=True)
        folder.rmdir()

    return FileResponse(
        path, media_type=media, filename=f"{d.pipeline.name}-{name}.{fmt}", background=BackgroundTask(cleanup)
    )


# -- forecast and diagnosis -------------------------------------------------------------------------------


@router.get("/forecast/{pipeline_id}", response_class=HTMLResponse)
def forecast_page(request: Request, pipeline_id: Id, session: SessionDep) -> Response:
    """Months 1-3: won deals and revenue (mean, p10, p50, p90), P(target); the backtest loads after the page."""
    raw_target = request.query_params.get("target", "")
    target = analysis.parse_target(raw_target) if session.account.sees_all else None
    view = analysis.build_forecast(workspace(request), _pipe(request, pipeline_id), session.account, target=target)
    return render(
        request, "forecast.html", session, view=view, pipe=view.pipeline, raw_target=raw_target, paths=analysis
    )


@router.get("/forecast/{pipeline_id}/backtest", response_class=HTMLResponse)
def backtest_fragment(request: Request, pipeline_id: Id, session: SessionDep) -> Response:
    """The backtest's summary (WAPE, coverage) as a fragment of the forecast page; heads and admins only."""
    bt = analysis.backtest_summary(workspace(request), _pipe(request, pipeline_id), session.account)
    return render(request, "_backtest.html", session, bt=bt, paths=analysis)


@router.get("/diagnosis/{pipeline_id}", response_class=HTMLResponse)
def diagnosis_page(request: Request, pipeline_id: Id, session: SessionDep) -> Response:
    """The bottleneck with its revenue impact, managers flagged, hints; heads and admins only."""
    pipe = _pipe(request, pipeline_id)
    d = analysis.build_diagnosis(workspace(request), pipe, session.account)
    impact = next((s for s in d.stages.stages if s.stage == d.bottleneck), None)
    source = impact.benchmark_from if impact else ""
    if source and _lang(request, session) == "ru":
        source = analysis.benchmark_source_ru(source)
    return render(request, "diagnosis.html", session, d=d, pipe=pipe, impact=impact, source=source)


# -- settings ---------------------------------------------------------------------------------------------


@router.get("/settings", response_class=HTMLResponse)
def settings_view(request: Request, session: SessionDep) -> Response:
    return settings_page(request, session)


def settings_page(request: Request, session: Session, error: str | None = None, status: int = 200) -> Response:
    if not session.account.sees_all:
        raise access.Forbidden("Settings are for heads of sales and admins.")
    ws = workspace(request)
    return render(
        request,
        "settings.html",
        session,
        status=status,
        users=accounts.accounts(ws),
        all_pipelines=ws.pipelines(),
        roles=accounts.ROLES,
        error=error,
    )


@router.post("/settings/users")
def settings_add_user(
    request: Request,
    session: SessionDep,
    login: Annotated[str, Form()],
    password: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "manager",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    access.require_admin(session.account)
    try:
        accounts.add_account(workspace(request), login, password, name=name or None, role=role)
    except VoronkaError as exc:
        return settings_page(request, session, error=str(exc), status=_status_of(exc))
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/stages/{stage_id}/sla")
def settings_sla(
    request: Request,
    stage_id: Id,
    session: SessionDep,
    pipeline: Annotated[int, Form(ge=1, le=access.DB_INT_MAX)],
    sla: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    if not session.account.sees_all:
        raise access.Forbidden("Only heads of sales and admins change SLAs.")
    try:
        days = float(sla.replace(",", ".")) if sla.strip() else None
        workspace(request).set_sla(pipeline, stage_id, days)
    except ValueError as exc:
        return settings_page(request, session, error=f"SLA {sla!r}: {exc}", status=422)
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/pipelines/{pipeline_id}/reasons")
def settings_reason(
    request: Request,
    pipeline_id: Id,
    session: SessionDep,
    reason: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    if not session.account.sees_all:
        raise access.Forbidden("Only heads of sales and admins change loss reasons.")
    if not reason.strip():
        return settings_page(request, session, error="A loss reason needs a name.", status=422)
    workspace(request).add_reason(pipeline_id, reason)
    return RedirectResponse("/settings", status_code=303)


# -- import ------------------------------------------------------------------------------------------------


def _import_allowed(session: Session) -> None:
    if not session.account.sees_all:
        raise access.Forbidden("Imports are for heads of sales and admins.")


@router.get("/settings/import", response_class=HTMLResponse)
def import_page(request: Request, session: SessionDep) -> Response:
    _import_allowed(session)
    return render(request, "import.html", session, preview=None, summary=None, error=None, form={})


@router.post("/settings/import", response_class=HTMLResponse)
async def import_upload(
    request: Request,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    pipeline: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "RUB",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session, csrf)
    _import_allowed(session)
    data = await file.read(importing.MAX_BYTES + 1)
    form = {"pipeline": pipeline, "currency": currency}
    try:
        token, _path = importing.save_upload(file.filename or "upload", data)
        found = importing.preview(
            workspace(request), token, mapping_yaml=None, pipeline=pipeline or None, currency=currency
        )
    except VoronkaError as exc:
        return render(
            request, "import.html", session, status=422, preview=None, summary=None, error=str(exc), form=form
        )
    return render(request, "import.html", session, preview=found, summary=None, error=None, form=form)


@router.post("/settings/import/{token}", response_class=HTMLResponse)
def import_run(
    request: Request,
    token: str,
    session: SessionDep,
    action: Annotated[str, Form()] = "preview",
    mapping: Annotated[str, Form()] = "",
    pipeline: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "RUB",
    create_missing: Annotated[str, Form()] = "",
    skip_bad_rows: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    """Preview again with an edited mapping, or import."""
    check_csrf(request, session, csrf)
    _import_allowed(session)
    ws = workspace(request)
    form = {
        "pipeline": pipeline,
        "currency": currency,
        "create_missing": create_missing,
        "skip_bad_rows": skip_bad_rows,
    }
    try:
        if action == "import":
            summary = importing.run_import(
                ws,
                token,
                mapping_yaml=mapping,
                pipeline=pipeline or None,
                currency=currency,
                create_missing=bool(create_missing),
                skip_bad_rows=bool(skip_bad_rows),
            )
            return render(request, "import.html", session, preview=None, summary=summary, error=None, form=form)
        found = importing.preview(ws, token, mapping_yaml=mapping, pipeline=pipeline or None, currency=currency)
        return render(request, "import.html", session, preview=found, summary=None, error=None, form=form)
    except VoronkaError as exc:
        try:
            found = importing.preview(ws, token, mapping_yaml=mapping, pipeline=pipeline or None, currency=currency)
        except VoronkaError:
            found = None
        return render(
            request, "import.html", session, status=422, preview=found, summary=None, error=str(exc), form=form
        )
