"""The forecast and diagnosis pages and their JSON, on the web tests' scene plus a half year of history.

The scene of ``conftest.build_site`` (pipeline "Sales", Anna's and Boris's deals) gets 72 more deals from
2026-05-01 on, three days apart: Anna's and Boris's in turn, every third lost at Call, the others won a week after
the Call; the last six are still open. Enough finished stays to fit the forecast and to backtest it.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.scenarios import T
from tests.web.conftest import Site, build_site
from voronka.service.accounts import create_token
from voronka.service.workspace import Workspace


def _history(ws: Workspace, n: int = 72, start: date = date(2026, 5, 1)) -> None:
    with ws.transaction():  # one commit, not two hundred
        _add_history(ws, n, start)


def _add_history(ws: Workspace, n: int, start: date) -> None:
    for i in range(n):
        day = start + timedelta(days=3 * i)
        owner = "Anna" if i % 2 else "Boris"
        deal = ws.add_deal("Sales", f"History {i}", owner=owner, amount="1000", at=T(day.isoformat()))
        ws.move_deal(deal.id, "Call", at=T((day + timedelta(days=1)).isoformat()))
        if i >= n - 6:
            continue
        if i % 3 == 0:
            ws.move_deal(deal.id, "Lost", at=T((day + timedelta(days=3)).isoformat()), reason="No need")
        else:
            ws.move_deal(deal.id, "Won", at=T((day + timedelta(days=8)).isoformat()))


@pytest.fixture
def rich(ws: Workspace) -> Site:
    site = build_site(ws)
    _history(ws)
    return site


def _bearer(site: Site, login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(site.ws, login)}"}


def test_forecast_page_and_json_for_the_head(rich: Site) -> None:
    head = rich.client("head")
    pid = rich.ws.pipeline("Sales").id
    assert f'href="/forecast/{pid}"' in head.get(f"/board/{pid}").text  # in the funnel's navigation
    page = head.get(f"/forecast/{pid}?target=20000")
    assert page.status_code == 200, page.text
    for m in (1, 2, 3):
        assert f'data-testid="month-{m}-won"' in page.text and f'data-testid="month-{m}-revenue"' in page.text
    assert 'data-testid="p-target"' in page.text
    assert "2,000 Monte Carlo paths" in page.text
    assert 'data-testid="forecast-model">simple' in page.text  # under 200 finished stays: the simple model, said so
    r = head.get(f"/api/v1/pipelines/{pid}/forecast?target=20000")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["owner"] is None and data["paths"] == 2000 and data["model"].startswith("simple")
    assert [m["month"] for m in data["months"]] == [1, 2, 3]
    for m in data["months"]:
        for measure in ("won", "revenue"):
            q = m[measure]
            assert set(q) == {"mean", "p10", "p50", "p90"}
            assert 0 <= q["p10"] <= q["p50"] <= q["p90"]
    assert 0 <= data["p_target"] <= 1 and data["target"] == 20000
    # A higher target is never more likely to be reached (same seed, same paths).
    higher = head.get(f"/api/v1/pipelines/{pid}/forecast?target=200000").json()
    assert higher["p_target"] <= data["p_target"]
    assert head.get(f"/api/v1/pipelines/{pid}/forecast?target=-5").status_code == 422
    assert head.get(f"/forecast/{pid}?target=abc").status_code == 422


def test_backtest_fragment_and_json(rich: Site) -> None:
    head = rich.client("head")
    pid = rich.ws.pipeline("Sales").id
    assert f'hx-get="/forecast/{pid}/backtest"' in head.get(f"/forecast/{pid}").text
    frag = head.get(f"/forecast/{pid}/backtest")
    assert frag.status_code == 200 and 'data-testid="backtest-table"' in frag.text and "WAPE" in frag.text
    bt = head.get(f"/api/v1/pipelines/{pid}/backtest").json()
    assert [s["horizon"] for s in bt["summary"]] == [1, 2, 3]
    first = bt["summary"][0]
    assert first["origins"] >= 1 and first["wape"] is not None and 0 <= first["coverage_80"] <= 1


def test_thin_history_is_said_not_hidden(site: Site) -> None:
    """The plain scene (three deals, no moves) cannot be forecast: the page says why; the API answers 422."""
    head = site.client("head")
    pid = site.ws.pipeline("Sales").id
    page = head.get(f"/forecast/{pid}")
    assert page.status_code == 200 and 'data-testid="forecast-error"' in page.text
    assert "too little history" in page.text
    r = head.get(f"/api/v1/pipelines/{pid}/forecast")
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid"


def test_diagnosis_page_and_json_for_the_head(rich: Site) -> None:
    head = rich.client("head")
    pid = rich.ws.pipeline("Sales").id
    assert f'href="/diagnosis/{pid}"' in head.get(f"/board/{pid}").text
    page = head.get(f"/diagnosis/{pid}")
    assert page.status_code == 200, page.text
    assert 'data-testid="bottleneck"' in page.text and 'data-testid="diagnosis-stages"' in page.text
    assert 'data-testid="flagged"' in page.text
    data = head.get(f"/api/v1/pipelines/{pid}/diagnosis").json()
    assert {"bottleneck", "flagged_managers", "hints", "stages", "managers", "findings"} <= set(data)
    stages = data["stages"]["stages"]
    assert [s["stage"] for s in stages][:2] == ["Request", "Call"]
    for s in stages:
        assert s["extra_revenue_low"] <= s["extra_revenue"] <= s["extra_revenue_high"]
    if data["bottleneck"]:
        assert f"<strong>{data['bottleneck']}</strong>" in page.text


def test_a_manager_sees_only_their_own_forecast_and_no_team_numbers(rich: Site) -> None:
    pid = rich.ws.pipeline("Sales").id
    c = rich.client()
    anna = c.get(f"/api/v1/pipelines/{pid}/forecast?target=20000", headers=_bearer(rich, "anna")).json()
    head = c.get(f"/api/v1/pipelines/{pid}/forecast", headers=_bearer(rich, "head")).json()
    assert anna["owner"] == "Anna" and anna["p_target"] is None and anna["target"] is None
    # Anna's deals are about half of the funnel's: her expected revenue is below the whole funnel's.
    assert anna["months"][0]["revenue"]["mean"] < head["months"][0]["revenue"]["mean"]
    page = rich.client("anna").get(f"/forecast/{pid}?target=20000")
    assert page.status_code == 200 and "Boris" not in page.text and 'data-testid="p-target"' not in page.text
    assert f'href="/diagnosis/{pid}"' not in page.text and "/backtest" not in page.text
    # The team's numbers: the backtest and the diagnosis are refused, on pages and in the API.
    anna_site = rich.client("anna")
    for url in (f"/forecast/{pid}/backtest", f"/diagnosis/{pid}"):
        r = anna_site.get(url)
        assert r.status_code == 403 and "Boris" not in r.text
    for url in (f"/api/v1/pipelines/{pid}/backtest", f"/api/v1/pipelines/{pid}/diagnosis"):
        r = c.get(url, headers=_bearer(rich, "boris"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden" and "Anna" not in r.text


def test_unknown_pipeline_is_not_found(rich: Site) -> None:
    head = rich.client("head")
    for url in ("/forecast/999", "/diagnosis/999", "/api/v1/pipelines/999/forecast", "/api/v1/pipelines/999/diagnosis"):
        assert head.get(url).status_code == 404


def test_russian_labels(rich: Site) -> None:
    head = rich.client("head", headers={"accept-language": "ru"})
    pid = rich.ws.pipeline("Sales").id
    page = head.get(f"/forecast/{pid}?target=20000").text
    assert "Прогноз" in page and "Выигранные сделки" in page and "Вероятность достичь цели" in page
    assert "Диагностика" in page  # the navigation
    assert "Бэктест" in head.get(f"/forecast/{pid}/backtest").text
    diag = head.get(f"/diagnosis/{pid}").text
    assert "Узкое место" in diag and "Подсказки" in diag
    assert "recover " not in diag  # the benchmark's origin in Russian too
