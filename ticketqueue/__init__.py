"""ticketqueue: a fair, real-time virtual waiting room for high-demand sales on Django.

What a site uses is here (docs/api.md, "The public surface"):

- ``release(request.queue_pass, tickets=n)`` when an order of n tickets completes, and
  ``set_stock(queue, tickets_left)`` to say what is left to sell (at zero the queue closes);
- the gate: ``HasQueuePass`` (DRF), ``queue_pass_required`` (a view decorator) and
  ``QueuePassMiddleware``; a gated view finds the pass's ``PassClaims`` as
  ``request.queue_pass``;
- the sockets: ``with_queue_sockets`` (asgi.py) and ``QueueSocketApp`` (socket processes);
- ``TicketQueueError`` (every refusal, with its stable ``code``), ``PassError`` and
  ``PassNotActive``.

Test helpers are in ``ticketqueue.testing``. The names other than ``release`` and
``set_stock`` load on first use: Django imports this package before its apps are ready.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api.permissions import HasQueuePass
    from .asgi import with_queue_sockets
    from .core import PassClaims, PassError, PassNotActive, TicketQueueError
    from .gate import QueuePassMiddleware, queue_pass_required
    from .routing import QueueSocketApp
    from .store import Change

__version__ = "0.1.0"
__all__ = [
    "HasQueuePass",
    "PassClaims",
    "PassError",
    "PassNotActive",
    "QueuePassMiddleware",
    "QueueSocketApp",
    "TicketQueueError",
    "__version__",
    "queue_pass_required",
    "release",
    "set_stock",
    "with_queue_sockets",
]

#: name -> the module that defines it, imported on first use.
_LAZY = {
    "HasQueuePass": ".api.permissions",
    "PassClaims": ".core",
    "PassError": ".core",
    "PassNotActive": ".core",
    "QueuePassMiddleware": ".gate",
    "QueueSocketApp": ".routing",
    "TicketQueueError": ".core",
    "queue_pass_required": ".gate",
    "with_queue_sockets": ".asgi",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def release(token: str | PassClaims, *, identity: str | None = None, tickets: int = 1) -> Change:
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
