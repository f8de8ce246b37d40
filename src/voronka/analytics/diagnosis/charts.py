"""Plotly figures of the diagnosis reports (funnel, bottleneck impact, managers' funnel plot)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from voronka.analytics.diagnosis.bottleneck import BottleneckResult
from voronka.analytics.diagnosis.managers import ManagersResult


def funnel_figure(b: BottleneckResult, title: str) -> go.Figure:
    """Deals decided at each stage and how many passed it."""
    fig = go.Figure(
        go.Funnel(
            y=[s.stage for s in b.stages],
            x=[s.decided for s in b.stages],
            text=[f"{s.rate:.0%} → next" if s.rate is not None else "" for s in b.stages],
            textinfo="value+text",
        )
    )
    fig.update_layout(title=title, margin={"l": 220})
    return fig


def impact_figure(b: BottleneckResult, title: str, currency: str = "") -> go.Figure:
    """Extra revenue per stage at the benchmark, with its 95% interval."""
    stages = b.ranked()[::-1]
    fig = go.Figure(
        go.Bar(
            x=[s.extra_revenue for s in stages],
            y=[s.stage for s in stages],
            orientation="h",
            marker_color=["#d62728" if s.stage == b.bottleneck else "#1f77b4" for s in stages],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [s.extra_revenue_high - s.extra_revenue for s in stages],
                "arrayminus": [s.extra_revenue - s.extra_revenue_low for s in stages],
            },
        )
    )
    fig.update_layout(title=title, xaxis_title=f"extra revenue {currency}".strip(), margin={"l": 220})
    return fig


def funnel_plot_figure(m: ManagersResult, position: int, title: str) -> go.Figure:
    """Managers' rates at one stage against their decided deals, with the 95% and 99.8% control limits."""
    from scipy import stats as sps

    rows = [r for r in m.rows if r.position == position and r.decided > 0 and r.rate is not None]
    fig = go.Figure()
    if not rows or rows[0].centre is None:
        fig.update_layout(title=title)
        return fig
    centre = rows[0].centre
    ns = np.unique(np.linspace(5, max(r.decided for r in rows) * 1.3, 120).astype(int))
    for level, dash in ((0.95, "dot"), (0.998, "dash")):
        tail = (1 - level) / 2
        for side, q in (("low", tail), ("high", 1 - tail)):
            fig.add_scatter(
                x=ns,
                y=sps.binom.ppf(q, ns, centre) / ns,
                mode="lines",
                line={"dash": dash, "color": "grey", "width": 1},
                name=f"{level:.1%} limit",
                showlegend=side == "low",
            )
    fig.add_hline(y=centre, line_color="black", line_width=1)
    fig.add_scatter(
        x=[r.decided for r in rows],
        y=[r.rate for r in rows],
        mode="markers+text",
        text=[r.manager for r in rows],
        textposition="top center",
        marker={"size": 11, "color": ["#d62728" if r.flag else "#1f77b4" for r in rows]},
        name="managers",
    )
    fig.update_layout(title=title, xaxis_title="decided deals", yaxis_title="conversion", yaxis_tickformat=".0%")
    return fig
