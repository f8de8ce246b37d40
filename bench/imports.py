"""Benchmark: importing a big amoCRM-style deals export into the SQLite workspace, against pandas and DuckDB.

Run::

    .venv/bin/python bench/imports.py              # 1,000,000 rows
    .venv/bin/python bench/imports.py --rows 100000

The first run writes a deterministic CSV under ``bench/data/`` as amoCRM and Russian Excel write it: Windows-1251,
``;``, ``dd.mm.yyyy hh:mm`` dates, whole-ruble budgets, Russian headers, repeated ``Телефон`` columns. Each
engine then runs in a fresh process (its peak resident memory is that process's), from the file to rows on disk:

- ``voronka``: ``voronka import deals FILE --create-missing`` as a library call into a new SQLite workspace:
  sniffing, parsing, validation, the pipeline and stages created, deals upserted by id, their creation (and
  close) moves written to the move log, all in one transaction (a bulk one: foreign keys checked once, before
  the commit);
- ``pandas``: ``pd.read_csv(encoding="cp1251", sep=";")`` + ``DataFrame.to_sql`` into a new SQLite file (no
  parsing of dates or amounts, no history, no indexes);
- ``duckdb``: ``read_csv`` + ``INSERT`` into a DuckDB table. DuckDB reads only UTF-8/UTF-16/Latin-1 without
  extensions (none can be downloaded here), so it reads the file as Latin-1: the same bytes and work, text
  mis-decoded.

Prints seconds (the median of ``--runs``), rows per second, the ratio to Voronka, CPU seconds (user + system, all
threads; the median) and peak memory. On a machine shared with other work, compare CPU seconds too: Voronka
spreads its work over two threads and feels the other load more than pandas's one thread. Exits non-zero when
Voronka is under ``--min-rate`` rows/s or slower than pandas.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"
STAGES = (
    "Первичный контакт",
    "Переговоры",
    "Принимают решение",
    "Согласование договора",
    "Успешно реализовано",
    "Закрыто и не реализовано",
)
STAGE_WEIGHTS = (0.12, 0.1, 0.08, 0.05, 0.25, 0.4)
REASONS = ("Дорого", "Выбрали конкурента", "Не дозвонились", "Нет потребности")
HEADER = (
    "ID",
    "Название сделки",
    "Бюджет",
    "Ответственный",
    "Этап сделки",
    "Воронка",
    "Дата создания",
    "Дата закрытия",
    "Причина отказа",
    "Теги",
    "Телефон",
    "Телефон",
    "Компания",
)


def csv_path(rows: int, seed: int) -> Path:
    return DATA_DIR / f"amocrm_{rows}_seed{seed}_v1.csv"


def ensure_csv(rows: int, seed: int) -> Path:
    path = csv_path(rows, seed)
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stage = rng.choice(len(STAGES), size=rows, p=STAGE_WEIGHTS)
    created = 1_735_689_600 + rng.integers(0, 365 * 86_400, rows)  # 2025
    closed = created + rng.integers(3_600, 60 * 86_400, rows)
    budget = (rng.lognormal(11.5, 0.8, rows) // 1000 * 1000).astype(np.int64)
    owner = rng.integers(1, 41, rows)
    reason = rng.integers(0, len(REASONS), rows)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="cp1251", newline="") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(HEADER)
        for i in range(rows):
            s = int(stage[i])
            done = s >= 4
            w.writerow(
                (
                    i + 1,
                    f"Сделка №{i + 1}",
                    int(budget[i]),
                    f"Менеджер {owner[i]}",
                    STAGES[s],
                    "Основная воронка",
                    time.strftime("%d.%m.%Y %H:%M", time.gmtime(int(created[i]))),
                    time.strftime("%d.%m.%Y %H:%M", time.gmtime(int(closed[i]))) if done else "",
                    REASONS[int(reason[i])] if s == 5 else "",
                    "сайт" if i % 3 else "",
                    f"+7 900 {i % 10_000_000:07d}",
                    "",
                    f"ООО «Клиент {i % 5000}»" if i % 2 else "",
                )
            )
    tmp.rename(path)
    return path


def _fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", ".wal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


def run_voronka(src: Path, out: Path) -> int:
    import voronka
    from voronka.io.apply import apply_batch
    from voronka.io.deals import read_deals

    ws = voronka.open(f"sqlite:///{_fresh(out)}")
    summary = apply_batch(ws, read_deals(src), create_missing=True)
    assert summary.rejected == 0, summary.problems[:3]
    return summary.inserted


def run_pandas(src: Path, out: Path) -> int:
    import sqlite3

    import pandas as pd

    frame = pd.read_csv(src, encoding="cp1251", sep=";")
    with sqlite3.connect(_fresh(out)) as conn:
        frame.to_sql("deals", conn, index=False)
    return len(frame)


def run_duckdb(src: Path, out: Path) -> int:
    import duckdb

    with duckdb.connect(str(_fresh(out))) as conn:
        conn.execute(
            f"CREATE TABLE deals AS SELECT * FROM read_csv('{src}', delim=';', header=true, "
            f"encoding='latin-1', all_varchar=false)"
        )
        return int(conn.execute("SELECT count(*) FROM deals").fetchone()[0])  # type: ignore[index]


ENGINES = {"voronka": run_voronka, "pandas": run_pandas, "duckdb": run_duckdb}


@dataclass
class Measurement:
    engine: str
    seconds: float
    rows: int
    cpu: float
    peak_mib: float


def _child(engine: str, src: str, out: str, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    start = time.perf_counter()
    rows = ENGINES[engine](Path(src), Path(out))
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put((seconds, rows, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024))


def measure(engine: str, src: Path, runs: int) -> Measurement:
    times, cpus, rows, peak = [], [], 0, 0.0
    ctx = mp.get_context("spawn")
    for _ in range(runs):
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(engine, str(src), str(DATA_DIR / f"out_{engine}.db"), queue))
        proc.start()
        seconds, rows, cpu, mib = queue.get()
        proc.join()
        times.append(seconds)
        cpus.append(cpu)
        peak = max(peak, mib)
    return Measurement(engine, float(np.median(times)), rows, float(np.median(cpus)), peak)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--min-rate", type=float, default=100_000)
    args = ap.parse_args(argv)
    src = ensure_csv(args.rows, args.seed)
    print(
        f"{src.name}: {src.stat().st_size / 2**20:.0f} MiB, {args.rows:,} rows, cp1251, ';'  "
        f"(cpus: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f})"
    )
    results = [measure(e, src, args.runs) for e in ENGINES]
    ours = results[0]
    print(f"{'engine':<10}{'seconds':>10}{'rows/s':>12}{'× voronka':>12}{'cpu s':>8}{'peak MiB':>10}")
    for r in results:
        print(
            f"{r.engine:<10}{r.seconds:>10.2f}{r.rows / r.seconds:>12,.0f}{r.seconds / ours.seconds:>12.2f}"
            f"{r.cpu:>8.1f}{r.peak_mib:>10.0f}"
        )
    print(f"load after: {os.getloadavg()[0]:.1f}")
    pandas = next(r for r in results if r.engine == "pandas")
    ok = ours.rows / ours.seconds >= args.min_rate and ours.seconds <= pandas.seconds
    rate = ours.rows / ours.seconds
    print(
        f"voronka: {rate:,.0f} rows/s (bar {args.min_rate:,.0f}), {pandas.seconds / ours.seconds:.2f}x pandas's "
        f"speed: {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
