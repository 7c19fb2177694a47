"""The sync tools' worker threads: bounded, cancellable, and gone when idle."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import threading

import anyio
import pytest

from storage import threads
from storage.threads import WorkerThreads, _Affinity

pytestmark = pytest.mark.anyio

who = contextvars.ContextVar("who", default="nobody")


async def test_a_call_returns_its_result_or_raises_its_exception_with_the_callers_context() -> None:
    pool = WorkerThreads(2, name="podium-test")
    who.set("caller")
    assert await pool.run(lambda: (who.get(), threading.current_thread().name)) == ("caller", "podium-test")

    def boom() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await pool.run(boom)


async def test_no_more_calls_run_at_once_than_the_pool_allows_and_the_rest_wait_their_turn() -> None:
    pool = WorkerThreads(3)
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()
    started: list[int] = []

    def call(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            started.append(i)
        release.wait(10)
        with lock:
            running -= 1
        return i

    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await pool.run(lambda: call(i))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(one, i)
            while len(started) < 3:  # three threads busy, seven calls queued
                await anyio.sleep(0.005)
            assert pool.threads == 3 and len(started) == 3
            release.set()
    assert results == {i: i for i in range(10)}
    assert peak == 3 and sorted(started) == list(range(10))


async def test_a_cancelled_caller_stops_waiting_at_once_and_a_queued_call_never_runs() -> None:
    pool = WorkerThreads(1)
    release = threading.Event()
    ran: list[str] = []

    def blocking() -> None:
        ran.append("blocking")
        release.wait(10)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, blocking)
            while not ran:
                await anyio.sleep(0.005)
            with anyio.move_on_after(0.05) as queued:
                await pool.run(lambda: ran.append("queued"))
            assert queued.cancelled_caught
            tg.cancel_scope.cancel()  # the running call's caller goes too; its thread finishes on its own
    release.set()
    assert await pool.run(lambda: "next") == "next"  # the pool still serves
    assert ran == ["blocking"]


async def test_idle_threads_end() -> None:
    pool = WorkerThreads(4, idle_s=0.05)
    await pool.run(lambda: None)
    assert pool.threads == 1
    with anyio.fail_after(5):
        while pool.threads:
            await anyio.sleep(0.01)
    assert await pool.run(lambda: 7) == 7  # and start again when needed


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="max_threads must be at least 1"):
        WorkerThreads(0)


needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="CPU affinity needs Linux and at least two usable CPUs",
)


@needs_affinity
def test_a_sleeping_thread_is_made_to_wake_on_the_callers_cpu_and_then_runs_anywhere_again() -> None:
    affinity = _Affinity()
    allowed = os.sched_getaffinity(0)
    here = min(allowed)
    asleep, woken, done = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, set[int]] = {}
    tid: list[int] = []

    def sleeper() -> None:
        tid.append(threading.get_native_id())
        asleep.set()
        woken.wait(10)
        seen["woken"] = os.sched_getaffinity(0)
        affinity.release()
        seen["released"] = os.sched_getaffinity(0)
        done.set()

    os.sched_setaffinity(0, {here})  # the caller's CPU, made certain for the test
    try:
        thread = threading.Thread(target=sleeper)
        thread.start()
        assert asleep.wait(10)
        affinity.follow(tid[0])
        woken.set()
        assert done.wait(10)
        thread.join()
    finally:
        os.sched_setaffinity(0, allowed)
    assert seen == {"woken": {here}, "released": allowed}


async def test_a_call_runs_with_every_cpu_the_process_may_use_however_its_thread_was_woken() -> None:
    """The pool wakes an idle thread on the caller's CPU; the function it runs is not confined to that CPU."""
    pool = WorkerThreads(1)
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    for _ in range(20):  # the first call starts the thread; the others wake it
        ran_with = await pool.run(lambda: os.sched_getaffinity(0) if allowed is not None else None)
        assert ran_with == allowed


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH scheduling class on this system")
async def test_the_pools_threads_do_not_preempt_the_event_loop_when_woken_and_the_loop_is_left_as_it_is() -> None:
    """Its threads are in SCHED_BATCH (a woken thread waits for the running one instead of preempting it); the
    caller's thread keeps its own class, and so does every other thread."""
    refused: list[OSError] = []

    def try_batch() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except OSError as exc:
            refused.append(exc)

    probe = threading.Thread(target=try_batch)
    probe.start()
    probe.join()
    if refused:
        pytest.skip(f"this system refuses SCHED_BATCH to threads here ({refused[0]}): the pool leaves them as they are")
    before = os.sched_getscheduler(0)
    pool = WorkerThreads(2)
    policies = {await pool.run(lambda: os.sched_getscheduler(0)) for _ in range(5)}
    assert policies == {os.SCHED_BATCH}
    assert os.sched_getscheduler(0) == before == os.SCHED_OTHER
    outside: list[int] = []
    thread = threading.Thread(target=lambda: outside.append(os.sched_getscheduler(0)))
    thread.start()
    thread.join()
    assert outside == [os.SCHED_OTHER]


