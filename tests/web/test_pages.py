"""The board, the deal card, the dashboard and the API's answers, as the head and the managers see them."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import openpyxl
import pytest

from tests.scenarios import T
from tests.web.conftest import Site
from voronka.service import accounts
from voronka.web import dashboard
from voronka.web.board import CARDS_PER_COLUMN, BoardFilters, build_board


def _count(html: str, stage_id: int) -> int:
    found = re.search(rf'data-testid="count-{stage_id}">([^<]+)<', html)
    assert found
    return int(re.sub(r"\D", "", found.group(1)))


def test_board_columns_count_and_sum_every_matching_deal(site: Site) -> None:
    head = site.client("head")
    pipe = site.ws.pipeline("Sales")
    request = pipe.stage("Request").id
    html = head.get(f"/board/{pipe.id}").text
    assert _count(html, request) == 3
    assert "RUB280,000" in html  # 150 000 + 90 000 + 40 000, in English number format
    assert _count(head.get(f"/board/{pipe.id}?source=web").text, request) == 2
    assert _count(head.get(f"/board/{pipe.id}?segment=b2b").text, request) == 1
    assert _count(head.get(f"/board/{pipe.id}?created_from=2026-01-11&created_to=2026-01-12").text, request) == 1
    searched = head.get(f"/board/{pipe.id}?q=KITCHEN").text
    assert _count(searched, request) == 1 and "Kitchen for Ivanov" in searched
    r = head.get(f"/board/{pipe.id}?created_from=2026-02-01&created_to=2026-01-01")
    assert r.status_code == 422 and "The created period is empty" in r.text


def test_board_search_folds_cyrillic_case(site: Site) -> None:
    site.ws.add_deal("Sales", "Кухня для Иванова", owner="Anna", at=T("2026-01-13"))
    head = site.client("head")
    pipe = site.ws.pipeline("Sales")
    assert "Кухня для Иванова" in head.get(f"/board/{pipe.id}?q=кухня").text


def test_board_caps_cards_per_column_and_shows_more(site: Site) -> None:
    for i in range(CARDS_PER_COLUMN + 5):
        site.ws.add_deal("Sales", f"Bulk deal {i:03d}", owner="Anna", at=T("2026-02-01"))
    pipe = site.ws.pipeline("Sales")
    request = pipe.stage("Request")
    cols = build_board(site.ws, pipe, BoardFilters(), now=datetime(2026, 3, 1, tzinfo=UTC))
    first = cols[0]
    assert first.count == CARDS_PER_COLUMN + 8 and len(first.cards) == CARDS_PER_COLUMN and first.more == 8
    assert first.cards[0].title == "Kitchen for Ivanov"  # the longest in the stage first
    head = site.client("head")
    html = head.get(f"/board/{pipe.id}").text
    assert f"/board/{pipe.id}/column/{request.id}?offset={CARDS_PER_COLUMN}" in html
    more = head.get(f"/board/{pipe.id}/column/{request.id}?offset={CARDS_PER_COLUMN}").text
    shown = re.findall(r'data-testid="deal-(\d+)"', html + more)
    assert len(shown) == len(set(shown)) == CARDS_PER_COLUMN + 8
    assert "Show more" not in more


def test_stuck_marker_and_days_in_stage(site: Site) -> None:
    pipe = site.ws.pipeline("Sales")
    cols = build_board(site.ws, pipe, BoardFilters(), now=datetime(2026, 1, 13, tzinfo=UTC))
    cards = {c.title: c for c in cols[0].cards}
    assert cards["Kitchen for Ivanov"].days_in_stage == 3.0 and cards["Kitchen for Ivanov"].stuck
    assert not cards["Wardrobe for Petrov"].stuck  # 1.0 day: not over the 1-day SLA
    assert cards["Office for Vector"].stuck  # its open call has no due date: nothing is planned ahead
    site.ws.add_activity(site.anna_deal, "task", due_at=datetime(2026, 1, 14, tzinfo=UTC))
    cols = build_board(site.ws, pipe, BoardFilters(), now=datetime(2026, 1, 13, tzinfo=UTC))
    assert not {c.title: c for c in cols[0].cards}["Kitchen for Ivanov"].stuck  # a task is due ahead


def test_move_from_the_board_refuses_a_stale_version_and_asks_a_reason_for_lost(site: Site) -> None:
    anna = site.client("anna")
    pipe = site.ws.pipeline("Sales")
    json_ = {"accept": "application/json"}
    csrf = anna.headers["x-test-csrf"]
    ok = anna.post(
        f"/deals/{site.anna_deal}/move",
        data={"stage": str(pipe.stage("Call").id), "version": "1", "csrf": csrf},
        headers=json_,
    )
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = anna.post(
        f"/deals/{site.anna_deal}/move",
        data={"stage": str(pipe.stage("Contract").id), "version": "1", "csrf": csrf},
        headers=json_,
    )
    assert stale.status_code == 409 and "changed since you read it" in stale.json()["error"]["message"]
    lost = str(pipe.lost_stages[0].id)
    no_reason = anna.post(
        f"/deals/{site.anna_deal}/move", data={"stage": lost, "version": "2", "csrf": csrf}, headers=json_
    )
    assert no_reason.status_code == 422 and "needs a loss reason" in no_reason.json()["error"]["message"]
    done = anna.post(
        f"/deals/{site.anna_deal}/move",
        data={"stage": lost, "version": "2", "reason": "too expensive", "csrf": csrf},
        headers=json_,
    )
    assert done.status_code == 200
    moves = site.ws.history(site.anna_deal)
    assert [m.reason for m in moves] == [None, None, "Too expensive"] and moves[-1].author == "Anna"


def test_deal_card_edit_history_activities_win_and_reopen(site: Site) -> None:
    head = site.client("head")
    csrf = head.headers["x-test-csrf"]
    d = site.anna_deal
    page = head.get(f"/deals/{d}").text
    assert "Kitchen for Ivanov" in page and 'data-testid="timeline"' in page
    r = head.post(
        f"/deals/{d}/edit",
        data={
            "version": "1",
            "title": "Kitchen, big",
            "amount": "175 000",
            "currency": "rub",
            "source": "web",
            "segment": "",
            "owner": "Boris",
            "csrf": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    deal = site.ws.deal(d)
    assert (deal.title, int(deal.amount), deal.currency, deal.segment, deal.owner, deal.version) == (
        "Kitchen, big",
        175000,
        "RUB",
        None,
        "Boris",
        2,
    )
    stale = head.post(f"/deals/{d}/edit", data={"version": "1", "title": "Old tab", "currency": "RUB", "csrf": csrf})
    assert stale.status_code == 409 and "changed since you read it" in stale.text
    assert site.ws.deal(d).title == "Kitchen, big"
    head.post(
        f"/deals/{d}/activities", data={"kind": "meeting", "note": "showroom", "due": "2030-01-05T10:00", "csrf": csrf}
    )
    act = next(a for a in site.ws.activities(d) if a.note == "showroom")
    assert act.due_at == datetime(2030, 1, 5, 10, tzinfo=UTC) and not act.done and act.author == "Helen Head"
    head.post(f"/activities/{act.id}/complete", data={"csrf": csrf})
    assert next(a for a in site.ws.activities(d) if a.id == act.id).done
    pipe = site.ws.pipeline("Sales")
    head.post(f"/deals/{d}/move", data={"stage": str(pipe.won_stage.id), "version": "2", "csrf": csrf})
    assert site.ws.deal(d).stage_id == pipe.won_stage.id
    page = head.get(f"/deals/{d}").text
    assert "Re-open" in page
    head.post(f"/deals/{d}/move", data={"stage": str(pipe.stage("Contract").id), "version": "3", "csrf": csrf})
    assert [m.stage_id for m in site.ws.history(d)][-2:] == [pipe.won_stage.id, pipe.stage("Contract").id]
    bad = head.post(f"/deals/{d}/activities", data={"kind": "lunch", "csrf": csrf})
    assert bad.status_code == 422 and "Unknown activity kind" in bad.text


def test_api_move_patch_and_errors_have_one_shape(site: Site) -> None:
    c = site.client()
    auth = {"Authorization": f"Bearer {accounts.create_token(site.ws, 'head')}"}
    d = site.boris_deal
    r = c.post(f"/api/v1/deals/{d}/move", json={"stage": "Call", "expected_version": 1}, headers=auth)
    assert r.status_code == 200 and r.json()["stage_id"] == site.ws.pipeline("Sales").stage("Call").id
    r = c.post(f"/api/v1/deals/{d}/move", json={"stage": "Contract", "expected_version": 1}, headers=auth)
    assert r.status_code == 409 and r.json()["error"]["code"] == "stale"
    r = c.post(f"/api/v1/deals/{d}/move", json={"stage": "Lost", "expected_version": 2}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "move_refused"
    r = c.post(f"/api/v1/deals/{d}/move", json={"stage": "Nowhere", "expected_version": 2}, headers=auth)
    assert r.status_code == 404 and "Stage 'Nowhere' is not in pipeline 'Sales'" in r.json()["error"]["message"]
    r = c.post(f"/api/v1/deals/{d}/move", json={"expected_version": "x"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid" and r.json()["error"]["details"]
    r = c.patch(f"/api/v1/deals/{d}", json={"expected_version": 2, "amount": "95000.50"}, headers=auth)
    assert r.status_code == 200 and r.json()["version"] == 3
    assert c.get(f"/api/v1/deals/{d}/history", headers=auth).json()[-1]["author"] == "Helen Head"
    r = c.post(f"/api/v1/deals/{d}/activities", json={"kind": "task", "due_at": "2030-01-01T10:00:00"}, headers=auth)
    assert r.status_code == 201 and r.json()["due_at"] == "2030-01-01T10:00:00Z"  # no zone: UTC
    r = c.post(f"/api/v1/deals/{d}/move", json={"stage": "Call", "expected_version": 3}, headers=auth)
    assert r.status_code == 422 and "already in stage 'Call'" in r.json()["error"]["message"]
    r = c.post("/api/v1/deals/999999/move", json={"stage": "Call", "expected_version": 1}, headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = c.get("/api/v1/nothing-here", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_dashboard_shows_the_funnels_numbers(site: Site) -> None:
    ws = site.ws
    pipe = ws.pipeline("Sales")
    ws.move_deal(site.anna_deal, "Call", at=T("2026-01-12"))
    ws.move_deal(site.anna_deal, "Won", at=T("2026-01-20"))
    ws.move_deal(site.boris_deal, "Lost", reason="No need", at=T("2026-01-15"))
    head = site.client("head")
    html = head.get(f"/dashboard/{pipe.id}?by=owner").text
    f = ws.funnel(pipe.id)
    assert f.overall.entered == 3 and f.overall.won == 1 and f.overall.lost == 1
    for key, value in (("entered", 3), ("won", 1), ("lost", 1), ("open", 1)):
        assert f'data-testid="kpi-{key}">{value}<' in html
    assert 'data-testid="groups-table"' in html and "Anna" in html and "Boris" in html
    assert "Wilson" in html  # the definition next to the numbers
    assert "No need" in html  # drop-off by reason
    period = head.get(f"/dashboard/{pipe.id}?from=2026-01-11&to=2026-01-12").text
    assert 'data-testid="kpi-entered">1<' in period
    bad = head.get(f"/dashboard/{pipe.id}?by=colour")
    assert bad.status_code == 422 and "Unknown breakdown" in bad.text


def test_time_in_stage_histogram_agrees_with_the_funnels_median(site: Site) -> None:
    ws = site.ws
    ws.move_deal(site.anna_deal, "Call", at=T("2026-01-12"))  # 2 days in Request
    ws.move_deal(site.anna_deal, "Request", at=T("2026-01-13"))  # back: 1 day in Call
    ws.move_deal(site.anna_deal, "Call", at=T("2026-01-14"))  # 1 more day in Request: 3 in total
    ws.move_deal(site.boris_deal, "Call", at=T("2026-01-16"))  # 5 days in Request
    pipe = ws.pipeline("Sales")
    times = dashboard.stage_times(ws, pipe)
    assert sorted(times["Request"]) == [3.0, 5.0]
    assert times["Call"] == []  # both deals are in Call now: no finished stay counts
    assert ws.funnel(pipe.id).stages[0].median_days == pytest.approx(4.0)
    assert dashboard.stage_times(ws, pipe, owner="Anna")["Request"] == [3.0]


def test_dashboard_tables_download_as_csv_and_xlsx(site: Site) -> None:
    site.ws.move_deal(site.boris_deal, "Lost", reason="No need", at=T("2026-01-15"))
    head = site.client("head")
    pid = site.ws.pipeline("Sales").id
    for name in dashboard.TABLES:
        csv = head.get(f"/dashboard/{pid}/export/{name}.csv?by=owner")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        xlsx = head.get(f"/dashboard/{pid}/export/{name}.xlsx?by=owner")
        book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
        assert book.active.max_row >= 1
    reasons = head.get(f"/dashboard/{pid}/export/reasons.csv").text
    assert "Request,No need,1" in reasons
    ru = head.get(f"/dashboard/{pid}/export/reasons.csv", headers={"accept-language": "ru"})
    # The head chose no language: Accept-Language gives Russian, and a Russian CSV uses ';'
    assert "Этап;Причина отказа;Сделки" in ru.content.decode("utf-8-sig")
    assert head.get(f"/dashboard/{pid}/export/secrets.csv").status_code == 404


def test_the_api_schema_has_every_api_route_with_its_tag_and_errors_and_no_page(site: Site) -> None:
    # The app takes the routers' routes as they are (not through include_router): the schema must still list
    # every API operation under /api/v1 with the router's tag and error answers, and none of the pages.
    from voronka.web import api, pages

    schema = site.client().get("/api/v1/openapi.json").json()
    listed = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    routes = {(m, r.path) for r in api.router.routes for m in r.methods if r.include_in_schema}
    assert listed == routes and all(p.startswith("/api/v1/") for _, p in listed)
    for ops in schema["paths"].values():
        for op in ops.values():
            assert op["tags"] == ["v1"] and {"401", "403", "404", "409", "422"} <= set(op["responses"])
    assert not {r.path for r in pages.router.routes} & set(schema["paths"])
