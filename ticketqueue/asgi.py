"""The site's ASGI application in one import.

``asgi.py``::

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    application = with_queue_sockets(get_asgi_application())

This module imports nothing of Django's or the app's until it is called, so importing it before
``get_asgi_application()`` has set Django up is safe.
"""

from __future__ import annotations

from typing import Any

__all__ = ["with_queue_sockets"]


def with_queue_sockets(http: Any, websocket: Any = None) -> Any:
    """``http`` (the site's Django application) for HTTP, the queue's sockets for WebSockets,
    and the queue's event streams (``.../api/queues/<slug>/stream/``, ``QueueStreamApp``).

    ``websocket``: the site's other socket routes (any ASGI application, typically its Channels
    stack), served for every socket path that is not the queue's; without it those are
    refused at the handshake. The queue's sockets use the lean application (``QueueSocketApp``:
    origin check against ``ALLOWED_HOSTS``, identity from the session or visitor cookie).
    """
    from channels.routing import ProtocolTypeRouter

    from .live.asgi import QueueSocketApp
    from .live.stream import QueueStreamApp

    return ProtocolTypeRouter(
        {"http": QueueStreamApp(http), "websocket": QueueSocketApp(websocket)}
    )
