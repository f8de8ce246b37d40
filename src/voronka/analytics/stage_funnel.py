"""The stage funnel of a CRM pipeline, computed from the move log.

Semantics (also in docs/funnel-semantics.md and in every result's ``definition``):

- Population: deals that entered the pipeline (were created in it or moved into it) in ``[start, end)``.
- A deal *reached* stage k if it was ever in stage k or in a later open stage, or is won now (a skip counts as
  passing the skipped stages). With ``strict=True`` only stages actually entered count.
- Outcomes count by where a deal stands now: won, lost, open, or moved out to another pipeline. A deal lost and
  re-opened is not lost; a deal won and re-opened is not won.
- *Passed* stage k: reached a later stage (implied), or entered k and was ever in a later stage (strict).
- A lost deal is lost *at* the last open stage it was in before its final move to lost, with that move's reason.
- Time in stage: per deal, the total over all its stays in the stage (re-entries add up), over deals that have
  left the stage; a stay still going on is not a finished time and is not counted (see stuck deals for those).
- Cycle time: from entering the pipeline to the move into the won stage, over deals won now.
- Counts are of distinct deals, never of moves. Intervals are Wilson score intervals.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from voronka.analytics._log import I64, PipelineLog, codes_of, load_pipeline_log
from voronka.domain.pipeline import Pipeline, StageKind
from voronka.errors import InputError
from voronka.stats.intervals import wilson_array
from voronka.store.types import to_micros
from voronka.store.workspace import WorkspaceStore

if TYPE_CHECKING:
    import pandas as pd

GroupBy = Literal["owner", "source", "segment", "month"]
GROUP_BYS: tuple[str, ...] = ("owner", "source", "segment", "month")
_DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class StageFunnelQuery:
    """What to count: a pipeline, an entry period ``[start, end)``, an optional breakdown, implied or strict."""

    pipeline: str | int
    start: datetime | None = None
    end: datetime | None = None
    by: GroupBy | None = None
    strict: bool = False
    confidence: float = 0.95

    def validate(self) -> None:
        if self.by is not None and self.by not in GROUP_BYS:
            raise InputError(f"Unknown breakdown {self.by!r}: use one of {', '.join(GROUP_BYS)}.")
        if self.start and self.end and self.start >= self.end:
            raise InputError(
                f"The period is empty: --from {self.start.date()} is not before --to {self.end.date()}. "
                f"The period is [from, to): give a later --to."
            )
        if not 0 < self.confidence < 1:
            raise InputError(f"Confidence {self.confidence!r} must be between 0 and 1, e.g. 0.95.")


@dataclass
class StageRow:
    name: str
    kind: str
    reached: int
    passed: int | None
    conversion: float | None
    ci_low: float | None
    ci_high: float | None
    conversion_from_start: float | None
    from_start_ci_low: float | None
    from_start_ci_high: float | None
    lost: int
    lost_reasons: dict[str, int]
    moved_out: int
    open: int
    median_days: float | None
    p90_days: float | None
    sla_days: float | None


@dataclass
class FunnelTotals:
    entered: int
    won: int
    lost: int
    open: int
    moved_out: int
    conversion: float | None
    ci_low: float | None
    ci_high: float | None
    median_cycle_days: float | None
    p90_cycle_days: float | None


@dataclass
class FunnelGroup:
    group: str
    stages: list[StageRow]
    overall: FunnelTotals


@dataclass
class StageFunnelResult:
    """The stage funnel of one pipeline: per stage rows, the overall totals, and groups when broken down."""

    pipeline: str
    definition: str
    strict: bool
    start: datetime | None
    end: datetime | None
    by: str | None
    stages: list[StageRow]
    overall: FunnelTotals
    groups: list[FunnelGroup] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("start", "end"):
            out[key] = None if out[key] is None else out[key].isoformat()
        out["overall"]["definition"] = self.definition
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        """One row per stage (and per group when broken down)."""
        import pandas as pd  # here: the funnel itself needs no pandas, and importing it costs 0.3 s

        frames = []
        if not self.groups:
            frames.append(pd.DataFrame([asdict(s) for s in self.stages]).assign(stage_order=range(len(self.stages))))
        for g in self.groups:
            df = pd.DataFrame([asdict(s) for s in g.stages]).assign(stage_order=range(len(g.stages)))
            frames.append(df.assign(**{self.by or "group": g.group}))
        return pd.concat(frames, ignore_index=True)


def definition_text(pipeline: str, start: datetime | None, end: datetime | None, strict: bool, conf: float) -> str:
    period = f"[{start.date() if start else '-inf'}, {end.date() if end else '+inf'})"
    reached = (
        "entered the stage itself (strict)"
        if strict
        else "was ever in the stage or a later one, or is won now (skips count as passed)"
    )
    return (
        f"Deals that entered pipeline '{pipeline}' in {period}. A deal reached a stage if it {reached}. "
        f"Outcomes count by where a deal stands now; a lost deal is lost at the last open stage it was in. "
        f"Counts are of distinct deals. Intervals: Wilson {conf:.0%}. Time in stage: total over re-entries, "
        f"deals that have left the stage."
    )


def run_stage_funnel(store: WorkspaceStore, query: StageFunnelQuery) -> StageFunnelResult:
    """Compute the stage funnel of ``query.pipeline`` from the workspace's move log."""
    query.validate()
    pipe = store.pipeline(query.pipeline)
    log = load_pipeline_log(store, pipe.id)
    return compute_stage_funnel(pipe, log, query)


