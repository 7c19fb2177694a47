"""The event store's two fast paths: events in a remembered cooldown are written behind without a transaction, and
the events that arrive together share one transaction. Neither may change what is decided or lose a record."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import anyio
import pytest

from storage import Store
from storage.events import DUPLICATE_S, Claim
from tests.conftest import MovableClock

pytestmark = pytest.mark.anyio

OUTCOME: dict[str, Any] = {"duplicate": False, "fired": [], "suppressed": [], "skipped": []}


async def decide(store: Store, event_id: str, key: str, *, cooldown_s: float = 3600, new_id: bool = False) -> Any:
    claims = [Claim("renewals", key, cooldown_s)]
    return await store.events.decide(
        event_id, "contract.renewal_due", key, '{"n":1}', "test", claims, OUTCOME, new_id=new_id
    )


async def test_events_in_a_remembered_cooldown_are_recorded_and_durable(tmp_path: Any, clock: MovableClock) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    async with Store.open(url, clock=clock) as store:
        _, created, decided = await decide(store, "first", "C-1", new_id=True)
        assert created and decided == {"renewals": ("fire", None)}
        verdicts = [await decide(store, f"e{n}", "C-1", new_id=True) for n in range(5)]
        for record, created, decided in verdicts:
            assert created and decided["renewals"][0] == "cooldown"
            assert record.payload == {"n": 1} and record.outcome["suppressed"][0]["reason"] == "cooldown"
        # read back at once (the store's reads see what it wrote behind) ...
        shown = await store.events.get("e4")
        assert shown is not None and shown.outcome["suppressed"][0]["until"].endswith("Z")
        assert len(await store.events.list(limit=10)) == 6
    # ... and from another process's view of the same file, once the store is closed
    async with Store.open(url, clock=clock) as other:
        assert sorted(e.id for e in await other.events.list(limit=10)) == ["e0", "e1", "e2", "e3", "e4", "first"]


async def test_a_caller_id_written_behind_is_still_a_duplicate(store: Store) -> None:
    await decide(store, "fires", "C-1")
    record, created, _ = await decide(store, "behind", "C-1")  # in the remembered cooldown: written behind
    assert created
    again, created, decided = await decide(store, "behind", "C-1")
    assert not created and decided == {} and again.outcome == record.outcome


async def test_what_is_kept_of_events_written_behind_ends_once_they_are_durable(store: Store) -> None:
    """The store keeps each event it writes behind only until the writer has committed it, whatever the ids: an
    endless stream of events with ids Podium made (never looked up) must not grow the server's memory."""
    await decide(store, "fires", "C-1", new_id=True)
    for n in range(300):
        await decide(store, f"made-{n}", "C-1", new_id=True)  # each in the remembered cooldown: written behind
    await store.flush()
    await decide(store, "after", "C-1", new_id=True)
    assert set(store.events._behind) <= {"after"}


async def test_an_id_older_than_the_duplicate_window_is_a_new_event(store: Store, clock: MovableClock) -> None:
    await decide(store, "old", "C-1", cooldown_s=3 * DUPLICATE_S)
    clock.advance(DUPLICATE_S + 1)  # the id is forgotten, the key's cooldown is not
    record, created, decided = await decide(store, "old", "C-1", cooldown_s=3 * DUPLICATE_S)
    assert created and decided["renewals"][0] == "cooldown"
    stored = await store.events.get("old")
    assert stored is not None and stored.received_at == record.received_at  # the record is the new one
    assert stored.outcome["suppressed"][0]["reason"] == "cooldown"


async def test_a_remembered_cooldown_ends_when_the_database_says(store: Store, clock: MovableClock) -> None:
    await decide(store, "a", "C-1", cooldown_s=600, new_id=True)
    clock.advance(599)
    assert (await decide(store, "b", "C-1", cooldown_s=600, new_id=True))[2]["renewals"][0] == "cooldown"
    clock.advance(1)
    assert (await decide(store, "c", "C-1", cooldown_s=600, new_id=True))[2]["renewals"] == ("fire", None)


async def test_another_store_does_not_trust_what_this_one_remembers(tmp_path: Any, clock: MovableClock) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    async with Store.open(url, clock=clock) as first, Store.open(url, clock=clock) as second:
        await decide(first, "a", "C-1", cooldown_s=600)
        assert (await decide(second, "b", "C-1", cooldown_s=600))[2]["renewals"][0] == "cooldown"
        clock.advance(600)
        assert (await decide(second, "c", "C-1", cooldown_s=600))[2]["renewals"] == ("fire", None)
        # the first still remembers a cooldown that has ended: it asks the database, which has the second's
        assert (await decide(first, "d", "C-1", cooldown_s=600))[2]["renewals"][0] == "cooldown"


