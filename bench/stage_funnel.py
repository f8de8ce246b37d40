"""Benchmark: Voronka's stage funnel by owner against a plain pandas groupby and a DuckDB SQL query.

Run::

    .venv/bin/python bench/stage_funnel.py            # 1,000,000 deals, about 5,000,000 moves
    .venv/bin/python bench/stage_funnel.py --small    # 20,000 deals: a quick check

The first run generates a deterministic SQLite workspace under ``bench/data/`` (one file per size and seed,
reused afterwards): one pipeline of five open stages plus won and lost, eight managers, five loss reasons, and
deals that move forward, skip, go back, get lost with a reason, are won, or are reopened after a loss.

The file is read once so that it sits in the OS page cache for every engine alike. Each engine then runs in a
fresh process: one untimed warm-up run (imports, first use), then ``--runs`` timed runs, of which the median
wall time is reported. A run is the whole computation from the SQLite file to the numbers per owner and stage:

- ``voronka``: ``voronka.open(url).funnel(pipeline, by="owner")``;
- ``pandas``: ``pd.read_sql`` of the tables through ``sqlite3``, then groupbys;
- ``duckdb``: one SQL query over the tables, read by DuckDB's sqlite extension when it can be loaded, or else
  read into Arrow through ADBC (offline, DuckDB cannot download the extension) and registered with DuckDB.

The three must agree on every number (reached, passed, lost at, open now, median and p90 days in stage per
owner and stage; won and lost per owner). Peak memory is the peak resident set size of each engine's process.
The exit status is non-zero when they disagree, or when Voronka is slower than the fastest peer or takes
``--limit`` seconds or more.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DATA_DIR = Path(__file__).resolve().parent / "data"
GENERATOR_VERSION = 1
PIPELINE = "Bench sales"
OPEN_STAGES = ("Lead", "Qualified", "Meeting", "Proposal", "Negotiation")
MANAGERS = ("Anna", "Boris", "Vera", "Grigory", "Daria", "Egor", "Zoya", "Ilya")
REASONS = ("Too expensive", "No budget", "Chose a competitor", "No response", "Not a fit")
SOURCES = ("website", "referral", "cold call", "exhibition", "partner")
SEGMENTS = ("SMB", "mid-market", "enterprise")
START_US = 1_672_531_200_000_000  # 2023-01-01 UTC
SPAN_US = 2 * 365 * 86_400_000_000
DAY_US = 86_400_000_000
MAX_STEPS = 60
I64 = NDArray[np.int64]


# -- the workspace -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ids:
    """Database ids of the pipeline's stages (open ones in order, then won and lost), managers and reasons."""

    pipeline: int
    stages: I64  # positions 0..n-1 open, n won, n + 1 lost
    users: I64
    reasons: I64


@dataclass(frozen=True)
class Moves:
    """Every move of every deal, in (deal, step) order; positions as in :class:`Ids`."""

    deal: I64
    src: I64  # -1: the deal's creation
    dst: I64
    at: I64
    reason: I64  # index into REASONS; -1: none


def workspace_path(deals: int, seed: int) -> Path:
    return DATA_DIR / f"stage_funnel_{deals}_seed{seed}_v{GENERATOR_VERSION}.db"


def ensure_workspace(deals: int, seed: int) -> Path:
    """The benchmark workspace for ``deals`` and ``seed``: reused when present, else generated."""
    import voronka

    path = workspace_path(deals, seed)
    if path.exists():
        print(f"Reusing {path}")
        voronka.open(f"sqlite:///{path}").close()  # schema migrations since it was made: not in the timings
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.db")
    for stale in DATA_DIR.glob(tmp.name + "*"):
        stale.unlink()
    t0 = time.perf_counter()
    ids = _create_schema(tmp)
    rng = np.random.default_rng(seed)
    owner = _owners(rng, deals)
    moves = simulate(rng, owner)
    _load(tmp, ids, owner, moves, rng)
    tmp.rename(path)
    print(f"Generated {path}: {len(moves.deal):,} moves in {time.perf_counter() - t0:.0f} s")
    return path