@dataclass
class _Deals:
    """Per-deal facts of the population, in deal-id order."""

    entry: NDArray[np.int64]
    max_pos: NDArray[np.int64]
    entered_bits: NDArray[np.int64]
    status: NDArray[np.int8]  # 0 open, 1 won, 2 lost, 3 moved out
    cur_pos: NDArray[np.int64]  # open now: its position; else -1
    end_pos: NDArray[np.int64]  # lost / moved out: the last open stage; else -1
    reason: NDArray[np.int64]  # lost: reason id of the move into lost; else -1
    cycle_us: NDArray[np.int64]  # won: entry to won; else -1
    owner: NDArray[np.int64]
    index: NDArray[np.int64]  # row in the log's deal arrays


_OPEN, _WON, _LOST, _MOVED = 0, 1, 2, 3
# Logs of at least this many moves get their per-deal facts from the compiled kernel (_stage_kernel); smaller ones
# from NumPy, which needs no compiler loaded.
KERNEL_MIN_MOVES = 300_000


def compute_stage_funnel(pipe: Pipeline, log: PipelineLog, query: StageFunnelQuery) -> StageFunnelResult:
    n = len(pipe.open_stages)
    lookup = _stage_positions(pipe, log)
    pos = lookup[log.move_stage] if len(log.move_stage) else np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, log.move_deal[1:] != log.move_deal[:-1]]) if len(pos) else np.zeros(0, np.int64)
    facts, sums = _deal_facts(pipe, log, pos, starts, n)
    keep = np.ones(len(facts.entry), dtype=bool)
    if query.start is not None:
        keep &= facts.entry >= to_micros(query.start)
    if query.end is not None:
        keep &= facts.entry < to_micros(query.end)
    if not keep.all():  # copy the arrays only when the period drops deals
        facts = _Deals(**{k: v[keep] for k, v in facts.__dict__.items()})
        sums = [(s[0][keep], s[1][keep]) for s in sums]
    reason_names = log.reason_names
    conf = query.confidence
    codes0 = np.zeros(len(facts.entry), dtype=np.int64)
    overall = _tabulate(pipe, facts, sums, codes0, 1, query.strict, reason_names, conf)[0]
    groups: list[FunnelGroup] = []
    if query.by is not None:
        codes, labels = _group_codes(query.by, facts, log)
        tabs = _tabulate(pipe, facts, sums, codes, len(labels), query.strict, reason_names, conf)
        groups = [FunnelGroup(lab, st, tot) for lab, (st, tot) in zip(labels, tabs, strict=True) if tot.entered]
    return StageFunnelResult(
        pipeline=pipe.name,
        definition=definition_text(pipe.name, query.start, query.end, query.strict, conf),
        strict=query.strict,
        start=query.start,
        end=query.end,
        by=query.by,
        stages=overall[0],
        overall=overall[1],
        groups=groups,
    )


