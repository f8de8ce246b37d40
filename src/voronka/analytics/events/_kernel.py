"""The compiled per-entity pass of the in-process engine (Numba): group each bucket's kept rows by entity, order
each entity's rows, walk them once; a call walks a range of buckets, and the engine runs two ranges on two threads.

A row is (local entity id, time µs int64, mask int32, code int32); ``_table`` gives the rows their bucket and local
id, and each entity its key and first-touch code. The mask's bits:

- 0..15: the steps the row matches; 16: the row lies in the date range (it may start an attempt);
- 20..27: the exclusion steps the row matches. A row with none of these is "another tracked event".

An entity's rows are ordered by (time, lowest matched step, mask, code): equal times are ordered by step.
"""

from __future__ import annotations

import numpy as np

from voronka.analytics._jit import kernel
from voronka.analytics.events._bits import (
    ANY,
    EXCL_BITS,
    EXCL_SHIFT,
    FIRST,
    IN_RANGE,
    LAST,
    MISSING,
    STEP_BITS,
    STRICT,
)
from voronka.analytics.events._table import entities

_SMALL = 32  # entities with at most this many rows are ordered by insertion


@kernel(inline="always")
def _lowest(m):
    for k in range(16):
        if (m >> k) & 1:
            return k
    return 16


@kernel(inline="always")
def _before(k1, m1, c1, k2, m2, c2):
    if k1 != k2:
        return k1 < k2
    if m1 != m2:
        return m1 < m2
    return c1 < c2


@kernel
def _order(key, ts, mask, code, lo, hi):
    """Order rows lo..hi by (key, mask, code) in place, key = time * 32 + lowest step."""
    if hi - lo > _SMALL:
        idx = np.argsort(key[lo:hi], kind="mergesort") + lo
        key[lo:hi] = key[idx]
        ts[lo:hi] = ts[idx]
        mask[lo:hi] = mask[idx]
        code[lo:hi] = code[idx]
    # Insertion: the whole order for a few rows; after the merge sort, only ties in key (rare) move.
    for i in range(lo + 1, hi):
        k, t, m, c = key[i], ts[i], mask[i], code[i]
        j = i - 1
        while j >= lo and _before(k, m, c, key[j], mask[j], code[j]):
            key[j + 1], ts[j + 1], mask[j + 1], code[j + 1] = key[j], ts[j], mask[j], code[j]
            j -= 1
        key[j + 1], ts[j + 1], mask[j + 1], code[j + 1] = k, t, m, c


@kernel
def _group(lid, ts, mask, code, boffs, b, ne):
    """Bucket b's rows (spread over the batches) grouped by entity: (start per local id, key, time, mask, code)."""
    start = np.zeros(ne + 1, np.int64)
    for k in range(boffs.shape[0]):
        for r in range(boffs[k, b], boffs[k, b + 1]):
            start[lid[r] + 1] += 1
    for x in range(ne):
        start[x + 1] += start[x]
    rows = start[ne]
    pos = start[:-1].copy()
    key = np.empty(rows, np.int64)
    t = np.empty(rows, np.int64)
    m = np.empty(rows, np.int32)
    c = np.empty(rows, np.int32)
    for k in range(boffs.shape[0]):
        for r in range(boffs[k, b], boffs[k, b + 1]):
            x = lid[r]
            q = pos[x]
            pos[x] = q + 1
            t[q] = ts[r]
            m[q] = mask[r]
            c[q] = code[r]
            key[q] = ts[r] * 32 + _lowest(mask[r])
    return start, key, t, m, c


@kernel
def _effective(mask, lo, hi, first_only, eff):
    """Step bits of each row after 'first time only': a flagged step keeps only the entity's first matching row."""
    seen = 0
    for r in range(lo, hi):
        m = mask[r]
        s = m & STEP_BITS & first_only
        drop = s & seen
        seen |= s
        eff[r - lo] = m & ~drop


@kernel
def _gap_ok(k, t, last, within, gap):
    d = t - last
    return d >= gap[k] and (within[k] < 0 or d <= within[k])


@kernel
def _excl_hits(m, level, ex_after, ex_before):
    """Whether an exclusion row breaks an attempt that has reached ``level`` steps (1-based counts)."""
    ex = (m & EXCL_BITS) >> EXCL_SHIFT
    for e in range(len(ex_after)):  # noqa: SIM110 - a loop compiles; a generator in any() does not
        if (ex >> e) & 1 and ex_after[e] <= level < ex_before[e]:
            return True
    return False


