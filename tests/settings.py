"""Settings for the test suite: PostgreSQL and Redis by default (the production path).

TICKETQUEUE_TEST_DB=sqlite runs the same suite on SQLite; TICKETQUEUE_TEST_STORE=memory on
the in-process store.
"""

import json
import os

SECRET_KEY = "tests-only-not-secret"  # noqa: S105 - a test key, never deployed
# simplejwt signs with SECRET_KEY by default; PyJWT warns (an error here) below 32 bytes.
SIMPLE_JWT = {"SIGNING_KEY": "tests-only-simplejwt-signing-key-not-secret"}
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "daphne",  # runserver speaks ASGI (WebSockets); must come before staticfiles
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "ticketqueue",
    "demo_project.shop",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
ASGI_APPLICATION = "tests.asgi.application"

REDIS_URL = os.environ.get("TICKETQUEUE_TEST_REDIS", "redis://127.0.0.1:6379/14")
# One id per test run, inherited by the workers and servers a test starts: two runs on one
# machine get their own test database and Redis keys and cannot disturb each other.
RUN_ID = os.environ.setdefault("TICKETQUEUE_TEST_RUN", str(os.getpid()))

if os.environ.get("TICKETQUEUE_TEST_DB", "postgres") == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "test"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": f"test_ticketqueue_{RUN_ID}"},
        }
    }

_STORES = {
    "redis": "ticketqueue.store.redis.RedisStore",
    "memory": "ticketqueue.store.memory.MemoryStore",
}
TICKETQUEUE = {
    "STORE": _STORES[os.environ.get("TICKETQUEUE_TEST_STORE", "redis")],
    "REDIS_URL": REDIS_URL,
    "KEY_PREFIX": f"tqtest{RUN_ID}",
}
# A server process a test starts may be given more of TICKETQUEUE (tests/servers.py:
# ``server_settings``), as JSON.
TICKETQUEUE.update(json.loads(os.environ.get("TQ_TEST_SETTINGS") or "{}"))
# Worker processes a test starts may be told to tick in several rounds (tests/ops/test_celery).
if os.environ.get("TQ_TEST_TICK_BATCHES"):
    TICKETQUEUE["TICK_BATCHES"] = int(os.environ["TQ_TEST_TICK_BATCHES"])