async def test_concurrent_events_share_transactions_and_each_is_decided(store: Store) -> None:
    verdicts: dict[str, Any] = {}

    async def send(n: int) -> None:
        key = f"C-{n % 50}"  # 50 keys, 4 events each: one fire per key
        verdicts[f"e{n}"] = await decide(store, f"e{n}", key, new_id=n % 3 == 0)

    async with anyio.create_task_group() as group:
        for n in range(200):
            group.start_soon(send, n)
    fired = sorted(record.key for record, _, decided in verdicts.values() if decided["renewals"][0] == "fire")
    assert fired == sorted(f"C-{n}" for n in range(50))
    assert all(created for _, created, _ in verdicts.values())
    assert len(await store.events.list(limit=300)) == 200


async def test_a_burst_for_many_keys_is_decided_as_one_event_at_a_time_would_be(
    tmp_path: Any, clock: MovableClock
) -> None:
    """Events with new ids for distinct keys that wait together are claimed in one statement (SQLite): each still
    fires, or is held by the cooldown the database has (one this store never saw), with that cooldown's end."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    async with Store.open(url, clock=clock) as first, Store.open(url, clock=clock) as second:
        fired_at = clock()
        for n in range(30):
            await decide(first, f"a{n}", f"C-{n}", new_id=True)
        verdicts: dict[int, Any] = {}

        async def send(n: int) -> None:
            record, created, decided = await decide(second, f"b{n}", f"C-{n}", new_id=True)
            assert created and record.id == f"b{n}"
            verdicts[n] = decided["renewals"]

        async with anyio.create_task_group() as group:
            for n in range(60):  # the first 30 keys fired in the first store, the other 30 are new
                group.start_soon(send, n)
        held = [verdicts[n] for n in range(30)]
        assert all(verdict == ("cooldown", pytest.approx(fired_at + 3600, abs=5)) for verdict in held), held
        assert [verdicts[n] for n in range(30, 60)] == [("fire", None)] * 30
        stored = {event.id: event for event in await second.events.list(limit=100)}
        assert (
            stored["b0"].outcome["suppressed"][0]["reason"] == "cooldown" and stored["b59"].outcome["suppressed"] == []
        )


async def test_one_id_sent_twice_at_once_is_decided_once(db_url: str) -> None:
    async with Store.open(db_url) as first, Store.open(db_url) as second:
        answers: list[tuple[bool, str]] = []

        async def send(store: Store, n: int) -> None:
            _, created, decided = await decide(store, "same", f"C-{n}")
            answers.append((created, decided.get("renewals", ("-", None))[0]))

        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(send, first if n % 2 else second, n)
        assert [event.id for event in await second.events.list(limit=5)] == ["same"]
    assert sorted(answers) == [(False, "-")] * 19 + [(True, "fire")]


async def test_written_behind_events_on_each_database(db_url: str) -> None:
    async with Store.open(db_url) as store:
        await decide(store, "fires", "C-1", new_id=True)
        for n in range(3):
            record, created, decided = await decide(store, f"behind-{n}", "C-1")  # caller ids, looked up first
            assert created and decided["renewals"][0] == "cooldown"
        again, created, _ = await decide(store, "behind-1", "C-1")
        assert not created and again.id == "behind-1"
        listed = await store.events.list(limit=10)
    assert sorted(event.id for event in listed) == ["behind-0", "behind-1", "behind-2", "fires"]


async def test_a_sender_id_is_looked_up_without_holding_a_read_snapshot(tmp_path: Any) -> None:
    """The lookup runs on the event loop on a connection of its own: it sees another store's events at once, and
    it keeps no read transaction open (which would stop checkpoints from emptying the log)."""
    url = f"sqlite:///{tmp_path / 'events.db'}"
    async with Store.open(url) as store, Store.open(url) as other:
        await decide(store, "fires", "C-1")
        await decide(store, "behind", "C-1")  # in the remembered cooldown: a lookup, then written behind
        await store.flush()
        _, created, decided = await decide(other, "behind", "C-2")  # another store's lookup finds it
        assert not created and decided == {}
        _, created, _ = await decide(store, "new-id", "C-1")  # and this store's lookup finds nothing
        assert created
        await store.flush()
        assert store.db.path is not None
        with closing(sqlite3.connect(store.db.path)) as probe:
            busy, _, _ = probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0  # no connection holds a snapshot the checkpoint would have to wait for
