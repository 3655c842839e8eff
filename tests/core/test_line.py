"""The position arithmetic (core.moved_place) against a model line: a place read exactly at any
moment, then moved by the ticks' news, is where the line says it is."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ticketqueue.core import LineMove, moved_place


@dataclass
class Tick:
    admitted: int
    admitted_total: int
    departed: list[float]
    departed_total: int

    def move(self) -> LineMove:
        return LineMove(self.admitted, self.admitted_total, self.departed, self.departed_total)


@dataclass
class Sale:
    """A line of orders 1..size with ``mine`` in it, and what happened to it, event by event."""

    mine: float
    line: list[float]
    ticks: list[Tick]
    #: After each event: (ticks finished, admitted total, departed total, my true position)
    moments: list[tuple[int, int, int, int]]


@st.composite
def sales(draw: st.DrawFn) -> Sale:
    size = draw(st.integers(2, 40))
    line = [float(order) for order in range(1, size + 1)]
    mine = float(draw(st.integers(2, size)))
    ticks: list[Tick] = []
    admitted = departed = 0
    pending_admitted, pending_departed = 0, []
    moments = [(0, 0, 0, line.index(mine) + 1)]
    for _ in range(draw(st.integers(0, 30))):
        ahead = line.index(mine)
        kind = draw(st.sampled_from(["admit", "leave", "tick"]))
        if kind == "admit" and ahead:  # only people ahead: mine waits to the end
            n = draw(st.integers(1, ahead))
            del line[:n]
            admitted += n
            pending_admitted += n
        elif kind == "leave" and len(line) > 1:
            gone = draw(st.sampled_from([o for o in line if o != mine]))
            line.remove(gone)
            departed += 1
            pending_departed.append(gone)
        elif kind == "tick":
            ticks.append(Tick(pending_admitted, admitted, pending_departed, departed))
            pending_admitted, pending_departed = 0, []
        moments.append((len(ticks), admitted, departed, line.index(mine) + 1))
    ticks.append(Tick(pending_admitted, admitted, pending_departed, departed))  # the last
    return Sale(mine, line, ticks, moments)


def follow(sale: Sale, read: int, ticks: list[Tick]) -> int:
    """The place read exactly at moment ``read``, then moved by ``ticks`` in turn."""
    _, admitted_seen, departed_seen, position = sale.moments[read]
    seen: tuple[int | None, int | None] = (admitted_seen, departed_seen)
    for tick in ticks:
        position, *rest = moved_place(position, sale.mine, *seen, tick.move())
        seen = (rest[0], rest[1])
    return position


@settings(max_examples=400, deadline=None)
@given(sales(), st.data())
def test_a_place_read_at_any_moment_follows_the_line_exactly(sale, data):
    read = data.draw(st.integers(0, len(sale.moments) - 1))
    finished = sale.moments[read][0]
    # Every tick not wholly before the read arrives after it, and so may a few that the read
    # already saw (a late delivery): nobody moves twice.
    late = data.draw(st.integers(0, finished))
    truth = sale.line.index(sale.mine) + 1
    assert follow(sale, read, sale.ticks[finished - late :]) == truth


@settings(max_examples=400, deadline=None)
@given(sales(), st.data())
def test_a_missed_tick_only_leaves_the_place_further_back(sale, data):
    finished = sale.moments[0][0]
    kept = [t for t in sale.ticks[finished:] if data.draw(st.booleans())]
    truth = sale.line.index(sale.mine) + 1
    assert follow(sale, 0, kept) >= truth
    if kept and kept[-1] is sale.ticks[-1]:  # the admissions are in the totals: none missed
        missed = sum(len(t.departed) for t in sale.ticks if t not in kept)
        assert follow(sale, 0, kept) <= truth + missed


def test_a_place_never_reaches_zero_and_old_publishers_are_counted_tick_by_tick():
    move = LineMove(admitted=5, admitted_total=None, departed=[2.0, 9.0], departed_total=None)
    assert moved_place(3, 7.0, None, None, move) == (1, None, None)  # 3 - 5 - 1: still 1
    assert moved_place(9, 7.0, 4, 1, move) == (3, 4, 1)  # no totals: nothing to compare with
