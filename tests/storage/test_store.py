"""The store against real databases: a SQLite file, and PostgreSQL when PODIUM_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest
from sqlalchemy import event

from storage import NewRun, RunNotFound, RunUpdate, StepWrite, Store, UnsupportedDatabase, parse_database_url, writer
from storage.migrate import HEAD, current_revision, head_revision
from tests.helpers import REPO

pytestmark = pytest.mark.anyio


def new_run(run_id: str, **overrides: object) -> NewRun:
    fields: dict[str, object] = {
        "id": run_id,
        "step": {"chain": [{"tool": "noop"}]},
        "input": {"x": 1},
        "lock": {"noop": "1.0.0"},
        "limits": {"max_steps": 10},
        "trace_id": "trace",
    }
    fields.update(overrides)
    return NewRun(**fields)  # type: ignore[arg-type]


async def test_opening_a_new_database_creates_the_schema_at_the_head_migration(db_url: str) -> None:
    async with Store.open(db_url):
        pass
    assert await current_revision(parse_database_url(db_url)) == head_revision()


def test_the_head_revision_podium_checks_for_is_the_newest_migration() -> None:
    assert head_revision() == HEAD


async def test_a_database_at_the_head_opens_without_importing_alembic(db_url: str, tmp_path: Path) -> None:
    async with Store.open(db_url):
        pass
    script = (
        "import sys, anyio\n"
        "from storage import Store\n"
        "async def main():\n"
        f"    async with Store.open({db_url!r}) as store:\n"
        "        await store.list_runs()\n"
        "anyio.run(main)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'yaml')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "[]"


async def test_opening_twice_at_once_migrates_once_without_errors(db_url: str) -> None:
    async def open_once() -> None:
        async with Store.open(db_url) as store:
            await store.list_runs()

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(open_once)
    assert await current_revision(parse_database_url(db_url)) == head_revision()


async def test_a_run_round_trips_as_a_plain_record(db_url: str) -> None:
    async with Store.open(db_url) as store:
        created, is_new = await store.create_run(new_run("run-1", tags={"team": "ap"}))
        fetched = await store.get_run("run-1")
    assert is_new
    assert fetched == created
    assert fetched.input == {"x": 1}
    assert fetched.lock == {"noop": "1.0.0"}
    assert fetched.tags == {"team": "ap"}
    assert fetched.status == "pending"


async def test_an_unknown_run_id_is_a_specific_error(db_url: str) -> None:
    async with Store.open(db_url) as store:
        with pytest.raises(RunNotFound, match="no run with id 'nope'"):
            await store.get_run("nope")


async def test_the_same_idempotency_key_returns_the_first_run(db_url: str) -> None:
    async with Store.open(db_url) as store:
        first, created_first = await store.create_run(new_run("run-a", idempotency_key="k1"))
        second, created_second = await store.create_run(new_run("run-b", idempotency_key="k1"))
        runs = await store.list_runs()
    assert created_first and not created_second
    assert second.id == first.id == "run-a"
    assert [r.id for r in runs] == ["run-a"]


async def test_step_records_written_through_the_writer_are_durable_after_flush(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1"))
        for i in range(50):
            store.submit_step(StepWrite("run-1", str(i), "tool", "started", time.time(), tool="noop", version="1.0.0"))
            store.submit_step(
                StepWrite(
                    "run-1",
                    str(i),
                    "tool",
                    "completed",
                    time.time(),
                    tool="noop",
                    version="1.0.0",
                    output_json=f'{{"i": {i}}}',
                    attempts=({"n": 1, "ok": True},),
                    finished_at=time.time(),
                )
            )
        store.submit_run(RunUpdate("run-1", status="succeeded", output_json='{"done": true}', set_output=True))
        await store.flush("run-1")
        steps = await store.get_steps("run-1")
        run = await store.get_run("run-1")
    assert len(steps) == 50
    assert {s.status for s in steps} == {"completed"}
    assert sorted(s.output["i"] for s in steps) == list(range(50))
    assert steps[0].attempts == [{"n": 1, "ok": True}]
    assert run.status == "succeeded" and run.output == {"done": True}


async def test_on_sqlite_a_batch_worth_of_records_is_written_without_waiting_for_the_gathering_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer gathers records nobody waits for, but writes them once ``BATCH_RECORDS`` are pending: a long
    chain's records go to the database in batches of bounded size, and its final flush never has more to write."""
    monkeypatch.setattr(writer, "COALESCE_S", 600.0)  # gathering alone would hold them for ten minutes
    async with Store.open(f"sqlite:///{tmp_path / 'podium.db'}") as store:
        await store.create_run(new_run("run-1"))
        for i in range(writer.BATCH_RECORDS):
            store.submit_step(StepWrite("run-1", str(i), "tool", "completed", time.time(), output_json=str(i)))
        with anyio.fail_after(30):
            while len(await store.get_steps("run-1")) < writer.BATCH_RECORDS:  # no flush: only the writer's own
                await anyio.sleep(0.01)
        assert sorted(s.output for s in await store.get_steps("run-1")) == list(range(writer.BATCH_RECORDS))


