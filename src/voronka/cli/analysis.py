"""`voronka diagnose`, `managers`, `compare`, `abtest`, `kpi`, `cohorts` and `voronka report audit|weekly`."""

from __future__ import annotations

import typer
from rich.table import Table

from voronka.analytics.diagnosis.diagnose import DiagnosisResult
from voronka.analytics.diagnosis.managers import ManagersResult
from voronka.cli._common import FORMAT_OPTION, Format, ci, guard, out, pct, print_csv, print_json, workspace
from voronka.errors import InputError
from voronka.service import reports as svc

LANG_OPTION = typer.Option("ru", "--lang", help="Language of findings and hints: ru or en.")


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose)
    app.command("managers")(managers)


def _lang(lang: str) -> str:
    if lang not in ("ru", "en"):
        raise InputError(f"--lang {lang!r}: use ru or en.")
    return lang


def _targets(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out_: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            out_[name] = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InputError(f"--target {item!r}: write STAGE=RATE, e.g. --target 'Предварительный расчёт=0.5'.")
    return out_


@guard
def diagnose(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    from_: str = typer.Option(None, "--from", help="Deals that entered on or after this date (ISO)."),
    to: str = typer.Option(None, "--to", help="... and before this date (ISO)."),
    benchmark: str = typer.Option("lift", help="What a stage could reach: lift, manager, quarter or target."),
    lift: float = typer.Option(0.2, help="With --benchmark lift: the share of a stage's losses it recovers."),
    target: list[str] = typer.Option(None, help="With --benchmark target: STAGE=RATE, repeatable."),
    certainty: float = typer.Option(0.95, help="Name a bottleneck only when this sure it is the biggest."),
    fdr: float = typer.Option(0.05, help="False discovery rate for flagging managers."),
    lang: str = LANG_OPTION,
    fmt: Format = FORMAT_OPTION,
) -> None:
    """The bottleneck and what it costs, managers on a funnel plot, and hints from the seeds."""
    lang = _lang(lang)
    result = svc.diagnose(
        workspace(),
        pipeline,
        start=from_,
        end=to,
        benchmark=benchmark,  # type: ignore[arg-type]
        lift=lift,
        targets=_targets(target),
        certainty=certainty,
        fdr=fdr,
    )
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_diagnosis(result, lang)


def _money(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}".replace(",", " ")


def render_diagnosis(r: DiagnosisResult, lang: str) -> None:
    c = out()
    b = r.stages
    c.print(f"\n[bold]Diagnosis of {r.pipeline!r}[/bold] — {b.deals} deals, benchmark: {b.benchmark}")
    t = Table(
        "Stage",
        "Decided",
        "Conv. [95% CI]",
        "Benchmark",
        "Extra won [95%]",
        f"Extra revenue {r.currency} [95%]",
        "P(biggest)",
        "Time: over SLA",
    )
    times = {x.stage: x for x in b.time}
    for s in b.ranked():
        tm = times[s.stage]
        mark = " ◀ bottleneck" if s.stage == r.bottleneck else ""
        t.add_row(
            s.stage + mark,
            str(s.decided),
            f"{pct(s.rate)} {ci(s.ci_low, s.ci_high)}",
            f"{pct(s.benchmark)} ({s.benchmark_from})",
            f"{s.extra_won:.0f} [{s.extra_won_low:.0f}–{s.extra_won_high:.0f}]",
            f"{_money(s.extra_revenue)} [{_money(s.extra_revenue_low)}–{_money(s.extra_revenue_high)}]",
            f"{s.p_biggest:.0%}",
            "—" if tm.share_over_sla is None else f"{pct(tm.share_over_sla)} of {tm.stays}",
        )
    c.print(t)
    for line in r.findings[lang]:
        c.print(f"• {line}")
    for h in r.hints:
        c.print(f"\n[bold]{h.title[lang]}[/bold] ({h.stage}{', ' + h.manager if h.manager else ''})")
        c.print(f"  {h.evidence[lang]}")
        for cause in h.causes[lang]:
            c.print(f"  – {cause}")
        for act in h.actions[lang]:
            c.print(f"  → {act}")


@guard
def managers(
    pipeline: str = typer.Argument(..., help="Pipeline name or id."),
    from_: str = typer.Option(None, "--from", help="Deals that entered on or after this date (ISO)."),
    to: str = typer.Option(None, "--to", help="... and before this date (ISO)."),
    fdr: float = typer.Option(0.05, help="False discovery rate for flagging managers."),
    fmt: Format = FORMAT_OPTION,
) -> None:
    """Managers on a funnel plot: rate against sample size with control limits, shrunk rates, speed to lead."""
    result = svc.managers(workspace(), pipeline, start=from_, end=to, fdr=fdr)
    if fmt is Format.json:
        return print_json(result.to_dict())
    if fmt is Format.csv:
        return print_csv(result.to_pandas())
    render_managers(result)


def render_managers(r: ManagersResult) -> None:
    c = out()
    c.print(f"\n[bold]Managers of {r.pipeline!r}[/bold] (flags: BH at FDR {r.fdr:.0%} and outside 99.8% limits)")
    t = Table("Manager", "Stage", "Decided", "Rate [95% CI]", "Shrunk", "Centre", "99.8% limits", "q", "Flag")
    for x in r.rows:
        t.add_row(
            x.manager,
            x.stage,
            str(x.decided),
            f"{pct(x.rate)} {ci(x.ci_low, x.ci_high)}",
            pct(x.shrunk),
            pct(x.centre),
            ci(x.limit998_low, x.limit998_high),
            "" if x.q_value is None else f"{x.q_value:.2g}",
            x.flag or "",
        )
    c.print(t)
    if r.speed:
        s = Table("Manager", "Deals with a call", "Median h to 1st call", "P90 h", "q", "Slow")
        for x in r.speed:
            s.add_row(
                x.manager,
                str(x.deals_with_call),
                f"{x.median_hours:.1f}",
                f"{x.p90_hours:.1f}",
                "" if x.q_value is None else f"{x.q_value:.2g}",
                "slow" if x.slow else "",
            )
        c.print(s)
