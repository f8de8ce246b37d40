"""API moves by token through the quick move lane (web.quick): a plain move is one statement on PostgreSQL, one
short transaction on SQLite (store.quick_move), that checks the token, the deal's owner, its version and the
move's rules itself; whatever it does not write goes to the route and the general path. The answers must be the
general path's in every case, on both backends; on PostgreSQL with the server loop's own connections (the app's
lifespan running) and without them (the thread pool)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tests.scenarios import T
from tests.web.conftest import Site
from voronka.service import accounts
from voronka.store.quick_move import QuickMove, quick_move, supported
from voronka.store.schema import api_tokens, stage_moves, users


@pytest.fixture(params=["loop", "threads"])
def api(site: Site, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A test client; "loop": inside ``with`` (the lifespan runs: the loop's own PostgreSQL connections)."""
    client = TestClient(site.app)  # type: ignore[arg-type]
    if request.param == "loop":
        with client:
            pg = site.ws.engine.dialect.name == "postgresql"
            assert (site.app.state.async_moves is not None) == pg  # type: ignore[attr-defined]
            yield client
    else:
        yield client


def _log(site: Site) -> int:
    with site.ws.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(stage_moves)) or 0)


def _move(api: TestClient, token: str, deal: int, body: dict[str, object]):  # type: ignore[no-untyped-def]
    return api.post(f"/api/v1/deals/{deal}/move", json=body, headers={"Authorization": f"Bearer {token}"})


def _stage(site: Site, name: str) -> int:
    return site.ws.pipeline("Sales").stage(name).id


