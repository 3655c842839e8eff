from ..servers import asgi_server, server_settings, store_for_server  # noqa: F401 - fixtures
