"""Shared fixtures: workspaces on every available backend, the scenario factory, and the backend report.

The ``ws`` fixture is parametrized over ``sqlite`` (a fresh temp file per test) and ``postgresql`` (an empty
schema per test in the database at ``$VORONKA_TEST_PG``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, emptied and reused between the tests of one worker; its
connections commit without waiting for the WAL flush, which the tests do not need and which cost the most).
When that server does not answer, the PostgreSQL cases are skipped with the reason, and the run's summary line
says which backends were used.
"""

from __future__ import annotations

import fcntl
import functools
import gc
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:
    from voronka.service.workspace import Workspace

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")

_used: set[str] = set()
_pg_state: dict[str, str | None] = {}


def pg_url() -> URL:
    url = make_url(os.environ.get("VORONKA_TEST_PG") or DEFAULT_PG)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def pg_label() -> str:
    url = pg_url()
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def pg_unavailable() -> str | None:
    """None when the PostgreSQL test server answers; else why it cannot be used (checked once per run)."""
    if "reason" not in _pg_state:
        try:
            engine = create_engine(pg_url(), connect_args={"connect_timeout": 3})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            finally:
                engine.dispose()
            _pg_state["reason"] = None
        except Exception as exc:  # any failure to connect means: no PostgreSQL in this run
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            _pg_state["reason"] = f"PostgreSQL at {pg_label()} does not answer ({first})"
    return _pg_state["reason"]


def pytest_report_header(config: pytest.Config) -> str:
    why = pg_unavailable()
    pg = f"postgresql ({pg_label()})" if why is None else f"no postgresql: {why}"
    return f"voronka backends available: sqlite, {pg}"


EVENTS = Path(__file__).parent / "events"


def _runs_events(config: pytest.Config) -> bool:
    for arg in config.args or [str(Path(__file__).parent)]:
        path = Path(config.invocation_params.dir, arg.split("::")[0]).resolve()
        if path == EVENTS or EVENTS in path.parents or path in EVENTS.parents:
            return True
    return False


def _controller(config: pytest.Config) -> bool:
    """Whether this process is pytest-xdist's controller, which hands the tests to workers and runs none."""
    return not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no"


