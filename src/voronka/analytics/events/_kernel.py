"""The compiled single pass of the in-process engine (Numba): partition rows by entity, order each entity's rows,
walk them once.

A row is (entity key int64, time µs int64, mask int32, code int32). The mask's bits:

- 0..15: the steps the row matches; 16: the row lies in the date range (it may start an attempt);
- 17: a first-touch row (one per entity: its earliest row's breakdown code, not an event of the funnel);
- 20..27: the exclusion steps the row matches. A row with none of these is "another tracked event".

Rows are grouped by a multiplicative hash of the entity into buckets (no global sort), each bucket is sorted by
(entity, time, lowest matched step, mask, code) and walked per entity, buckets in parallel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from voronka.analytics.events._bits import (
    ANY,
    EXCL_BITS,
    EXCL_SHIFT,
    FIRST,
    FIRST_TOUCH,
    IN_RANGE,
    LAST,
    MISSING,
    STEP_BITS,
    STRICT,
)


@njit(cache=True, inline="always")
def _lowest(m):
    for k in range(16):
        if (m >> k) & 1:
            return k
    return 16


@njit(cache=True)
def _sort_key(ts, mask):
    """Time then lowest matched step: equal times are ordered by step (other rows after, first-touch rows last)."""
    out = np.empty(len(ts), np.int64)
    for i in range(len(ts)):
        m = mask[i]
        order = 31 if m & FIRST_TOUCH else _lowest(m)
        out[i] = ts[i] * 32 + order
    return out


@njit(cache=True, inline="always")
def _gt(ent, key, mask, code, i, j):
    if ent[i] != ent[j]:
        return ent[i] > ent[j]
    if key[i] != key[j]:
        return key[i] > key[j]
    if mask[i] != mask[j]:
        return mask[i] > mask[j]
    return code[i] > code[j]


@njit(cache=True)
def _argsort(ent, key, mask, code):
    """Bottom-up merge sort of row indices by (entity, key, mask, code)."""
    n = len(ent)
    idx = np.arange(n)
    tmp = np.empty(n, np.int64)
    run = 24
    for s in range(0, n, run):
        e = min(s + run, n)
        for i in range(s + 1, e):
            x = idx[i]
            j = i - 1
            while j >= s and _gt(ent, key, mask, code, idx[j], x):
                idx[j + 1] = idx[j]
                j -= 1
            idx[j + 1] = x
    width = run
    while width < n:
        for s in range(0, n, 2 * width):
            mid = min(s + width, n)
            e = min(s + 2 * width, n)
            a, b, o = s, mid, s
            while a < mid and b < e:
                if _gt(ent, key, mask, code, idx[a], idx[b]):
                    tmp[o] = idx[b]
                    b += 1
                else:
                    tmp[o] = idx[a]
                    a += 1
                o += 1
            while a < mid:
                tmp[o] = idx[a]
                a += 1
                o += 1
            while b < e:
                tmp[o] = idx[b]
                b += 1
                o += 1
        idx, tmp = tmp, idx
        width *= 2
    return idx


@njit(cache=True, parallel=True)
def partition(ent, ts, mask, code, bits):
    """Scatter rows into 2**bits buckets by a hash of the entity; returns the arrays and the bucket offsets."""
    n = len(ent)
    nb = 1 << bits
    chunks = 16
    size = (n + chunks - 1) // chunks
    counts = np.zeros((chunks, nb), np.int64)
    bid = np.empty(n, np.int32)
    for c in prange(chunks):
        for i in range(c * size, min(n, (c + 1) * size)):
            h = np.uint64(ent[i]) * np.uint64(0x9E3779B97F4A7C15)
            b = np.int32(h >> np.uint64(64 - bits)) if bits > 0 else np.int32(0)
            bid[i] = b
            counts[c, b] += 1
    offs = np.empty((chunks, nb), np.int64)
    starts = np.zeros(nb + 1, np.int64)
    acc = 0
    for b in range(nb):
        starts[b] = acc
        for c in range(chunks):
            offs[c, b] = acc
            acc += counts[c, b]
    starts[nb] = acc
    e2 = np.empty(n, np.int64)
    t2 = np.empty(n, np.int64)
    m2 = np.empty(n, np.int32)
    c2 = np.empty(n, np.int32)
    for c in prange(chunks):
        for i in range(c * size, min(n, (c + 1) * size)):
            b = bid[i]
            o = offs[c, b]
            offs[c, b] = o + 1
            e2[o] = ent[i]
            t2[o] = ts[i]
            m2[o] = mask[i]
            c2[o] = code[i]
    return e2, t2, m2, c2, starts


@njit(cache=True, parallel=True)
def sort_buckets(ent, ts, mask, code, starts, count_attempts):
    """Sort each bucket in place; return per bucket an upper bound of the units (entities or attempts) it yields."""
    nb = len(starts) - 1
    units = np.zeros(nb, np.int64)
    for b in prange(nb):
        lo, hi = starts[b], starts[b + 1]
        if hi - lo == 0:
            continue
        e, t, m, c = ent[lo:hi], ts[lo:hi], mask[lo:hi], code[lo:hi]
        idx = _argsort(e, _sort_key(t, m), m, c)
        e[:] = e[idx]
        t[:] = t[idx]
        m[:] = m[idx]
        c[:] = c[idx]
        u = 0
        for i in range(hi - lo):
            if count_attempts:
                if m[i] & 1 and m[i] & IN_RANGE:
                    u += 1
            elif i == 0 or e[i] != e[i - 1]:
                u += 1
        units[b] = u
    return units


@njit(cache=True)
def _effective(mask, lo, hi, first_only, eff):
    """Step bits of each row after 'first time only': a flagged step keeps only the entity's first matching row."""
    seen = 0
    for r in range(lo, hi):
        m = mask[r]
        if m & FIRST_TOUCH:
            eff[r - lo] = 0
            continue
        s = m & STEP_BITS & first_only
        drop = s & seen
        seen |= s
        eff[r - lo] = m & ~drop


