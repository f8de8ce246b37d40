"""The funnel dashboard: the stage funnel, drop-off by reason, time in stage, stuck deals, and groups side by side.

Every number comes from :meth:`Workspace.funnel` and :meth:`Workspace.stuck` (their definitions are shown next to
the numbers), except the time-in-stage histogram, whose per-deal times are computed here from the same move log
with the same rule (total over all stays in the stage, deals that have left it); its median and p90 are the
funnel's. A manager's dashboard is the funnel's ``owner`` group of that manager: their own numbers only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from voronka.analytics._log import load_pipeline_log
from voronka.analytics.stage_funnel import FunnelTotals, StageFunnelResult, StageRow
from voronka.analytics.stuck import StuckResult
from voronka.domain.parse import parse_time
from voronka.domain.pipeline import Pipeline
from voronka.service.accounts import Account
from voronka.service.workspace import Workspace
from voronka.store.types import to_micros
from voronka.web.i18n import Translator

BREAKDOWNS = ("owner", "source", "segment", "month")
TABLES = ("stages", "reasons", "time", "stuck", "groups")
_DAY_US = 86_400 * 1_000_000


@dataclass
class Dashboard:
    pipeline: Pipeline
    result: StageFunnelResult
    stages: list[StageRow]
    overall: FunnelTotals
    stuck: StuckResult
    times: dict[str, list[float]]  # open stage name -> days per deal
    by: str | None
    groups: list[tuple[str, list[StageRow], FunnelTotals]] = field(default_factory=list)
    only_owner: str | None = None


def parse_period(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    s = (start or "").strip()
    e = (end or "").strip()
    return (
        parse_time(s, what="'from' date") if s else None,
        parse_time(e, what="'to' date") if e else None,
    )


def build_dashboard(
    ws: Workspace,
    pipe: Pipeline,
    account: Account,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    by: str | None = None,
    now: datetime | None = None,
) -> Dashboard:
    """The dashboard's numbers, for what ``account`` may see."""
    now = now or datetime.now(UTC)
    stuck = ws.stuck(pipe.id, now=now)
    if account.sees_all:
        result = ws.funnel(pipe.id, start=start, end=end, by=by)  # type: ignore[arg-type]
        stages, overall = result.stages, result.overall
        groups = [(g.group, g.stages, g.overall) for g in result.groups]
        owner = None
    else:  # a manager: their own group of the by-owner funnel, nothing else
        result = ws.funnel(pipe.id, start=start, end=end, by="owner")
        mine = [g for g in result.groups if g.group == account.name]
        if mine:
            stages, overall = mine[0].stages, mine[0].overall
        else:
            empty = ws.funnel(pipe.id, start=datetime(1970, 1, 1, tzinfo=UTC), end=datetime(1970, 1, 2, tzinfo=UTC))
            stages, overall = empty.stages, empty.overall
        groups = []
        by = None
        owner = account.name
        stuck = StuckResult(stuck.now, [d for d in stuck.deals if d.owner == account.name])
    times = stage_times(ws, pipe, start=start, end=end, owner=owner)
    return Dashboard(pipe, result, stages, overall, stuck, times, by, groups, owner)


def stage_times(
    ws: Workspace,
    pipe: Pipeline,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    owner: str | None = None,
) -> dict[str, list[float]]:
    """Days each deal spent in each open stage: the total over its stays, for deals that have left the stage.

    The population is the funnel's: deals that entered the pipeline in ``[start, end)`` (of ``owner`` only).
    """
    log = load_pipeline_log(ws, pipe.id)
    out: dict[str, list[float]] = {s.name: [] for s in pipe.open_stages}
    if len(log.move_deal) == 0:
        return out
    deal = log.move_deal
    first = np.r_[True, deal[1:] != deal[:-1]]
    last = np.r_[deal[1:] != deal[:-1], True]
    entry = np.maximum.accumulate(np.where(first, np.arange(len(deal)), 0))
    entry_at = log.move_at[entry]
    keep = np.ones(len(deal), dtype=bool)
    if start is not None:
        keep &= entry_at >= to_micros(start)
    if end is not None:
        keep &= entry_at < to_micros(end)
    idx = np.searchsorted(log.deal_id, deal)
    if owner is not None:
        owner_id = next((i for i, n in log.user_names.items() if n == owner), None)
        keep &= log.deal_owner[idx] == (-2 if owner_id is None else owner_id)
    stay = np.where(last, 0, np.r_[log.move_at[1:] - log.move_at[:-1], 0])
    here = log.deal_pipeline[idx] == pipe.id
    for s in pipe.open_stages:
        in_stage = keep & ~last & (log.move_stage == s.id)
        left = ~(here & (log.deal_stage[idx] == s.id))
        sel = in_stage & left
        if not sel.any():
            continue
        frame = pd.DataFrame({"deal": deal[sel], "us": stay[sel]})
        out[s.name] = (frame.groupby("deal")["us"].sum() / _DAY_US).round(3).tolist()
    return out


