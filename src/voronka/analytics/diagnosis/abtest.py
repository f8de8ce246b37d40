"""A/B tests: variants of the process compared stage by stage and end to end, with a verdict and how sure it is.

*Variants* are the values of a deal field (``source``, ``segment``, ``owner`` or a custom field) or named entry
date ranges. The first variant (in the order given, else alphabetical) is the *control*.

Per stage, conversion = passed / decided (deals still open at the stage are left out); end to end = won /
decided deals (won, lost or moved out). Each variant's rate gets a Beta(1 + successes, 1 + failures) posterior.

*Verdict* on the chosen metric (end to end unless ``stage`` is given), each variant against the control:
P(variant beats control) and the *expected loss* of choosing it, E[max(p_control − p_variant, 0)], and the
reverse. A variant *wins* when it beats the control with probability at least ``certainty`` (default 95%) and
choosing it costs at most ``max_loss`` (default 0.5 percentage point) in expectation; the control wins the same
way. Otherwise the test is *inconclusive*, and the report says about how many more decided deals per variant a
two-sided 5% test with 80% power would need to detect the difference seen (or, when none is seen, a relative
change of 10%).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from voronka.analytics.diagnosis._common import Result
from voronka.analytics.diagnosis.deals import DealTable, stage_counts
from voronka.errors import InputError
from voronka.stats import expected_loss, newcombe_diff, prob_to_beat, sample_size, wilson

FIELDS = ("source", "segment", "owner")


@dataclass
class VariantStage:
    variant: str
    stage: str
    decided: int
    passed: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass
class Verdict:
    variant: str
    control: str
    metric: str
    rate_variant: float | None
    rate_control: float | None
    change: float | None
    ci_low: float | None
    ci_high: float | None
    p_beats_control: float | None
    loss_choosing_variant: float | None
    loss_choosing_control: float | None
    outcome: str  # "variant wins", "control wins" or "inconclusive"
    more_per_variant: int | None
    text: dict[str, str]


@dataclass
class ABTestResult(Result):
    pipeline: str
    by: str
    variants: list[str]
    deals: dict[str, int]
    rows: list[VariantStage]
    verdicts: list[Verdict]
    certainty: float
    max_loss: float
    definition: str = field(default=__doc__ or "")

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame([r.__dict__ for r in self.rows])


def assign_variants(
    table: DealTable,
    by: str | None = None,
    ranges: dict[str, tuple[datetime, datetime]] | None = None,
    variants: list[str] | None = None,
) -> tuple[pd.Series, list[str], str]:
    """The variant of each deal (None: in no variant), the variants in order, and what they come from."""
    f = table.frame
    if ranges:
        label = pd.Series([None] * len(f), dtype=object)
        for name, (start, end) in ranges.items():
            if start >= end:
                raise InputError(f"Range {name!r} [{start.date()}, {end.date()}) is empty: give a later end.")
            inside = (f["entry"] >= pd.Timestamp(start)) & (f["entry"] < pd.Timestamp(end))
            if (inside & label.notna()).any():
                raise InputError(f"Range {name!r} overlaps another range: a deal must be in one variant only.")
            label[inside] = name
        return label, list(ranges), "entry date"
    if not by:
        raise InputError("Give --variant FIELD (source, segment, owner or a custom field) or --range NAME=FROM:TO.")
    if by in FIELDS:
        label = f[by].astype(object)
    else:
        label = f["custom"].map(lambda c: None if c.get(by) is None else str(c.get(by)))
        if label.isna().all():
            raise InputError(
                f"No deal has the field {by!r}: use source, segment, owner or a custom field the deals have."
            )
    found = sorted(str(v) for v in label.dropna().unique())
    order = variants or found
    missing = [v for v in order if v not in found]
    if missing:
        raise InputError(f"Variant(s) {', '.join(map(repr, missing))} not found in {by!r}; it has {', '.join(found)}.")
    if len(order) < 2:
        raise InputError(f"An A/B test needs at least two variants; {by!r} has {', '.join(found) or 'none'}.")
    return label.where(label.isin(order), None), order, by


def run_abtest(
    table: DealTable,
    *,
    by: str | None = None,
    ranges: dict[str, tuple[datetime, datetime]] | None = None,
    variants: list[str] | None = None,
    stage: str | None = None,
    certainty: float = 0.95,
    max_loss: float = 0.005,
    confidence: float = 0.95,
) -> ABTestResult:
    """Compare the variants of ``table``'s deals; see the module docstring."""
    label, order, source = assign_variants(table, by, ranges, variants)
    names = [s.name for s in table.pipeline.open_stages]
    if stage is not None and stage not in names:
        raise InputError(f"Unknown stage {stage!r}: the open stages are {', '.join(names)}.")
    f, n = table.frame, table.n_open
    rows: list[VariantStage] = []
    metric: dict[str, tuple[int, int]] = {}
    deals: dict[str, int] = {}
    for v in order:
        g = f[label == v]
        deals[v] = len(g)
        counts = stage_counts(g, n)
        for k in range(n):
            d, p = int(counts["decided"][k]), int(counts["passed"][k])
            rows.append(VariantStage(v, names[k], d, p, p / d if d else None, *_ci(p, d, confidence)))
            if stage == names[k]:
                metric[v] = (p, d)
        decided = g[g["status"] != "open"]
        won, d = int((decided["status"] == "won").sum()), len(decided)
        rows.append(VariantStage(v, "end to end", d, won, won / d if d else None, *_ci(won, d, confidence)))
        if stage is None:
            metric[v] = (won, d)
    what = stage or "end to end"
    control = order[0]
    verdicts = [
        _verdict(v, control, metric[v], metric[control], what, certainty, max_loss, confidence) for v in order[1:]
    ]
    return ABTestResult(table.pipeline.name, source, order, deals, rows, verdicts, certainty, max_loss)


