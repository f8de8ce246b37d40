"""Benchmark: Voronka's event funnel against chDB ``windowFunnel``, DuckDB's best SQL and Polars.

Run::

    .venv/bin/python bench/event_funnel.py                 # 10M events
    .venv/bin/python bench/event_funnel.py --sizes 10M,100M
    .venv/bin/python bench/event_funnel.py --sizes 1M --runs 1   # a quick check

The first run writes a deterministic Parquet log under ``bench/data/`` (git-ignored; reused afterwards): a 5-step
funnel (events 0..4) among 20 event types, 8 channels, heavy-tailed events per entity (Pareto, 1 to 20,000),
sparse 64-bit entity ids, int64 epoch seconds, rows shuffled, ties in time (5% of gaps are 0) and duplicated rows.

Voronka runs its default in-process engine (see docs/architecture.md, "The event-funnel engine"): DuckDB streams the
rows with their step masks into a compiled per-bucket entity table (first touch included, no GROUP BY), then each
bucket's entities are grouped, ordered and walked on both cores.

Peers are written in their fastest form found here: chDB as one GROUP BY with ``windowFunnelIf`` and the first-touch
channel as a packed ``min(ts * 1024 + channel + 1)`` (2-4x faster than ``argMin(channel, (ts, channel))`` or a join
of two aggregates); DuckDB as one ASOF join per step plus the same packed ``min``; Polars lazily, sorted, with a
forward-filled running state per entity.

The task, for every engine: the ordered 5-step funnel, 7-day window, latest-entry rule (ClickHouse ``windowFunnel``
default), entities per step overall and per the entity's first-touch channel (the channel of its earliest row,
ties to the smallest channel). Each engine runs in a fresh process (``--engine NAME --file F``) that reads the
file and prints the counts; the parent times the whole process (start-up and imports included) and reads its peak
resident memory from ``wait4``. One untimed warm-up per engine (page cache, Numba's on-disk cache), then ``--runs``
timed runs; the median is reported, with the ratio to chDB, the median CPU seconds (user + system over all threads:
on a shared machine the steadier measure) and each run's seconds.

Exit status: non-zero when the engines disagree, or when the Must fails: Voronka's ratio to chDB above 1.0 or its
peak memory above chDB's, at any size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
GENERATOR_VERSION = 1
STEPS = 5
EVENT_TYPES = 20
CHANNELS = 8
WINDOW_S = 7 * 86_400
START_S = 1_700_000_000
ENGINES = ("voronka", "chdb", "duckdb", "polars")


# -- the data ------------------------------------------------------------------------------------------------


def _parse_size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KMG")) * mult)


def data_path(rows: int, seed: int) -> Path:
    return DATA_DIR / f"events_{rows}_{seed}_v{GENERATOR_VERSION}.parquet"


def _chunk(rng: np.random.Generator, first_entity: int, n_ent: int) -> dict[str, np.ndarray]:
    counts = np.minimum(1 + np.floor(rng.pareto(1.3, n_ent) * 6).astype(np.int64), 20_000)
    total = int(counts.sum())
    owner = np.repeat(np.arange(n_ent), counts)
    ids = (np.arange(first_entity, first_entity + n_ent, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> 2
    start = START_S + rng.integers(0, 60 * 86_400, n_ent)
    gaps = rng.exponential(4 * 3600, total).astype(np.int64)
    gaps[rng.random(total) < 0.05] = 0
    firsts = np.r_[0, np.cumsum(counts)[:-1]]
    cum = np.cumsum(gaps)
    cum -= np.repeat(cum[firsts], counts)
    ts = start[owner] + cum
    # Step events (0..4) get 28% of the rows and come in funnel order more often than not.
    step_like = rng.random(total) < 0.28
    pos = np.arange(total) - np.repeat(firsts, counts)
    drift = np.minimum(pos // 3, STEPS - 1)
    step_ev = np.clip(drift + rng.integers(-1, 2, total), 0, STEPS - 1)
    other = rng.integers(STEPS, EVENT_TYPES, total)
    event = np.where(step_like, step_ev, other).astype(np.int16)
    home = rng.integers(0, CHANNELS, n_ent)
    channel = np.where(rng.random(total) < 0.7, home[owner], rng.integers(0, CHANNELS, total)).astype(np.int8)
    entity = ids[owner].astype(np.int64)
    dup = np.flatnonzero(rng.random(total) < 0.01)
    cols = {"entity": entity, "ts": ts, "event": event, "channel": channel}
    cols = {k: np.r_[v, v[dup]] for k, v in cols.items()}
    order = rng.permutation(len(cols["entity"]))
    return {k: v[order] for k, v in cols.items()}


def generate(rows: int, seed: int) -> Path:
    """Write the log (about ``rows`` rows) once; later runs reuse the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = data_path(rows, seed)
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rng = np.random.default_rng(seed)
    per_chunk = 200_000  # entities; about 4M rows
    written, first = 0, 0
    schema = pa.schema([("entity", pa.int64()), ("ts", pa.int64()), ("event", pa.int16()), ("channel", pa.int8())])
    with pq.ParquetWriter(tmp, schema, compression="snappy") as w:
        while written < rows:
            cols = _chunk(rng, first, per_chunk)
            take = min(len(cols["entity"]), rows - written)
            table = pa.table({k: v[:take] for k, v in cols.items()}, schema=schema)
            w.write_table(table, row_group_size=1_000_000)
            written += take
            first += per_chunk
    tmp.rename(path)
    return path


