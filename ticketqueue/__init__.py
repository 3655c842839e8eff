"""ticketqueue: a fair, real-time virtual waiting room for high-demand sales on Django.

Site code calls ``ticketqueue.release(pass_token)`` when an order completes.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "release"]


def release(token: str, *, identity: str | None = None) -> Any:
    """Free the slot of this pass at once (the order behind it completed)."""
    from .services import release as _release

    return _release(token, identity=identity)
