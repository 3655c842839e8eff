"""WebSocket routes for the site's ASGI application: wrap ``websocket_urlpatterns`` in a
URLRouter, AuthMiddlewareStack and AllowedHostsOriginValidator (docs/protocol.md, "Serving").
"""

from django.urls import path

from .consumers import QueueConsumer

__all__ = ["WS_PATH", "websocket_urlpatterns"]

#: The path the widget connects to, relative to the site root.
WS_PATH = "ws/queue/{slug}/"

websocket_urlpatterns = [
    path("ws/queue/<slug:slug>/", QueueConsumer.as_asgi(), name="ticketqueue-ws"),
]
