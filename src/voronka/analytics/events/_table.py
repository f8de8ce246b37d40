"""The entity table of the in-process engine (Numba): rows arrive in batches, each row finds its entity's local id
in the table of its bucket, updates the entity's first touch, and the rows that can matter are kept.

An entity's bucket is the top ``bits`` of a hash of its key; every bucket has its own open-addressing table of
``cap`` slots (a region of one array; a slot holds all there is of an entity, so a row costs one cache line) and
numbers its entities 0, 1, 2… in order of arrival (the *local id*). Local ids never change, so the kept rows carry
them instead of keys; when a bucket's table is three quarters full, every table doubles (``grow``) and the ingest
resumes where it stopped. A batch is visited in bucket order (a counting sort by bucket, the rows moved), so each
bucket's table is probed while it is in cache.
"""

from __future__ import annotations

import numpy as np

from voronka.analytics._jit import kernel
from voronka.analytics.events._bits import (
    EXCL_BITS,
    FIRST_TOUCH,
    IN_RANGE,
    KEEP,
    R_END,
    R_FIRST_TOUCH,
    R_HAS_END,
    R_HAS_START,
    R_LIMIT,
    R_LIMIT_KIND,
    R_LUT_LOW,
    R_PRUNE_START,
    R_START,
    R_STRICT_ALL,
    STEP_BITS,
    TRACKED,
)

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
EMPTY = -1
KEY, FIRST_T, FIRST_C, META = 0, 1, 2, 3  # the columns of a slot
_NEVER = np.iinfo(np.int64).max


@kernel(inline="always")
def _hash(key):
    """SplitMix64's finalizer: every bit of the result depends on every bit of the key."""
    h = np.uint64(key)
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


@kernel(nogil=True)
def bucket_order(ent, ts, mask, code, bits, rec, bucket):
    """Copy the rows into ``rec`` in bucket order (a counting sort by bucket); return where each bucket starts.

    A row of ``rec`` is three int64: entity key, time, and mask << 32 | code (one record written per row: four
    separate columns made the scatter twice as slow with 256 buckets). ``bucket`` is scratch; both are at least as
    long as the batch and reused."""
    n = len(ent)
    nb = 1 << bits
    starts = np.zeros(nb + 1, np.int64)
    for i in range(n):
        b = _bucket(_hash(ent[i]), bits)
        bucket[i] = b
        starts[b + 1] += 1
    for b in range(nb):
        starts[b + 1] += starts[b]
    pos = starts[:-1].copy()
    for i in range(n):
        b = bucket[i]
        o = pos[b]
        pos[b] = o + 1
        rec[o, 0] = ent[i]
        rec[o, 1] = ts[i]
        rec[o, 2] = _pack(mask[i], code[i])
    return starts


@kernel(inline="always")
def _pack(m, c):
    return (np.int64(m) << 32) | (np.int64(c) & 0xFFFFFFFF)


@kernel(inline="always")
def _event_mask(v, t, lut, low, top, rule):
    """A row's mask (``sql.mask_sql``) and whether it can matter (``sql.prune_sql``), from its event and time.

    ``rule`` is ``bucket_order_events``'s unpacked into a tuple (read from an array in the loop, it made the loop
    three times slower)."""
    strict_all, has_start, start, has_end, end, prune_start, kind, limit = rule
    # lut[0] and lut[top] are 0: every value below / above the table's span lands there (no branch).
    vb = lut[min(max(v - low + 1, 0), top)]
    m = (vb & (STEP_BITS | EXCL_BITS)) | TRACKED
    if (not has_start or t >= start) and (not has_end or t < end):
        m |= IN_RANGE
    keep = strict_all or (vb & KEEP) != 0
    if prune_start and t < start:
        keep = False
    if (kind == 1 and t >= limit) or (kind == 2 and t > limit):
        keep = False
    return m, keep


@kernel(nogil=True)
def bucket_order_events(ent, ts, ev, code, bits, rec, bucket, lut, rule):
    """``bucket_order`` for a log whose steps and exclusions are plain event values: each row's mask is made here
    from its event value and time (what ``sql.mask_sql`` and ``sql.prune_sql`` say in SQL), and rows that cannot
    matter are left out. ``lut[1 + v - rule[R_LUT_LOW]]`` holds the step and exclusion bits of event value v and
    ``KEEP``; ``rule`` the mode, the date range and the time limits (``R_*``)."""
    n = len(ent)
    nb = 1 << bits
    low, top = rule[R_LUT_LOW], len(lut) - 1
    first_touch = rule[R_FIRST_TOUCH] != 0
    r = (
        rule[R_STRICT_ALL] != 0,
        rule[R_HAS_START] != 0,
        rule[R_START],
        rule[R_HAS_END] != 0,
        rule[R_END],
        rule[R_PRUNE_START] != 0,
        rule[R_LIMIT_KIND],
        rule[R_LIMIT],
    )
    starts = np.zeros(nb + 1, np.int64)
    for i in range(n):
        if not first_touch:  # with first touch every row counts
            m, keep = _event_mask(ev[i], ts[i], lut, low, top, r)
            if not keep:
                bucket[i] = -1
                continue
        b = _bucket(_hash(ent[i]), bits)
        bucket[i] = b
        starts[b + 1] += 1
    for b in range(nb):
        starts[b + 1] += starts[b]
    pos = starts[:-1].copy()
    for i in range(n):
        b = bucket[i]
        if b < 0:
            continue
        o = pos[b]
        pos[b] = o + 1
        t = ts[i]
        m, keep = _event_mask(ev[i], t, lut, low, top, r)
        if first_touch:
            m = (m if keep else 0) | FIRST_TOUCH
        rec[o, 0] = ent[i]
        rec[o, 1] = t
        rec[o, 2] = _pack(m, code[i])
    return starts


