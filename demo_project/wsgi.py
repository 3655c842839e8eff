"""WSGI entry point: gunicorn serves the demo's HTTP (pages, REST API, purchases) with this."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")

application = get_wsgi_application()

# Every view is imported now, at startup (once, in gunicorn's master with --preload), not by
# each worker's first request: workers started shortly before a sale spent their first second
# importing while the first buyers waited (docs/benchmarks.md, "The durable join burst").
get_resolver().url_patterns  # noqa: B018 - the import is the point