@kernel
def _walk_entities(ts, eff, code, lo, hi, n, p, state, path, pcode, best_t, best_c):
    """Latest-entry walk of one entity (ordered or strict). Returns (steps reached, removed by an exclusion)."""
    window, within, gap, mode, ex_after, ex_before, remove = p
    valid, first, last, reach = state  # reach: steps reached so far by the attempt held at each level
    valid[:] = 0
    reach[:] = 0
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


@kernel
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


@kernel
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


@kernel
def _attributed(best, best_c, ftcode, attribution, attr_step):
    if attribution == FIRST:
        return ftcode
    if attribution == LAST:
        return best_c[best - 1] if best > 0 else -1
    return best_c[attr_step] if best > attr_step else -1


@kernel(nogil=True)
def funnel(
    lid, ts, mask, code, boffs, table, unit_offs, n, p, first_only, count_attempts, attribution, attr_step, out, b0, b1
):
    """Group, order and walk every entity of buckets ``b0:b1``; write one unit per entity (or per attempt) into
    ``out`` (each bucket's units have their own slice of it, so two threads may walk two ranges at once).

    Not ``parallel=True``: Numba's parallel compilation of this kernel cost as much as all the others together
    (17 s of CPU against 8 s on a fresh install), and the engine's two threads do what ``prange`` did.

    Bucket b's rows of batch k are ``boffs[k, b]:boffs[k, b + 1]``; ``table`` is ``_table``'s. ``out`` = (entity,
    level, code, times[units, n]); a unit removed by an exclusion gets level -1; the caller drops units with level 0
    (entities that never started an attempt in range).
    """
    slots, count = table[0], table[1]
    o_ent, o_level, o_code, o_times = out
    mode = p[3]
    cap = len(slots) // len(count)
    for b in range(b0, b1):
        u = unit_offs[b]
        if u == unit_offs[b + 1]:
            continue
        keys, first_c, starts = entities(slots, b, cap, count[b])
        start, key, t, m, c = _group(lid, ts, mask, code, boffs, b, count[b])
        state = (np.zeros(n, np.int8), np.empty(n, np.int64), np.empty(n, np.int64), np.zeros(n, np.int64))
        path = np.empty((n, n), np.int64)
        pcode = np.empty((n, n), np.int32)
        best_t = np.empty(n, np.int64)
        best_c = np.empty(n, np.int32)
        eff = np.empty(len(t), np.int32)
        for x in range(count[b]):
            lo, hi = start[x], start[x + 1]
            if lo == hi or not (count_attempts or starts[x]):
                continue  # an entity that never starts an attempt gets no unit
            _order(key, t, m, c, lo, hi)
            entity = keys[x]
            ftcode = first_c[x]
            e_eff = eff[lo:hi]
            _effective(m, lo, hi, first_only, e_eff)
            if count_attempts:
                for i in range(lo, hi):
                    if e_eff[i - lo] & 1 and e_eff[i - lo] & IN_RANGE:
                        best_t[:] = MISSING
                        level, removed = _walk_attempt(t, e_eff, c, i, lo, hi, n, p, best_t, best_c)
                        o_ent[u] = entity
                        o_level[u] = -1 if removed else level
                        o_code[u] = _attributed(level, best_c, ftcode, attribution, attr_step)
                        for k in range(n):  # not o_times[u, :] = best_t: a slice copy compiles for seconds
                            o_times[u, k] = best_t[k]
                        u += 1
            else:
                best_t[:] = MISSING
                if mode == ANY:
                    best = _walk_any(t, e_eff, lo, hi, n, p[0], best_t)
                    removed = False
                else:
                    best, removed = _walk_entities(t, e_eff, c, lo, hi, n, p, state, path, pcode, best_t, best_c)
                o_ent[u] = entity
                o_level[u] = -1 if removed else best
                o_code[u] = _attributed(best, best_c, ftcode, attribution, attr_step)
                for k in range(n):
                    o_times[u, k] = best_t[k]
                u += 1
        while u < unit_offs[b + 1]:
            o_level[u] = 0
            u += 1
