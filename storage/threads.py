"""Worker threads for plain functions (sync tools, SQLite reads): a call is one hand-off to a thread and one back
to the event loop.

``anyio.to_thread.run_sync`` costs about twice a bare hand-off here (a capacity limiter, run-scoped lookups and a
cancel scope per call), and a chain of sync steps, or a stream of point reads, pays it once per call. This pool
keeps only what such a call needs: at most ``max_threads`` threads, started when calls wait and none is idle,
ending after ``idle_s`` without work; calls beyond ``max_threads`` wait their turn in order. A caller that is
cancelled stops waiting at once (its call, if already running, finishes in its thread and its result is dropped);
a call not yet started never runs.

A hand-off wakes a sleeping thread, and the event loop sleeps until the call comes back: two wake-ups. Woken on
another CPU, each costs far more than on the same one (on a virtual machine, an idle virtual CPU must be woken
first: 65-67 against 30-31 us for the round trip in ``bench/mcp_bench.py``'s bare hand-off). So on Linux,
before waking an idle thread, the pool sets that thread's CPU affinity to the CPU the event loop runs on, and the
thread, once awake, gives the affinity back (all the CPUs the process may use) before it calls the function: the
wake-up is local, and a long call that releases the interpreter lock (I/O, C code) can still move to another CPU.
The interpreter lock lets only one of the two threads run Python at a time anyway. Where the affinity cannot be
read or set, threads are woken as they are.

The pool's threads are also in Linux's ``SCHED_BATCH`` class: a thread of that class, woken, does not preempt the
thread running on its CPU. Without it, the woken worker preempted the event loop that had just woken it, while the
loop still held the interpreter lock: the worker found the lock taken and slept again until the loop went to wait
for events, two more switches on every hand-off (``bench/mcp_bench.py``, part 3; README, "Performance"). Nothing
else changes for them: same priority and share of the CPU. Threads and processes that a sync tool starts inherit
the class, as they inherit any (a woken one of them waits for the next switch of its CPU rather than preempting
what runs there). Where the class is unknown, threads keep their own.

The way back has the same trap in the other direction: ``call_soon_threadsafe`` wakes the loop while the worker
holds the interpreter lock, so the woken loop preempts the worker, finds the lock taken and sleeps again until the
worker goes back to waiting: four switches per hand-off where two do. So on Linux a worker hands its outcome back
through an eventfd that the loop reads (one per event loop, ``_Returns``), written by ``os.eventfd_write``, which
lets go of the interpreter lock around the write: the loop, woken, finds the lock free. The worker joins the idle
threads before it writes, so the loop's next call finds it there (rather than starting another thread) even
though the worker has not run again yet. Where there is no eventfd, or the loop cannot watch one, outcomes go back
through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

IDLE_S = 10.0

_Post = Callable[["asyncio.Future[Any]", Any, "BaseException | None"], None]
"""Called in a worker with a call's future and its outcome (result, exception): gets them to the loop."""
_Job = tuple[_Post, "asyncio.Future[Any]", contextvars.Context, Callable[[], Any]]
_Outcome = tuple[_Post, "asyncio.Future[Any]", Any, "BaseException | None"]


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the loop: hand the outcome to a caller still waiting for it."""
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _Returns:
    """One event loop's way back from the workers (see the module): the outcomes not yet delivered, and an eventfd
    the loop watches. Closed once neither the loop nor a worker refers to it any more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._done: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._armed = False  # a wake-up is written that the loop has not read yet
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        weakref.finalize(self, os.close, self._fd)
        loop.add_reader(self._fd, self._drain)

    def post(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """In a worker: queue the outcome and wake the loop, unless a wake-up is already on its way."""
        self._done.append((future, result, error))
        if not self._armed:
            self._armed = True
            os.eventfd_write(self._fd, 1)  # lets go of the interpreter lock around the write

    def _drain(self) -> None:
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:  # read already
            pass
        self._armed = False  # from here on, an outcome queued after this line writes again
        done = self._done
        while done:
            _deliver(*done.popleft())


_posts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Post] = weakref.WeakKeyDictionary()
_posts_lock = threading.Lock()


def _post_for(loop: asyncio.AbstractEventLoop) -> _Post:
    """How a worker gets an outcome back to ``loop``: its ``_Returns`` where it can have one."""
    post = _posts.get(loop)
    if post is None:
        with _posts_lock:
            post = _posts.get(loop) or _new_post(loop)
            _posts[loop] = post
    return post


def _new_post(loop: asyncio.AbstractEventLoop) -> _Post:
    """A new ``_Returns`` for ``loop``, else ``call_soon_threadsafe``."""
    if EVENTFD:
        try:
            return _Returns(loop).post
        except (NotImplementedError, OSError):  # a loop that cannot watch a file, or no file to watch
            pass
    return _post_soon


