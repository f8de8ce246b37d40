"""The per-deal facts of the stage funnel in one compiled pass over the move log (Numba).

``stage_funnel._deal_facts`` computes the same facts with a dozen vectorised NumPy passes, each over every move
and each with its temporaries; on a log of millions of moves those passes cost seconds, this loop a tenth of
that. Small logs keep the NumPy path (no compiler to load); ``tests/analytics`` checks that both give the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from voronka.analytics._jit import kernel, readonly
from voronka.analytics._log import I64

_OPEN, _WON, _LOST, _MOVED = 0, 1, 2, 3


@kernel(nogil=True)
def deal_facts_kernel(  # noqa: PLR0913 - the log's columns, as the NumPy path takes them
    pos: I64,
    move_at: I64,
    move_reason: I64,
    starts: I64,
    status: NDArray[np.int8],
    idx: I64,
    deal_since: I64,
    exit_at: I64,
    n: int,
) -> tuple[I64, I64, I64, I64, I64, I64, I64, NDArray[np.float64], I64]:
    """Per deal (segments of the log from ``starts``): furthest stage, stages entered as bits, the last open stage
    (lost or moved out), the stage it is in (open), the loss reason, entry time, cycle time, and per open stage the
    completed time and the number of completed stays (a stay ends at the next move, or at the exit from the
    pipeline after the last one; the stage a deal sits in now has no completed stays)."""
    d_count = len(starts)
    m = len(pos)
    max_pos = np.empty(d_count, np.int64)
    bits = np.empty(d_count, np.int64)
    end_pos = np.empty(d_count, np.int64)
    cur_pos = np.empty(d_count, np.int64)
    reason = np.empty(d_count, np.int64)
    entry = np.empty(d_count, np.int64)
    cycle = np.empty(d_count, np.int64)
    total = np.zeros((d_count, n), np.float64)
    count = np.zeros((d_count, n), np.int64)
    for d in range(d_count):
        a = starts[d]
        b = starts[d + 1] if d + 1 < d_count else m
        st = status[d]
        furthest = -1
        entered = 0
        last_open = -1
        for i in range(a, b):
            p = pos[i]
            if 0 <= p < n:
                if p > furthest:
                    furthest = p
                entered |= 1 << p
                last_open = p
                stop = move_at[i + 1] if i + 1 < b else exit_at[idx[d]]
                if stop >= 0:
                    total[d, p] += stop - move_at[i]
                    count[d, p] += 1
        if st == _WON:
            max_pos[d] = n
            bits[d] = entered | (1 << n)
        else:
            max_pos[d] = furthest if furthest > 0 else 0
            bits[d] = entered
        end_pos[d] = (last_open if last_open >= 0 else 0) if st == _LOST or st == _MOVED else -1  # noqa: SIM109
        cur_pos[d] = pos[b - 1] if st == _OPEN else -1
        if st == _OPEN and 0 <= pos[b - 1] < n:
            count[d, pos[b - 1]] = 0
        reason[d] = move_reason[b - 1] if st == _LOST else -1
        entry[d] = move_at[a]
        cycle[d] = deal_since[idx[d]] - move_at[a] if st == _WON else -1
    return max_pos, bits, end_pos, cur_pos, reason, entry, cycle, total, count


def deal_facts(*args: Any) -> tuple[I64, I64, I64, I64, I64, I64, I64, NDArray[np.float64], I64]:
    """:func:`deal_facts_kernel` (the same arguments) on read-only views of the arrays (``_jit.readonly``), so
    that it is compiled for one signature: a log's columns come read-only or writable."""
    *arrays, n = args
    return deal_facts_kernel(*map(readonly, arrays), n)  # type: ignore[no-any-return]