def _stage_positions(pipe: Pipeline, log: PipelineLog) -> NDArray[np.int64]:
    """Map stage id -> position: open 0..n-1, won n, lost -1."""
    top = max([s.id for s in pipe.stages] + [int(log.move_stage.max()) if len(log.move_stage) else 0])
    lookup = np.full(top + 1, -1, dtype=np.int64)
    for s in pipe.stages:
        lookup[s.id] = s.position if s.kind is not StageKind.LOST else -1
    return lookup


def _deal_facts(
    pipe: Pipeline, log: PipelineLog, pos: NDArray[np.int64], starts: NDArray[np.int64], n: int
) -> tuple[_Deals, list[tuple[NDArray[np.float64], NDArray[np.int64]]]]:
    m = len(pos)
    deal_ids = log.move_deal[starts] if m else np.zeros(0, np.int64)
    idx = np.searchsorted(log.deal_id, deal_ids)
    won_id = pipe.won_stage.id
    lost_ids = np.array([s.id for s in pipe.lost_stages], dtype=np.int64)
    here = log.deal_pipeline[idx] == pipe.id
    cur_stage = log.deal_stage[idx]
    status = np.full(len(idx), _OPEN, dtype=np.int8)
    status[here & (cur_stage == won_id)] = _WON
    status[here & np.isin(cur_stage, lost_ids)] = _LOST
    status[~here] = _MOVED

    if m >= KERNEL_MIN_MOVES:
        from voronka.analytics._stage_kernel import deal_facts

        max_pos, bits, end_pos, cur_pos, reason, entry, cycle, total, count = deal_facts(
            pos, log.move_at, log.move_reason, starts, status, idx, log.deal_since, log.exit_at, n
        )
    else:
        max_pos, bits, end_pos, cur_pos, reason, entry, cycle, total, count = _facts_numpy(
            pos, log, starts, status, idx, n
        )
    sums = [(total[:, k], count[:, k]) for k in range(n)]
    facts = _Deals(
        entry=entry,
        max_pos=max_pos,
        entered_bits=bits,
        status=status,
        cur_pos=cur_pos,
        end_pos=end_pos,
        reason=reason,
        cycle_us=cycle,
        owner=log.deal_owner[idx],
        index=idx,
    )
    return facts, sums


def _facts_numpy(
    pos: I64, log: PipelineLog, starts: I64, status: NDArray[np.int8], idx: I64, n: int
) -> tuple[I64, I64, I64, I64, I64, I64, I64, NDArray[np.float64], I64]:
    """What ``_stage_kernel.deal_facts_kernel`` computes, as vectorised NumPy passes (for small logs)."""
    m = len(pos)
    ends = np.r_[starts[1:], m] - 1 if m else starts  # last move of each deal (none in an empty log)
    is_open = (pos >= 0) & (pos < n)
    open_pos = np.where(is_open, pos, -1)
    max_pos = np.maximum.reduceat(open_pos, starts) if m else np.zeros(0, np.int64)
    max_pos = np.where(status == _WON, n, np.maximum(max_pos, 0))
    bits = np.bitwise_or.reduceat(np.where(is_open, np.left_shift(1, np.maximum(pos, 0)), 0), starts) if m else max_pos
    bits = bits | np.where(status == _WON, 1 << n, 0)

    # The last open stage of each deal: forward-fill the index of open-stage moves within the deal.
    last_open = np.maximum.accumulate(np.where(is_open, np.arange(m), -1)) if m else np.zeros(0, np.int64)
    lo = last_open[ends] if m else ends
    end_pos = np.where(lo >= starts, pos[np.maximum(lo, 0)], 0)
    end_pos = np.where((status == _LOST) | (status == _MOVED), end_pos, -1)
    cur_pos = np.where(status == _OPEN, pos[ends] if m else ends, -1)
    reason = np.where(status == _LOST, log.move_reason[ends] if m else ends, -1)
    entry = log.move_at[starts] if m else starts
    cycle = np.where(status == _WON, log.deal_since[idx] - entry, -1)

    # Completed time per (deal, open stage): a stay ends at the deal's next move (or its exit to another pipeline).
    stop = np.r_[log.move_at[1:], 0] if m else np.zeros(0, np.int64)  # a stay ends at the next move or, after
    stop[ends] = log.exit_at[idx]  # the deal's last move, at its exit from the pipeline (-1: not finished)
    finished = np.flatnonzero(is_open & (stop >= 0))
    new_deal = np.zeros(m, dtype=np.int64)
    new_deal[starts[1:]] = 1
    key = np.cumsum(new_deal)[finished] * n + pos[finished]  # (deal, stage): one bincount for all stages
    dur = (stop[finished] - log.move_at[finished]).astype(np.float64)
    total = np.bincount(key, weights=dur, minlength=len(starts) * n).reshape(-1, n)
    count = np.bincount(key, minlength=len(starts) * n).reshape(-1, n)
    # A stage the deal sits in now is unfinished: its stays are not a completed time.
    count = np.where(cur_pos[:, None] == np.arange(n), 0, count)
    return max_pos, bits, end_pos, cur_pos, reason, entry, cycle, total, count


