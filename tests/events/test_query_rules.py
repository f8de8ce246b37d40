"""Every validation rule refuses with its stable code and a message that says how to fix it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from voronka.analytics.events import (
    EventSource,
    Exclusion,
    FunnelQuery,
    FunnelQueryError,
    Step,
    Where,
    parse_duration,
    run_funnel,
)
from voronka.errors import InputError

CASES: list[tuple[str, dict[str, Any]]] = [
    ("steps.empty", {"steps": ()}),
    ("steps.too_many", {"steps": tuple(str(i) for i in range(17))}),
    ("steps.blank", {"steps": ("a", Step())}),
    ("steps.op", {"steps": (Step("a", where=(Where("x", "~", 1),)),)}),  # type: ignore[arg-type]
    ("steps.in_list", {"steps": (Step("a", where=(Where("x", "in", 1),)),)}),
    ("steps.negative", {"steps": ("a", Step("b", within=timedelta(seconds=-1)))}),
    ("steps.first_gap", {"steps": (Step("a", within=timedelta(1)), "b")}),
    ("steps.gap_window", {"steps": ("a", Step("b", within=timedelta(1), min_gap=timedelta(2)))}),
    ("window.positive", {"steps": ("a",), "window": 0}),
    ("duration.format", {"steps": ("a",), "window": "7 days"}),
    ("mode.unknown", {"steps": ("a",), "mode": "loose"}),
    ("count.unknown", {"steps": ("a",), "count": "events"}),
    ("mode.any_gaps", {"steps": ("a", Step("b", within=timedelta(1))), "mode": "any"}),
    ("mode.any_attempts", {"steps": ("a",), "mode": "any", "count": "attempts"}),
    ("mode.tracked", {"steps": ("a",), "tracked": ("x",)}),
    ("exclusions.too_many", {"steps": ("a", "b"), "exclusions": tuple(f"x{i}" for i in range(9))}),
    ("exclusions.mode_any", {"steps": ("a", "b"), "exclusions": ("x",), "mode": "any"}),
    ("exclusions.policy", {"steps": ("a", "b"), "exclusions": ("x",), "exclusion_policy": "drop"}),
    ("exclusions.range", {"steps": ("a", "b"), "exclusions": (Exclusion(Step("x"), after=2),)}),
    ("exclusions.range", {"steps": ("a",), "exclusions": ("x",)}),
    ("exclusions.is_step", {"steps": ("a", "b"), "exclusions": ("b",)}),
    ("range.empty", {"steps": ("a",), "start": datetime(2026, 2, 1, tzinfo=UTC), "end": datetime(2026, 1, 1)}),
    ("range.after", {"steps": ("a",), "after_range": "extend"}),
    ("breakdown.attribution", {"steps": ("a",), "by": "x", "attribution": "linear"}),
    ("breakdown.step", {"steps": ("a",), "by": "x", "attribution": "step"}),
    ("breakdown.step", {"steps": ("a",), "by": "x", "attribution_step": 1}),
    ("breakdown.no_by", {"steps": ("a",), "attribution": "last_touch"}),
    ("breakdown.mode_any", {"steps": ("a",), "by": "x", "mode": "any", "attribution": "last_touch"}),
    ("confidence.range", {"steps": ("a",), "confidence": 1.5}),
]


@pytest.mark.parametrize(("code", "kwargs"), CASES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CASES)])
def test_rule_refuses_with_its_code(code: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(FunnelQueryError) as info:
        FunnelQuery(**kwargs)
    assert info.value.code == code
    assert f"[{code}]" in str(info.value)
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


def test_a_valid_query_passes() -> None:
    q = FunnelQuery(steps=("a", Step("b", within=timedelta(hours=1))), window="2w", exclusions=("x",), by="ch")
    assert q.window_td == timedelta(weeks=2) and q.exclusion_list[0].before is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("7d", 604_800), ("12h", 43_200), ("30m", 1800), ("90s", 90), ("2w", 1_209_600), (60, 60)]
)
def test_durations(text: Any, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_source_errors(tmp_path: Path) -> None:
    q = FunnelQuery(steps=("a",))
    with pytest.raises(FunnelQueryError) as info:
        run_funnel(EventSource(str(tmp_path / "nope.parquet")), q)
    assert info.value.code == "source.missing"
    log = pd.DataFrame({"user": [1], "time": [0], "event": ["a"]})
    with pytest.raises(FunnelQueryError) as info:
        run_funnel(EventSource(log), q)
    assert info.value.code == "source.column" and "'entity'" in str(info.value) and "user" in str(info.value)
    bad = pd.DataFrame({"entity": [1, 2], "time": ["2026-01-01", "yesterday"], "event": ["a", "a"]})
    with pytest.raises(FunnelQueryError) as info:
        run_funnel(EventSource(bad), q)
    assert info.value.code == "source.time" and "'yesterday'" in str(info.value)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(FunnelQueryError) as info:
        run_funnel(EventSource(str(tmp_path / "x.json")), q)
    assert info.value.code == "source.format"


def test_unknown_engine() -> None:
    with pytest.raises(FunnelQueryError) as info:
        run_funnel(EventSource(pd.DataFrame()), FunnelQuery(steps=("a",)), engine="spark")  # type: ignore[arg-type]
    assert info.value.code == "engine.unknown"
