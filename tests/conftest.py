"""Shared fixtures: a real SQLite file per test, a fresh PostgreSQL database when one is configured."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from patterns.engine import Engine
from patterns.limits import Limits
from registry import Registry, ToolSpec
from storage import Store

POSTGRES_ENV = "PODIUM_TEST_POSTGRES_URL"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # SQLAlchemy's async layer, aiosqlite and asyncpg run on asyncio only


async def _admin(admin_url: str, statement: str) -> None:
    """Run one statement on the admin database (CREATE/DROP DATABASE cannot run in a transaction)."""
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships neither stubs nor py.typed

    url = make_url(admin_url)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _create_database(admin_url: str) -> tuple[str, str]:
    name = f"podium_test_{uuid.uuid4().hex[:12]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    return name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def _drop_database(admin_url: str, name: str) -> None:
    await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def fresh_postgres(why: str) -> AsyncIterator[str]:
    """A new PostgreSQL database, dropped afterwards; skips the test (saying ``why``) when none is configured."""
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.skip(f"{POSTGRES_ENV} is not set, so {why} (CI sets it)")
    name, url = await _create_database(admin)
    try:
        yield url
    finally:
        await _drop_database(admin, name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'podium.db'}"
        return
    async with fresh_postgres("the PostgreSQL variant is skipped") as url:
        yield url


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, for tests that only make sense there (replicas sharing one database)."""
    async with fresh_postgres("this test, which needs a database several processes share, is skipped") as url:
        yield url


class MovableClock:
    """Real time plus an offset a test can ``advance``: the store (and so its engines) run on it, so a test passes
    deadlines, leases and SLAs at once instead of sleeping through them."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def store(tmp_path: Path, clock: MovableClock) -> AsyncIterator[Store]:
    async with Store.open(f"sqlite:///{tmp_path / 'podium.db'}", clock=clock) as opened:
        yield opened


TEST_TOOLS: dict[str, dict[str, Any]] = {
    "noop": {"target": "tests.tools:noop"},
    "echo": {"target": "tests.tools:echo"},
    "add": {
        "target": "tests.tools:add",
        "input_schema": {
            "type": "object",
            "required": ["a", "b"],
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        },
        "output_schema": {"type": "object", "required": ["sum"], "properties": {"sum": {"type": "number"}}},
    },
    "double": {"target": "tests.tools:double"},
    "flaky": {"target": "tests.tools:flaky"},
    "broken": {"target": "tests.tools:broken"},
    "crash": {"target": "tests.tools:crash"},
    "sleepy": {"target": "tests.tools:sleepy"},
    "blocking-sleep": {"target": "tests.tools:blocking_sleep"},
    "wrong-output": {
        "target": "tests.tools:wrong_output",
        "output_schema": {"type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}},
    },
    "unjsonable": {"target": "tests.tools:unjsonable"},
    "classify": {"target": "tests.tools:classify"},
    "summarize": {"target": "tests.tools:summarize"},
    "total": {"target": "tests.tools:total"},
    "chunk-sum": {"target": "tests.tools:chunk_sum"},
    "draft": {"target": "tests.tools:draft"},
    "grade": {"target": "tests.tools:grade"},
    "plateau": {"target": "tests.tools:plateau"},
    "slow-once": {"target": "tests.tools:slow_once"},
    "blob": {"target": "tests.tools:blob"},
    "received": {"target": "tests.tools:received"},
    "blocking-wait": {"target": "tests.tools:blocking_wait"},
    "release": {"target": "tests.tools:release"},
    "inflight": {"target": "tests.tools:inflight"},
    "signal-hold": {"target": "tests.tools:signal_hold"},
    "await-signal": {"target": "tests.tools:await_signal"},
    "pick-score": {"target": "tests.tools:pick_score"},
    "noisy": {"target": "tests.tools:noisy"},
    "nest": {"target": "tests.tools:nest"},
}


def tool_spec(name: str, version: str = "1.0.0", **overrides: Any) -> ToolSpec:
    """A spec for one of TEST_TOOLS (idempotent unless overridden)."""
    base = dict(TEST_TOOLS[name])
    target = base.pop("target")
    fields: dict[str, Any] = {"idempotent": True, **base, **overrides}
    return ToolSpec(name=name, version=version, provider={"type": "python", "target": target}, **fields)


@pytest.fixture
async def registry(store: Store) -> Registry:
    reg = Registry(store)
    await reg.register_all(tool_spec(name) for name in TEST_TOOLS)
    return reg


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def engine(store: Store, registry: Registry, limits: Limits) -> AsyncIterator[Engine]:
    async with Engine(store, registry, limits) as running:
        yield running


@pytest.fixture
def counter(tmp_path: Path) -> Iterator[str]:
    """A file that test tools append to once per invocation."""
    path = tmp_path / "calls.txt"
    path.touch()
    yield str(path)


def calls(counter: str) -> int:
    return len(Path(counter).read_text().splitlines())