@njit(cache=True)
def _gap_ok(k, t, last, within, gap):
    d = t - last
    return d >= gap[k] and (within[k] < 0 or d <= within[k])


@njit(cache=True)
def _excl_hits(m, level, ex_after, ex_before):
    """Whether an exclusion row breaks an attempt that has reached ``level`` steps (1-based counts)."""
    ex = (m & EXCL_BITS) >> EXCL_SHIFT
    for e in range(len(ex_after)):  # noqa: SIM110 - a loop compiles; a generator in any() does not
        if (ex >> e) & 1 and ex_after[e] <= level < ex_before[e]:
            return True
    return False


@njit(cache=True)
def _walk_entities(ts, eff, code, lo, hi, n, p, state, path, pcode, best_t, best_c):
    """Latest-entry walk of one entity (ordered or strict). Returns (steps reached, removed by an exclusion)."""
    window, within, gap, mode, ex_after, ex_before, remove = p
    valid = state
    valid[:] = 0
    first = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    reach = np.zeros(n, np.int64)  # steps reached so far by the attempt held at each level
    best = 0
    removed = False
    for r in range(lo, hi):
        m = eff[r - lo]
        if m == 0:
            continue  # a first-touch row, or a step row dropped by 'first time only'
        t = ts[r]
        steps = m & STEP_BITS
        updated = 0
        for k in range(n - 1, 0, -1):
            if (steps >> k) & 1 and valid[k - 1]:  # noqa: SIM102 - the window test reads first[k - 1]
                if t - first[k - 1] <= window and _gap_ok(k, t, last[k - 1], within, gap):
                    for j in range(k):  # the same attempt, held at lower levels, has now reached k + 1 steps
                        if valid[j] and first[j] == first[k - 1]:
                            reach[j] = max(reach[j], k + 1)
                    reach[k] = k + 1
                    first[k] = first[k - 1]
                    last[k] = t
                    valid[k] = 1
                    path[k, :k] = path[k - 1, :k]
                    pcode[k, :k] = pcode[k - 1, :k]
                    path[k, k] = t
                    pcode[k, k] = code[r]
                    updated |= 1 << k
                    if k + 1 > best:
                        best = k + 1
                        best_t[: k + 1] = path[k, : k + 1]
                        best_c[: k + 1] = pcode[k, : k + 1]
        if steps & 1 and m & IN_RANGE:
            first[0] = t
            last[0] = t
            valid[0] = 1
            reach[0] = 1
            path[0, 0] = t
            pcode[0, 0] = code[r]
            updated |= 1
            if best == 0:
                best = 1
                best_t[0] = t
                best_c[0] = code[r]
        if mode == STRICT:
            for k in range(n):
                if not (updated >> k) & 1:
                    valid[k] = 0
        if m & EXCL_BITS:
            for k in range(n):
                if valid[k] and _excl_hits(m, reach[k], ex_after, ex_before):
                    valid[k] = 0
                    if remove:
                        removed = True
    return best, removed


