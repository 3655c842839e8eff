"""The schema covers this app's API only: a site's own DRF views are its own business."""

from __future__ import annotations

from typing import Any

__all__ = ["only_ticketqueue"]


def only_ticketqueue(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """drf-spectacular preprocessing hook: keep the endpoints served by ticketqueue.api (its
    views, and simplejwt's token views it wraps, which say ``in_queue_api = True``)."""
    from .views import QueueAPIView

    def ours(cls: Any) -> bool:
        return isinstance(cls, type) and (
            issubclass(cls, QueueAPIView) or getattr(cls, "in_queue_api", False)
        )

    return [
        (path, regex, method, callback)
        for path, regex, method, callback in endpoints
        if ours(getattr(callback, "cls", None))
    ]
