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

from voronka.analytics.events._bits import FIRST_TOUCH, IN_RANGE
from voronka.analytics.events._jit import kernel

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
def bucket_order(ent, ts, mask, code, bits, into, bucket):
    """Copy the rows into ``into`` = (entity, time, mask, code) in bucket order (a counting sort by bucket); return
    where each bucket starts. ``bucket`` is scratch; both are at least as long as the batch and reused."""
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
    e2, t2, m2, c2 = into
    for i in range(n):
        b = bucket[i]
        o = pos[b]
        pos[b] = o + 1
        e2[o] = ent[i]
        t2[o] = ts[i]
        m2[o] = mask[i]
        c2[o] = code[i]
    return starts


@kernel(inline="always")
def _bucket(h, bits):
    return np.int64(h >> np.uint64(64 - bits)) if bits > 0 else 0


@kernel(nogil=True)
def ingest(ent, ts, mask, code, starts, b0, j0, table, out, kept, count_attempts, start_bits):
    """Enter rows ``j0:`` (in bucket order; buckets from ``b0`` on) into the tables; copy the kept rows to ``out``.

    ``table`` = (slots, count, units); ``out`` = (local id, time, mask, code). ``kept[b]`` counts bucket b's rows
    written to ``out`` by this batch, ``units[b]`` the units bucket b will yield at most: its attempts, or its
    entities with a row that may start one (in the date range, matching a step in ``start_bits``). Returns (-1, -1)
    when done, or the (bucket, row) to resume from once the tables have grown.
    """
    slots, count, units = table
    o_lid, o_t, o_m, o_c = out
    nb = len(starts) - 1
    cap = len(slots) // nb
    lcap = cap * 3 // 4
    o = kept.sum()  # buckets after b0 have none yet
    i = j0
    for b in range(b0, nb):
        base = b * cap
        while i < starts[b + 1]:
            e = ent[i]
            s = base + np.int64(_hash(e) & np.uint64(cap - 1))
            while True:
                meta = slots[s, META]
                if meta == EMPTY:
                    if count[b] == lcap:
                        return b, i
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
            m = mask[i]
            t = ts[i]
            c = code[i]
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
    return -1, -1


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
            slots2[d, :] = slots[s, :]
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
