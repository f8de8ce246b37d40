"""Multiple-testing control: Benjamini–Hochberg false discovery rate."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def benjamini_hochberg(pvalues: ArrayLike, q: float = 0.05) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Which hypotheses to reject at false discovery rate ``q``, and the BH-adjusted p-values (q-values).

    The adjusted p-value of the i-th smallest of m p-values is min over j >= i of p_(j) · m / j, capped at 1;
    a hypothesis is rejected when its adjusted p-value is at most ``q``. NaN p-values are ignored (never
    rejected, adjusted NaN) and do not count in m.

    >>> reject, adj = benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
    >>> reject.tolist(), [round(float(x), 4) for x in adj]
    ([True, False, False, False], [0.04, 0.0533, 0.0533, 0.5])
    """
    if not 0 < q < 1:
        raise ValueError(f"false discovery rate {q!r} must be between 0 and 1, e.g. 0.05")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    adj = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m:
        sub = p[ok]
        order = np.argsort(sub, kind="stable")
        scaled = sub[order] * m / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(scaled[::-1])[::-1]
        out = np.empty(m)
        out[order] = np.minimum(stepped, 1.0)
        adj[ok] = out
    return np.where(ok, adj <= q, False), adj
