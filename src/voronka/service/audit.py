"""The monthly audit: one HTML page (Plotly charts embedded, no network needed) with the findings in plain
language, and its PDF printed by headless Chromium.

For month M the audit looks at, per pipeline: the diagnosis (bottleneck, managers, hints) over the deals that
entered in the twelve months ending with M; month M against the month before at equal cohort age (14 days);
the cohort heatmap; the KPIs of M by channel when costs are imported; and the deals stuck now (the deals'
current stages are a cache of today's state, so "stuck at the end of M" cannot be told for a past month).
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from voronka.analytics.diagnosis.charts import funnel_figure, funnel_plot_figure, impact_figure
from voronka.analytics.diagnosis.cohorts import cohort_table
from voronka.analytics.diagnosis.compare import CompareResult, compare_periods
from voronka.analytics.diagnosis.deals import load_deals
from voronka.analytics.diagnosis.diagnose import DiagnosisResult
from voronka.errors import InputError, VoronkaError
from voronka.service import reports

AUDIT_AGE_DAYS = 14

TEXT = {
    "title": {"ru": "Аудит воронки продаж", "en": "Sales funnel audit"},
    "findings": {"ru": "Главное", "en": "Findings"},
    "hints": {"ru": "Вероятные причины и первые шаги", "en": "Likely causes and first actions"},
    "change": {"ru": "Изменения за месяц: реальные или шум?", "en": "This month's changes: real or noise?"},
    "kpi": {"ru": "Показатели по каналам", "en": "KPIs by channel"},
    "stuck": {"ru": "Зависшие сделки сейчас", "en": "Stuck deals now"},
    "cohorts": {"ru": "Когорты", "en": "Cohorts"},
    "defs": {"ru": "Определения", "en": "Definitions"},
    "no_change": {
        "ru": "Ни одно изменение не подтверждается статистически (BH, FDR 5%).",
        "en": "No change holds up statistically (BH, FDR 5%).",
    },
    "no_costs": {
        "ru": "Расходы на маркетинг не загружены: voronka import costs FILE.",
        "en": "No marketing costs imported: voronka import costs FILE.",
    },
}


@dataclass
class AuditReport:
    month: str
    lang: str
    pipelines: list[str]
    diagnoses: list[DiagnosisResult]
    html: str
    findings: list[str] = field(default_factory=list)

    def write_html(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.html, encoding="utf-8")
        return p

    def write_pdf(self, path: str | Path) -> Path:
        """Print the HTML to PDF with headless Chromium (charts included)."""
        browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
        if browser is None:
            raise VoronkaError("PDF needs Chromium (chromium or google-chrome on PATH); use --html instead.")
        out = Path(path).resolve()
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "audit.html"
            src.write_text(self.html, encoding="utf-8")
            cmd = [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                "--virtual-time-budget=15000",
                f"--user-data-dir={tmp}/profile",
                f"--print-to-pdf={out}",
                src.as_uri(),
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if done.returncode != 0 or not out.exists():
            raise VoronkaError(f"Chromium could not print the PDF (exit {done.returncode}): {done.stderr[-300:]}")
        return out


def _esc(text: object) -> str:
    return html.escape(str(text))


def _t(key: str, lang: str) -> str:
    return TEXT[key][lang]


def build_audit(
    ws: Any, month: str, *, lang: str = "ru", pipeline: str | int | None = None, now: datetime | None = None
) -> AuditReport:
    """The audit of ``month`` (YYYY-MM) for every pipeline (or one)."""
    if lang not in ("ru", "en"):
        raise InputError(f"--lang {lang!r}: use ru or en.")
    start, end = reports.month_range(month)
    if "-" not in month or ":" in month:
        raise InputError(f"--month {month!r}: write the month as YYYY-MM, e.g. 2026-10.")
    pipes = [ws.pipeline(pipeline)] if pipeline is not None else ws.pipelines()
    if not pipes:
        raise InputError("The workspace has no pipelines: nothing to audit.")
    year_ago = end.replace(year=end.year - 1)
    parts: list[str] = []
    diagnoses: list[DiagnosisResult] = []
    first_chart = [True]
    findings: list[str] = []
    for p in pipes:
        table = load_deals(ws, p.id)
        if not len(table.between(year_ago, end).frame):
            continue
        d = reports.diagnose(ws, p.id, start=year_ago, end=end)
        diagnoses.append(d)
        findings += [f"{d.pipeline}: {x}" for x in d.findings[lang]]
        change = _change(table, start, end, now)
        cohorts = cohort_table(table.between(year_ago, end), now=min(end, now or end))
        parts.append(_section(d, change, cohorts, lang, first_chart))
    if not diagnoses:
        raise InputError(f"No deals entered any pipeline in the twelve months up to {month}: nothing to audit.")
    kpi_html = _kpis(ws, start, end, lang)
    stuck = ws.stuck(now=now)  # the cached stages are today's: stuck deals can only be told as of now
    body = "\n".join(parts) + kpi_html + _stuck(stuck, lang)
    page = _page(_t("title", lang) + f" — {month}", findings, body, lang)
    return AuditReport(month, lang, [d.pipeline for d in diagnoses], diagnoses, page, findings)


def _change(table: Any, start: datetime, end: datetime, now: datetime | None) -> CompareResult | None:
    prev = reports.previous_period((start, end))
    try:
        return compare_periods(table, prev, (start, end), age_days=AUDIT_AGE_DAYS, now=now)
    except InputError:
        return None


def _fig(fig: Any, first: list[bool]) -> str:
    out = fig.to_html(full_html=False, include_plotlyjs=first[0], config={"displaylogo": False, "responsive": True})
    first[0] = False
    return f'<div class="chart">{out}</div>'


def _section(d: DiagnosisResult, change: CompareResult | None, cohorts: Any, lang: str, first: list[bool]) -> str:
    b, m = d.stages, d.managers
    out = [f"<h2>{_esc(d.pipeline)}</h2>", "<ul>"] + [f"<li>{_esc(x)}</li>" for x in d.findings[lang]] + ["</ul>"]
    out.append(_fig(impact_figure(b, "Extra revenue at the benchmark, by stage", d.currency), first))
    out.append(_fig(funnel_figure(b, "Decided deals by stage"), first))
    positions = sorted({r.position for r in m.flagged} | {0})
    for pos in positions:
        stage = b.stages[pos].stage
        out.append(_fig(funnel_plot_figure(m, pos, f"Managers at '{stage}' (funnel plot)"), first))
    if d.hints:
        out.append(f"<h3>{_t('hints', lang)}</h3>")
        for h in d.hints:
            who = f" — {_esc(h.manager)}" if h.manager else ""
            causes = "".join(f"<li>{_esc(c)}</li>" for c in h.causes[lang])
            acts = "".join(f"<li>→ {_esc(a)}</li>" for a in h.actions[lang])
            out.append(
                f'<div class="hint"><b>{_esc(h.title[lang])}</b> ({_esc(h.stage)}{who})'
                f"<p>{_esc(h.evidence[lang])}</p><ul>{causes}{acts}</ul></div>"
            )
    out.append(f"<h3>{_t('change', lang)}</h3>")
    if change is None:
        out.append("<p>—</p>")
    else:
        rows = [r for r in change.rows if r.group == "(all)" or r.significant]
        out.append(_table(pd.DataFrame([_change_row(r) for r in rows])))
        if not change.significant:
            out.append(f"<p>{_t('no_change', lang)}</p>")
    out.append(f"<h3>{_t('cohorts', lang)}</h3>")
    if cohorts.rows:
        out.append(_fig(cohorts.heatmap("conversion"), first))
    return "\n".join(out)


def _change_row(r: Any) -> dict[str, str]:
    def pc(x: float | None) -> str:
        return "—" if x is None else f"{x:.1%}"

    return {
        "stage": r.stage,
        "group": r.group,
        "before": f"{pc(r.rate_a)} (n={r.reached_a})",
        "after": f"{pc(r.rate_b)} (n={r.reached_b})",
        "change [95% CI]": "—" if r.change is None else f"{r.change:+.1%} [{r.ci_low:+.1%}…{r.ci_high:+.1%}]",
        "q": "" if r.q_value is None else f"{r.q_value:.2g}",
        "real": "yes" if r.significant else "no",
    }


def _kpis(ws: Any, start: datetime, end: datetime, lang: str) -> str:
    out = [f"<h2>{_t('kpi', lang)}</h2>"]
    try:
        k = reports.kpi(ws, start=start, end=end, now=end)
    except InputError:
        return ""
    frame = k.to_pandas()
    frame = frame[frame["month"] == "(all)"]
    if frame["cost"].isna().all():
        out.append(f"<p>{_t('no_costs', lang)}</p>")
    cols = ["channel", "leads", "won", "revenue", "cost", "cpl", "cac", "romi", "avg_deal", "win_rate", "ltv"]
    out.append(_table(frame[cols]))
    out += [f"<p class='dim'>{_esc(a)}</p>" for a in k.assumptions]
    return "\n".join(out)


def _stuck(stuck: Any, lang: str) -> str:
    frame = stuck.to_pandas()
    head = f"<h2>{_t('stuck', lang)}: {len(frame)}</h2>"
    if frame.empty:
        return head
    cols = ["id", "title", "pipeline", "stage", "owner", "days_in_stage", "sla_days"]
    return head + _table(frame[cols].head(30))


def _table(frame: pd.DataFrame) -> str:
    def fmt(x: object) -> str:
        if isinstance(x, float):
            if x != x:
                return "—"
            return f"{x:,.2f}".replace(",", " ") if abs(x) < 10 else f"{x:,.0f}".replace(",", " ")
        return str(x)

    return frame.to_html(index=False, escape=True, formatters={c: fmt for c in frame.columns}, border=0)


def _page(title: str, findings: list[str], body: str, lang: str) -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    items = "".join(f"<li>{_esc(x)}</li>" for x in findings)
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; }}
h1 {{ border-bottom: 2px solid #1f77b4; }} h2 {{ margin-top: 2em; border-bottom: 1px solid #ccc; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }}
td, th {{ padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }}
th {{ background: #f4f6f8; }} td:first-child, th:first-child {{ text-align: left; }}
.hint {{ background: #fff8e6; border-left: 4px solid #f0ad4e; padding: 0.5em 1em; margin: 0.7em 0; }}
.dim {{ color: #777; font-size: 0.85em; }} .chart {{ page-break-inside: avoid; }}
</style></head><body>
<h1>{_esc(title)}</h1>
<p class="dim">Voronka · {generated}</p>
<h2>{_t("findings", lang)}</h2><ul>{items}</ul>
{body}
<h2>{_t("defs", lang)}</h2>
<p class="dim">Conversion at a stage = passed / decided (deals still open there are left out); intervals are Wilson
95%. The bottleneck is named only when it has the largest extra revenue in at least 95% of the posterior draws.
Managers are flagged only outside the 99.8% funnel-plot limits and after Benjamini–Hochberg (FDR 5%). Month-on-month
changes compare cohorts at equal age ({AUDIT_AGE_DAYS} days). See docs/diagnosis.md.</p>
</body></html>"""
