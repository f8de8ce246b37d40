"""``kernel``: Numba's ``njit(cache=True)`` whose on-disk cache loads without initialising Numba's compiler.

Numba loads a cached function only after ``target_context.refresh()``, which imports and registers every
implementation Numba has (typing templates, lowering registries: about a quarter of a second of CPU here) — what a
*compilation* needs. Linking cached machine code needs only the symbols it calls: Numba's C helpers and the
context's maths (installed when the context is made) and the runtime (NRT: allocation), initialised here. A cache
miss still compiles as before: Numba's compiler refreshes the contexts itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def kernel(fn: Any = None, **options: Any) -> Any:
    """``@kernel`` or ``@kernel(nogil=True, …)``: ``njit(cache=True, …)`` with the light cache load."""
    if fn is None:
        return lambda f: kernel(f, **options)
    from numba import njit  # here: a module that only calls ``readonly`` does not load Numba (and SciPy with it)

    disp = njit(cache=True, **options)(fn)
    cache = disp._cache

    def load_overload(sig: Any, target_context: Any) -> Any:
        from numba.core.runtime import rtsys

        rtsys.initialize(target_context)  # what target_context.refresh() does first; the rest is for compiling
        with cache._guard_against_spurious_io_errors():
            return cache._load_overload(sig, target_context)
        return None  # the guard swallowed an I/O error (Windows): compile, as Numba does

    cache.load_overload = load_overload
    return disp


def readonly(a: Any, dtype: Any = None) -> Any:
    """``a`` as a kernel should take it: contiguous (of ``dtype`` when given) and read-only, a view (the caller's
    array keeps its flags). Numba compiles a kernel again for each mix of read-only and writable arrays (seconds
    of CPU each), and arrays come either way: read-only when NumPy wraps Arrow's buffers, writable when computed."""
    view = np.ascontiguousarray(a, dtype=dtype).view()
    view.flags.writeable = False
    return view
