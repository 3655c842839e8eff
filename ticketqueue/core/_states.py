"""The queue and entry state machines: which states exist and which moves between them are legal."""

from __future__ import annotations

import enum

from ._errors import InvalidTransition

__all__ = [
    "ENDED_STATES",
    "ENTRY_MOVES",
    "LIVE_STATES",
    "EntryState",
    "QueueMode",
    "QueueState",
    "check_queue_transition",
    "moved_from",
]


class QueueState(enum.StrEnum):
    SCHEDULED = "scheduled"  # takes joins into the pre-queue, admits nobody
    OPEN = "open"
    PAUSED = "paused"  # takes joins, admits nobody
    CLOSED = "closed"  # sold out or ended: no joins, everyone waiting is told

    @property
    def takes_joins(self) -> bool:
        return self is not QueueState.CLOSED

    @property
    def admits(self) -> bool:
        return self is QueueState.OPEN


class QueueMode(enum.StrEnum):
    AUTO = "auto"  # admit at once while under capacity and nobody waits; queue otherwise
    ALWAYS = "always"  # everyone waits in line, even when there is room
    OFF = "off"  # everyone is admitted at once (passes are still issued)


class EntryState(enum.StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    COMPLETED = "completed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    LEFT = "left"
    ABANDONED = "abandoned"

    @property
    def is_live(self) -> bool:
        """A live entry holds the identity's one place in the queue."""
        return self in (EntryState.WAITING, EntryState.ADMITTED)


_QUEUE_MOVES: dict[QueueState, frozenset[QueueState]] = {
    QueueState.SCHEDULED: frozenset({QueueState.OPEN, QueueState.CLOSED}),
    QueueState.OPEN: frozenset({QueueState.PAUSED, QueueState.CLOSED}),
    QueueState.PAUSED: frozenset({QueueState.OPEN, QueueState.CLOSED}),
    QueueState.CLOSED: frozenset(),
}

#: Every move an entry can make: the store makes them, the rows follow (``moved_from``).
ENTRY_MOVES: dict[EntryState, frozenset[EntryState]] = {
    EntryState.WAITING: frozenset(
        {EntryState.ADMITTED, EntryState.LEFT, EntryState.ABANDONED, EntryState.REVOKED}
    ),
    EntryState.ADMITTED: frozenset(
        {EntryState.COMPLETED, EntryState.EXPIRED, EntryState.REVOKED, EntryState.ABANDONED}
    ),
}


#: The entry states that hold an identity's place, and those that ended it, as stored.
LIVE_STATES = tuple(s.value for s in EntryState if s.is_live)
ENDED_STATES = tuple(s.value for s in EntryState if not s.is_live)


def moved_from(state: EntryState) -> frozenset[EntryState]:
    """The states an entry can reach ``state`` from, in one move or several: a row that says
    one of these may be brought to ``state`` (the store's journal keeps an entry's latest
    state only, so a row may skip the moves in between), and no other may."""
    found: set[EntryState] = set()
    frontier = {state}
    while frontier:
        frontier = {s for s, targets in ENTRY_MOVES.items() if targets & frontier} - found
        found |= frontier
    return frozenset(found)


def check_queue_transition(current: QueueState, target: QueueState) -> None:
    """Raise InvalidTransition unless ``current -> target`` is a legal queue move."""
    if target not in _QUEUE_MOVES[current]:
        raise InvalidTransition(f"A {current.value} queue cannot become {target.value}.")
