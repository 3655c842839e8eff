"""The test project's ASGI application, set up as docs/protocol.md tells sites to set theirs up.

Static files are served here too, so the browser test needs nothing but this application.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from ticketqueue.live.stream import QueueStreamApp  # noqa: E402
from ticketqueue.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": QueueStreamApp(ASGIStaticFilesHandler(django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

from ticketqueue.routing import QueueSocketApp  # noqa: E402

#: The same site with the lean queue socket (ticketqueue.live.asgi) in the consumer's place.
#: The site has no other sockets, so there is no fallback (docs/protocol.md shows one).
lean_application = ProtocolTypeRouter(
    {
        "http": QueueStreamApp(ASGIStaticFilesHandler(django_asgi_app)),
        "websocket": QueueSocketApp(),
    }
)
