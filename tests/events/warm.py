"""Compile the event-funnel kernels once for the whole test run: ``python -m tests.events.warm``.

Numba compiles the kernels on first use and caches them beside the source; on a fresh clone every test worker
would compile them at the same time (tens of seconds of CPU each). The root conftest starts this module in the
background when a run includes tests/events, holding an exclusive lock on ``LOCK`` until it is done;
``tests/events/conftest.py`` waits for that lock, so the workers load the kernels from the cache instead.
The queries cover the options the tests use (modes, step limits, a repeated step, exclusions, breakdowns and
attribution); a signature not met here is compiled by the worker that needs it, as before.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import product
from pathlib import Path

# Only this at import: the root conftest takes it in every process, the controller of a parallel run included.
LOCK = Path(__file__).resolve().parents[2] / ".pytest_cache" / "numba-warm.lock"


def main() -> None:
    import pandas as pd

    from tests.events.journeys import T0, funnel
    from voronka.analytics.events import Exclusion, Step

    log = pd.DataFrame(
        {
            "entity": pd.Series([1, 1, 1, 2, 2, 3], dtype="int64"),
            "time": pd.Series([T0, T0 + 5, T0 + 20, T0, T0 + 3, T0 + 1], dtype="int64"),
            "event": ["a", "b", "c", "a", "y", "a"],
            "ch": ["x", "x", "y", "y", "y", "x"],
        }
    )
    for mode, limited, excluded, by in product(("ordered", "strict"), (False, True), (False, True), (False, True)):
        steps: list[object] = ["a", Step("b", within=timedelta(seconds=10)) if limited else "b", "c", "a"]
        kw: dict[str, object] = {"mode": mode}
        if excluded:
            kw |= {"exclusions": (Exclusion(Step("y"), after=1),), "exclusion_policy": "remove"}
        if by:
            kw |= {"by": "ch", "attribution": "first_touch"}
        funnel(log, steps=tuple(steps), window=30, **kw)
    for attribution in ("last_touch", "step"):
        extra = {"attribution_step": 2} if attribution == "step" else {}
        funnel(log, steps=("a", "b"), window=30, by="ch", attribution=attribution, **extra)


if __name__ == "__main__":
    main()
