"""ticketqueue: a fair, real-time virtual waiting room for high-demand sales on Django.

Site code calls ``ticketqueue.release(request.queue_pass, tickets=n)`` (or with the signed
pass) when an order of n tickets completes, and ``ticketqueue.set_stock(queue, tickets_left)``
to say what is left to sell (or names a ``STOCK_RESOLVER``): at zero the queue closes.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "release", "set_stock"]


def release(token: Any, *, identity: str | None = None, tickets: int = 1) -> Any:
    """The order behind this pass completed: free its slot at once, and take ``tickets`` off
    the queue's stock if it counts one (0: the order sold nothing countable).

    ``token``: the signed pass, or the claims a gated view holds as ``request.queue_pass``.
    Returns the entry's change (``seq``, ``state``). Raises a PassError for a forged, expired
    or foreign pass, PassNotActive when it was released, revoked or expired already: then
    nothing changes, the stock included.
    """
    from . import inventory, services

    change, queue = services.release_pass(token, identity=identity, refill_now=False)
    inventory.sold(queue, tickets)  # the last tickets close the line: nobody is let in then
    services.refill(queue, 1)
    return change


def set_stock(queue: Any, remaining: int | None) -> None:
    """What is left to sell (None: unknown): people behind more buyers than that are told the
    tickets will likely run out before their turn, and at 0 the queue closes by itself."""
    from . import inventory

    inventory.set_stock(queue, remaining)