def _create_schema(path: Path) -> Ids:
    import voronka

    ws = voronka.open(f"sqlite:///{path}")
    users = np.array([ws.add_user(name) for name in MANAGERS], dtype=np.int64)
    pipe = ws.create_pipeline(PIPELINE, stages=list(OPEN_STAGES), reasons=list(REASONS))
    ws.close()
    with closing(sqlite3.connect(path)) as conn:
        reason_ids = dict(conn.execute("SELECT name, id FROM loss_reasons").fetchall())
    reasons = [reason_ids[r] for r in REASONS]
    stages = [s.id for s in pipe.open_stages] + [pipe.won_stage.id, pipe.lost_stages[0].id]
    return Ids(pipe.id, np.array(stages, dtype=np.int64), users, np.array(reasons, dtype=np.int64))


def _owners(rng: np.random.Generator, n: int) -> I64:
    """Manager index per deal (uneven workloads); -1 for the 1% of deals nobody owns."""
    weights = rng.uniform(0.5, 1.5, len(MANAGERS))
    owner = rng.choice(len(MANAGERS), size=n, p=weights / weights.sum())
    owner[rng.random(n) < 0.01] = -1
    return owner.astype(np.int64)


# -- deal paths ----------------------------------------------------------------------------------------------


def simulate(rng: np.random.Generator, owner: I64) -> Moves:
    """Random deal paths through the pipeline, all deals one step at a time.

    From open stage k a deal moves forward, skips a stage, goes back, is lost (with a reason) or won, or stays
    where it is for good (open now). A lost deal is sometimes reopened at the stage it was lost at, a won deal
    rarely. Managers differ in how often they lose deals.
    """
    n_open = len(OPEN_STAGES)
    won, lost = n_open, n_open + 1
    n = len(owner)
    skill = rng.uniform(0.7, 1.3, len(MANAGERS) + 1)[owner]  # owner -1 takes the last one
    first = rng.choice(3, size=n, p=[0.93, 0.05, 0.02])
    t = np.sort(rng.integers(START_US, START_US + SPAN_US, n))
    cur, last_open = first.copy(), first.copy()
    parts = [(np.arange(n), np.full(n, -1), first, t.copy(), np.full(n, -1))]
    live = np.arange(n)
    for _ in range(MAX_STEPS):
        nxt = _step(rng, cur[live], last_open[live], skill[live], n_open)
        go = nxt != cur[live]
        live, nxt = live[go], nxt[go]
        if not len(live):
            break
        days = rng.lognormal(np.log(4.0), 1.0, len(live))
        t[live] += (days * DAY_US).astype(np.int64) + rng.integers(1_000_000, 60_000_000, len(live))
        reason = np.where(nxt == lost, _reasons(rng, cur[live]), -1)
        parts.append((live, cur[live], nxt, t[live].copy(), reason))
        cur[live] = nxt
        last_open[live] = np.where(nxt < won, nxt, last_open[live])
    deal, src, dst, at, why = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.argsort(deal, kind="stable")  # (deal, step): parts come in step order
    return Moves(deal[order], src[order], dst[order], at[order], why[order])


def _step(rng: np.random.Generator, cur: I64, last_open: I64, skill: NDArray[np.float64], n_open: int) -> I64:
    """The next position of each deal; its current one when it stops moving."""
    won, lost = n_open, n_open + 1
    u = rng.random(len(cur))
    p_stop = 0.04
    p_lost = np.where(cur == 0, 0.16, 0.09) * skill
    p_back = np.where(cur > 0, 0.12, 0.0)
    p_skip = np.where(cur < n_open - 1, 0.06, 0.0)
    edges = np.cumsum([np.full(len(cur), p_stop), p_lost, p_back, p_skip], axis=0)
    nxt = np.select(
        [u < edges[0], u < edges[1], u < edges[2], u < edges[3]],
        [cur, np.full_like(cur, lost), cur - 1, cur + 2],
        cur + 1,
    )
    nxt = np.where(cur == lost, np.where(u < 0.10, last_open, lost), nxt)
    return np.where(cur == won, np.where(u < 0.01, n_open - 1, won), nxt)


