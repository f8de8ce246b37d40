"""Signing in, sessions, CSRF, API tokens, and the CLI's `voronka user`."""

from __future__ import annotations

import re

from tests.cli.conftest import runner_for
from tests.web.conftest import PASSWORD, Site, csrf_of
from voronka.service import accounts


def test_passwords_are_stored_as_argon2_hashes(site: Site) -> None:
    from sqlalchemy import select

    from voronka.store.schema import users

    with site.ws.engine.connect() as conn:
        stored = conn.scalar(select(users.c.password_hash).where(users.c.login == "anna"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_sign_in_sets_an_httponly_samesite_cookie_and_sign_out_ends_it(site: Site) -> None:
    c = site.client()
    assert c.get("/board/1", follow_redirects=False).status_code == 303  # to the sign-in page
    page = c.get("/login")
    r = c.post(
        "/login", data={"login": "anna", "password": PASSWORD, "csrf": csrf_of(page.text)}, follow_redirects=False
    )
    cookie = r.headers["set-cookie"].lower()
    assert "voronka_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    token = c.cookies.get("voronka_session")
    assert accounts.session(site.ws, token) is not None
    home = c.get("/")
    assert home.status_code == 200
    c.post("/logout", data={"csrf": csrf_of(home.text)})
    assert accounts.session(site.ws, token) is None
    assert c.get("/board/1", follow_redirects=False).status_code == 303


def test_wrong_password_and_unknown_login_get_the_same_answer(site: Site) -> None:
    c = site.client()
    answers = []
    for login, pw in (("anna", "wrong-password"), ("nobody", PASSWORD)):
        page = c.get("/login")
        r = c.post("/login", data={"login": login, "password": pw, "csrf": csrf_of(page.text)})
        answers.append((r.status_code, "Wrong login or password." in r.text))
    assert answers == [(401, True), (401, True)]
    assert "voronka_session" not in c.cookies


def test_sign_in_form_needs_its_csrf_token(site: Site) -> None:
    c = site.client()
    c.get("/login")
    r = c.post("/login", data={"login": "anna", "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    assert "voronka_session" not in c.cookies


def test_forms_without_csrf_change_nothing(site: Site) -> None:
    anna = site.client("anna")
    call = site.ws.pipeline("Sales").stage("Call").id
    for data in ({"stage": str(call), "version": "1"}, {"stage": str(call), "version": "1", "csrf": "forged"}):
        r = anna.post(f"/deals/{site.anna_deal}/move", data=data, headers={"accept": "application/json"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    assert site.ws.deal(site.anna_deal).version == 1
    r = anna.post(
        f"/deals/{site.anna_deal}/move",
        data={"stage": str(call), "version": "1", "csrf": anna.headers["x-test-csrf"]},
        follow_redirects=False,
    )
    assert r.status_code == 303 and site.ws.deal(site.anna_deal).stage_id == call


def test_api_needs_a_valid_token(site: Site) -> None:
    c = site.client()
    for headers in ({}, {"Authorization": "Bearer vk_forged"}):
        r = c.get("/api/v1/me", headers=headers)
        assert r.status_code == 401
        assert (
            set(r.json()["error"]) == {"status", "code", "message"} and r.json()["error"]["code"] == "unauthenticated"
        )
    token = accounts.create_token(site.ws, "head")
    me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["name"] == "Helen Head" and me["role"] == "head"


def test_a_browser_session_calls_the_api_with_the_csrf_header_on_writes(site: Site) -> None:
    anna = site.client("anna")
    assert anna.get("/api/v1/me").json()["login"] == "anna"
    body = {"stage": "Call", "expected_version": 1}
    assert anna.post(f"/api/v1/deals/{site.anna_deal}/move", json=body).status_code == 403
    r = anna.post(
        f"/api/v1/deals/{site.anna_deal}/move", json=body, headers={"x-csrf-token": anna.headers["x-test-csrf"]}
    )
    assert r.status_code == 200 and r.json()["author"] == "Anna"


def test_next_after_sign_in_stays_on_this_site(site: Site) -> None:
    c = site.client()
    page = c.get("/login?next=//evil.example/")
    assert 'name="next" value="/"' in page.text
    r = c.post(
        "/login",
        data={"login": "anna", "password": PASSWORD, "csrf": csrf_of(page.text), "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_cli_user_add_token_and_errors(sqlite_url: str) -> None:
    run = runner_for(sqlite_url)
    out = run("user", "add", "olga", "--role", "head", "--name", "Olga K", "--password", PASSWORD).output
    assert "'Olga K' signs in as 'olga' (head)" in out
    err = run("user", "add", "olga", "--password", PASSWORD, code=1).output
    assert "Error: Login 'olga' is taken" in err
    short = run("user", "add", "pavel", "--password", "short", code=1).output
    assert "too short" in short
    bad_role = run("user", "add", "pavel", "--role", "boss", "--password", PASSWORD, code=1).output
    assert "Unknown role 'boss'" in bad_role
    token = run("user", "token", "olga").output.strip()
    assert token.startswith("vk_")
    listed = run("user", "list").output
    assert "olga\thead\tOlga K" in listed and "pavel" not in listed
    run("user", "password", "olga", "--password", "another-pass-1")
    from voronka.service.workspace import Workspace

    ws = Workspace.connect(sqlite_url)
    try:
        assert accounts.authenticate(ws, "olga", "another-pass-1") is not None
        assert accounts.authenticate(ws, "olga", PASSWORD) is None
        assert accounts.token_account(ws, token).name == "Olga K"  # type: ignore[union-attr]
    finally:
        ws.close()


def test_an_imported_manager_gets_a_login(sqlite_ws) -> None:  # type: ignore[no-untyped-def]
    sqlite_ws.add_user("Ирина Белова")
    acc = accounts.add_account(sqlite_ws, "irina", PASSWORD, name="Ирина Белова")
    assert acc.role == "manager" and sqlite_ws.users() == ["Ирина Белова"]


def test_exports_and_dumps_keep_no_sessions_and_export_no_password_hashes(site: Site, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from voronka.io.dump import dump
    from voronka.io.export import table_frame

    site.client("anna")  # a live session
    users = table_frame(site.ws, "users")
    assert list(users.columns) == ["id", "name", "email", "role", "active"]
    counts = dump(site.ws, tmp_path / "ws.zip")
    assert "web_sessions" not in counts and counts["users"] == 4


def test_pages_load_scripts_from_this_site_only(site: Site) -> None:
    """No CDN: every script and stylesheet of the pages and the API docs is served by the app itself."""
    head = site.client("head")
    pid = site.ws.pipeline("Sales").id
    for url in ("/login", f"/board/{pid}", f"/dashboard/{pid}", f"/deals/{site.anna_deal}", "/api/v1/docs"):
        html = head.get(url).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css|png))["']""", html) + re.findall(
            r"""(?:_url|url)\s*[:=]\s*['"]([^'"]+\.(?:js|css|png))['"]""", html
        )
        assert assets, url
        for asset in assets:
            assert asset.startswith("/"), (url, asset)
            assert head.get(asset).status_code == 200, (url, asset)
