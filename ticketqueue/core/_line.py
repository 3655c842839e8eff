"""How a waiting place moves when the line moves: the arithmetic a socket server applies to
every waiting seat on each tick (and a version 2 client to its own place, ``ticketqueue.place``).

A place is read exactly from the store now and then; between reads it moves by the ticks'
news. Admissions and departures are counted against the totals the last read already
reflected, so a tick that the read saw, or that arrives late, moves nobody twice. What is not
known (the departures of a tick that never arrived) can only leave the place further back than
it is, never ahead, until the next exact read. (A publisher that sends no totals is counted
tick by tick.)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["LineMove", "moved_place"]


@dataclass(frozen=True, slots=True)
class LineMove:
    """One tick's news: ``admitted`` people let in (the admitted total is now
    ``admitted_total``), and the orders of the waiting entries that left, in the order they
    left, numbered up to ``departed_total``. Totals are None from a publisher that sent none."""

    admitted: int
    admitted_total: int | None
    departed: Sequence[float]
    departed_total: int | None
    #: The number of ``departed[0]``.
    first: int = field(init=False)
    #: ``departed`` sorted, for a bisect per place (sorted once per tick, not per seat).
    ahead: list[float] = field(init=False)

    def __post_init__(self) -> None:
        total = self.departed_total
        first = 0 if total is None else total - len(self.departed) + 1
        object.__setattr__(self, "first", first)
        object.__setattr__(self, "ahead", sorted(self.departed))


def moved_place(
    position: int,
    order: float,
    admitted_seen: int | None,
    departed_seen: int | None,
    move: LineMove,
) -> tuple[int, int | None, int | None]:
    """The place after ``move`` of the entry at ``order``, last read at ``position`` with
    ``admitted_seen`` admissions and ``departed_seen`` departures behind it; returned with the
    totals now behind it. Never below 1: "your turn" comes only with the pass."""
    moved = move.admitted
    total = move.admitted_total
    if total is not None and admitted_seen is not None:
        moved = max(0, total - admitted_seen)
        admitted_seen = max(admitted_seen, total)
    departed, departed_total = move.departed, move.departed_total
    if departed:
        if departed_seen is None or departed_total is None or departed_seen < move.first:
            moved += bisect_left(move.ahead, order)  # none of them seen: O(log k)
        elif departed_seen < departed_total:  # the read saw the first few: rare, O(k)
            moved += sum(1 for o in departed[departed_seen - move.first + 1 :] if o < order)
    if departed_total is not None and (departed_seen is None or departed_seen < departed_total):
        departed_seen = departed_total
    if moved:
        position = max(1, position - moved)
    return position, admitted_seen, departed_seen
