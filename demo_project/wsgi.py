"""WSGI entry point: gunicorn serves the demo's HTTP (pages, REST API, purchases) with this."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")

application = get_wsgi_application()
