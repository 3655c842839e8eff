"""ASGI entry point: the queue's WebSockets and event streams (and, in the demo's runserver, HTTP
too).

The sockets are served by the lean application (``QueueSocketApp``: far less kept per open
socket than Channels' stack, same protocol and checks). Its identity is a simplejwt bearer
token (API clients), else the session's user (browsers), else the visitor cookie; the Origin
header must name an allowed host. The shop has no other sockets.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
# Load the apps before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from demo_project.shop.ws_auth import JWTAuthMiddleware  # noqa: E402
from ticketqueue.live.stream import QueueStreamApp  # noqa: E402
from ticketqueue.routing import QueueSocketApp  # noqa: E402

application = ProtocolTypeRouter(
    {
        # The queue's event streams (server-sent events) from the sockets' hub; the rest
        # is the site.
        "http": QueueStreamApp(django_asgi_app),
        "websocket": JWTAuthMiddleware(QueueSocketApp()),
    }
)
