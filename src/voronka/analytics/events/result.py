"""What an event funnel returns: per step counts, conversions with Wilson intervals, times between steps, the same
per breakdown value, and the units (entities or attempts) behind them for drill-down.

Both engines produce the same *units* — one row per entity (or per attempt): the steps it reached and the time of
each step of its best attempt — and this module turns units into numbers, so equal units give equal results.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from voronka.analytics.events.query import FunnelQuery
from voronka.stats.intervals import wilson_array

if TYPE_CHECKING:
    import pandas as pd

HIST_EDGES_S: tuple[float, ...] = (0, 60, 300, 900, 3600, 21_600, 86_400, 259_200, 604_800, 2_592_000, float("inf"))
NONE_LABEL = "(none)"


@dataclass
class StepStats:
    """One step: how many units reached it, conversions (with Wilson intervals) and times in seconds."""

    name: str
    entities: int
    conversion: float | None  # from the previous step; None at step 1
    ci_low: float | None
    ci_high: float | None
    conversion_from_start: float | None
    from_start_ci_low: float | None
    from_start_ci_high: float | None
    dropped: int  # reached this step and not the next one
    median_seconds_from_previous: float | None
    p90_seconds_from_previous: float | None
    median_seconds_from_start: float | None
    p90_seconds_from_start: float | None
    histogram_from_previous: list[int] = field(default_factory=list)
    histogram_from_start: list[int] = field(default_factory=list)


@dataclass
class BreakdownGroup:
    value: str
    steps: list[StepStats]


@dataclass
class Units:
    """The units behind the numbers: entity id, steps reached (-1 = removed by an exclusion), breakdown code, and
    the time (µs since the epoch) of each step of the unit's best attempt (``MISSING`` when not reached)."""

    entity: NDArray[Any]
    level: NDArray[np.int8]
    code: NDArray[np.int32]
    times: NDArray[np.int64]


@dataclass
class FunnelResult:
    """An event funnel's result. ``steps`` is the whole population; ``breakdown`` the same per value."""

    steps: list[StepStats]
    breakdown: list[BreakdownGroup]
    definition: str
    mode: str
    count: str
    window_seconds: float
    by: str | None
    attribution: str | None
    removed: int
    engine: str
    units: Units = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("units", "_labels"):
                out[f.name] = [asdict(v) for v in value] if isinstance(value, list) else value
        out["histogram_edges_seconds"] = [e if np.isfinite(e) else None for e in HIST_EDGES_S]
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        """One row per step (``breakdown`` is ``None``), then one row per step and breakdown value."""
        import pandas as pd

        rows = [{"breakdown": None, "step": i + 1, **_flat(s)} for i, s in enumerate(self.steps)]
        for g in self.breakdown:
            rows += [{"breakdown": g.value, "step": i + 1, **_flat(s)} for i, s in enumerate(g.steps)]
        return pd.DataFrame(rows)

    def entity_ids(self, step: int, *, dropped: bool = False, value: str | None = None) -> list[Any]:
        """The entities that reached step ``step`` (1-based), or with ``dropped`` those that reached it and not the
        next; ``value`` keeps one breakdown value. Sorted, each entity once."""
        if not 1 <= step <= len(self.steps):
            raise ValueError(f"step {step} is not in 1..{len(self.steps)}")
        import pandas as pd

        u = self.units
        keep = (u.level == step) & (step < len(self.steps)) if dropped else u.level >= step
        if value is not None:
            keep &= self._labels_of(u.code) == value
        ids = pd.unique(u.entity[keep])
        return sorted(ids.tolist())

    def over_time(self, period: Literal["day", "week", "month"] = "week", confidence: float = 0.95) -> pd.DataFrame:
        """Conversion from step 1 to the last step per entry period (the time of the unit's step 1, UTC)."""
        import pandas as pd

        u = self.units
        keep = u.level >= 1
        start = pd.to_datetime(u.times[keep, 0], unit="us", utc=True)
        freq = {"day": "D", "week": "W-SUN", "month": "M"}[period]
        key = start.tz_localize(None).to_period(freq).start_time
        frame = pd.DataFrame({"period": key, "converted": u.level[keep] >= len(self.steps)})
        g = frame.groupby("period")["converted"].agg(["size", "sum"]).rename(columns={"size": "entered"})
        g = g.rename(columns={"sum": "converted"}).reset_index()
        g["conversion"] = g["converted"] / g["entered"]
        g["ci_low"], g["ci_high"] = wilson_array(g["converted"], g["entered"], confidence)
        return g

    _labels: NDArray[Any] | None = field(default=None, repr=False)

    def _labels_of(self, codes: NDArray[np.int32]) -> NDArray[Any]:
        labels = self._labels if self._labels is not None else np.array([], dtype=object)
        out = np.full(len(codes), NONE_LABEL, dtype=object)
        ok = (codes >= 0) & (codes < len(labels))
        out[ok] = labels[codes[ok]]
        return out


def _flat(s: StepStats) -> dict[str, Any]:
    d = asdict(s)
    d.pop("histogram_from_previous")
    d.pop("histogram_from_start")
    return d


