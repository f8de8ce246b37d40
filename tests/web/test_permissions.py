"""A manager cannot read or move another manager's deal by any route: every route that names a deal or an
activity is tried by Anna on Boris's deal, and Boris's deal must be untouched afterwards."""

from __future__ import annotations

import pytest

from tests.web.conftest import PASSWORD, Site

# (method, path, form or json body) — {b}: Boris's deal, {act}: Boris's activity, {p}: the pipeline, {s}: a stage
PAGE_ROUTES = [
    ("GET", "/deals/{b}", None),
    ("POST", "/deals/{b}/move", {"stage": "{s}", "version": "1"}),
    ("POST", "/deals/{b}/edit", {"version": "1", "title": "Mine now", "currency": "RUB"}),
    ("POST", "/deals/{b}/activities", {"kind": "call", "note": "hijack"}),
    ("POST", "/activities/{act}/complete", {}),
]
API_ROUTES = [
    ("GET", "/api/v1/deals/{b}", None),
    ("PATCH", "/api/v1/deals/{b}", {"expected_version": 1, "title": "Mine now"}),
    ("GET", "/api/v1/deals/{b}/history", None),
    ("POST", "/api/v1/deals/{b}/move", {"stage": "{s}", "expected_version": 1}),
    ("GET", "/api/v1/deals/{b}/activities", None),
    ("POST", "/api/v1/deals/{b}/activities", {"kind": "call", "note": "hijack"}),
    ("POST", "/api/v1/activities/{act}/complete", None),
]


def _fill(site: Site, value: object) -> object:
    stage = site.ws.pipeline("Sales").stage("Call").id
    subst = {"{b}": str(site.boris_deal), "{act}": str(site.boris_activity), "{s}": str(stage)}
    if isinstance(value, str):
        for k, v in subst.items():
            value = value.replace(k, v)
        return int(value) if value.isdigit() and value == str(stage) else value
    if isinstance(value, dict):
        return {k: _fill(site, v) for k, v in value.items()}
    return value


def _untouched(site: Site) -> None:
    deal = site.ws.deal(site.boris_deal)
    assert deal.version == 1 and deal.title == "Office for Vector"
    assert deal.stage_id == site.ws.pipeline("Sales").stage("Request").id
    assert len(site.ws.history(site.boris_deal)) == 1
    acts = site.ws.activities(site.boris_deal)
    assert len(acts) == 1 and not acts[0].done


def test_every_deal_route_is_covered(site: Site) -> None:
    """A new route that names a deal or an activity must be added to the lists above."""
    from voronka.web import api, pages

    paths = {getattr(r, "path", "") for r in [*pages.router.routes, *api.router.routes]}
    named = {p for p in paths if "{deal_id}" in p or "{activity_id}" in p}
    tested = {p.replace("{b}", "{deal_id}").replace("{act}", "{activity_id}") for _, p, _ in PAGE_ROUTES + API_ROUTES}
    assert named == tested


@pytest.mark.parametrize(("method", "path", "body"), PAGE_ROUTES, ids=[f"{m} {p}" for m, p, _ in PAGE_ROUTES])
def test_manager_pages_cannot_reach_another_managers_deal(
    site: Site, method: str, path: str, body: dict | None
) -> None:
    anna = site.client("anna")
    url = str(_fill(site, path))
    if method == "GET":
        r = anna.get(url)
    else:
        data = {k: str(v) for k, v in (_fill(site, body) or {}).items()}  # type: ignore[union-attr]
        r = anna.post(url, data={**data, "csrf": anna.headers["x-test-csrf"]}, follow_redirects=False)
    assert r.status_code == 404, r.text
    assert "Office for Vector" not in r.text
    _untouched(site)
    # The head reaches the same deal.
    head = site.client("head")
    assert head.get(f"/deals/{site.boris_deal}").status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), API_ROUTES, ids=[f"{m} {p}" for m, p, _ in API_ROUTES])