def _reasons(rng: np.random.Generator, at: I64) -> I64:
    """A loss reason per lost deal: early losses are mostly 'No response', late ones price and rivals."""
    late = at >= 2
    early_p = [0.10, 0.15, 0.05, 0.45, 0.25]
    late_p = [0.35, 0.15, 0.30, 0.10, 0.10]
    return np.where(
        late, rng.choice(len(REASONS), len(at), p=late_p), rng.choice(len(REASONS), len(at), p=early_p)
    ).astype(np.int64)


# -- loading -------------------------------------------------------------------------------------------------


def _load(path: Path, ids: Ids, owner: I64, moves: Moves, rng: np.random.Generator) -> None:
    """Insert deals and moves with raw sqlite3 in one transaction; move ids follow time across all deals."""
    n = len(owner)
    last = np.r_[np.flatnonzero(np.diff(moves.deal)), len(moves.deal) - 1]  # each deal's last move
    owner_id = np.where(owner >= 0, ids.users[np.maximum(owner, 0)], -1)
    deal_columns = [
        range(1, n + 1),
        repeat(ids.pipeline),
        ids.stages[moves.dst[last]].tolist(),  # the cache: the last move's stage and time
        moves.at[last].tolist(),
        (f"Deal {i}" for i in range(1, n + 1)),
        _nullable(owner_id),
        np.round(rng.lognormal(np.log(150_000), 1.0, n), 2).tolist(),
        repeat("RUB"),
        (SOURCES[i] for i in rng.choice(len(SOURCES), n)),
        (SEGMENTS[i] for i in rng.choice(len(SEGMENTS), n)),
        moves.at[np.r_[0, last[:-1] + 1]].tolist(),  # created at the first move
        repeat(""),
        np.diff(np.r_[-1, last]).tolist(),  # version: one per move
    ]
    order = np.lexsort((np.arange(len(moves.at)), moves.at))  # time order; a deal's moves keep their order
    stage = np.r_[ids.stages, -1]  # src -1 (the creation) becomes NULL
    reason = np.r_[ids.reasons, -1]
    move_columns = [
        range(1, len(order) + 1),
        (moves.deal[order] + 1).tolist(),
        repeat(ids.pipeline),
        _nullable(stage[moves.src[order]]),
        stage[moves.dst[order]].tolist(),
        moves.at[order].tolist(),
        _nullable(owner_id[moves.deal[order]]),
        _nullable(reason[moves.reason[order]]),
    ]
    with _bulk(path) as conn:
        # Not strict: the repeat() columns are endless.
        conn.executemany(_insert("deals", DEAL_COLUMNS), zip(*deal_columns, strict=False))
        conn.executemany(_insert("stage_moves", MOVE_COLUMNS), zip(*move_columns, strict=False))


DEAL_COLUMNS = (
    "id, pipeline_id, stage_id, stage_since, title, owner_id, amount, currency, source, segment, created_at, "
    "external_source, version"
)
MOVE_COLUMNS = "id, deal_id, pipeline_id, from_stage_id, stage_id, at, author_id, reason_id"


def _insert(table: str, columns: str) -> str:
    marks = ", ".join("?" * len(columns.split(",")))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks})"


def _nullable(values: I64) -> list[int | None]:
    """Ids as Python ints, -1 as NULL."""
    return [None if v < 0 else v for v in values.tolist()]