def pytest_configure(config: pytest.Config) -> None:
    """Set up a process that runs tests; start compiling the event-funnel kernels in the background
    (tests/events/warm.py), once per run.

    Nothing here or at the top of this module imports Voronka, pandas or Hypothesis: under pytest-xdist the
    controller runs no test, and on a fresh clone (no bytecode cached yet) those imports cost it seconds of CPU
    that the workers, importing the same, need.
    """
    if not _controller(config):
        _set_up_tests()
    if hasattr(config, "workerinput") or not _runs_events(config):  # xdist workers: the controller started it
        return
    from tests.events.warm import LOCK

    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held by the child, which inherits it, until the child exits
        config.stash[_WARM] = subprocess.Popen(
            [sys.executable, "-m", "tests.events.warm"],
            cwd=Path(__file__).parents[1],
            pass_fds=(fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(fd)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """After a full collection, what survived it is frozen (``gc.freeze``): later full collections do not walk it.

    A test process holds pandas, SciPy, Numba, SQLAlchemy and the rest: each full collection walked all of it, a
    third of a second or more, about twenty times a worker (ten seconds). A frozen object is still freed when
    its last reference goes; only a reference cycle among objects frozen while alive is kept to the end.
    """
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def _set_up_tests() -> None:
    import typer.testing
    from hypothesis import settings

    # Property tests are reproducible by default: the same examples on every run, so CI never fails on a new
    # random draw. `HYPOTHESIS_PROFILE=explore make test` searches with fresh random examples; pin what it finds.
    settings.register_profile("default", derandomize=True)
    settings.register_profile("explore", derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

    # Typer's CliRunner rebuilds the click command tree from the app's signatures on every invoke (about 40 ms for
    # this app: over a minute of the suite). The tree is fixed once the app is imported: built once per app.
    typer.testing._get_command = functools.cache(typer.testing._get_command)

    gc.callbacks.append(_freeze_survivors)


def pytest_unconfigure(config: pytest.Config) -> None:
    proc = config.stash.get(_WARM, None)
    if proc is not None:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


_WARM = pytest.StashKey[subprocess.Popen[bytes]]()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Under pytest-xdist the fixtures run in workers: the controller learns the backends from the test ids."""
    if report.when == "call" and report.passed:
        for backend in BACKENDS:
            if f"[{backend}" in report.nodeid:
                _used.add(backend)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    names = [f"postgresql ({pg_label()})" if b == "postgresql" else b for b in BACKENDS if b in _used]
    line = f"voronka backends: {', '.join(names) or 'none'}"
    why = _pg_state.get("reason")
    if "postgresql" not in _used and why:
        line += f"; postgresql skipped: {why}"
    terminalreporter.write_sep("-", line)


# -- workspaces ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite workspace; tests copy it instead of running the migration each time."""
    from voronka.service.workspace import Workspace

    path = tmp_path_factory.mktemp("template") / "template.db"
    Workspace.connect(f"sqlite:///{path}").close()
    return path


def fresh_sqlite_url(template: Path, directory: Path) -> str:
    _used.add("sqlite")
    path = directory / f"ws-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


Statements = list[tuple[str, Any]]


@contextmanager
def pg_schema_url(ddl: Sequence[tuple[str, Any]] = ()) -> Iterator[str]:
    """A URL whose connections see only a fresh schema (with ``ddl`` run in it); dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url())
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
            for statement, parameters in ddl:
                conn.exec_driver_sql(statement, parameters)
        try:
            url = pg_url().update_query_dict({"options": f"-csearch_path={schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def pg_migration() -> Statements:
    """The statements Voronka's Alembic migration runs on an empty PostgreSQL schema, recorded once.

    Replaying them makes a fresh schema at the head revision in milliseconds instead of a migration per test;
    the migration itself is tested on an empty schema in tests/store.
    """
    from voronka.store import migrate
    from voronka.store.engine import make_engine

    if pg_unavailable() is not None:
        return []
    recorded: Statements = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        assert not many, statement
        if not statement.lstrip().upper().startswith(("SELECT", "SHOW")):
            recorded.append((statement, parameters))

    with pg_schema_url() as url:
        engine = make_engine(url)
        event.listen(engine, "before_cursor_execute", record)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
    return recorded


class PgSchemaPool:
    """Fresh PostgreSQL schemas at the head revision, reused between tests of one worker.

    Making a schema (36 statements of DDL) and dropping it costs about 0.1 s a test; emptying a used one with
    a DELETE from each table and its sequences reset, a few ms. A schema goes back to the pool only when it still has
    exactly the tables it was made with and its revision; otherwise (or when emptying fails) it is dropped.
    """

    def __init__(self, ddl: Statements) -> None:
        self.ddl = ddl
        self.admin = create_engine(pg_url(), connect_args={"options": "-csynchronous_commit=off"})
        self.free: list[tuple[str, tuple[str, ...]]] = []
        self.made: list[str] = []

    def _url(self, schema: str) -> str:
        url = pg_url().update_query_dict({"options": f"-csearch_path={schema} -csynchronous_commit=off"})
        return url.render_as_string(hide_password=False)

    def _tables(self, conn: Any, schema: str) -> tuple[str, ...]:
        rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY 1"), {"s": schema})
        return tuple(r[0] for r in rows)

    def _revision(self, conn: Any, schema: str) -> list[Any]:
        return list(conn.execute(text(f'SELECT version_num FROM "{schema}".alembic_version')).scalars())

    @contextmanager
    def schema_url(self) -> Iterator[str]:
        if self.free:
            schema, tables = self.free.pop()
        else:
            schema = f"t_{uuid.uuid4().hex[:12]}"
            self.made.append(schema)
            with self.admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
                for statement, parameters in self.ddl:
                    conn.exec_driver_sql(statement, parameters)
                tables = self._tables(conn, schema)
                self.revision = self._revision(conn, schema)
        yield self._url(schema)
        try:
            with self.admin.begin() as conn:
                if self._tables(conn, schema) != tables or self._revision(conn, schema) != self.revision:
                    raise LookupError(f"the test changed schema {schema}'s tables")
                # DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE makes new files for every table
                # and index (about 0.1 s). Foreign-key triggers are off for this transaction (the order of
                # the deletes does not matter); the sequences start again at 1.
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for table in tables:
                    if table != "alembic_version":
                        conn.execute(text(f'DELETE FROM "{schema}"."{table}"'))
                conn.execute(
                    text(
                        "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE c.relkind = 'S' AND n.nspname = :s"
                    ),
                    {"s": schema},
                )
        except Exception:
            self.drop(schema)
        else:
            self.free.append((schema, tables))

    def drop(self, schema: str) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.made.remove(schema)

    def close(self) -> None:
        for schema in list(self.made):
            self.drop(schema)
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_pool(pg_migration: Statements) -> Iterator[PgSchemaPool | None]:
    if pg_unavailable() is not None:
        yield None
        return
    pool = PgSchemaPool(pg_migration)
    yield pool
    pool.close()


@pytest.fixture(params=BACKENDS)
def backend_url(
    request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path, pg_pool: PgSchemaPool | None
) -> Iterator[str]:
    """The URL of a fresh workspace (schema at head, no data) on each backend."""
    if request.param == "sqlite":
        yield fresh_sqlite_url(sqlite_template, tmp_path)
        return
    why = pg_unavailable()
    if why is not None:
        pytest.skip(why)
    _used.add("postgresql")
    assert pg_pool is not None
    with pg_pool.schema_url() as url:
        yield url


@pytest.fixture
def backend(backend_url: str) -> str:
    return "sqlite" if backend_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def ws(backend_url: str) -> Iterator[Workspace]:
    """A fresh workspace, on SQLite (temp file) and on PostgreSQL (fresh schema)."""
    from voronka.service.workspace import Workspace

    w = Workspace.connect(backend_url)
    yield w
    w.close()


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """The URL of a fresh, empty SQLite workspace file (for tests that are about SQLite or the CLI)."""
    return fresh_sqlite_url(sqlite_template, tmp_path)


@pytest.fixture
def sqlite_ws(sqlite_url: str) -> Iterator[Workspace]:
    from voronka.service.workspace import Workspace

    w = Workspace.connect(sqlite_url)
    yield w
    w.close()


@pytest.fixture
def deals_for(ws: Workspace) -> Callable[[dict[str, Any]], list[int]]:
    """``deals_for({...})``: build a scenario written as data in ``ws``; returns the deal ids in order."""
    from tests.scenarios import build_scenario

    return lambda scenario: build_scenario(ws, scenario)
