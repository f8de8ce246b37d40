"""Benchmark: the web app under 50 concurrent clients moving deals, and the board of a 5,000-deal funnel.

Run::

    .venv/bin/python bench/web.py                  # 50 clients for 60 s, on SQLite and on PostgreSQL if it answers
    .venv/bin/python bench/web.py --seconds 10     # a quick check
    .venv/bin/python bench/web.py --backend sqlite

For each backend: the demo workspace is built (``voronka demo``, 3,000 deals) plus a funnel "Bench board" of
5,000 open deals; ``voronka serve`` runs in its own process on 127.0.0.1; ``--clients`` asyncio clients (each
its own keep-alive connection, speaking plain HTTP/1.1: see ``Connection``) each own a disjoint set of open
deals and move them round their funnel's open stages through
``POST /api/v1/deals/{id}/move`` with the version they last saw, as fast as answers come (no think time), for
``--seconds`` (``--think S``: each client waits a random time of mean S seconds between moves, as people
do). Reported: requests/s and p50/p95/p99 latency of the moves, as the clients measured them, and the CPU
milliseconds per move of the server process and of the clients (the part of the result that does not depend on
what else the machine is doing), and on PostgreSQL of this machine's ``postgres`` processes.

Afterwards the move log and the deals' cached stages are checked against every acknowledged move: each
acknowledged move id is in the log with its deal and stage, no deal has a move the clients were not told of
(nothing doubled), and each deal's cached stage and version are those of its last acknowledged move (nothing
lost). Then the board of the 5,000-deal funnel is rendered in the server process's way (``GET /board/{id}``
through the app in this process, so the time is server-side only): the median of ``--board-runs`` renders.

The bar: p95 under 100 ms, 0 lost or doubled moves, the board under 500 ms. The exit status is non-zero when a
move is lost or doubled; the timings are reported against the bar (this machine may be loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("VORONKA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BOARD_DEALS = 5000


@dataclass
class Client:
    deals: list[int]
    stages: dict[int, list[int]]  # deal -> its funnel's open stage ids
    versions: dict[int, int]
    current: dict[int, int]
    acks: list[tuple[int, int, int]] = field(default_factory=list)  # (deal, stage, move id)
    latencies: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_url() -> str | None:
    """A fresh schema in the test PostgreSQL database, or None when it does not answer."""
    try:
        engine = create_engine(PG, connect_args={"connect_timeout": 3})
        schema = f"bench_web_{uuid.uuid4().hex[:8]}"
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means: no PostgreSQL in this run
        print(f"PostgreSQL at {PG} does not answer ({str(exc).splitlines()[0]}); skipped.")
        return None
    from sqlalchemy.engine import make_url

    return make_url(PG).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def _drop_pg(url: str) -> None:
    from sqlalchemy.engine import make_url

    schema = make_url(url).query["options"].split("=", 1)[1]
    engine = create_engine(PG)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def build(url: str) -> tuple[str, int]:
    """The demo workspace plus a 5,000-open-deal funnel; returns a head's API token and that funnel's id."""
    from voronka.service import accounts
    from voronka.service.demo import build_demo
    from voronka.service.workspace import Workspace
    from voronka.store.bulk import NewDeal, NewMove, write_histories

    ws = Workspace.connect(url)
    now = datetime.now(UTC)
    build_demo(ws, now=now, replace=True)
    pipe = ws.create_pipeline(
        "Bench board", stages=["Lead", "Call", "Estimate", "Contract"], reasons=["Price"], sla_days=[2, 3, 5, 7]
    )
    items = [
        NewDeal(
            pipe.name,
            f"Board deal {i}",
            [NewMove(pipe.open_stages[i % 4].name, now - timedelta(days=1 + i % 40))],
            owner=f"Manager {i % 8}",
            amount=Decimal(10_000 + i),
        )
        for i in range(BOARD_DEALS)
    ]
    write_histories(ws, items)
    token = accounts.create_token(ws, "head", "bench")
    ws.close()
    return token, pipe.id


def _clients(url: str, n: int) -> tuple[list[Client], dict[int, int]]:
    """Split the open deals of the demo's funnels (not the board funnel) among ``n`` clients."""
    from voronka.service.workspace import Workspace
    from voronka.store.schema import deals

    ws = Workspace.connect(url)
    opens = {p.id: [s.id for s in p.open_stages] for p in ws.pipelines() if p.name != "Bench board"}
    with ws.engine.connect() as conn:
        rows = conn.execute(
            select(deals.c.id, deals.c.pipeline_id, deals.c.stage_id, deals.c.version).where(
                deals.c.pipeline_id.in_(list(opens)), deals.c.stage_id.in_([s for v in opens.values() for s in v])
            )
        ).all()
    ws.close()
    clients = [Client([], {}, {}, {}) for _ in range(n)]
    start_versions = {}
    for i, r in enumerate(rows):
        c = clients[i % n]
        c.deals.append(r.id)
        c.stages[r.id] = opens[r.pipeline_id]
        c.versions[r.id] = r.version
        c.current[r.id] = r.stage_id
        start_versions[r.id] = r.version
    return clients, start_versions


