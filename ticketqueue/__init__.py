"""ticketqueue: a fair, real-time virtual waiting room for high-demand sales on Django.

Site code calls ``ticketqueue.release(request.queue_pass)`` (or with the signed pass) when an
order completes.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "release"]


def release(token: Any, *, identity: str | None = None) -> Any:
    """Free the slot of this pass at once (the order behind it completed).

    ``token``: the signed pass, or the claims a gated view holds as ``request.queue_pass``.
    """
    from .services import release as _release

    return _release(token, identity=identity)