@njit(cache=True)
def _walk_attempt(ts, eff, code, i, lo, hi, n, p, best_t, best_c):
    """Follow the attempt started by row ``i`` on its own, taking the first usable row for each next step."""
    window, within, gap, mode, ex_after, ex_before, remove = p
    t0 = ts[i]
    best_t[0] = t0
    best_c[0] = code[i]
    level = 1
    last = t0
    for r in range(i + 1, hi):
        m = eff[r - lo]
        if m == 0:
            continue
        t = ts[r]
        if t - t0 > window or level == n:
            break
        if (m >> level) & 1 and _gap_ok(level, t, last, within, gap):
            best_t[level] = t
            best_c[level] = code[r]
            last = t
            level += 1
            continue
        if m & EXCL_BITS and _excl_hits(m, level, ex_after, ex_before):
            return level, remove
        if mode == STRICT:
            break
    return level, False


@njit(cache=True)
def _walk_any(ts, eff, lo, hi, n, window, best_t):
    """Mode any: the most distinct steps (each row counting for its lowest step) within a window from any start."""
    best = 0
    times = np.empty(n, np.int64)
    for i in range(lo, hi):
        mi = eff[i - lo]
        if not (mi & STEP_BITS and mi & IN_RANGE):
            continue
        seen = 0
        cnt = 0
        for j in range(i, hi):
            if ts[j] - ts[i] > window:
                break
            b = _lowest(eff[j - lo] & STEP_BITS)
            if b < 16 and not (seen >> b) & 1:
                seen |= 1 << b
                times[cnt] = ts[j]
                cnt += 1
                if cnt == n:
                    break
        if cnt > best:
            best = cnt
            best_t[:cnt] = times[:cnt]
        if best == n:
            break
    return best


@njit(cache=True)
def _attributed(best, best_c, ftcode, attribution, attr_step):
    if attribution == FIRST:
        return ftcode
    if attribution == LAST:
        return best_c[best - 1] if best > 0 else -1
    return best_c[attr_step] if best > attr_step else -1


@njit(cache=True, parallel=True)
def walk(ent, ts, mask, code, starts, unit_offs, n, p, first_only, count_attempts, attribution, attr_step, out):
    """Walk every entity of every bucket; write one unit per entity (or per attempt) into ``out``.

    ``out`` = (entity, level, code, times[units, n]); a unit removed by an exclusion gets level -1; the caller
    drops units with level 0 (entities that never started an attempt in range).
    """
    o_ent, o_level, o_code, o_times = out
    mode = p[3]
    nb = len(starts) - 1
    for b in prange(nb):
        lo_b, hi_b = starts[b], starts[b + 1]
        if hi_b == lo_b:
            continue
        u = unit_offs[b]
        state = np.zeros(n, np.int8)
        path = np.empty((n, n), np.int64)
        pcode = np.empty((n, n), np.int32)
        best_t = np.empty(n, np.int64)
        best_c = np.empty(n, np.int32)
        eff = np.empty(hi_b - lo_b, np.int32)
        lo = lo_b
        while lo < hi_b:
            hi = lo + 1
            while hi < hi_b and ent[hi] == ent[lo]:
                hi += 1
            ftcode = np.int32(-1)
            for r in range(lo, hi):
                if mask[r] & FIRST_TOUCH:
                    ftcode = code[r]
            e_eff = eff[lo - lo_b : hi - lo_b]
            _effective(mask, lo, hi, first_only, e_eff)
            if count_attempts:
                for i in range(lo, hi):
                    if e_eff[i - lo] & 1 and e_eff[i - lo] & IN_RANGE:
                        best_t[:] = MISSING
                        level, removed = _walk_attempt(ts, e_eff, code, i, lo, hi, n, p, best_t, best_c)
                        o_ent[u] = ent[lo]
                        o_level[u] = -1 if removed else level
                        o_code[u] = _attributed(level, best_c, ftcode, attribution, attr_step)
                        o_times[u, :] = best_t
                        u += 1
            else:
                best_t[:] = MISSING
                if mode == ANY:
                    best = _walk_any(ts, e_eff, lo, hi, n, p[0], best_t)
                    removed = False
                else:
                    best, removed = _walk_entities(ts, e_eff, code, lo, hi, n, p, state, path, pcode, best_t, best_c)
                o_ent[u] = ent[lo]
                o_level[u] = -1 if removed else best
                o_code[u] = _attributed(best, best_c, ftcode, attribution, attr_step)
                o_times[u, :] = best_t
                u += 1
            lo = hi
        while u < unit_offs[b + 1]:
            o_level[u] = 0
            u += 1
