"""Hints: rules (in ``hints.yaml``, Russian and English) that attach likely causes and first actions to measured
symptoms, each with the evidence that triggered it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from voronka.analytics.diagnosis.bottleneck import BottleneckResult
from voronka.analytics.diagnosis.managers import ManagersResult


@dataclass
class Hint:
    id: str
    stage: str
    manager: str | None
    title: dict[str, str]
    causes: dict[str, list[str]]
    actions: dict[str, list[str]]
    evidence: dict[str, str]
    numbers: dict[str, Any] = field(default_factory=dict)
    source: str = ""


@cache
def rules() -> list[dict[str, Any]]:
    """The hint rules as data."""
    text = resources.files("voronka.analytics.diagnosis").joinpath("hints.yaml").read_text(encoding="utf-8")
    return list(yaml.safe_load(text))


def _rule(rule_id: str) -> dict[str, Any]:
    return next(r for r in rules() if r["id"] == rule_id)


def _hint(rule: dict[str, Any], stage: str, manager: str | None, evidence: dict[str, str], numbers: dict) -> Hint:
    return Hint(
        rule["id"], stage, manager, rule["title"], rule["causes"], rule["actions"], evidence, numbers, rule["source"]
    )


def _hours(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def find_hints(bottleneck: BottleneckResult, managers: ManagersResult) -> list[Hint]:
    """The hints whose symptoms the two reports show."""
    out: list[Hint] = []
    first = bottleneck.stages[0].stage if bottleneck.stages else None
    low_first = [r for r in managers.rows if r.flag == "low" and r.position == 0]
    speed = {s.manager: s for s in managers.speed}
    for r in low_first:
        s = speed.get(r.manager)
        ev = {
            "ru": f"{r.manager}: конверсия этапа «{r.stage}» {r.rate:.0%} (n={r.decided}) при типичной {r.centre:.0%}; "
            f"медиана до первого звонка {_hours(s.median_hours if s else None)} ч против "
            f"{_hours(managers.team_median_hours)} ч по команде.",
            "en": f"{r.manager}: stage '{r.stage}' converts {r.rate:.0%} (n={r.decided}) against a typical "
            f"{r.centre:.0%}; median time to first call {_hours(s.median_hours if s else None)} h against "
            f"{_hours(managers.team_median_hours)} h for the team.",
        }
        nums = {"rate": r.rate, "decided": r.decided, "centre": r.centre, "median_hours_to_first_call": None}
        if s:
            nums.update(median_hours_to_first_call=s.median_hours, slow=s.slow)
        out.append(_hint(_rule("late_callback"), r.stage, r.manager, ev, nums))
    if bottleneck.bottleneck is not None:
        stage = next(s for s in bottleneck.stages if s.stage == bottleneck.bottleneck)
        if stage.stage == first and not low_first:
            ev = {
                "ru": f"Медиана до первого звонка по команде {_hours(managers.team_median_hours)} ч.",
                "en": f"Median time to first call for the team: {_hours(managers.team_median_hours)} h.",
            }
            out.append(_hint(_rule("late_callback"), stage.stage, None, ev, {}))
        out += _reason_hints(stage.stage, stage.lost_reasons)
    for t in bottleneck.time:
        if t.flagged:
            ev = {
                "ru": f"{t.over_sla} из {t.stays} сделок ({t.share_over_sla:.0%}) пробыли на этапе «{t.stage}» дольше "
                f"норматива {t.sla_days:g} дн.; медиана {t.median_days:.1f} дн.",
                "en": f"{t.over_sla} of {t.stays} deals ({t.share_over_sla:.0%}) stayed in '{t.stage}' longer than "
                f"its SLA of {t.sla_days:g} d; median {t.median_days:.1f} d.",
            }
            out.append(_hint(_rule("slow_stage"), t.stage, None, ev, {"share_over_sla": t.share_over_sla}))
    return out


def _reason_hints(stage: str, reasons: dict[str, int]) -> list[Hint]:
    total = sum(reasons.values())
    out = []
    if not total:
        return out
    for rule in rules():
        if rule["when"] != "losses_by_reason":
            continue
        matched = {k: v for k, v in reasons.items() if any(p in k.lower() for p in rule["reasons"])}
        share = sum(matched.values()) / total
        if share < rule["min_share"]:
            continue
        names = ", ".join(f"«{k}» {v}" for k, v in matched.items())
        ev = {
            "ru": f"{sum(matched.values())} из {total} потерь на этапе «{stage}» ({share:.0%}): {names}.",
            "en": f"{sum(matched.values())} of {total} losses at '{stage}' ({share:.0%}): {names}.",
        }
        out.append(_hint(rule, stage, None, ev, {"share_of_losses": share, "reasons": matched}))
    return out
