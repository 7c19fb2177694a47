"""What a child run asks of the budget ledger and what it is granted: the rules, apart from the store that keeps
the ledger (``storage.ledger``), so that the engine applies the same shares without loading the database layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ENDED = ("succeeded", "partial", "failed", "rejected", "cancelled", "timed_out")
"""Statuses a run does not leave by itself (an operator's retry reopens it: ``reopen``)."""

CHUNK_SHARE = 4
"""A grant is at most a quarter of the room left (at least what is needed now and ``CHUNK_MIN``): siblings
started one after another each get a share, and a child that needs more tops its grant up."""
CHUNK_MIN = 10


def share_of_steps(room: int, need: int, most: int) -> int:
    """The steps a grant takes of ``room``: a share, at least ``need``, at most ``most``."""
    return max(0, min(most, room, max(need, CHUNK_MIN, room // CHUNK_SHARE)))


def share_of_cost(room: float, need: float, most: float | None) -> float:
    """The cost a grant takes of ``room``: a share, at least ``need``, at most ``most`` (None: no limit)."""
    share = max(need, room / CHUNK_SHARE)
    return max(0.0, min(room, share if most is None else min(most, share)))


@dataclass(frozen=True, slots=True)
class Draw:
    """A child's ask of the ledger: its parent, the steps and cost it may use at most (its own limits), and the
    usage of runs executing in the asking engine (newer than their rows)."""

    parent_id: str
    steps: int
    cost: float | None
    fresh: Mapping[str, tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Grant:
    """What a child run drew: ``steps`` and ``cost`` (None: no run it drew from limits cost) from ``sources``."""

    steps: int
    cost: float | None
    sources: tuple[str, ...]
