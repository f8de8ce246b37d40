"""Kaplan–Meier survival curves: how long until an event, when some subjects have not had it yet (censored).

For deals: the event is winning, the duration is the time from entry; a deal still open is *censored* at its
current age (it may still win later), so it counts in the risk set until then and is never treated as a loss.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def kaplan_meier(durations: ArrayLike, events: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The Kaplan–Meier estimate S(t) at each distinct event time: (times, survival just after each time).

    >>> t, s = kaplan_meier([1, 2, 2, 3, 4], [1, 1, 0, 1, 0])
    >>> t.tolist(), [round(float(x), 4) for x in s]
    ([1.0, 2.0, 3.0], [0.8, 0.6, 0.3])
    """
    d = np.asarray(durations, dtype=np.float64)
    e = np.asarray(events, dtype=bool)
    if d.shape != e.shape:
        raise ValueError("durations and events must have the same length")
    if np.any(d < 0) or np.any(np.isnan(d)):
        raise ValueError("durations must be non-negative numbers")
    times = np.unique(d[e])
    if not len(times):
        return times, times.copy()
    order = np.sort(d)
    at_risk = len(d) - np.searchsorted(order, times, side="left")
    deaths = np.bincount(np.searchsorted(times, d[e]), minlength=len(times))
    return times, np.cumprod(1 - deaths / at_risk)


def km_median(durations: ArrayLike, events: ArrayLike) -> float:
    """The median survival time: the first event time where S(t) ≤ 1/2; NaN when the curve never gets there."""
    t, s = kaplan_meier(durations, events)
    below = np.flatnonzero(s <= 0.5)
    return float(t[below[0]]) if len(below) else float("nan")
