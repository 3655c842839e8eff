from ..servers import asgi_server, store_for_server  # noqa: F401 - fixtures
