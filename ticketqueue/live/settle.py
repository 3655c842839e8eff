"""Keeping a socket process's held sockets out of the garbage collector's full collections.

Each open socket is a hundred-odd container objects (protocol, transport, task, seat: 132 for
both ends of a socket in one process) that live as long as the socket. CPython's cyclic
collector goes over every one of them at each full collection, and a busy process makes one
every few seconds: at 15,000 sockets a process spent 0.6-1.2 s of CPU on each (4-8 s of wall
time on a shared box, measured in bench/fanout_bench.py) and found nothing to free, while every
one of its sockets waited for its next update. So, every ``SETTLE_PERIOD`` in which sockets
were opened, the hub collects what is not yet frozen (the objects made since the last time:
cheap) and freezes the rest (``gc.freeze``), which full collections then skip.

A frozen object that later becomes garbage in a reference cycle is not freed until it is
unfrozen. A closed socket leaves a few such objects behind (its transport and socket among them:
12.9 per socket for both ends of 300 sockets closed in one process), so once more sockets have
closed since the last sweep than are held now, everything is unfrozen and swept once.
"""

from __future__ import annotations

import gc

__all__ = ["SETTLE_PERIOD", "Settler"]

#: Seconds between two settles of a socket process (``Hub._settle``).
SETTLE_PERIOD = 10.0


class Settler:
    """Decides, from the sockets opened and closed so far and those held, when to freeze and
    when to sweep (``settle``)."""

    def __init__(self) -> None:
        self.frozen_at = 0  # sockets opened (ever) at the last freeze
        self.swept_at = 0  # sockets closed (ever) at the last sweep

    def settle(self, opened: int, closed: int, held: int) -> str | None:
        """Freeze (``"froze"``), sweep and freeze (``"swept"``) or leave it (None)."""
        swept = closed - self.swept_at > held
        if swept:
            gc.unfreeze()  # the closed sockets' leftovers go with this collection
            self.swept_at = closed
        elif opened == self.frozen_at:
            return None
        gc.collect()  # all that is not frozen: the garbage among it is not kept forever
        gc.freeze()
        self.frozen_at = opened
        return "swept" if swept else "froze"