def test_manager_api_cannot_reach_another_managers_deal(site: Site, method: str, path: str, body: dict | None) -> None:
    from voronka.service.accounts import create_token

    token = create_token(site.ws, "anna")
    c = site.client()
    r = c.request(method, str(_fill(site, path)), json=_fill(site, body), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"
    assert "Office for Vector" not in r.text
    _untouched(site)


def test_manager_board_shows_only_own_deals_whatever_the_filter(site: Site) -> None:
    anna = site.client("anna")
    pid = site.ws.pipeline("Sales").id
    request = site.ws.pipeline("Sales").stage("Request").id
    for url in (f"/board/{pid}", f"/board/{pid}?owner=Boris", f"/board/{pid}/column/{request}?owner=Boris"):
        r = anna.get(url)
        assert r.status_code == 200
        assert "Office for Vector" not in r.text
        assert "Kitchen for Ivanov" in r.text
    head = site.client("head")
    assert "Office for Vector" in head.get(f"/board/{pid}?owner=Boris").text


def test_manager_api_lists_and_numbers_are_own(site: Site) -> None:
    from voronka.service.accounts import create_token

    c = site.client()
    auth = {"Authorization": f"Bearer {create_token(site.ws, 'anna')}"}
    pid = site.ws.pipeline("Sales").id
    cols = c.get(f"/api/v1/pipelines/{pid}/board?owner=Boris", headers=auth).json()
    assert sum(col["count"] for col in cols) == 2
    assert site.boris_deal not in [d for col in cols for d in col["deals"]]
    funnel = c.get(f"/api/v1/pipelines/{pid}/funnel?by=owner", headers=auth).json()
    assert funnel["owner"] == "Anna" and funnel["overall"]["entered"] == 2
    assert "groups" not in funnel
    # Boris's deal gets stuck (SLA 1 day on Request): Anna's stuck list still does not show it.
    stuck = c.get(f"/api/v1/pipelines/{pid}/stuck", headers=auth).json()
    assert {d["owner"] for d in stuck["deals"]} == {"Anna"}


def test_manager_dashboard_and_exports_are_own(site: Site) -> None:
    anna = site.client("anna")
    pid = site.ws.pipeline("Sales").id
    page = anna.get(f"/dashboard/{pid}?by=owner")
    assert page.status_code == 200
    assert 'data-testid="kpi-entered">2<' in page.text
    assert "Office for Vector" not in page.text and "Boris" not in page.text
    stuck_csv = anna.get(f"/dashboard/{pid}/export/stuck.csv").text
    assert "Office for Vector" not in stuck_csv and "Kitchen for Ivanov" in stuck_csv
    head = site.client("head")
    assert 'data-testid="kpi-entered">3<' in head.get(f"/dashboard/{pid}").text


def test_manager_cannot_open_settings_or_hand_deals_away(site: Site) -> None:
    anna = site.client("anna")
    assert anna.get("/settings").status_code == 403
    r = anna.post(
        "/settings/users",
        data={"login": "evil", "password": "longenough1", "role": "admin", "csrf": anna.headers["x-test-csrf"]},
    )
    assert r.status_code == 403
    from voronka.service.accounts import create_token

    auth = {"Authorization": f"Bearer {create_token(site.ws, 'anna')}"}
    r = site.client().patch(
        f"/api/v1/deals/{site.anna_deal}", json={"expected_version": 1, "owner": "Boris"}, headers=auth
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert site.ws.deal(site.anna_deal).owner == "Anna"


def test_head_cannot_add_users_admin_can(site: Site) -> None:
    head = site.client("head")
    form = {"login": "vera", "password": PASSWORD, "role": "manager", "name": "Vera"}
    assert head.post("/settings/users", data={**form, "csrf": head.headers["x-test-csrf"]}).status_code == 403
    admin = site.client("admin")
    r = admin.post("/settings/users", data={**form, "csrf": admin.headers["x-test-csrf"]}, follow_redirects=False)
    assert r.status_code == 303
    assert site.client("vera").get("/").status_code == 200