def _post_soon(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    future.get_loop().call_soon_threadsafe(_deliver, future, result, error)


EVENTFD = hasattr(os, "eventfd")


class _Affinity:
    """Setting a sleeping thread's CPU affinity to the caller's CPU, and giving it back (see the module)."""

    def __init__(self) -> None:
        self._cpu: Callable[[], int] | None = None
        self._allowed: set[int] = set()
        if not hasattr(os, "sched_setaffinity"):
            return
        try:
            allowed = os.sched_getaffinity(0)
            cpu = ctypes.CDLL(None).sched_getcpu
        except (OSError, AttributeError):  # no C library to ask, or no sched_getcpu in it
            return
        cpu.restype, cpu.argtypes = ctypes.c_int, []
        if len(allowed) > 1:
            self._cpu, self._allowed = cpu, allowed

    def follow(self, tid: int) -> None:
        """Make the thread ``tid``, asleep, wake on the CPU this thread runs on."""
        if self._cpu is None:
            return
        cpu = self._cpu()
        if cpu not in self._allowed:
            return
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:  # e.g. the process's CPU set changed: wake threads as they are from now on
            self._cpu = None

    def release(self) -> None:
        """In a thread woken after ``follow``: run wherever the process may."""
        if self._cpu is None:
            return
        try:
            os.sched_setaffinity(0, self._allowed)
        except OSError:
            self._cpu = None


def _no_wakeup_preemption() -> None:
    """Put the calling thread in ``SCHED_BATCH`` (see the module), where the system has it."""
    batch = getattr(os, "SCHED_BATCH", None)
    if batch is None or not hasattr(os, "sched_setscheduler"):
        return
    try:
        os.sched_setscheduler(0, batch, os.sched_param(0))
    except OSError:  # e.g. a sandbox that forbids it: the thread stays as it is
        pass


_affinity: _Affinity | None = None


def _the_affinity() -> _Affinity:
    global _affinity
    if _affinity is None:
        _affinity = _Affinity()
    return _affinity


@dataclass(eq=False)
class _Worker:
    """A pool thread: asleep on ``wake`` (a lock held while it sleeps) when idle; ``job`` is what it was handed."""

    tid: int
    wake: threading.Lock
    job: _Job | None = None


class WorkerThreads:
    """Runs plain functions in worker threads for asyncio code (see the module's docstring)."""

    def __init__(self, max_threads: int, idle_s: float = IDLE_S, name: str = "podium-worker") -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        self.max_threads = max_threads
        self._idle_s = idle_s
        self._name = name
        self._lock = threading.Lock()
        self._jobs: deque[_Job] = deque()  # calls no idle thread could take, oldest first
        self._idle: list[_Worker] = []  # the last to go idle is woken first: its caches are the warmest
        self._threads = 0
        self._affinity = _the_affinity()

    @property
    def threads(self) -> int:
        """Threads alive now (busy or idle)."""
        return self._threads

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread, with the caller's context variables; its result or its exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job: _Job = (_post_for(loop), future, contextvars.copy_context(), fn)
        worker = None
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
                worker.job = job
            else:
                self._jobs.append(job)
                if self._threads < self.max_threads:
                    self._threads += 1
                    threading.Thread(target=self._work, name=self._name, daemon=True).start()
        if worker is not None:
            self._affinity.follow(worker.tid)
            worker.wake.release()
        return await future

    def _wait(self, me: _Worker) -> _Job | None:
        """Sleep until handed a call, which is returned; None once idle for ``idle_s`` (the thread has then left
        the pool)."""
        woken = me.wake.acquire(timeout=self._idle_s)
        if not woken:
            with self._lock:
                if me.job is None:
                    self._idle.remove(me)
                    self._threads -= 1
                    return None
            me.wake.acquire()  # handed a call just as the wait ran out: its wake-up is on its way
        self._affinity.release()
        return me.job

    def _work(self) -> None:
        _no_wakeup_preemption()
        wake = threading.Lock()
        wake.acquire()  # held while the thread sleeps; a caller releases it to wake the thread
        me = _Worker(threading.get_native_id(), wake)
        outcome: _Outcome | None = None
        while True:
            with self._lock:  # the next call waiting, else join the idle threads (before handing back: see the module)
                job = self._jobs.popleft() if self._jobs else None
                if job is None:
                    me.job = None
                    self._idle.append(me)
            if outcome is not None:
                _hand_back(outcome)
                outcome = None  # drop references before waiting for the next call
            if job is None:
                job = self._wait(me)
                if job is None:
                    return
            post, future, context, fn = job
            del job
            if future.cancelled():  # its caller stopped waiting before it started: do not run it
                continue
            try:
                outcome = (post, future, context.run(fn), None)
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome = (post, future, None, exc)
            del post, future, fn


def _hand_back(outcome: _Outcome) -> None:
    post, future, result, error = outcome
    try:
        post(future, result, error)
    except RuntimeError:  # the loop has closed (call_soon_threadsafe): nobody is waiting any more
        pass
