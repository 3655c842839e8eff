"""WebSocket routes for the site's ASGI application (docs/protocol.md, "Serving").

Either wrap ``websocket_urlpatterns`` (the Channels consumer) in a URLRouter,
AuthMiddlewareStack and AllowedHostsOriginValidator, or mount ``QueueSocketApp`` (the lean
application: the same protocol without Channels' per-socket state) as the "websocket"
application, with the site's other socket routes as its fallback.
"""

from django.urls import path

from .consumers import QueueConsumer
from .live.asgi import QueueSocketApp

__all__ = ["WS_PATH", "QueueSocketApp", "websocket_urlpatterns"]

#: The path the widget connects to, relative to the site root.
WS_PATH = "ws/queue/{slug}/"

websocket_urlpatterns = [
    path("ws/queue/<slug:slug>/", QueueConsumer.as_asgi(), name="ticketqueue-ws"),
]