def _group_codes(by: str, facts: _Deals, log: PipelineLog) -> tuple[NDArray[np.int64], list[str]]:
    if by == "owner":
        uniq, inv = np.unique(facts.owner, return_inverse=True)
        labels = [log.user_names.get(int(u), "(none)") for u in uniq]
        return inv.astype(np.int64), labels
    if by == "month":
        months = facts.entry.astype("datetime64[us]").astype("datetime64[M]")
        uniq, inv = np.unique(months, return_inverse=True)
        return inv.astype(np.int64), [str(u) for u in uniq]
    column = log.deal_source if by == "source" else log.deal_segment
    codes, labels = codes_of(column)
    codes = codes[facts.index]
    order = np.argsort(labels)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[codes].astype(np.int64), [labels[i] for i in order]


def _quantiles(codes: NDArray[np.int64], values: NDArray[np.float64], g: int, q: float) -> NDArray[np.float64]:
    """The q-quantile (linear interpolation, as numpy.quantile) of ``values`` within each group code."""
    return _group_quantiles(codes, values, g, (q,))[0]


def _group_quantiles(
    codes: NDArray[np.int64], values: NDArray[np.float64], g: int, qs: tuple[float, ...]
) -> list[NDArray[np.float64]]:
    """Several quantiles as :func:`_quantiles` gives them, from one pass: values grouped by code (a radix sort of
    the codes), then within each group only the order statistics needed put in place (``ndarray.partition``)."""
    outs = [np.full(g, np.nan) for _ in qs]
    if not len(values):
        return outs
    counts = np.bincount(codes, minlength=g)
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    has = counts > 0
    small = codes.astype(np.uint16) if g <= 1 << 16 else codes  # 16-bit keys sort by radix
    v = values[np.argsort(small, kind="stable")] if g > 1 else values.copy()
    hs = [q * (counts[has] - 1) for q in qs]
    los = [np.floor(h).astype(np.int64) for h in hs]
    his = [np.ceil(h).astype(np.int64) for h in hs]
    base = offsets[has]
    for b, c, kth in zip(base.tolist(), counts[has].tolist(), np.stack(los + his, 1).tolist(), strict=True):
        v[b : b + c].partition(sorted(set(kth)))
    for out, h, lo, hi in zip(outs, hs, los, his, strict=True):
        out[has] = v[base + lo] + (v[base + hi] - v[base + lo]) * (h - lo)
    return outs


def _num(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def _days(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x) / _DAY_US, 3)