class Connection:
    """One keep-alive HTTP/1.1 connection that sends JSON POSTs and reads the answers: the load generator.

    httpx costs about 10 ms of CPU per request here, more than the server's own work, and the clients share the
    machine's two cores with the server; a browser or a script on another machine costs the server nothing. So
    the clients speak the few lines of HTTP they need themselves (Content-Length or chunked bodies).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        conn = cls(host, port)
        await conn._connect()
        return conn

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, payload: object, token: str) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        if self.reader.at_eof():  # the server closed the idle connection (uvicorn keeps one 5 s): reconnect
            self.writer.close()
            await self._connect()
            assert self.reader is not None and self.writer is not None
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        line = await self.reader.readline()
        if not line:
            raise ConnectionError(f"the server closed the connection without answering POST {path}")
        status = int(line.split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()
        await self.reader.readline()
        return status, b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _run_client(http: Connection, c: Client, token: str, until: float, think: float) -> None:
    i = 0
    rng = random.Random(id(c))
    while time.monotonic() < until:
        if think:
            await asyncio.sleep(rng.expovariate(1 / think))
        deal = c.deals[i % len(c.deals)]
        i += 1
        stages = c.stages[deal]
        nxt = stages[(stages.index(c.current[deal]) + 1) % len(stages)]
        t0 = time.perf_counter()
        status, body = await http.post(
            f"/api/v1/deals/{deal}/move", {"stage": nxt, "expected_version": c.versions[deal]}, token
        )
        c.latencies.append(time.perf_counter() - t0)
        if status == 200:
            c.acks.append((deal, nxt, json.loads(body)["id"]))
            c.versions[deal] += 1
            c.current[deal] = nxt
        else:
            c.errors[status] += 1


async def load(port: int, clients: list[Client], token: str, seconds: float, think: float) -> float:
    conns = [await Connection.open("127.0.0.1", port) for _ in clients]
    try:
        t0 = time.monotonic()
        until = t0 + seconds
        await asyncio.gather(*(_run_client(h, c, token, until, think) for h, c in zip(conns, clients, strict=True)))
        return time.monotonic() - t0
    finally:
        for h in conns:
            h.close()


def verify(url: str, clients: list[Client], start_versions: dict[int, int]) -> tuple[int, int]:
    """(lost, doubled): acknowledged moves missing from the log or the cache, and log moves nobody was told of."""
    from voronka.store.schema import deals, stage_moves

    engine = create_engine(url)
    lost = doubled = 0
    acked = {m: (d, s) for c in clients for d, s, m in c.acks}
    per_deal: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for c in clients:
        for d, s, m in c.acks:
            per_deal[d].append((m, s))
    with engine.connect() as conn:
        first_new = min(acked) if acked else 0
        log = conn.execute(
            select(stage_moves.c.id, stage_moves.c.deal_id, stage_moves.c.stage_id).where(
                stage_moves.c.id >= first_new, stage_moves.c.deal_id.in_(list(start_versions))
            )
        ).all()
        cached = {
            r.id: (r.stage_id, r.version) for r in conn.execute(select(deals.c.id, deals.c.stage_id, deals.c.version))
        }
    in_log = {r.id: (r.deal_id, r.stage_id) for r in log}
    lost += sum(1 for m, ds in acked.items() if in_log.get(m) != ds)
    doubled += sum(1 for m in in_log if m not in acked)
    for d, moves in per_deal.items():
        last_stage = max(moves)[1]
        if cached[d] != (last_stage, start_versions[d] + len(moves)):
            lost += 1
    engine.dispose()
    return lost, doubled


def board_time(url: str, pipeline_id: int, runs: int) -> tuple[float, int]:
    from fastapi.testclient import TestClient

    from voronka.web.app import create_app

    app = create_app(url)
    c = TestClient(app)
    token = None
    from voronka.service import accounts

    token, _ = accounts.start_session(app.state.ws, accounts.authenticate(app.state.ws, "head", accounts.DEMO_PASSWORD))  # type: ignore[arg-type]
    c.cookies.set("voronka_session", token)
    times = []
    size = 0
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        r = c.get(f"/board/{pipeline_id}")
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text[:500]
        size = len(r.content)
    app.state.ws.close()
    return statistics.median(times[1:]), size


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` and its children (the workers; Linux /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total if total else float("nan")


def _postgres_cpu_seconds() -> float:
    """User + system CPU seconds so far of this machine's PostgreSQL server: every ``postgres`` process (the
    backends, the WAL writer, ...) plus the children the postmaster has already reaped (its cutime + cstime), so
    that a backend that ends during the run still counts. NaN when no PostgreSQL runs here (a remote server)."""
    total, found = 0.0, False
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text.split("(", 1)[1].rsplit(")", 1)
        if comm != "postgres":
            continue
        fields = rest.split()
        found = True
        total += (int(fields[11]) + int(fields[12])) / tick
        if fields[1] == "1" or _comm(int(fields[1])) != "postgres":  # the postmaster: add its reaped children
            total += (int(fields[13]) + int(fields[14])) / tick
    return total if found else float("nan")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def run_backend(name: str, url: str, args: argparse.Namespace) -> dict[str, object]:
    print(f"\n== {name}: building the demo workspace and a {BOARD_DEALS:,}-deal funnel ...", flush=True)
    token, board_pipe = build(url)
    clients, start_versions = _clients(url, args.clients)
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (Path(tempfile.gettempdir()) / f"voronka-bench-web-{name}.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "voronka"),
            "--db",
            url,
            "serve",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the server did not start; see {log.name}") from None
                time.sleep(0.2)
        print(
            f"   {args.clients} clients moving {len(start_versions):,} open deals for {args.seconds:.0f} s ...",
            flush=True,
        )
        pg = name == "postgresql"
        server_cpu, client_cpu = _cpu_seconds(server.pid), time.process_time()
        pg_cpu = _postgres_cpu_seconds() if pg else float("nan")
        elapsed = asyncio.run(load(port, clients, token, args.seconds, args.think))
        server_cpu, client_cpu = _cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
        pg_cpu = _postgres_cpu_seconds() - pg_cpu if pg else float("nan")
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            print("   the server did not stop within 15 s of SIGTERM; killed", flush=True)
            server.kill()
            server.wait()
    lat = sorted(x for c in clients for x in c.latencies)
    acks = sum(len(c.acks) for c in clients)
    errors: dict[int, int] = defaultdict(int)
    for c in clients:
        for k, v in c.errors.items():
            errors[k] += v
    lost, doubled = verify(url, clients, start_versions)
    board, size = board_time(url, board_pipe, args.board_runs)

    def q(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return {
        "backend": name,
        "requests": len(lat),
        "acked": acks,
        "errors": dict(errors),
        "rps": len(lat) / elapsed,
        "server_cpu_ms": server_cpu / max(len(lat), 1) * 1000,  # CPU per request: does not depend on the load
        "client_cpu_ms": client_cpu / max(len(lat), 1) * 1000,
        "pg_cpu_ms": pg_cpu / max(len(lat), 1) * 1000,
        "p50": q(0.50),
        "p95": q(0.95),
        "p99": q(0.99),
        "lost": lost,
        "doubled": doubled,
        "board_ms": board * 1000,
        "board_kb": size / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--board-runs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1, help="Server worker processes (voronka serve --workers).")
    ap.add_argument(
        "--think", type=float, default=0.0, help="Mean seconds a client waits between moves (0: none, flat out)."
    )
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = ap.parse_args()
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="voronka-bench-web-"))
    if args.backend in ("sqlite", "both"):
        results.append(run_backend("sqlite", f"sqlite:///{tmp / 'web.db'}", args))
    if args.backend in ("postgresql", "both"):
        url = _pg_url()
        if url is not None:
            try:
                results.append(run_backend("postgresql", url, args))
            finally:
                _drop_pg(url)
    print(f"\nload: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1 and 5 min), {os.cpu_count()} cores")
    print(
        f"{'backend':<11}{'moves':>8}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
        f"{'lost':>6}{'doubled':>8}{'board ms':>10}{'srv cpu':>9}{'pg cpu':>8}{'cli cpu':>9}  errors"
    )
    for r in results:
        print(
            f"{r['backend']:<11}{r['acked']:>8}{r['rps']:>8.0f}{r['p50']:>8.1f}{r['p95']:>8.1f}{r['p99']:>8.1f}"
            f"{r['lost']:>6}{r['doubled']:>8}{r['board_ms']:>10.0f}{r['server_cpu_ms']:>9.1f}{r['pg_cpu_ms']:>8.1f}"
            f"{r['client_cpu_ms']:>9.1f}  {r['errors'] or '-'}"
        )
    print(
        "srv cpu, pg cpu, cli cpu: CPU milliseconds per move in the server process, in this machine's PostgreSQL "
        "processes (all of them: other work on it counts too) and in the clients"
    )
    print("bar: p95 < 100 ms, 0 lost, 0 doubled, board < 500 ms")
    for r in results:
        verdict = [
            "p95 " + ("ok" if r["p95"] < 100 else "OVER"),
            "moves " + ("ok" if r["lost"] == r["doubled"] == 0 else "LOST/DOUBLED"),
            "board " + ("ok" if r["board_ms"] < 500 else "OVER"),
        ]
        print(f"{r['backend']}: {', '.join(verdict)}")
    return 1 if any(r["lost"] or r["doubled"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
