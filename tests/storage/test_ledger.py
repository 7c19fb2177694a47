"""The budget ledger on real databases: children draw grants from their ancestors, atomically, and give back what
they did not use once they end (SQLite file, and PostgreSQL when PODIUM_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import anyio
import pytest

from storage import NoBudget, RunUpdate, Store
from storage.ledger import Draw
from tests.storage.test_store import new_run

pytestmark = pytest.mark.anyio


async def root(store: Store, run_id: str, max_steps: int, used: int, max_cost: float | None = None) -> None:
    limits = {"max_steps": max_steps, "max_cost_per_run": max_cost}
    await store.create_run(new_run(run_id, status="succeeded", limits=limits))
    store.submit_run(RunUpdate(run_id, usage_steps=used))
    await store.flush(run_id)


async def child(store: Store, run_id: str, parent: str, most: int = 100, cost: float | None = None) -> int:
    """Create a child drawing from ``parent``; its first grant of steps."""
    record, created = await store.create_run(
        new_run(run_id, parent_run_id=parent, limits={"max_steps": most}), Draw(parent, most, cost, {})
    )
    assert created and record.hold_state == "open" and record.hold_steps is not None
    return record.hold_steps


async def end(store: Store, run_id: str, used: int, used_cost: float = 0.0) -> None:
    store.submit_run(RunUpdate(run_id, status="succeeded", usage_steps=used, usage_cost=used_cost))
    await store.flush(run_id)
    assert await store.ledger.settle(run_id)


async def held(store: Store, run_id: str) -> tuple[int, float]:
    record = await store.get_run(run_id)
    return record.held_steps, record.held_cost


async def test_children_racing_for_the_last_steps_never_get_more_than_is_left(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await root(store, "parent", max_steps=10, used=7)
        grants: list[int] = []
        refused: list[str] = []

        async def start(n: int) -> None:
            try:
                grants.append(await child(store, f"child-{n}", "parent", most=2))
            except NoBudget as exc:
                refused.append(exc.message)

        async with anyio.create_task_group() as group:
            for n in range(12):
                group.start_soon(start, n)
        assert sum(grants) == 3 and len(grants) == 2  # 2 + 1: the three steps the parent had left, no more
        assert len(refused) == 10 and "run parent has no steps left to give a child run" in refused[0]
        assert await held(store, "parent") == (3, 0.0)
        assert len(await store.child_runs("parent")) == 2  # a refused child leaves no run behind


async def test_an_ended_child_gives_back_what_it_did_not_use_once(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await root(store, "parent", max_steps=1000, used=0, max_cost=8.0)
        assert await child(store, "a", "parent", most=50, cost=None) == 50
        assert await held(store, "parent") == (50, 2.0)  # a quarter of the cost left, at first
        await end(store, "a", used=3, used_cost=0.5)
        assert await held(store, "parent") == (3, 0.5)
        assert not await store.ledger.settle("a")  # settled once only
        assert await held(store, "parent") == (3, 0.5)


async def test_a_first_grant_is_a_share_of_the_room_and_a_top_up_adds_to_it(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await root(store, "parent", max_steps=100, used=0)
        assert await child(store, "a", "parent") == 25  # a quarter: siblings started after it get theirs
        assert await child(store, "b", "parent") == 18  # a quarter of the 75 left
        steps, _ = await store.ledger.top_up("a", (1, 0.0), (100, None), {})
        assert steps == 25 + 14 and await held(store, "parent") == (25 + 18 + 14, 0.0)
        store.submit_run(RunUpdate("b", usage_steps=18))
        await store.flush("b")
        for _ in range(10):  # a takes everything left, a share at a time
            try:
                steps, _ = await store.ledger.top_up("a", (1, 0.0), (100, None), {})
            except NoBudget:
                break
        assert steps == 100 - 18 and await held(store, "parent") == (100, 0.0)
        with pytest.raises(NoBudget, match="run parent has no steps left"):
            await store.ledger.top_up("a", (1, 0.0), (100, None), {})


async def test_a_grandchild_draws_from_an_open_child_and_its_use_reaches_the_root(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await root(store, "root", max_steps=1000, used=0)
        assert await child(store, "child", "root", most=40) == 40
        assert await child(store, "grandchild", "child", most=8) == 8
        assert await held(store, "root") == (40, 0.0)  # within the child's grant: drawn from the child only
        assert await held(store, "child") == (8, 0.0)
        await end(store, "child", used=5)  # ends first; its grandchild still holds 8 of it
        assert await held(store, "root") == (5 + 8, 0.0)
        await end(store, "grandchild", used=2)  # gives back through the child to the root
        assert await held(store, "root") == (5 + 2, 0.0)
        # a child of a settled run draws from it and on up to the root
        assert await child(store, "late", "child", most=3) == 3
        assert await held(store, "root") == (5 + 2 + 3, 0.0)


async def test_the_sweep_settles_a_child_that_ended_without_its_engine_settling_it(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await root(store, "parent", max_steps=100, used=0)
        await child(store, "a", "parent", most=30)
        store.submit_run(RunUpdate("a", status="cancelled", usage_steps=4))
        await store.flush("a")
        assert await store.ledger.settle_ended() == ["a"]
        assert await store.ledger.settle_ended() == []
        assert await held(store, "parent") == (4, 0.0)
        assert (await store.get_run("a")).hold_state == "closed"


async def test_two_stores_on_one_database_draw_from_the_same_parent_atomically(postgres_url: str) -> None:
    async with Store.open(postgres_url) as first, Store.open(postgres_url) as second:
        await root(first, "parent", max_steps=20, used=0)
        grants: list[int] = []

        async def start(store: Store, n: int) -> None:
            try:
                grants.append(await child(store, f"child-{n}", "parent", most=3))
            except NoBudget:
                pass

        async with anyio.create_task_group() as group:
            for n in range(16):
                group.start_soon(start, first if n % 2 else second, n)
        assert sum(grants) == 20 and await held(first, "parent") == (20, 0.0)