def step_stats(names: list[str], level: NDArray[np.int8], times: NDArray[np.int64], conf: float) -> list[StepStats]:
    """Counts, conversions and times per step over the given units (removed ones already dropped).

    Units in descending level (as ``build_result`` passes them) make the units that reached each step a prefix:
    slices, not a boolean selection of the times per step."""
    n = len(names)
    if len(level) > 1 and np.any(level[1:] > level[:-1]):
        order = np.argsort(-level.astype(np.int64), kind="stable")
        level, times = level[order], times[order]
    reached = np.array([(level >= k + 1).sum() for k in range(n)], dtype=np.int64)
    prev = np.r_[reached[0], reached[:-1]]
    lo_p, hi_p = wilson_array(reached, prev, conf)
    lo_s, hi_s = wilson_array(reached, np.full(n, reached[0]), conf)
    out = []
    for k in range(n):
        r = int(reached[k])  # the units that reached step k + 1 come first
        from_prev = (times[:r, k] - times[:r, k - 1]) / 1e6 if k else np.zeros(0)
        from_start = (times[:r, k] - times[:r, 0]) / 1e6 if k else np.zeros(0)
        first = reached[0] > 0
        prev_q, start_q = _q2(from_prev), _q2(from_start)
        out.append(
            StepStats(
                name=names[k],
                entities=int(reached[k]),
                conversion=_rate(reached[k], prev[k]) if k else None,
                ci_low=_f(lo_p[k]) if k else None,
                ci_high=_f(hi_p[k]) if k else None,
                conversion_from_start=_rate(reached[k], reached[0]),
                from_start_ci_low=_f(lo_s[k]) if first else None,
                from_start_ci_high=_f(hi_s[k]) if first else None,
                dropped=int(reached[k] - reached[k + 1]) if k + 1 < n else 0,
                median_seconds_from_previous=prev_q[0],
                p90_seconds_from_previous=prev_q[1],
                median_seconds_from_start=start_q[0],
                p90_seconds_from_start=start_q[1],
                histogram_from_previous=np.histogram(from_prev, bins=HIST_EDGES_S)[0].tolist() if k else [],
                histogram_from_start=np.histogram(from_start, bins=HIST_EDGES_S)[0].tolist() if k else [],
            )
        )
    return out


def _rate(k: int, n: int) -> float | None:
    return float(k / n) if n else None


def _f(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _q2(x: NDArray[np.float64]) -> tuple[float | None, float | None]:
    """Median and p90 (linear interpolation), from one partial sort."""
    if not len(x):
        return None, None
    median, p90 = np.quantile(x, [0.5, 0.9])
    return float(median), float(p90)


def definition_text(q: FunnelQuery) -> str:
    secs = int(q.window_td.total_seconds())
    w = next(
        (f"{secs // u}{n}" for u, n in ((604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m")) if secs % u == 0),
        f"{secs}s",
    )
    mode = {
        "ordered": "steps in order, other events in between allowed",
        "strict": "steps in order, no other tracked event in between",
        "any": "steps in any order",
    }[q.mode]
    rng = f"[{q.start or '-inf'}, {q.end or '+inf'})"
    later = "may fall after the range within the window" if q.after_range == "allow" else "must fall in the range"
    text = (
        f"Units: {q.count} whose step 1 is in {rng}; later steps {later}. Mode: {mode}. Window {w} from step 1 "
        f"(inclusive). Each step-1 event starts an attempt; an event extends the latest attempt it can "
        f"(latest-entry rule); one event advances an attempt one step; equal times are ordered by step."
    )
    if q.exclusion_list:
        what = "are removed" if q.exclusion_policy == "remove" else "keep the steps reached before it"
        text += f" Entities whose attempt meets an exclusion {what}."
    if q.by:
        text += f" Breakdown by {q.by}, {q.attribution.replace('_', ' ')} attribution."
    return text + f" Intervals: Wilson {q.confidence:.0%}."


def build_result(q: FunnelQuery, units: Units, labels: NDArray[Any] | None, engine: str) -> FunnelResult:
    """Aggregate units into a :class:`FunnelResult`."""
    keep = units.level != 0
    if not keep.all():
        units = Units(units.entity[keep], units.level[keep], units.code[keep], units.times[keep])
    ok = units.level > 0
    everyone = bool(ok.all())
    names = [s.label for s in q.step_list]
    conf = q.confidence
    # Units in descending level (a radix sort of one byte), so step_stats takes prefixes.
    level, times, codes = (
        (units.level, units.times, units.code) if everyone else (units.level[ok], units.times[ok], units.code[ok])
    )
    down = np.argsort(-level, kind="stable")
    steps = step_stats(names, level[down], times[down], conf)
    groups: list[BreakdownGroup] = []
    result = FunnelResult(
        steps=steps,
        breakdown=groups,
        definition=definition_text(q),
        mode=q.mode,
        count=q.count,
        window_seconds=q.window_td.total_seconds(),
        by=q.by,
        attribution=None if q.by is None else q.attribution,
        removed=int((~ok).sum()),
        engine=engine,
        units=units,
        _labels=labels,
    )
    if q.by is not None:
        order = down[np.argsort(codes[down], kind="stable")]  # by code, descending level within a code
        codes, level, times = codes[order], level[order], times[order]
        cuts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, np.int64)
        bounds = np.r_[cuts, len(codes)]
        value_labels = result._labels_of(codes[cuts])
        for i in range(len(cuts)):
            a, b = bounds[i], bounds[i + 1]
            groups.append(BreakdownGroup(str(value_labels[i]), step_stats(names, level[a:b], times[a:b], conf)))
        groups.sort(key=lambda g: (-g.steps[0].entities, g.value))
    return result