@kernel(inline="always")
def _bucket(h, bits):
    return np.int64(h >> np.uint64(64 - bits)) if bits > 0 else 0


@kernel(nogil=True)
def ingest(rec, starts, b0, b1, j0, o0, table, out, kept, count_attempts, start_bits):
    """Enter rows ``j0:`` of ``rec`` (in bucket order) of buckets ``b0:b1`` into the tables; copy the kept rows to
    ``out`` from ``o0`` on.

    ``table`` = (slots, count, units); ``out`` = (local id, time, mask, code). ``kept[b]`` counts bucket b's rows
    written to ``out`` by this batch, ``units[b]`` the units bucket b will yield at most: its attempts, or its
    entities with a row that may start one (in the date range, matching a step in ``start_bits``). Returns
    (-1, -1, end of the rows written) when done, or the (bucket, row, out position) to resume from once the tables
    have grown. Calls on disjoint bucket ranges touch disjoint slots and counts: they may run at once.
    """
    slots, count, units = table
    o_lid, o_t, o_m, o_c = out
    nb = len(starts) - 1
    cap = len(slots) // nb
    lcap = cap * 3 // 4
    o = o0
    i = j0
    for b in range(b0, b1):
        base = b * cap
        while i < starts[b + 1]:
            e = rec[i, 0]
            s = base + np.int64(_hash(e) & np.uint64(cap - 1))
            while True:
                meta = slots[s, META]
                if meta == EMPTY:
                    if count[b] == lcap:
                        return b, i, o
                    slots[s, KEY] = e
                    slots[s, FIRST_T] = _NEVER
                    slots[s, FIRST_C] = -1
                    slots[s, META] = count[b] << 1
                    meta = count[b] << 1
                    count[b] += 1
                    break
                if slots[s, KEY] == e:
                    break
                s = base + ((s - base + 1) & (cap - 1))
            t = rec[i, 1]
            mc = rec[i, 2]
            m = np.int32(mc >> 32)
            c = np.int32(mc)
            if m & FIRST_TOUCH:
                ft = slots[s, FIRST_T]
                if t < ft or (t == ft and c < slots[s, FIRST_C]):
                    slots[s, FIRST_T] = t
                    slots[s, FIRST_C] = c
                m &= ~FIRST_TOUCH
            if m:
                o_lid[o] = meta >> 1
                o_t[o] = t
                o_m[o] = m
                o_c[o] = c
                o += 1
                kept[b] += 1
                if count_attempts:
                    if m & 1 and m & IN_RANGE:
                        units[b] += 1
                elif m & start_bits and m & IN_RANGE and not meta & 1:
                    slots[s, META] = meta | 1  # the entity may start an attempt: it gets a unit
                    units[b] += 1
            i += 1
    return -1, -1, o


@kernel
def grow(table, slots2):
    """The same tables in ``slots2`` (empty slots, a power of two a bucket); local ids stay as they are."""
    slots, count, units = table
    nb = len(count)
    old_cap = len(slots) // nb
    cap = len(slots2) // nb
    for b in range(nb):
        for s in range(b * old_cap, (b + 1) * old_cap):
            if slots[s, META] == EMPTY:
                continue
            d = b * cap + np.int64(_hash(slots[s, KEY]) & np.uint64(cap - 1))
            while slots2[d, META] != EMPTY:
                d = b * cap + ((d - b * cap + 1) & (cap - 1))
            for k in range(4):  # not slots2[d, :] = slots[s, :]: a slice copy compiles for seconds
                slots2[d, k] = slots[s, k]
    return slots2, count, units


@kernel
def entities(slots, b, cap, n):
    """Bucket b's entities by local id: their keys, first-touch codes, and whether they may start an attempt."""
    keys = np.empty(n, np.int64)
    first_c = np.empty(n, np.int32)
    starts = np.empty(n, np.bool_)
    for s in range(b * cap, (b + 1) * cap):
        meta = slots[s, META]
        if meta != EMPTY:
            keys[meta >> 1] = slots[s, KEY]
            first_c[meta >> 1] = slots[s, FIRST_C]
            starts[meta >> 1] = meta & 1
    return keys, first_c, starts


def new_table(bits: int, cap: int = 16) -> tuple[np.ndarray, ...]:
    """Empty tables for ``2**bits`` buckets of ``cap`` slots each: (slots, entities per bucket, units per bucket).

    A slot is one row of four int64 (32 bytes, half a cache line): the entity key, its first-touch time and code,
    and ``META`` = local id * 2 + (whether the entity may start an attempt), ``EMPTY`` for a free slot.
    """
    nb = 1 << bits
    return new_slots(nb * cap), np.zeros(nb, np.int64), np.zeros(nb, np.int64)


def new_slots(n: int) -> np.ndarray:
    """``n`` empty slots. Allocated by NumPy, which asks Linux for huge pages for big arrays: with 4 KiB pages a probe
    into a table of hundreds of MiB misses the TLB as well as the cache."""
    slots = np.empty((n, 4), np.int64)
    slots[:, META] = EMPTY
    return slots
