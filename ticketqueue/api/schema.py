"""The schema covers this app's API only: a site's own DRF views are its own business."""

from __future__ import annotations

from typing import Any

__all__ = ["only_ticketqueue"]


def only_ticketqueue(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """drf-spectacular preprocessing hook: keep the endpoints served by ticketqueue.api."""
    from .views import QueueAPIView

    return [
        (path, regex, method, callback)
        for path, regex, method, callback in endpoints
        if isinstance(getattr(callback, "cls", None), type)
        and issubclass(callback.cls, QueueAPIView)
    ]
