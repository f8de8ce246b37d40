"""Signing in: session cookies for pages, CSRF tokens for forms, bearer tokens for the API.

- The session cookie is HttpOnly (scripts cannot read it) and SameSite=Lax (other sites' forms do not carry
  it); ``Secure`` when the app is served over HTTPS (``secure_cookies=True``).
- Every state-changing page request must carry the session's CSRF token, in the form field ``csrf`` or the
  ``X-CSRF-Token`` header; the sign-in form uses a double-submit cookie instead (there is no session yet).
- The API takes ``Authorization: Bearer vk_...``; a browser session works too, with the CSRF header on writes.
"""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from voronka.errors import VoronkaError
from voronka.service import accounts
from voronka.service.accounts import Account, Session
from voronka.web.access import in_db, workspace

SESSION_COOKIE = "voronka_session"
LOGIN_CSRF_COOKIE = "voronka_login_csrf"
LANG_COOKIE = "voronka_lang"


class LoginRequired(VoronkaError):
    """No valid session or token: sign in first."""


class CsrfError(VoronkaError):
    """A form or request without the right CSRF token."""


def current_session(request: Request) -> Session | None:
    if "voronka_session" in request.scope.get("state", {}):
        return request.state.voronka_session  # type: ignore[no-any-return]
    token = request.cookies.get(SESSION_COOKIE)
    found = accounts.session(workspace(request), token) if token else None
    request.state.voronka_session = found
    return found


def page_session(request: Request) -> Session:
    """The signed-in session of a page request (a dependency); else the user is sent to sign in."""
    found = current_session(request)
    if found is None:
        raise LoginRequired("Sign in to continue.")
    return found


def check_csrf(request: Request, session: Session, form_token: str | None) -> None:
    token = form_token or request.headers.get("x-csrf-token") or ""
    if not secrets.compare_digest(token.encode(), session.csrf.encode()):
        raise CsrfError("The form's security token is missing or old. Reload the page and try again.")


async def api_account(request: Request) -> Account:
    """The account of an API request: a bearer token, or a browser session with the CSRF header on writes."""
    header = request.headers.get("authorization", "")
    ws = workspace(request)
    if header.lower().startswith("bearer "):
        found = await in_db(request, accounts.token_account, ws, header[7:].strip())
        if found is None:
            raise LoginRequired("The API token is unknown or revoked. Make one with `voronka user token LOGIN`.")
        return found
    sess = await in_db(request, current_session, request)
    if sess is None:
        raise LoginRequired("Send an API token: 'Authorization: Bearer vk_...' (make one with `voronka user token`).")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        check_csrf(request, sess, None)
    return sess.account


def set_session_cookie(response: Response, token: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure, path="/")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)