def test_a_move_answers_as_the_general_path(site: Site, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = accounts.create_token(site.ws, "head")
    # The general path's answer (a stage by name never takes the lane), to compare the lane's with.
    general = _move(api, token, site.boris_deal, {"stage": "Call", "expected_version": 1, "comment": "called"})
    assert general.status_code == 200, general.text
    if supported(site.ws.engine):  # the one statement does it all: the route's token look-up is not reached

        def no_look_up(*_: object) -> None:
            raise AssertionError("the general path ran")

        monkeypatch.setattr(accounts, "token_account", no_look_up)
    call = _stage(site, "Call")
    r = _move(api, token, site.anna_deal, {"stage": call, "expected_version": 1, "comment": "called"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == general.headers["content-type"]
    body = r.json()
    assert body.keys() == general.json().keys()
    assert body["deal_id"] == site.anna_deal and body["stage_id"] == call
    assert body["from_stage_id"] == _stage(site, "Request")
    assert (body["author"], body["reason"], body["comment"]) == ("Helen Head", None, "called")
    assert body["at"].endswith("Z") == general.json()["at"].endswith("Z")
    last = site.ws.history(site.anna_deal)[-1]
    assert (last.id, last.stage_id, last.from_stage_id, last.author, last.comment) == (
        body["id"],
        call,
        body["from_stage_id"],
        "Helen Head",
        "called",
    )
    assert last.at.isoformat().replace("+00:00", "Z") == body["at"]
    deal = site.ws.deal(site.anna_deal)
    assert (deal.stage_id, deal.version) == (call, 2)


def test_requests_off_the_lane_are_the_routes(site: Site, api: TestClient) -> None:
    """An invalid body, another content type, a session without CSRF: the route's answers, unchanged."""
    token = accounts.create_token(site.ws, "head")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/deals/{site.anna_deal}/move"
    before = _log(site)
    r = api.post(url, json={"stage": _stage(site, "Call")}, headers=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid")
    broken = b'{"stage": 2, "expected_version": 1'
    r = api.post(url, content=broken, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 422
    r = api.post(url, json={"stage": _stage(site, "Call"), "expected_version": 1}, headers={"Authorization": "Basic x"})
    assert r.status_code == 401
    # Two Authorization headers: the first counts, on the lane as on the route.
    two = [("authorization", "Basic x"), ("authorization", f"Bearer {token}"), ("content-type", "application/json")]
    r = api.post(url, content=b'{"stage": %d, "expected_version": 1}' % _stage(site, "Call"), headers=two)
    assert r.status_code == 401
    assert _log(site) == before


def test_a_stale_version_is_refused_and_nothing_written(site: Site, api: TestClient) -> None:
    token = accounts.create_token(site.ws, "head")
    assert _move(api, token, site.anna_deal, {"stage": _stage(site, "Call"), "expected_version": 1}).status_code == 200
    before = _log(site)
    r = _move(api, token, site.anna_deal, {"stage": _stage(site, "Contract"), "expected_version": 1})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "stale")
    assert _log(site) == before and site.ws.deal(site.anna_deal).version == 2


def test_a_manager_moves_only_their_own_deals(site: Site, api: TestClient) -> None:
    token = accounts.create_token(site.ws, "anna")
    before = _log(site)
    r = _move(api, token, site.boris_deal, {"stage": _stage(site, "Call"), "expected_version": 1})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    assert "Boris" not in r.text and "Vector" not in r.text
    assert _log(site) == before and site.ws.deal(site.boris_deal).version == 1
    assert _move(api, token, site.anna_deal, {"stage": _stage(site, "Call"), "expected_version": 1}).status_code == 200


@pytest.mark.parametrize("how", ["unknown", "revoked", "inactive"])
def test_a_bad_token_is_401_and_nothing_written(site: Site, api: TestClient, how: str) -> None:
    token = accounts.create_token(site.ws, "head")
    with site.ws.engine.begin() as conn:
        if how == "revoked":
            conn.execute(update(api_tokens).values(revoked=True))
        elif how == "inactive":
            conn.execute(update(users).where(users.c.login == "head").values(active=False))
    if how == "unknown":
        token = token[:-4] + "xxxx"
    before = _log(site)
    r = _move(api, token, site.anna_deal, {"stage": _stage(site, "Call"), "expected_version": 1})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthenticated")
    assert _log(site) == before and site.ws.deal(site.anna_deal).version == 1


def test_the_move_rules_hold(site: Site, api: TestClient) -> None:
    token = accounts.create_token(site.ws, "head")
    deal = site.anna_deal
    before = _log(site)
    # Already there; a lost stage without the reason the pipeline requires; a stage of another pipeline.
    other = site.ws.create_pipeline("Other", stages=["A", "B"], reasons=["Price"])
    for stage, status in [("Request", 422), ("Lost", 422), (other.stage("B").id, 404), (2**70, 404), (-1, 404)]:
        sid = _stage(site, stage) if isinstance(stage, str) else stage
        r = _move(api, token, deal, {"stage": sid, "expected_version": 1})
        assert r.status_code == status, (stage, r.text)
    assert _move(api, token, 999_999, {"stage": _stage(site, "Call"), "expected_version": 1}).status_code == 404
    assert _log(site) == before
    # With the reason it goes (the general path), with the catalogue's spelling.
    r = _move(api, token, deal, {"stage": _stage(site, "Lost"), "expected_version": 1, "reason": "no NEED"})
    assert r.status_code == 200 and r.json()["reason"] == "No need"


def test_a_move_before_the_last_one_is_refused(site: Site, api: TestClient) -> None:
    site.ws.move_deal(site.boris_deal, "Call", at=T("2099-01-01"))
    token = accounts.create_token(site.ws, "head")
    r = _move(api, token, site.boris_deal, {"stage": _stage(site, "Contract"), "expected_version": 2})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "move_refused")
    assert site.ws.deal(site.boris_deal).version == 2


def test_racing_moves_of_one_version_one_wins(site: Site, api: TestClient) -> None:
    token = accounts.create_token(site.ws, "head")
    stages = [_stage(site, s) for s in ("Call", "Contract")]
    for rnd in range(5):
        bodies = [{"stage": stages[(rnd + i) % 2], "expected_version": rnd + 1} for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            codes = [r.status_code for r in pool.map(lambda b: _move(api, token, site.anna_deal, b), bodies)]
        # One wins; the others were stale (409), or saw the winner's stage as their target (422: already there).
        assert codes.count(200) == 1, codes
        assert set(codes) <= {200, 409, 422}, codes
    assert site.ws.deal(site.anna_deal).version == 6
    assert len(site.ws.history(site.anna_deal)) == 6


def test_quick_move_refuses_without_writing(site: Site) -> None:
    """The store function itself: None and no row for a stale version, another's deal, a bad token."""
    head, anna = (accounts.token_digest(accounts.create_token(site.ws, x)) for x in ("head", "anna"))
    call = _stage(site, "Call")
    now = T("2026-02-01")
    before = _log(site)
    for digest, deal, version in [(head, site.anna_deal, 2), (anna, site.boris_deal, 1), ("0" * 64, site.anna_deal, 1)]:
        assert quick_move(site.ws.engine, QuickMove(digest, deal, call, version, None, now)) is None
    assert _log(site) == before
    done = quick_move(site.ws.engine, QuickMove(anna, site.anna_deal, call, 1, None, now))
    assert done is not None and (done.author, done.stage_id, done.at) == ("Anna", call, now)
    assert _log(site) == before + 1
