"""The in-process engine's machinery: the growable entity table across batches, and a fresh process's first run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from voronka.analytics.events import EventSource, FunnelQuery, run_funnel
from voronka.analytics.events import _bits as K
from voronka.analytics.events.engine import Ingest


def _rows(n: int, entities: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    ent = rng.integers(0, entities, n).astype(np.int64) * 7919 - 5  # sparse, some negative keys
    ts = rng.integers(0, 50, n).astype(np.int64) * 1_000_000
    step = rng.integers(0, 4, n)
    mask = np.where(step < 3, 1 << step, 0) | K.IN_RANGE | K.TRACKED | K.FIRST_TOUCH
    code = rng.integers(-1, 5, n).astype(np.int32)
    return [ent, ts, mask.astype(np.int32), code]


def _sorted_units(ingest: Ingest) -> tuple[np.ndarray, ...]:
    u = ingest.units()
    order = np.argsort(u.entity, kind="stable")
    return u.entity[order], u.level[order], u.code[order], u.times[order]


def test_the_entity_table_grows_and_batches_do_not_matter() -> None:
    q = FunnelQuery(steps=("a", "b", "c"), window="20s", by="channel")
    rows = _rows(60_000, 5_000, seed=3)
    whole = Ingest(q)
    whole.add(*rows)
    assert whole.table is not None and len(whole.table[0]) >= 5_000  # grew from 16 slots a bucket
    pieces = Ingest(q)
    for a, b in [(0, 1), (1, 7), (7, 20_000), (20_000, 20_000), (20_000, 60_000)]:
        pieces.add(*(col[a:b] for col in rows))
    # The first piece (one row) fixes a single bucket; the first whole batch many: the units are the same.
    assert pieces.bits == 0 and whole.bits > 0
    for x, y in zip(_sorted_units(whole), _sorted_units(pieces), strict=True):
        np.testing.assert_array_equal(x, y)


def test_first_touch_is_the_earliest_row_ties_to_the_smallest_code() -> None:
    log = pd.DataFrame(
        {
            "entity": [1, 1, 1, 2, 2, 2],
            "time": [5, 1, 1, 3, 3, 4],
            "event": ["a", "x", "x", "a", "x", "b"],
            "channel": ["web", "tv", "ads", "tv", "mail", "ads"],
        }
    )
    r = run_funnel(EventSource(log), FunnelQuery(steps=("a", "b"), window="1h", by="channel"))
    assert {g.value: g.steps[0].entities for g in r.breakdown} == {"ads": 1, "mail": 1}


def test_a_fresh_process_runs_the_engine_and_keeps_scipy_whole() -> None:
    # The first run in a process keeps Numba from loading SciPy's BLAS; SciPy must still work after.
    code = textwrap.dedent(
        """
        import pandas as pd
        from voronka.analytics.events import EventSource, FunnelQuery, run_funnel
        log = pd.DataFrame({"entity": [1, 1, 2], "time": [0, 60, 0], "event": ["view", "buy", "view"]})
        r = run_funnel(EventSource(log), FunnelQuery(steps=("view", "buy"), window="1h"))
        import scipy.linalg, scipy.linalg.cython_blas
        print([s.entities for s in r.steps], scipy.linalg.det([[2.0, 0.0], [0.0, 3.0]]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["[2,", "1]", "6.0"]


def test_a_cached_kernel_loads_without_numbas_compiler_and_a_miss_still_compiles(tmp_path: Path) -> None:
    # _jit.kernel: the first process compiles (a cache miss: Numba's full set-up), the next loads the machine code
    # with only the runtime initialised; both compute the same. `numba.typed.typeddict` is one of the modules only
    # the compiler's set-up imports.
    (tmp_path / "jitmod.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from voronka.analytics._jit import kernel

            @kernel
            def doubled(a):
                out = np.empty(len(a), np.int64)  # the runtime allocates
                for i in range(len(a)):  # a loop: a sort or a slice copy would compile for seconds
                    out[i] = 2 * a[i]
                return out
            """
        )
    )
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import jitmod
        print(jitmod.doubled(np.array([3, 1, 2])).tolist(), "numba.typed.typeddict" in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True, env=env
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs == [["[6,", "2,", "4]", "True"], ["[6,", "2,", "4]", "False"]]


def test_batches_on_two_threads_fill_the_kept_columns_as_one_batch_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many batches of uneven sizes, each split between two threads: the kept columns start at the first batch's
    # size and double as batches come; the units are those of one batch on one thread.
    from voronka.analytics.events import engine as E

    q = FunnelQuery(steps=("a", "b", "c"), window="20s", by="channel")
    rows = _rows(60_000, 5_000, seed=4)
    only_first_touch = np.random.default_rng(5).random(60_000) < 0.5  # rows entered but not kept: gaps to close
    rows[2] = np.where(only_first_touch, K.FIRST_TOUCH, rows[2]).astype(np.int32)
    whole = Ingest(q)
    whole.add(*rows)
    monkeypatch.setattr(E, "_PARALLEL_ROWS", 1)
    pieces = Ingest(q, threads=2)
    cuts = [0, 9_000, 9_003, 9_010, 12_000, 12_000, 30_000, 60_000]  # the first batch makes 8 buckets
    for a, b in zip(cuts, cuts[1:], strict=False):
        pieces.add(*(col[a:b] for col in rows))
    assert pieces.bits == 3 and pieces.cols is not None and len(pieces.cols[0]) > 9_000  # it grew
    for x, y in zip(_sorted_units(whole), _sorted_units(pieces), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fails", ["walk", "enter"])
def test_an_error_on_the_second_thread_is_raised_not_lost(monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    # The walk and the entering of a batch each run half the buckets on a second thread: what fails there must
    # reach the caller, not leave units unwritten (or, entering, a part that never finishes).
    from voronka.analytics.events import _kernel, _table
    from voronka.analytics.events import engine as E

    monkeypatch.setattr(E, "_PARALLEL_ROWS", 1)
    module, name = (_kernel, "funnel") if fails == "walk" else (_table, "ingest")
    real = getattr(module, name)
    first_bucket = -2 if fails == "walk" else 2  # funnel(..., out, b0, b1); ingest(rec, starts, b0, ...)

    def second_half_fails(*args: object) -> object:
        if args[first_bucket] > 0:
            raise MemoryError("no room")
        return real(*args)

    ingest = Ingest(FunnelQuery(steps=("a", "b", "c"), window="20s"), threads=2)
    rows = _rows(60_000, 5_000, seed=4)
    if fails == "walk":
        ingest.add(*rows)
    monkeypatch.setattr(module, name, second_half_fails)
    with pytest.raises(MemoryError, match="no room"):
        ingest.add(*rows) if fails == "enter" else ingest.units()
