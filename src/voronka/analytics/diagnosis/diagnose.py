"""The diagnosis of one pipeline: the bottleneck, the managers, the hints, and findings in plain language."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from voronka.analytics.diagnosis._common import Result
from voronka.analytics.diagnosis.bottleneck import BottleneckResult
from voronka.analytics.diagnosis.hints import Hint, find_hints
from voronka.analytics.diagnosis.managers import ManagersResult


@dataclass
class DiagnosisResult(Result):
    pipeline: str
    bottleneck: str | None
    time_bottleneck: str | None
    flagged_managers: list[dict[str, object]]
    slow_managers: list[str]
    findings: dict[str, list[str]]
    hints: list[Hint]
    stages: BottleneckResult
    managers: ManagersResult
    currency: str = ""
    definition: str = field(default="See docs/diagnosis.md: bottleneck, funnel plot, hints.")

    def to_pandas(self) -> pd.DataFrame:
        return self.stages.to_pandas()


def _ru_source(text: str) -> str:
    """The benchmark's origin in Russian."""
    for en, ru in (
        ("recover ", "вернуть "),
        (" of losses", " потерь"),
        ("best manager: ", "лучший менеджер: "),
        ("best quarter: ", "лучший квартал: "),
        ("target", "цель"),
    ):
        text = text.replace(en, ru)
    return text


def _money(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def build_diagnosis(b: BottleneckResult, m: ManagersResult, currency: str = "") -> DiagnosisResult:
    """Put the reports together and say what they show, in Russian and English."""
    hints = find_hints(b, m)
    ru: list[str] = []
    en: list[str] = []
    cur = f" {currency}" if currency else ""
    if b.bottleneck:
        s = next(x for x in b.stages if x.stage == b.bottleneck)
        ru.append(
            f"Узкое место — этап «{s.stage}»: конверсия {s.rate:.0%} [{s.ci_low:.0%}–{s.ci_high:.0%}] (n={s.decided}). "
            f"Если поднять её до {s.benchmark:.0%} ({_ru_source(s.benchmark_from)}), за период было бы больше на "
            f"{s.extra_won:.0f} [{s.extra_won_low:.0f}–{s.extra_won_high:.0f}] выигранных сделок и "
            f"{_money(s.extra_revenue)} [{_money(s.extra_revenue_low)}–{_money(s.extra_revenue_high)}]{cur} выручки "
            f"(≈{_money(s.extra_revenue / max(b.months, 1))}{cur} в месяц за {b.months:.0f} мес.) "
            f"(уверенность, что это этап с наибольшим эффектом: {s.p_biggest:.0%})."
        )
        en.append(
            f"The bottleneck is stage '{s.stage}': conversion {s.rate:.0%} [{s.ci_low:.0%}–{s.ci_high:.0%}] "
            f"(n={s.decided}). Raised to {s.benchmark:.0%} ({s.benchmark_from}), the period would have "
            f"{s.extra_won:.0f} [{s.extra_won_low:.0f}–{s.extra_won_high:.0f}] more won deals and "
            f"{_money(s.extra_revenue)} [{_money(s.extra_revenue_low)}–{_money(s.extra_revenue_high)}]{cur} more "
            f"revenue (≈{_money(s.extra_revenue / max(b.months, 1))}{cur} a month over {b.months:.0f} months; "
            f"probability it is the stage with the largest effect: {s.p_biggest:.0%})."
        )
    else:
        ru.append(f"Узкое место не названо: ни один этап не выделяется с уверенностью {b.certainty:.0%}.")
        en.append(f"No bottleneck named: no stage stands out with {b.certainty:.0%} certainty.")
    for r in m.flagged:
        word_ru = "ниже" if r.flag == "low" else "выше"
        word_en = "below" if r.flag == "low" else "above"
        ru.append(
            f"{r.manager}: конверсия этапа «{r.stage}» {r.rate:.0%} (n={r.decided}) — {word_ru} контрольных границ "
            f"команды (типично {r.centre:.0%}; q={r.q_value:.2g})."
        )
        en.append(
            f"{r.manager}: stage '{r.stage}' converts {r.rate:.0%} (n={r.decided}), {word_en} the team's control "
            f"limits (typical {r.centre:.0%}; q={r.q_value:.2g})."
        )
    for s in m.slow:
        ru.append(
            f"{s.manager} перезванивает медленнее команды: медиана {s.median_hours:.1f} ч до первого звонка "
            f"(по команде {m.team_median_hours:.1f} ч)."
        )
        en.append(
            f"{s.manager} calls back slower than the team: median {s.median_hours:.1f} h to the first call "
            f"(team {m.team_median_hours:.1f} h)."
        )
    if b.time_bottleneck:
        t = next(x for x in b.time if x.stage == b.time_bottleneck)
        ru.append(f"Дольше всего сверх норматива сделки ждут на этапе «{t.stage}»: {t.share_over_sla:.0%} дольше SLA.")
        en.append(f"Deals wait longest over the SLA in '{t.stage}': {t.share_over_sla:.0%} stay longer than it.")
    return DiagnosisResult(
        pipeline=b.pipeline,
        bottleneck=b.bottleneck,
        time_bottleneck=b.time_bottleneck,
        flagged_managers=[{"manager": r.manager, "stage": r.stage, "flag": r.flag} for r in m.flagged],
        slow_managers=[s.manager for s in m.slow],
        findings={"ru": ru, "en": en},
        hints=hints,
        stages=b,
        managers=m,
        currency=currency,
    )