async def test_a_thread_back_from_a_call_is_idle_for_the_next_one_so_a_chain_of_calls_keeps_one_thread() -> None:
    """A worker joins the idle threads before it hands its outcome back: the caller, woken by the outcome, finds it
    idle even if it has not run again yet, and wakes it rather than starting a thread."""
    pool = WorkerThreads(8)
    value = 0
    for _ in range(300):
        value = await pool.run(lambda v=value: v + 1)  # type: ignore[misc]
    assert value == 300
    assert pool.threads == 1


async def test_outcomes_finishing_together_each_reach_their_own_caller() -> None:
    """Forty calls released at once hand back forty outcomes, many on one wake-up of the loop."""
    pool = WorkerThreads(40)
    go = threading.Event()
    started = 0
    lock = threading.Lock()

    def call(i: int) -> int:
        nonlocal started
        with lock:
            started += 1
        go.wait(10)
        if i % 7 == 0:
            raise ValueError(i)
        return i * i

    results: dict[int, object] = {}

    async def one(i: int) -> None:
        try:
            results[i] = await pool.run(lambda: call(i))
        except ValueError as exc:
            results[i] = exc.args

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, i)
            while started < 40:
                await anyio.sleep(0.005)
            go.set()
    assert results == {i: (i,) if i % 7 == 0 else i * i for i in range(40)}


def test_one_pool_serves_event_loops_in_several_threads_at_once() -> None:
    pool = WorkerThreads(4)
    totals: dict[int, int] = {}

    async def calls(k: int) -> None:
        total = 0
        for i in range(200):
            total += await pool.run(lambda i=i: i * k)  # type: ignore[misc]
        totals[k] = total

    threads = [threading.Thread(target=asyncio.run, args=(calls(k),)) for k in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert totals == {k: k * sum(range(200)) for k in range(1, 5)}


def open_eventfds() -> int:
    """The eventfds this process has open (the standard event loop uses none of its own)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
        except OSError:  # closed since it was listed
            pass
    return count


@pytest.mark.skipif(not threads.EVENTFD or not os.path.isdir("/proc/self/fd"), reason="needs eventfd and /proc (Linux)")
def test_an_event_loops_way_back_is_closed_with_the_loop() -> None:
    """Each event loop gets its own way back from the workers, an eventfd; a loop gone leaves none open, whatever
    number of loops have used the pool."""
    pool = WorkerThreads(2)

    async def use() -> int:
        result = await pool.run(lambda: 1)
        assert open_eventfds() == before + 1  # this loop's, while it runs
        return result

    gc.collect()
    before = open_eventfds()
    for _ in range(30):
        assert asyncio.run(use()) == 1
    gc.collect()
    assert open_eventfds() == before


def test_without_an_eventfd_outcomes_come_back_through_the_loop_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "EVENTFD", False)
    pool = WorkerThreads(2)

    async def use() -> list[int]:
        return [await pool.run(lambda i=i: i) for i in range(50)]  # type: ignore[misc]

    assert asyncio.run(use()) == list(range(50))