def _ci(k: int, n: int, conf: float) -> tuple[float | None, float | None]:
    return wilson(k, n, conf) if n else (None, None)


def _verdict(
    v: str,
    control: str,
    kv: tuple[int, int],
    kc: tuple[int, int],
    metric: str,
    certainty: float,
    max_loss: float,
    conf: float,
) -> Verdict:
    (sv, nv), (sc, nc) = kv, kc
    if not nv or not nc:
        text = {"ru": f"Нет решённых сделок у «{v if not nv else control}».", "en": "A variant has no decided deals."}
        return Verdict(v, control, metric, None, None, None, None, None, None, None, None, "inconclusive", None, text)
    a = (1 + sc, 1 + nc - sc)
    b = (1 + sv, 1 + nv - sv)
    beat = prob_to_beat(*a, *b)
    loss_v = expected_loss(*a, *b)  # choose the variant, the control may be better
    loss_c = expected_loss(*b, *a)
    rv, rc = sv / nv, sc / nc
    change, lo, hi = newcombe_diff(sv, nv, sc, nc, conf)
    more = None
    if beat >= certainty and loss_v <= max_loss:
        outcome = "variant wins"
    elif 1 - beat >= certainty and loss_c <= max_loss:
        outcome = "control wins"
    else:
        outcome = "inconclusive"
        target = rv if abs(rv - rc) > 1e-9 else min(0.999, max(0.001, rc * 1.1))
        base = min(max(rc, 1e-3), 0.999)
        need = sample_size(base, min(max(target, 1e-3), 0.999)) if abs(target - base) > 1e-9 else None
        more = None if need is None else max(0, need - min(nv, nc))
    text = _text(v, control, metric, rv, rc, beat, loss_v, outcome, more)
    return Verdict(v, control, metric, rv, rc, change, lo, hi, beat, loss_v, loss_c, outcome, more, text)


def _text(
    v: str, c: str, metric: str, rv: float, rc: float, beat: float, loss: float, outcome: str, more: int | None
) -> dict[str, str]:
    head_en = f"'{v}' {rv:.1%} vs '{c}' {rc:.1%} ({metric}); P({v} better) = {beat:.1%}, expected loss {loss:.2%}."
    head_ru = (
        f"«{v}» {rv:.1%} против «{c}» {rc:.1%} ({metric}); P(«{v}» лучше) = {beat:.1%}, ожидаемые потери {loss:.2%}."
    )
    if outcome == "variant wins":
        return {"en": f"{head_en} '{v}' wins.", "ru": f"{head_ru} Побеждает «{v}»."}
    if outcome == "control wins":
        return {"en": f"{head_en} '{c}' wins.", "ru": f"{head_ru} Побеждает «{c}»."}
    need_en = f" — need about {more} more deals per variant" if more is not None else ""
    need_ru = f" — нужно ещё около {more} сделок на вариант" if more is not None else ""
    return {"en": f"{head_en} Inconclusive{need_en}.", "ru": f"{head_ru} Пока не ясно{need_ru}."}


def parse_range(text: str) -> tuple[str, str, str]:
    """``NAME=FROM:TO`` into its three parts."""
    name, sep, span = text.partition("=")
    start, colon, end = span.partition(":")
    if not sep or not colon or not name or not start or not end:
        raise InputError(f"--range {text!r}: write NAME=FROM:TO, e.g. --range old=2026-01-01:2026-04-01.")
    return name, start, end