def _tabulate(
    pipe: Pipeline,
    f: _Deals,
    sums: list[tuple[NDArray[np.float64], NDArray[np.int64]]],
    codes: NDArray[np.int64],
    g: int,
    strict: bool,
    reason_names: dict[int, str],
    conf: float,
) -> list[tuple[list[StageRow], FunnelTotals]]:
    n = len(pipe.open_stages)
    entered = np.bincount(codes, minlength=g)
    hist = np.bincount(codes * (n + 1) + f.max_pos, minlength=g * (n + 1)).reshape(g, n + 1)
    implied = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # implied[:, k]: max_pos >= k
    if strict:
        reached = np.stack([np.bincount(codes[(f.entered_bits >> k) & 1 == 1], minlength=g) for k in range(n + 1)], 1)
        passed = np.stack(
            [np.bincount(codes[((f.entered_bits >> k) & 1 == 1) & (f.max_pos > k)], minlength=g) for k in range(n)], 1
        )
    else:
        reached = implied
        passed = implied[:, 1:]
    status_counts = np.bincount(codes * 4 + f.status, minlength=g * 4).reshape(g, 4)
    lost_mask = f.status == _LOST
    moved_mask = f.status == _MOVED
    lost_at = np.bincount(codes[lost_mask] * n + f.end_pos[lost_mask], minlength=g * n).reshape(g, n)
    moved_at = np.bincount(codes[moved_mask] * n + f.end_pos[moved_mask], minlength=g * n).reshape(g, n)
    open_mask = f.status == _OPEN
    open_at = np.bincount(codes[open_mask] * n + f.cur_pos[open_mask], minlength=g * n).reshape(g, n)
    reasons = _reason_table(codes[lost_mask], f.end_pos[lost_mask], f.reason[lost_mask], reason_names)
    med = np.full((g, n), np.nan)
    p90 = np.full((g, n), np.nan)
    for k, (total, count) in enumerate(sums):
        has = count > 0
        med[:, k], p90[:, k] = _group_quantiles(codes[has], total[has], g, (0.5, 0.9))
    won = f.status == _WON
    cyc_med, cyc_p90 = _group_quantiles(codes[won], f.cycle_us[won].astype(np.float64), g, (0.5, 0.9))
    conv_lo, conv_hi = wilson_array(passed, reached[:, :n], conf)
    start_lo, start_hi = wilson_array(reached, entered[:, None], conf)
    all_lo, all_hi = wilson_array(status_counts[:, _WON], entered, conf)

    out = []
    for gi in range(g):
        rows = []
        for k, st in enumerate([*pipe.open_stages, pipe.won_stage]):
            r, e = int(reached[gi, k]), int(entered[gi])
            is_open = k < n
            p = int(passed[gi, k]) if is_open else None
            rows.append(
                StageRow(
                    name=st.name,
                    kind=st.kind.value,
                    reached=r,
                    passed=p,
                    conversion=(p / r if r else None) if p is not None else None,
                    ci_low=_num(conv_lo[gi, k]) if is_open else None,
                    ci_high=_num(conv_hi[gi, k]) if is_open else None,
                    conversion_from_start=r / e if e else None,
                    from_start_ci_low=_num(start_lo[gi, k]),
                    from_start_ci_high=_num(start_hi[gi, k]),
                    lost=int(lost_at[gi, k]) if is_open else 0,
                    lost_reasons=reasons.get((gi, k), {}),
                    moved_out=int(moved_at[gi, k]) if is_open else 0,
                    open=int(open_at[gi, k]) if is_open else 0,
                    median_days=_days(med[gi, k]) if is_open else None,
                    p90_days=_days(p90[gi, k]) if is_open else None,
                    sla_days=st.sla_days,
                )
            )
        e = int(entered[gi])
        w = int(status_counts[gi, _WON])
        totals = FunnelTotals(
            entered=e,
            won=w,
            lost=int(status_counts[gi, _LOST]),
            open=int(status_counts[gi, _OPEN]),
            moved_out=int(status_counts[gi, _MOVED]),
            conversion=w / e if e else None,
            ci_low=_num(all_lo[gi]),
            ci_high=_num(all_hi[gi]),
            median_cycle_days=_days(cyc_med[gi]),
            p90_cycle_days=_days(cyc_p90[gi]),
        )
        out.append((rows, totals))
    return out


def _reason_table(
    codes: NDArray[np.int64], at: NDArray[np.int64], reason: NDArray[np.int64], names: dict[int, str]
) -> dict[tuple[int, int], dict[str, int]]:
    out: dict[tuple[int, int], dict[str, int]] = {}
    if not len(codes):
        return out
    # One integer key per (code, at, reason) row, in the same order as the rows: a 1-d unique is much faster.
    span_at, span_reason = int(at.max()) + 1, int(reason.max()) + 2
    keys, counts = np.unique((codes * span_at + at) * span_reason + reason + 1, return_counts=True)
    uniq = np.stack([keys // (span_at * span_reason), keys // span_reason % span_at, keys % span_reason - 1], 1)
    for (c, k, r), cnt in sorted(zip(map(tuple, uniq.tolist()), counts.tolist(), strict=True), key=lambda t: -t[1]):
        label = names.get(int(r), "(no reason)") if r >= 0 else "(no reason)"
        out.setdefault((int(c), int(k)), {})[label] = int(cnt)
    return out