# -- tables (shown and downloadable) ------------------------------------------------------------------------


def table(d: Dashboard, name: str, t: Translator) -> pd.DataFrame:
    """One of the dashboard's tables as a frame, with column names in the user's language."""
    _ = t.gettext
    if name == "stages":
        return pd.DataFrame(
            [
                {
                    _("Stage"): s.name,
                    _("Reached"): s.reached,
                    _("Passed"): s.passed,
                    _("Conversion to next"): s.conversion,
                    _("CI low"): s.ci_low,
                    _("CI high"): s.ci_high,
                    _("Conversion from start"): s.conversion_from_start,
                    _("From start CI low"): s.from_start_ci_low,
                    _("From start CI high"): s.from_start_ci_high,
                    _("Lost here"): s.lost,
                    _("Open now"): s.open,
                    _("Median days"): s.median_days,
                    _("p90 days"): s.p90_days,
                    _("SLA days"): s.sla_days,
                }
                for s in d.stages
            ]
        )
    if name == "reasons":
        rows = [
            {_("Stage"): s.name, _("Loss reason"): r or _("(no reason)"), _("Deals"): n}
            for s in d.stages
            for r, n in sorted(s.lost_reasons.items(), key=lambda kv: -kv[1])
        ]
        return pd.DataFrame(rows, columns=[_("Stage"), _("Loss reason"), _("Deals")])
    if name == "time":
        rows = []
        for s in d.stages:
            if s.kind != "open":
                continue
            n = len(d.times.get(s.name, []))
            rows.append({_("Stage"): s.name, _("Deals"): n, _("Median days"): s.median_days, _("p90 days"): s.p90_days})
        return pd.DataFrame(rows, columns=[_("Stage"), _("Deals"), _("Median days"), _("p90 days")])
    if name == "stuck":
        cols = [
            _("Deal"),
            _("Title"),
            _("Stage"),
            _("Owner"),
            _("Amount"),
            _("Days in stage"),
            _("SLA days"),
            _("Days over SLA"),
        ]
        rows = [
            dict(
                zip(
                    cols,
                    [x.id, x.title, x.stage, x.owner, x.amount, x.days_in_stage, x.sla_days, x.days_over_sla],
                    strict=True,
                )
            )
            for x in d.stuck.deals
        ]
        return pd.DataFrame(rows, columns=cols)
    if name == "groups":
        rows = []
        for g, stages, tot in d.groups:
            for s in stages:
                rows.append(
                    {
                        _("Group"): g,
                        _("Stage"): s.name,
                        _("Reached"): s.reached,
                        _("Conversion from start"): s.conversion_from_start,
                        _("From start CI low"): s.from_start_ci_low,
                        _("From start CI high"): s.from_start_ci_high,
                    }
                )
            rows.append(
                {
                    _("Group"): g,
                    _("Stage"): _("Won (overall)"),
                    _("Reached"): tot.entered,
                    _("Conversion from start"): tot.conversion,
                    _("From start CI low"): tot.ci_low,
                    _("From start CI high"): tot.ci_high,
                }
            )
        return pd.DataFrame(rows)
    raise ValueError(name)


# -- charts (Plotly figures as JSON, drawn by the bundled plotly.min.js) ------------------------------------


def _fig_json(fig: go.Figure) -> str:
    fig.update_layout(margin={"l": 10, "r": 10, "t": 30, "b": 10}, height=320, template="plotly_white")
    return json.dumps(fig.to_plotly_json(), default=str)


def funnel_chart(d: Dashboard, t: Translator) -> str:
    names = [s.name for s in d.stages]
    values = [s.reached for s in d.stages]
    fig = go.Figure(go.Funnel(y=names, x=values, textinfo="value+percent initial"))
    fig.update_layout(title=t.gettext("Deals that reached each stage"))
    return _fig_json(fig)


def reasons_chart(d: Dashboard, t: Translator) -> str:
    reasons = sorted({r or t.gettext("(no reason)") for s in d.stages for r in s.lost_reasons})
    fig = go.Figure()
    for r in reasons:
        fig.add_bar(
            name=r,
            x=[s.name for s in d.stages if s.kind == "open"],
            y=[s.lost_reasons.get(r, 0) for s in d.stages if s.kind == "open"],
        )
    fig.update_layout(barmode="stack", title=t.gettext("Lost deals by stage and reason"))
    return _fig_json(fig)


def time_chart(d: Dashboard, t: Translator) -> str:
    fig = go.Figure()
    for name, values in d.times.items():
        if values:
            fig.add_histogram(x=values, name=name, opacity=0.6, nbinsx=30)
    fig.update_layout(
        barmode="overlay",
        title=t.gettext("Time in stage, days"),
        xaxis_title=t.gettext("days"),
        yaxis_title=t.gettext("deals"),
    )
    return _fig_json(fig)
