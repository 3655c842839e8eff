"""Settings for the test suite: PostgreSQL and Redis by default (the production path).

TICKETQUEUE_TEST_DB=sqlite runs the same suite on SQLite; TICKETQUEUE_TEST_STORE=memory on
the in-process store.
"""

import os

SECRET_KEY = "tests-only-not-secret"  # noqa: S105 - a test key, never deployed
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "ticketqueue",
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

REDIS_URL = os.environ.get("TICKETQUEUE_TEST_REDIS", "redis://127.0.0.1:6379/14")

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
        }
    }

_STORES = {
    "redis": "ticketqueue.store.redis.RedisStore",
    "memory": "ticketqueue.store.memory.MemoryStore",
}
TICKETQUEUE = {
    "STORE": _STORES[os.environ.get("TICKETQUEUE_TEST_STORE", "redis")],
    "REDIS_URL": REDIS_URL,
    "KEY_PREFIX": "tqtest",
}
