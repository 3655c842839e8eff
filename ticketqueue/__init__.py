"""ticketqueue: a fair, real-time virtual waiting room for high-demand sales on Django.

Site code calls ``ticketqueue.release(request.queue_pass)`` (or with the signed pass) when an
order completes, and ``ticketqueue.set_stock(queue, tickets_left)`` as its stock goes down.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "release", "set_stock"]


def release(token: Any, *, identity: str | None = None) -> Any:
    """Free the slot of this pass at once (the order behind it completed).

    ``token``: the signed pass, or the claims a gated view holds as ``request.queue_pass``.
    """
    from .services import release as _release

    return _release(token, identity=identity)


def set_stock(queue: Any, remaining: int | None) -> None:
    """Tell the queue what is left to sell (None: unknown): people behind more buyers than
    that are told the tickets will likely run out before their turn."""
    from .services import set_stock as _set_stock

    _set_stock(queue, remaining)