@contextmanager
def _bulk(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-2000000")
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# -- the engines ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerNumbers:
    """One owner's funnel: per open stage (reached also for won), then the owner's won and lost deals."""

    reached: tuple[int, ...]
    passed: tuple[int, ...]
    lost_at: tuple[int, ...]
    open_now: tuple[int, ...]
    median_days: tuple[float | None, ...]
    p90_days: tuple[float | None, ...]
    won: int
    lost: int


Numbers = dict[str, OwnerNumbers]


def run_voronka(path: Path) -> tuple[Numbers, str]:
    import voronka

    ws = voronka.open(f"sqlite:///{path}")
    try:
        result = ws.funnel(PIPELINE, by="owner")
    finally:
        ws.close()
    numbers = {}
    for g in result.groups:
        opened = g.stages[:-1]
        numbers[g.group] = OwnerNumbers(
            reached=tuple(s.reached for s in g.stages),
            passed=tuple(int(s.passed or 0) for s in opened),
            lost_at=tuple(s.lost for s in opened),
            open_now=tuple(s.open for s in opened),
            median_days=tuple(s.median_days for s in opened),
            p90_days=tuple(s.p90_days for s in opened),
            won=g.overall.won,
            lost=g.overall.lost,
        )
    return numbers, "voronka.open(url).funnel(pipeline, by='owner')"


def _days(us: float) -> float | None:
    return None if np.isnan(us) else round(float(us) / DAY_US, 3)


def _numbers(owners: list[str], grids: dict[str, NDArray[Any]], won: I64, lost: I64) -> Numbers:
    """Numbers from per-owner rows of per-stage grids: reached (open stages and won), lost_at, open_now, and
    median and p90 time in stage in microseconds (NaN: no finished stay)."""
    out = {}
    for i, owner in enumerate(owners):
        reached = grids["reached"][i]
        out[owner] = OwnerNumbers(
            reached=tuple(int(x) for x in reached),
            passed=tuple(int(x) for x in reached[1:]),
            lost_at=tuple(int(x) for x in grids["lost_at"][i]),
            open_now=tuple(int(x) for x in grids["open_now"][i]),
            median_days=tuple(_days(x) for x in grids["median"][i]),
            p90_days=tuple(_days(x) for x in grids["p90"][i]),
            won=int(won[i]),
            lost=int(lost[i]),
        )
    return out


def run_pandas(path: Path) -> tuple[Numbers, str]:
    """The funnel by owner as a pandas user would write it: read the tables, then groupby."""
    import pandas as pd

    with closing(sqlite3.connect(path)) as con:
        pid = con.execute("SELECT id FROM pipelines WHERE name = ?", (PIPELINE,)).fetchone()[0]
        stages = pd.read_sql(_PANDAS_SQL["stages"], con, params=(pid,), index_col="id")
        moves = pd.read_sql(_PANDAS_SQL["moves"], con, params=(pid,))
        deals = pd.read_sql(_PANDAS_SQL["deals"], con, params=(pid,))
        users = pd.read_sql("SELECT id, name FROM users", con, index_col="id")
    n = int((stages.kind == "open").sum())
    moves["pos"] = moves.stage_id.map(stages.position)
    moves["is_open"] = moves.stage_id.map(stages.kind) == "open"
    moves["next_at"] = moves.groupby("deal_id")["at"].shift(-1)
    deals["pos"] = deals.stage_id.map(stages.position)
    deals["kind"] = deals.stage_id.map(stages.kind)
    deals["owner"] = deals.owner_id.map(users.name).fillna("(none)")
    in_open = moves[moves.is_open].groupby("deal_id").pos.agg(max_open="max", last_open="last")
    deals = deals.join(in_open, on="id")
    deals["max_pos"] = np.where(deals.kind == "won", n, deals.max_open.fillna(0)).astype(np.int64)
    deals["last_open"] = deals.last_open.fillna(-1).astype(np.int64)

    owners = sorted(deals.owner.unique())
    hist = _grid(deals.groupby(["owner", "max_pos"]).size(), owners, n + 1)
    lost = deals[deals.kind == "lost"]
    still = deals[deals.kind == "open"]
    stays = moves[moves.is_open & moves.next_at.notna()]
    spent = (stays.next_at - stays["at"]).rename("total")
    total = spent.groupby([stays.deal_id, stays.pos]).sum().reset_index()
    now = deals[["id", "owner", "kind", "pos"]].rename(columns={"id": "deal_id", "pos": "pos_now"})
    total = total.merge(now, on="deal_id")
    total = total[~((total.kind == "open") & (total.pos_now == total.pos))]  # still there: not finished
    by_stage = total.groupby(["owner", "pos"]).total
    status = deals.groupby("owner").kind.value_counts().unstack(fill_value=0).reindex(owners, fill_value=0)
    grids = {
        "reached": hist[:, ::-1].cumsum(axis=1)[:, ::-1],
        "lost_at": _grid(lost.groupby(["owner", "last_open"]).size(), owners, n),
        "open_now": _grid(still.groupby(["owner", "pos"]).size(), owners, n),
        "median": _grid(by_stage.median(), owners, n, np.nan),
        "p90": _grid(by_stage.quantile(0.9), owners, n, np.nan),
    }
    numbers = _numbers(owners, grids, status["won"].to_numpy(), status["lost"].to_numpy())
    return numbers, "pd.read_sql through sqlite3, then groupbys"


_PANDAS_SQL = {
    "stages": "SELECT id, position, kind FROM stages WHERE pipeline_id = ?",
    "moves": "SELECT deal_id, stage_id, at FROM stage_moves WHERE pipeline_id = ? ORDER BY deal_id, id",
    "deals": "SELECT id, stage_id, owner_id FROM deals WHERE pipeline_id = ?",
}


def _grid(series: Any, owners: list[str], width: int, fill: float = 0) -> NDArray[np.float64]:
    """An (owner, stage position) series as an owners x width array; ``fill`` where it has no value."""
    table = series.unstack(fill_value=fill).reindex(index=owners, columns=range(width), fill_value=fill)
    return np.asarray(table.to_numpy(dtype=np.float64))


FUNNEL_SQL = """
WITH st AS (
    SELECT s.id, s.position AS pos, s.kind, s.pipeline_id
    FROM stages s JOIN pipelines p ON p.id = s.pipeline_id WHERE p.name = $pipeline
),
m AS (
    SELECT m.deal_id, m.id, st.pos, st.kind, m.at,
           lead(m.at) OVER (PARTITION BY m.deal_id ORDER BY m.id) AS next_at
    FROM stage_moves m JOIN st ON st.id = m.stage_id
),
per_deal AS (
    SELECT deal_id,
           max(pos) FILTER (kind = 'open') AS max_open,
           arg_max(pos, id) FILTER (kind = 'open') AS last_open
    FROM m GROUP BY deal_id
),
f AS (
    SELECT d.id AS deal_id, coalesce(u.name, '(none)') AS owner, st.kind, st.pos AS cur_pos, pd.last_open,
           CASE WHEN st.kind = 'won' THEN st.pos ELSE coalesce(pd.max_open, 0) END AS max_pos
    FROM per_deal pd
    JOIN deals d ON d.id = pd.deal_id
    JOIN st ON st.id = d.stage_id
    LEFT JOIN users u ON u.id = d.owner_id
),
stays AS (
    SELECT deal_id, pos, sum(next_at - "at") AS total
    FROM m WHERE kind = 'open' AND next_at IS NOT NULL GROUP BY deal_id, pos
),
times AS (
    SELECT f.owner, s.pos AS k,
           quantile_cont(s.total, 0.5) AS med, quantile_cont(s.total, 0.9) AS p90
    FROM stays s JOIN f USING (deal_id)
    WHERE NOT (f.kind = 'open' AND f.cur_pos = s.pos)
    GROUP BY ALL
),
counts AS (
    SELECT f.owner, k.pos AS k,
           count(*) FILTER (f.max_pos >= k.pos) AS reached,
           count(*) FILTER (f.kind = 'lost' AND f.last_open = k.pos) AS lost_at,
           count(*) FILTER (f.kind = 'open' AND f.cur_pos = k.pos) AS open_now
    FROM f CROSS JOIN (SELECT pos FROM st WHERE kind <> 'lost') k
    GROUP BY ALL
),
totals AS (
    SELECT owner, count(*) FILTER (kind = 'won') AS won, count(*) FILTER (kind = 'lost') AS lost
    FROM f GROUP BY owner
)
SELECT c.owner, c.k, c.reached, c.lost_at, c.open_now, t.med, t.p90, o.won, o.lost
FROM counts c LEFT JOIN times t USING (owner, k) JOIN totals o USING (owner)
ORDER BY c.owner, c.k
"""

_TABLES = {
    "pipelines": "SELECT id, name FROM pipelines",
    "stages": "SELECT id, pipeline_id, position, kind FROM stages",
    "users": "SELECT id, name FROM users",
    "deals": "SELECT id, pipeline_id, stage_id, owner_id FROM deals",
    "stage_moves": "SELECT id, deal_id, pipeline_id, stage_id, at FROM stage_moves",
}


def duckdb_reader(path: Path) -> str:
    """How DuckDB reads the workspace: with its sqlite extension if that loads, else from Arrow tables."""
    import duckdb

    try:
        duckdb.connect().execute("INSTALL sqlite; LOAD sqlite")
    except duckdb.Error:
        return "arrow"
    return "sqlite"


def run_duckdb(path: Path, reader: str) -> tuple[Numbers, str]:
    import duckdb

    con = duckdb.connect()
    if reader == "sqlite":
        con.execute("LOAD sqlite")
        con.execute(f"ATTACH '{path}' AS ws (TYPE sqlite, READ_ONLY); USE ws")
        how = "DuckDB sqlite extension (ATTACH)"
    else:
        import adbc_driver_sqlite.dbapi as adbc

        with adbc.connect(str(path)) as conn, conn.cursor() as cur:
            for name, sql in _TABLES.items():
                cur.execute(sql)
                con.register(name, cur.fetch_arrow_table())
        how = "no sqlite extension (offline): SQLite -> Arrow via ADBC -> DuckDB"
    rows = con.execute(FUNNEL_SQL, {"pipeline": PIPELINE}).fetchall()
    con.close()
    owners = sorted({r[0] for r in rows})
    width = max(r[1] for r in rows) + 1
    grid = np.full((len(owners), width, 5), np.nan)
    won, lost = np.zeros(len(owners), np.int64), np.zeros(len(owners), np.int64)
    index = {o: i for i, o in enumerate(owners)}
    for owner, k, *values, w, lo in rows:
        i = index[owner]
        grid[i, k] = [np.nan if v is None else v for v in values]
        won[i], lost[i] = w, lo
    grids = {
        "reached": grid[:, :, 0],
        "lost_at": grid[:, :-1, 1],
        "open_now": grid[:, :-1, 2],
        "median": grid[:, :-1, 3],
        "p90": grid[:, :-1, 4],
    }
    return _numbers(owners, grids, won, lost), how


# -- measuring -----------------------------------------------------------------------------------------------

ENGINES = ("voronka", "pandas", "duckdb")
_IMPORTS = {
    "voronka": ("voronka", "voronka.analytics.stage_funnel"),
    "pandas": ("pandas",),
    "duckdb": ("duckdb", "pyarrow", "adbc_driver_sqlite.dbapi"),
}


@dataclass(frozen=True)
class Measurement:
    engine: str
    seconds: list[float]
    numbers: Numbers
    how: str
    startup_mib: float  # resident set once the engine's libraries are imported
    peak_mib: float  # peak resident set of the engine's process

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _peak_mib() -> float:
    """This process's peak resident set size. On Linux from VmHWM: ru_maxrss of a spawned process also counts
    the memory its parent had when it was spawned."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def measure(engine: str, path: str, runs: int) -> Measurement:
    """Run one engine once untimed, then ``runs`` times timed, in this (fresh) process; each run reads the
    SQLite file anew."""
    import importlib

    for module in _IMPORTS[engine]:
        importlib.import_module(module)
    startup = _peak_mib()
    run: Callable[[Path], tuple[Numbers, str]]
    if engine == "duckdb":
        reader = duckdb_reader(Path(path))
        run = lambda p: run_duckdb(p, reader)  # noqa: E731
    else:
        run = run_voronka if engine == "voronka" else run_pandas
    seconds: list[float] = []
    numbers, how = run(Path(path))  # the warm-up
    for _ in range(runs):
        t0 = time.perf_counter()
        numbers, how = run(Path(path))
        seconds.append(time.perf_counter() - t0)
    return Measurement(engine, seconds, numbers, how, startup, _peak_mib())


def measure_in_child(engine: str, path: Path, runs: int) -> Measurement:
    """Measure in a freshly spawned interpreter, so that times and peak memory are the engine's own."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (engine, str(path), runs))


def differences(a: Numbers, b: Numbers, tolerance_days: float = 0.0015) -> list[str]:
    """Where two engines' numbers differ (days may differ by rounding only)."""
    if sorted(a) != sorted(b):
        return [f"owners differ: {sorted(a)} vs {sorted(b)}"]
    out = []
    for owner, x in a.items():
        y = b[owner]
        for name in OwnerNumbers.__dataclass_fields__:
            u, v = getattr(x, name), getattr(y, name)
            same = _close(u, v, tolerance_days) if name.endswith("_days") else u == v
            if not same:
                out.append(f"{owner} {name}: {u} vs {v}")
    return out


def _close(a: tuple[float | None, ...], b: tuple[float | None, ...], tolerance: float) -> bool:
    pairs = zip(a, b, strict=True)
    return all(x == y if x is None or y is None else abs(x - y) <= tolerance for x, y in pairs)


# -- the report ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deals", type=int, default=1_000_000, help="deals to generate (default 1,000,000)")
    parser.add_argument("--small", action="store_true", help="a quick check with 20,000 deals")
    parser.add_argument("--seed", type=int, default=20260101, help="seed of the generated data")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine; the median counts")
    parser.add_argument("--limit", type=float, default=5.0, help="seconds Voronka must stay under")
    return parser.parse_args(argv)


def _describe(path: Path) -> str:
    with closing(sqlite3.connect(path)) as con:
        deals = con.execute("SELECT max(id) FROM deals").fetchone()[0]
        moves = con.execute("SELECT max(id) FROM stage_moves").fetchone()[0]
    size = path.stat().st_size / 2**20
    return f"{deals:,} deals, {moves:,} moves, {size:,.0f} MiB"


def _read_through(path: Path) -> None:
    """Read the workspace file once: no engine pays for the disk, each reads it from the page cache."""
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


def _versions() -> str:
    from importlib.metadata import version

    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(":memory:") as conn, conn.cursor() as cur:
        cur.execute("SELECT sqlite_version()")
        adbc_sqlite = cur.fetch_arrow_table().column(0)[0].as_py()
    libs = ("numpy", "pandas", "pyarrow", "duckdb", "adbc-driver-sqlite")
    sqlite = f"SQLite {sqlite3.sqlite_version} (sqlite3), {adbc_sqlite} (ADBC)"
    return ", ".join(f"{lib} {version(lib)}" for lib in libs) + f", {sqlite}"


def print_table(results: list[Measurement]) -> None:
    base = results[0].median
    head = ("engine", "median s", "runs (s)", "x Voronka", "peak RSS MiB", "at start")
    print("\n{:<9} {:>9} {:<22} {:>9} {:>13} {:>9}".format(*head))
    for r in results:
        runs = " ".join(f"{s:.2f}" for s in r.seconds)
        print(
            f"{r.engine:<9} {r.median:>9.2f} {runs:<22} {r.median / base:>9.2f} {r.peak_mib:>13,.0f}"
            f" {r.startup_mib:>9,.0f}"
        )
    for r in results:
        print(f"  {r.engine}: {r.how}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    deals = 20_000 if args.small else args.deals
    path = ensure_workspace(deals, args.seed)
    _read_through(path)
    machine = f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; {_versions()}"
    print(f"Workspace: {_describe(path)}; {machine}")
    results = [measure_in_child(engine, path, args.runs) for engine in ENGINES]
    print_table(results)
    voronka, peers = results[0], results[1:]
    problems = [f"{p.engine}: {d}" for p in peers for d in differences(voronka.numbers, p.numbers)]
    owners = len(voronka.numbers)
    print(f"\nResults agree: {'yes' if not problems else 'NO'} ({owners} owners x {len(OPEN_STAGES)} stages)")
    for line in problems[:20]:
        print(f"  {line}")
    fastest = min(peers, key=lambda p: p.median)
    ratio = voronka.median / fastest.median
    speed = f"{voronka.median:.2f} s, {ratio:.2f}x the time of the fastest peer ({fastest.engine})"
    print(f"Voronka: {speed}; limit {args.limit:g} s")
    ok = not problems and ratio <= 1 and voronka.median < args.limit
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
