"""The entity table of the in-process engine (Numba): rows arrive in batches, each row finds its entity's local id
in the table of its bucket, updates the entity's first touch, and the rows that can matter are kept.

An entity's bucket is the top ``bits`` of a hash of its key; every bucket has its own open-addressing table of
``cap`` slots (a region of the shared arrays) and numbers its entities 0, 1, 2… in order of arrival (the *local
id*). Local ids never change, so the kept rows carry them instead of keys; when a bucket's table is three quarters
full, every table doubles (``grow``) and the ingest resumes where it stopped. A batch is visited in bucket order (a
counting sort by bucket, the rows moved), so each bucket's table is probed while it is in cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from voronka.analytics.events._bits import FIRST_TOUCH, IN_RANGE

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
EMPTY = -1
_NEVER = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def _hash(key):
    """SplitMix64's finalizer: every bit of the result depends on every bit of the key."""
    h = np.uint64(key)
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


@njit(cache=True, nogil=True)
def bucket_order(ent, ts, mask, code, bits):
    """The rows in bucket order (a counting sort by bucket); ``starts[b]`` is bucket b's first row."""
    n = len(ent)
    nb = 1 << bits
    bucket = np.empty(n, np.int16)
    starts = np.zeros(nb + 1, np.int64)
    for i in range(n):
        b = _bucket(_hash(ent[i]), bits)
        bucket[i] = b
        starts[b + 1] += 1
    for b in range(nb):
        starts[b + 1] += starts[b]
    pos = starts[:-1].copy()
    e2 = np.empty(n, np.int64)
    t2 = np.empty(n, np.int64)
    m2 = np.empty(n, np.int32)
    c2 = np.empty(n, np.int32)
    for i in range(n):
        b = bucket[i]
        o = pos[b]
        pos[b] = o + 1
        e2[o] = ent[i]
        t2[o] = ts[i]
        m2[o] = mask[i]
        c2[o] = code[i]
    return e2, t2, m2, c2, starts


@njit(cache=True, inline="always")
def _bucket(h, bits):
    return np.int64(h >> np.uint64(64 - bits)) if bits > 0 else 0


@njit(cache=True, nogil=True)
def ingest(ent, ts, mask, code, starts, b0, j0, table, out, kept, count_attempts):
    """Enter rows ``j0:`` (in bucket order; buckets from ``b0`` on) into the tables; copy the kept rows to ``out``.

    ``table`` = (slots, count, keys, first_t, first_c, has_rows, units); ``out`` = (local id, time, mask, code).
    ``kept[b]`` counts bucket b's rows written to ``out`` by this batch, ``units[b]`` the units bucket b will yield.
    Returns (-1, -1) when done, or the (bucket, row) to resume from once the tables have grown.
    """
    slots, count, keys, first_t, first_c, has_rows, units = table
    o_lid, o_t, o_m, o_c = out
    nb = len(starts) - 1
    cap = len(slots) // nb
    lcap = len(keys) // nb
    o = kept.sum()  # buckets after b0 have none yet
    i = j0
    for b in range(b0, nb):
        base_s = b * cap
        base_l = b * lcap
        while i < starts[b + 1]:
            e = ent[i]
            s = np.int64(_hash(e) & np.uint64(cap - 1))
            while True:
                lid = slots[base_s + s]
                if lid == EMPTY:
                    if count[b] == lcap:
                        return b, i
                    lid = count[b]
                    count[b] = lid + 1
                    slots[base_s + s] = lid
                    keys[base_l + lid] = e
                    first_t[base_l + lid] = _NEVER
                    first_c[base_l + lid] = -1
                    has_rows[base_l + lid] = 0
                    break
                if keys[base_l + lid] == e:
                    break
                s = (s + 1) & (cap - 1)
            m = mask[i]
            t = ts[i]
            c = code[i]
            if m & FIRST_TOUCH:
                ft = first_t[base_l + lid]
                if t < ft or (t == ft and c < first_c[base_l + lid]):
                    first_t[base_l + lid] = t
                    first_c[base_l + lid] = c
                m &= ~FIRST_TOUCH
            if m:
                o_lid[o] = lid
                o_t[o] = t
                o_m[o] = m
                o_c[o] = c
                o += 1
                kept[b] += 1
                if count_attempts:
                    if m & 1 and m & IN_RANGE:
                        units[b] += 1
                elif not has_rows[base_l + lid]:
                    has_rows[base_l + lid] = 1
                    units[b] += 1
            i += 1
    return -1, -1


@njit(cache=True)
def grow(table, cap):
    """The same tables with ``cap`` slots each (a power of two); local ids stay as they are."""
    slots, count, keys, first_t, first_c, has_rows, units = table
    nb = len(count)
    lcap = cap * 3 // 4
    old_lcap = len(keys) // nb
    slots2 = np.full(nb * cap, EMPTY, np.int32)
    keys2 = np.empty(nb * lcap, np.int64)
    first_t2 = np.empty(nb * lcap, np.int64)
    first_c2 = np.empty(nb * lcap, np.int32)
    has_rows2 = np.empty(nb * lcap, np.int8)
    for b in range(nb):
        n = count[b]
        src, dst = b * old_lcap, b * lcap
        keys2[dst : dst + n] = keys[src : src + n]
        first_t2[dst : dst + n] = first_t[src : src + n]
        first_c2[dst : dst + n] = first_c[src : src + n]
        has_rows2[dst : dst + n] = has_rows[src : src + n]
        for lid in range(n):
            s = np.int64(_hash(keys2[dst + lid]) & np.uint64(cap - 1))
            while slots2[b * cap + s] != EMPTY:
                s = (s + 1) & (cap - 1)
            slots2[b * cap + s] = lid
    return slots2, count, keys2, first_t2, first_c2, has_rows2, units


def new_table(bits: int, cap: int = 16) -> tuple[np.ndarray, ...]:
    """Empty tables for ``2**bits`` buckets of ``cap`` slots each."""
    nb = 1 << bits
    lcap = cap * 3 // 4
    return (
        np.full(nb * cap, EMPTY, np.int32),
        np.zeros(nb, np.int64),
        np.empty(nb * lcap, np.int64),
        np.empty(nb * lcap, np.int64),
        np.empty(nb * lcap, np.int32),
        np.empty(nb * lcap, np.int8),
        np.zeros(nb, np.int64),
    )