# -- the engines (each runs in its own process) --------------------------------------------------------------

Counts = dict[str, list[int]]  # "all" and each channel -> entities per step


def run_voronka(path: str) -> Counts:
    from voronka.analytics.events import EventSource, FunnelQuery, run_funnel

    q = FunnelQuery(steps=tuple(str(k) for k in range(STEPS)), window=f"{WINDOW_S}s", by="channel")
    r = run_funnel(EventSource(path, entity="entity", time="ts", event="event"), q)
    out = {"all": [s.entities for s in r.steps]}
    out.update({g.value: [s.entities for s in g.steps] for g in r.breakdown})
    return out


def _from_levels(rows: list[tuple[Any, Any, Any]]) -> Counts:
    """(level, channel, entities) rows → entities per step overall and per channel."""
    out: Counts = {"all": [0] * STEPS}
    for level, ch, n in rows:
        per = out.setdefault(str(int(ch)), [0] * STEPS)
        for k in range(int(level)):
            out["all"][k] += int(n)
            per[k] += int(n)
    return out


def run_chdb(path: str) -> Counts:
    import chdb

    conds = ", ".join(f"event = {k}" for k in range(STEPS))
    sql = f"""
        SELECT lvl, ch, count() FROM (
            SELECT entity, windowFunnelIf({WINDOW_S})(toUInt64(ts), {conds}, event < {STEPS}) AS lvl,
                   toInt8(min(ts * 1024 + channel + 1) % 1024 - 1) AS ch
            FROM file('{path}', Parquet) GROUP BY entity)
        WHERE lvl > 0 GROUP BY lvl, ch FORMAT CSV"""
    text = chdb.query(sql).bytes().decode()
    return _from_levels([tuple(int(x) for x in line.split(",")) for line in text.splitlines() if line])


def run_duckdb(path: str) -> Counts:
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    src = f"read_parquet('{path}')"
    parts = [f"s0 AS (SELECT entity, ts, ts AS st FROM {src} WHERE event = 0)"]
    for k in range(1, STEPS):
        parts.append(
            f"s{k} AS (SELECT r.entity, r.ts, p.st FROM (SELECT entity, ts FROM {src} WHERE event = {k}) r "
            f"ASOF JOIN s{k - 1} p ON r.entity = p.entity AND r.ts >= p.ts WHERE r.ts - p.st <= {WINDOW_S})"
        )
    levels = " UNION ALL ".join(f"SELECT DISTINCT entity, {k + 1} AS lvl FROM s{k}" for k in range(STEPS))
    sql = (
        "WITH " + ", ".join(parts) + f", lv AS (SELECT entity, max(lvl) AS lvl FROM ({levels}) GROUP BY entity), "
        "ft AS (SELECT entity, CAST(min(ts * 1024 + channel + 1) % 1024 - 1 AS TINYINT) AS ch "
        f"FROM {src} GROUP BY entity) "
        "SELECT lvl, ch, count(*) FROM lv JOIN ft USING (entity) GROUP BY lvl, ch"
    )
    return _from_levels(con.execute(sql).fetchall())