async def test_records_survive_closing_and_reopening_the_store(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1"))
        store.submit_step(StepWrite("run-1", "0", "tool", "completed", time.time(), output_json="1"))
    async with Store.open(db_url) as store:
        steps = await store.get_steps("run-1")
    assert [(s.path, s.output) for s in steps] == [("0", 1)]


async def test_a_bad_record_fails_only_its_own_run(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("good"))
        store.submit_step(StepWrite("good", "0", "tool", "completed", time.time(), output_json="1"))
        store.submit_step(StepWrite("ghost", "0", "tool", "completed", time.time(), output_json="1"))
        await store.flush("good")
        with pytest.raises(Exception, match="ghost"):
            await store.flush("ghost")
        assert [s.path for s in await store.get_steps("good")] == ["0"]


async def test_runs_are_listed_newest_first_and_filtered_by_status(db_url: str) -> None:
    async with Store.open(db_url) as store:
        for i in range(3):
            await store.create_run(new_run(f"run-{i}"))
        store.submit_run(RunUpdate("run-1", status="failed"))
        await store.flush()
        newest = await store.list_runs(limit=2)
        failed = await store.list_runs(status="failed")
    assert [r.id for r in newest] == ["run-2", "run-1"]
    assert [r.id for r in failed] == ["run-1"]


async def test_tools_are_immutable_rows_with_a_mutable_deprecated_flag(db_url: str) -> None:
    async with Store.open(db_url) as store:
        stored, created = await store.tools.put("t", "1.0.0", {"name": "t"}, "hash-1")
        again, created_again = await store.tools.put("t", "1.0.0", {"name": "changed"}, "hash-2")
        deprecated = await store.tools.set_deprecated("t", "1.0.0", True)
        names = await store.tools.names()
    assert created and not created_again
    assert again.definition == {"name": "t"} and again.definition_hash == "hash-1"
    assert deprecated is not None and deprecated.deprecated
    assert names == ["t"]


async def test_sqlite_files_use_wal_and_enforce_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    async with Store.open(str(path)) as store:
        await store.create_run(new_run("run-1"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.execute("PRAGMA foreign_keys=ON")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO steps (run_id, path, kind, status, missing, attempts, cost, started_at) "
                "VALUES ('nope', '0', 'tool', 'started', '[]', '[]', 0, 0)"
            )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@h/db", "asyncpg"),
    ],
)
async def test_unsupported_database_urls_are_refused_with_what_to_use(url: str, message: str) -> None:
    with pytest.raises(UnsupportedDatabase, match=message):
        parse_database_url(url)


def test_a_bare_path_means_a_sqlite_file(tmp_path: Path) -> None:
    db = parse_database_url(str(tmp_path / "x.db"))
    assert db.dialect == "sqlite" and db.path == tmp_path / "x.db"
    assert db.url.drivername == "sqlite+aiosqlite"


def test_postgres_urls_use_asyncpg() -> None:
    assert parse_database_url("postgresql://postgres@127.0.0.1/test").url.drivername == "postgresql+asyncpg"


