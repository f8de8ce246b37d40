"""The public REES46 sample (17,434 real events): view → cart → purchase per session and per user, checked against
a plain-Python latest-entry walk, ClickHouse's windowFunnel and the ClickHouse engine."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from voronka.analytics.events import EventSource, FunnelQuery, run_funnel

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "rees46_multicategory_sample"
FILE = DATA / "2019-Oct_first17434rows.csv"
STEPS = ("view", "cart", "purchase")

pytestmark = pytest.mark.skipif(not FILE.exists(), reason=f"the REES46 sample is not at {FILE}")


def reference(entity: str, window_s: int) -> list[int]:
    """The latest-entry rule, written as plainly as possible: per entity, rows in (time, step) order; level k's
    state is the start time of the latest attempt that reached it."""
    log = pd.read_csv(FILE, usecols=["event_time", "event_type", entity])
    log["t"] = pd.to_datetime(log["event_time"].str.replace(" UTC", "", regex=False)).astype("int64") // 10**9
    log = log[log["event_type"].isin(STEPS)]
    log["k"] = log["event_type"].map({s: i for i, s in enumerate(STEPS)})
    reached: dict[int, int] = defaultdict(int)
    for _, rows in log.sort_values(["t", "k"], kind="stable").groupby(entity, sort=False):
        start: list[int | None] = [None] * len(STEPS)
        best = 0
        for t, k in zip(rows["t"], rows["k"], strict=True):
            if k == 0:
                start[0] = t
            elif start[k - 1] is not None and t - start[k - 1] <= window_s:
                start[k] = start[k - 1]
            best = max(best, max((i + 1 for i, s in enumerate(start) if s is not None), default=0))
        for i in range(best):
            reached[i] += 1
    return [reached[i] for i in range(len(STEPS))]


@pytest.mark.parametrize(("entity", "expected"), [("user_session", [5066, 118, 65]), ("user_id", [4504, 111, 62])])
def test_view_cart_purchase(entity: str, expected: list[int]) -> None:
    source = EventSource(str(FILE), entity=entity, time="event_time", event="event_type")
    q = FunnelQuery(steps=STEPS, window="1d")
    r = run_funnel(source, q)
    assert [s.entities for s in r.steps] == expected == reference(entity, 86_400)
    assert r.to_dict()["steps"] == {**run_funnel(source, q, engine="clickhouse").to_dict()}["steps"]
    from voronka.analytics.events import clickhouse as ch

    runner = ch._Runner(None)
    rel = ch.relation(source, None)
    levels = dict(runner.rows(ch.window_funnel_sql(q, source, rel, ch.column_types(runner, rel))))
    assert [sum(n for lvl, n in levels.items() if lvl >= k) for k in (1, 2, 3)] == expected


def test_purchase_without_cart_is_not_a_conversion_through_cart() -> None:
    # 135 of 200 purchasing sessions have no cart event: view -> purchase counts them, view -> cart -> purchase not.
    source = EventSource(str(FILE), entity="user_session", time="event_time", event="event_type")
    r = run_funnel(source, FunnelQuery(steps=("view", "purchase"), window="1d"))
    assert r.steps[1].entities > run_funnel(source, FunnelQuery(steps=STEPS, window="1d")).steps[2].entities