def run_polars(path: str) -> Counts:
    import polars as pl

    lf = pl.scan_parquet(path)
    steps = lf.filter(pl.col("event") < STEPS).select("entity", "ts", "event").sort("entity", "ts", "event")
    cols = []
    prev = pl.when(pl.col("event") == 0).then(pl.col("ts")).forward_fill().over("entity")
    expr = steps.with_columns(s0=prev)
    cols.append("s0")
    for k in range(1, STEPS):
        p = pl.col(f"s{k - 1}")
        ok = (pl.col("event") == k) & p.is_not_null() & (pl.col("ts") - p <= WINDOW_S)
        expr = expr.with_columns(pl.when(ok).then(p).forward_fill().over("entity").alias(f"s{k}"))
        expr = expr.with_columns(pl.when(ok).then(True).otherwise(False).alias(f"hit{k}"))
    lvl = pl.max_horizontal(
        [pl.lit(1, pl.Int8)] + [pl.when(pl.col(f"hit{k}")).then(k + 1).otherwise(0) for k in range(1, STEPS)]
    )
    per = expr.filter(pl.col("s0").is_not_null()).group_by("entity").agg(lvl.max().alias("lvl"))
    ft = lf.group_by("entity").agg(pl.col("channel").filter(pl.col("ts") == pl.col("ts").min()).min().alias("ch"))
    res = per.join(ft, on="entity").group_by("lvl", "ch").len().collect()
    return _from_levels(list(res.select("lvl", "ch", "len").iter_rows()))


RUNNERS = {"voronka": run_voronka, "chdb": run_chdb, "duckdb": run_duckdb, "polars": run_polars}


# -- the harness ---------------------------------------------------------------------------------------------


def timed_child(engine: str, path: Path) -> tuple[float, float, float, Counts]:
    """Run one engine in a fresh process: wall seconds, CPU seconds (user + system, all threads), peak RSS in GiB,
    counts."""
    cmd = [sys.executable, __file__, "--engine", engine, "--file", str(path)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{engine} failed:\n{err.decode()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, json.loads(out)


def bench_size(rows: int, seed: int, runs: int, engines: tuple[str, ...]) -> tuple[list[dict[str, Any]], bool]:
    # Generated in a child process: a forked child inherits the parent's peak RSS, so the parent must stay small.
    subprocess.run([sys.executable, __file__, "--generate", str(rows), "--seed", str(seed)], check=True)
    path = data_path(rows, seed)
    with open(path, "rb") as f:  # into the page cache for every engine alike
        while f.read(1 << 24):
            pass
    table, results = [], {}
    for engine in engines:
        timed_child(engine, path)  # warm-up
        walls, cpus, mems = [], [], []
        for _ in range(runs):
            wall, cpu, mem, counts = timed_child(engine, path)
            walls.append(wall)
            cpus.append(cpu)
            mems.append(mem)
        results[engine] = counts
        row = {"engine": engine, "seconds": statistics.median(walls), "cpu_s": statistics.median(cpus)}
        table.append(row | {"peak_gib": max(mems), "walls": walls})
    ref = results.get("chdb")
    agree = all(c == ref for c in results.values()) if ref else True
    base = next((r["seconds"] for r in table if r["engine"] == "chdb"), None)
    for r in table:
        r["ratio"] = r["seconds"] / base if base else float("nan")
    return table, agree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10M", help="comma-separated row counts, e.g. 10M,100M")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, args.seed)
        return 0
    if args.engine:
        print(json.dumps(RUNNERS[args.engine](args.file)))
        return 0
    engines = tuple(args.engines.split(","))
    ok = True
    print(f"load average: {os.getloadavg()}, cores: {os.cpu_count()}")
    for size in args.sizes.split(","):
        rows = _parse_size(size)
        table, agree = bench_size(rows, args.seed, args.runs, engines)
        print(f"\n{rows:,} events, median of {args.runs} runs (whole process, from the Parquet file)")
        print(f"{'engine':<10}{'seconds':>10}{'ratio to chDB':>16}{'peak GiB':>10}{'CPU s':>8}   runs (s)")
        for r in table:
            runs_s = " ".join(f"{w:.2f}" for w in r["walls"])
            print(
                f"{r['engine']:<10}{r['seconds']:>10.2f}{r['ratio']:>16.2f}{r['peak_gib']:>10.2f}{r['cpu_s']:>8.2f}"
                f"   {runs_s}"
            )
        print("all engines agree on every cell" if agree else "ENGINES DISAGREE")
        vor = next((r for r in table if r["engine"] == "voronka"), None)
        ch = next((r for r in table if r["engine"] == "chdb"), None)
        must = vor is None or ch is None or (vor["ratio"] <= 1.0 and vor["peak_gib"] <= ch["peak_gib"])
        print(f"Must (ratio <= 1.0 and peak memory <= chDB's): {'met' if must else 'NOT met'}")
        ok = ok and agree and must
    print(f"load average after: {os.getloadavg()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