async def test_a_step_listing_without_payloads_reads_no_input_or_output(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1"))
        store.submit_step(
            StepWrite(
                "run-1", "0", "tool", "completed", time.time(), tool="noop", version="1.0.0", input_json='{"a": 1}',
                output_json='{"big": "' + "x" * 10_000 + '"}', error={"type": "timeout", "message": "m", "step": "0"},
                attempts=({"n": 1, "ok": True},), cost=0.5, finished_at=time.time(),
            )
        )  # fmt: skip
        await store.flush("run-1")
        [full] = await store.get_steps("run-1")
        [light] = await store.get_steps("run-1", payloads=False)
    assert full.input == {"a": 1} and full.output is not None
    assert light.input is None and light.output is None and light.output_json is None
    assert (light.path, light.tool, light.version, light.status, light.attempts, light.cost, light.error) == (
        full.path, full.tool, full.version, full.status, full.attempts, full.cost, full.error
    )  # fmt: skip


async def test_a_step_overview_reads_every_status_and_only_the_records_picked(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1"))
        for i in range(1200):  # more than one partition of picked paths
            status = "failed" if i % 400 == 7 else "completed"
            store.submit_step(StepWrite("run-1", str(i), "tool", status, time.time(), tool="noop", version="1.0.0"))
        await store.flush("run-1")
        seen: list[int] = []

        def pick(pairs: list[tuple[str, str]]) -> list[str]:
            seen.append(len(pairs))
            failed = sorted((p for p, s in pairs if s == "failed"), key=int)
            return [*failed, "nope", *(str(i) for i in range(1100, 600, -1))]

        statuses, shown, _ = await store.step_overview("run-1", pick)
        nothing = await store.step_overview("run-1", lambda pairs: [])
    assert seen == [1200] and len(statuses) == 1200
    assert sorted(p for p, s in statuses if s == "failed") == ["407", "7", "807"]
    assert [r.path for r in shown] == ["7", "407", "807", *(str(i) for i in range(1100, 600, -1))]  # picked order
    assert all(r.input is None and r.output is None for r in shown) and shown[0].status == "failed"
    assert nothing[1] == [] and len(nothing[0]) == 1200


async def test_a_run_created_twice_with_one_id_is_refused_and_loses_nothing(db_url: str) -> None:
    from storage.errors import Duplicate

    async with Store.open(db_url) as store:
        await store.create_run(new_run("run-1", input={"first": True}))
        with pytest.raises(Duplicate):
            await store.create_run(new_run("run-1", input={"second": True}))
        run = await store.get_run("run-1")
    assert run.input == {"first": True} and run.status == "pending"


async def test_a_new_run_row_is_inserted_with_every_column_the_store_fills(store: Store) -> None:
    """The compiled insert (``_NEW_RUN_COLUMNS``) names exactly the columns ``_new_row`` fills: a column added to
    one and not the other would be dropped silently."""
    from storage.models import RunRow
    from storage.store import _NEW_RUN_COLUMNS

    row = store._new_row(new_run("r-columns"))
    assert tuple(row) == _NEW_RUN_COLUMNS
    assert set(_NEW_RUN_COLUMNS) <= {column.name for column in RunRow.__table__.columns}


class CountingLock:
    """A lock that counts how often it was taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self.taken += 1

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


async def test_on_sqlite_every_write_holds_the_write_lock_and_none_goes_through_the_async_driver(
    tmp_path: Path,
) -> None:
    """Gates, leases, tools and operators' actions write on the store's pooled write connection, under the lock
    the step writer takes too: none of them waits in SQLite's busy handler while the writer commits."""
    from tests.storage.test_gates_store import new_gate

    async with Store.open(f"sqlite:///{tmp_path / 'locked.db'}") as store:
        lock = CountingLock()
        store._sessions._write_lock = lock  # type: ignore[assignment]
        store._writer._lock = lock
        through_driver: list[str] = []

        def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
            through_driver.append(statement.split(None, 1)[0].upper())

        event.listen(store._engine.sync_engine, "before_cursor_execute", seen)
        await store.create_run(new_run("run-1"))
        gate, created = await store.gates.create(new_gate("g1"))
        decided = await store.gates.decide(gate, "approve", "ana", "fine", None, "hash")
        assert created and decided is not None and decided.decision == "approve"
        await store.gates.consume("g1")
        await store.leases.release("engine-a", ["run-1"])
        _, stored = await store.tools.put("noop", "1.0.0", {"name": "noop"}, "h")
        await store.append_history("run-1", {"action": "note", "by": "ops"})
        await store.cancel_open_steps("run-1", {"type": "cancelled", "message": "stopped"})
        store.submit_run(RunUpdate("run-1", status="failed", finished_at=time.time()))
        await store.flush()
        reopened = await store.reopen_run(await store.get_run("run-1"), {"action": "retry"}, [], None)
        assert (
            stored
            and reopened.status == "running"
            and [e["action"] for e in reopened.history][-2:]
            == [
                "note",
                "retry",
            ]
        )
        assert lock.taken >= 10
        assert [s for s in through_driver if s in ("INSERT", "UPDATE", "DELETE", "REPLACE")] == []


async def test_single_writes_and_the_step_writer_take_turns_without_sqlites_busy_handler(tmp_path: Path) -> None:
    """A store's single writes (``Sessions.change``) and its step writer's batches are two SQLite connections of
    one process. They take turns on one lock, each holding it for its transaction, so neither waits in SQLite's busy
    handler, which sleeps 1 to 100 ms between tries and gives up after the busy timeout: runs created while step
    records flood in, each batch flushed at once (so the writer starts the next one straight away), all land."""
    async with Store.open(f"sqlite:///{tmp_path / 'turns.db'}") as store:
        assert store._writer._lock is store._sessions._write_lock
        await store.create_run(new_run("flooded"))
        stop = anyio.Event()
        written = 0

        async def flood() -> None:
            nonlocal written
            while not stop.is_set():
                for _ in range(50):
                    written += 1
                    store.submit_step(
                        StepWrite(
                            run_id="flooded",
                            path=f"/{written}",
                            kind="tool",
                            status="completed",
                            started_at=time.time(),
                            tool="noop",
                            input_json='"' + "x" * 2000 + '"',
                        )
                    )
                await store.flush()

        async with anyio.create_task_group() as group:
            group.start_soon(flood)
            for n in range(100):
                await store.create_run(new_run(f"created-{n}"))
            stop.set()
        assert len(await store.list_runs(None, 200)) == 101
        assert len(await store.get_steps("flooded", payloads=False)) == written
