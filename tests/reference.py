"""A slow, obvious model of the stage funnel, written from the semantics in ``stage_funnel``'s docstring.

It reads each deal's full history through the public API (``ws.deal``, ``ws.history``) and applies the rules
deal by deal, with plain Python. Property tests compare Voronka's vectorised engine with it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy.stats import binomtest

from voronka.domain.pipeline import StageKind
from voronka.service.workspace import Workspace

DAY_S = 86_400.0


def wilson_ref(k: int, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Wilson score interval computed by SciPy (an implementation independent of voronka.stats)."""
    if n == 0:
        return None, None
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass
class DealFacts:
    """What the funnel needs to know about one deal, read off its history."""

    id: int
    entry: datetime
    status: str  # open, won, lost, moved_out
    visited: list[int]  # positions of the open stages entered in this pipeline, in log order
    current: int | None  # open now: position of its stage
    reason: str | None  # lost now: reason of the final move to lost
    stays: dict[int, float] = field(default_factory=dict)  # finished seconds per open stage
    cycle: float | None = None  # won now: seconds from entry to the move into won
    owner: str | None = None
    source: str | None = None
    segment: str | None = None

    def level(self, n: int) -> int:
        """The furthest stage reached: n when won now, else the furthest open stage ever entered."""
        return n if self.status == "won" else max(self.visited)


def deal_facts(ws: Workspace, pipeline: str, deal_ids: list[int]) -> tuple[int, list[DealFacts]]:
    pipe = ws.pipeline(pipeline)
    n = len(pipe.open_stages)
    pos = {s.id: s.position for s in pipe.stages if s.kind is StageKind.OPEN}
    lost_ids = {s.id for s in pipe.lost_stages}
    out = []
    for deal_id in deal_ids:
        deal = ws.deal(deal_id)
        moves = ws.history(deal_id)
        here = [m for m in moves if m.pipeline_id == pipe.id]
        if not here:
            continue
        visited = [pos[m.stage_id] for m in here if m.stage_id in pos]
        assert visited, "the model does not cover deals that never were in an open stage of the pipeline"
        if deal.pipeline_id != pipe.id:
            status = "moved_out"
        elif deal.stage_id == pipe.won_stage.id:
            status = "won"
        elif deal.stage_id in lost_ids:
            status = "lost"
        else:
            status = "open"
        stays: dict[int, float] = defaultdict(float)
        for m, nxt in zip(moves, moves[1:], strict=False):
            # A stay in an open stage of this pipeline ends at the deal's next move, wherever that goes.
            if m.pipeline_id == pipe.id and m.stage_id in pos:
                stays[pos[m.stage_id]] += (nxt.at - m.at).total_seconds()
        current = pos[deal.stage_id] if status == "open" else None
        if current is not None:
            stays.pop(current, None)  # still in the stage: not a finished time
        out.append(
            DealFacts(
                id=deal_id,
                entry=here[0].at,
                status=status,
                visited=visited,
                current=current,
                reason=(here[-1].reason or "(no reason)") if status == "lost" else None,
                stays=dict(stays),
                cycle=(moves[-1].at - here[0].at).total_seconds() if status == "won" else None,
                owner=deal.owner,
                source=deal.source,
                segment=deal.segment,
            )
        )
    return n, out


def _q(values: list[float], q: float) -> float | None:
    return None if not values else round(float(np.quantile(np.array(values), q)) / DAY_S, 3)


