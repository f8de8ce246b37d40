"""Cohorts: deals grouped by the week or month they entered, followed as they mature.

Cell (cohort c, age a): of the deals that entered in period c, the share *won by the end of period c + a*
(cumulative conversion, with its Wilson interval) and the revenue of those wins. Age 0 is the entry period
itself. A cell is *observed* only when the end of period c + a is not after ``now``; later cells are left empty,
because a young cohort has not had the time to convert. Weeks are ISO weeks (Monday to Sunday), UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd

from voronka.analytics.diagnosis._common import Result
from voronka.analytics.diagnosis.deals import DealTable
from voronka.errors import InputError
from voronka.stats import wilson_array

Unit = Literal["week", "month"]


@dataclass
class CohortResult(Result):
    pipeline: str
    unit: str
    now: datetime
    rows: list[dict[str, object]]
    definition: str = field(default=__doc__ or "")

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def pivot(self, value: str = "conversion") -> pd.DataFrame:
        """Cohorts down, ages across (unobserved cells NaN)."""
        frame = self.to_pandas()
        if frame.empty:
            return frame
        return frame.pivot(index="cohort", columns="age", values=value)

    def heatmap(self, value: str = "conversion", title: str | None = None):  # type: ignore[no-untyped-def]
        """A Plotly heatmap of :meth:`pivot` (a ``plotly.graph_objects.Figure``)."""
        import plotly.graph_objects as go

        grid = self.pivot(value)
        sizes = self.to_pandas().groupby("cohort")["size"].first().reindex(grid.index)
        text = grid.map(lambda x: "" if pd.isna(x) else (f"{x:.0%}" if value == "conversion" else f"{x:,.0f}"))
        fig = go.Figure(
            go.Heatmap(
                z=grid.to_numpy(dtype=float),
                x=[str(c) for c in grid.columns],
                y=[f"{c} (n={int(n)})" for c, n in zip(grid.index, sizes, strict=True)],
                text=text.to_numpy(),
                texttemplate="%{text}",
                colorscale="Blues",
                hoverongaps=False,
            )
        )
        fig.update_layout(
            title=title or f"{self.pipeline}: {value} by {self.unit} of entry",
            xaxis_title=f"{self.unit}s since entry",
            yaxis={"autorange": "reversed"},
        )
        return fig


def _period_start(ts: pd.Series, unit: str) -> pd.Series:
    naive = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    if unit == "month":
        return naive.dt.to_period("M").dt.start_time
    return naive.dt.normalize() - pd.to_timedelta(naive.dt.day_of_week, unit="D")


def _shift(start: pd.Timestamp, unit: str, k: int) -> pd.Timestamp:
    return start + (pd.DateOffset(months=k) if unit == "month" else pd.Timedelta(weeks=k))


def cohort_table(
    table: DealTable, *, unit: Unit = "month", now: datetime | None = None, confidence: float = 0.95
) -> CohortResult:
    """Cumulative conversion to won and revenue per entry cohort and age."""
    if unit not in ("week", "month"):
        raise InputError(f"Unknown cohort unit {unit!r}: use week or month.")
    f, n = table.frame, table.n_open
    if now is None:
        now = pd.Timestamp(f[[c for c in f.columns if c.startswith("reach_")]].max().max()).to_pydatetime()
    limit = pd.Timestamp(now).tz_convert("UTC").tz_localize(None)
    start = _period_start(f["entry"], unit)
    won_at = f[f"reach_{n}"].where(f["status"] == "won").dt.tz_convert("UTC").dt.tz_localize(None)
    amount = f["amount"].fillna(0.0)
    rows: list[dict[str, object]] = []
    for cohort, idx in start.groupby(start).groups.items():
        size = len(idx)
        won_c, amt_c = won_at.loc[idx], amount.loc[idx]
        age = 0
        while True:
            end = _shift(pd.Timestamp(cohort), unit, age + 1)
            if end > limit:
                break
            got = (won_c < end).to_numpy()
            rows.append(
                {
                    "cohort": _label(pd.Timestamp(cohort), unit),
                    "age": age,
                    "size": size,
                    "won": int(got.sum()),
                    "revenue": float(amt_c[got].sum()),
                }
            )
            age += 1
    if rows:
        won = np.array([r["won"] for r in rows])
        size = np.array([r["size"] for r in rows])
        lo, hi = wilson_array(won, size, confidence)
        for r, a, b in zip(rows, lo, hi, strict=True):
            r["conversion"] = r["won"] / r["size"]
            r["ci_low"], r["ci_high"] = float(a), float(b)
    return CohortResult(table.pipeline.name, unit, now, rows)


def _label(start: pd.Timestamp, unit: str) -> str:
    if unit == "month":
        return start.strftime("%Y-%m")
    iso = start.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"