def tabulate(pipe_stage_names: list[str], n: int, facts: list[DealFacts], strict: bool, conf: float) -> dict[str, Any]:
    """The report of one population of deals, as plain dicts shaped like ``StageFunnelResult.to_dict()``."""
    entered = len(facts)
    rows = []
    for k, name in enumerate(pipe_stage_names):
        is_open = k < n
        if strict:
            reached = sum(1 for f in facts if k in f.visited or (k == n and f.status == "won"))
            passed = sum(1 for f in facts if k in f.visited and f.level(n) > k) if is_open else None
        else:
            reached = sum(1 for f in facts if f.level(n) >= k)
            passed = sum(1 for f in facts if f.level(n) >= k + 1) if is_open else None
        lost_here = [f for f in facts if f.status == "lost" and f.visited[-1] == k] if is_open else []
        moved_here = [f for f in facts if f.status == "moved_out" and f.visited[-1] == k] if is_open else []
        times = [f.stays[k] for f in facts if k in f.stays] if is_open else []
        lo, hi = wilson_ref(passed, reached, conf) if is_open else (None, None)
        slo, shi = wilson_ref(reached, entered, conf)
        rows.append(
            {
                "name": name,
                "reached": reached,
                "passed": passed,
                "conversion": (passed / reached if reached else None) if is_open else None,
                "ci_low": lo,
                "ci_high": hi,
                "conversion_from_start": reached / entered if entered else None,
                "from_start_ci_low": slo,
                "from_start_ci_high": shi,
                "lost": len(lost_here),
                "lost_reasons": dict(Counter(f.reason for f in lost_here)),
                "moved_out": len(moved_here),
                "open": sum(1 for f in facts if f.current == k) if is_open else 0,
                "median_days": _q(times, 0.5),
                "p90_days": _q(times, 0.9),
            }
        )
    won = sum(1 for f in facts if f.status == "won")
    cycles = [f.cycle for f in facts if f.cycle is not None]
    lo, hi = wilson_ref(won, entered, conf)
    overall = {
        "entered": entered,
        "won": won,
        "lost": sum(1 for f in facts if f.status == "lost"),
        "open": sum(1 for f in facts if f.status == "open"),
        "moved_out": sum(1 for f in facts if f.status == "moved_out"),
        "conversion": won / entered if entered else None,
        "ci_low": lo,
        "ci_high": hi,
        "median_cycle_days": _q(cycles, 0.5),
        "p90_cycle_days": _q(cycles, 0.9),
    }
    return {"stages": rows, "overall": overall}


def reference_funnel(
    ws: Workspace,
    pipeline: str,
    deal_ids: list[int],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    strict: bool = False,
    by: str | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The funnel of ``pipeline`` over the deals ``deal_ids`` (every deal that might have been in it)."""
    pipe = ws.pipeline(pipeline)
    names = [s.name for s in pipe.open_stages] + [pipe.won_stage.name]
    n, facts = deal_facts(ws, pipeline, deal_ids)
    facts = [f for f in facts if (start is None or f.entry >= start) and (end is None or f.entry < end)]
    out = tabulate(names, n, facts, strict, confidence)
    out["groups"] = []
    if by is not None:
        key = {
            "owner": lambda f: f.owner or "(none)",
            "source": lambda f: f.source or "(none)",
            "segment": lambda f: f.segment or "(none)",
            "month": lambda f: f.entry.strftime("%Y-%m"),
        }[by]
        groups: dict[str, list[DealFacts]] = defaultdict(list)
        for f in facts:
            groups[key(f)].append(f)
        out["groups"] = [{"group": g, **tabulate(names, n, fs, strict, confidence)} for g, fs in groups.items()]
    return out


def assert_matches(actual: dict[str, Any], expected: dict[str, Any], where: str = "") -> None:
    """Compare a report (``to_dict()``) with a model report: counts exactly, rates and intervals to 1e-9,
    days to the engine's rounding (1e-3)."""
    for key, want in expected.items():
        got = actual[key]
        label = f"{where}.{key}" if where else key
        if isinstance(want, dict):
            if key == "lost_reasons":
                assert got == want, label
            else:
                assert_matches(got, want, label)
        elif key == "groups":
            got_by = {g["group"]: g for g in got}
            assert sorted(got_by) == sorted(g["group"] for g in want), f"{label}: groups {sorted(got_by)}"
            for w in want:
                assert_matches(got_by[w["group"]], w, f"{label}[{w['group']}]")
        elif isinstance(want, list):
            assert len(got) == len(want), f"{label}: {len(got)} rows, want {len(want)}"
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                assert_matches(g, w, f"{label}[{i}]")
        elif want is None or got is None:
            assert got is None and want is None, f"{label}: got {got!r}, want {want!r}"
        elif isinstance(want, int) and not isinstance(want, bool):
            assert got == want, f"{label}: got {got!r}, want {want!r}"
        elif isinstance(want, float):
            tol = 1.001e-3 if key.endswith("_days") else 1e-9
            assert abs(got - want) <= tol, f"{label}: got {got!r}, want {want!r}"
        else:
            assert got == want, f"{label}: got {got!r}, want {want!r}"
