"""Demo ticket shop settings: the embedded default.

SQLite, the in-process store and a ticker thread: one process,
nothing else to install. ``settings_production`` switches to PostgreSQL, Redis and Celery.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DEMO_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(exist_ok=True)


def _local_secret_key() -> str:
    """A key made on first run and kept out of the repository (var/ is ignored)."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _local_secret_key()
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

INSTALLED_APPS = [
    "daphne",  # runserver serves HTTP and WebSockets from one ASGI process
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
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"
ASGI_APPLICATION = "demo_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "demo.sqlite3",
        # Concurrent purchases on SQLite (docs/design.md, "The embedded default"): readers
        # never wait for the writer (WAL), a transaction takes the write lock when it starts
        # (IMMEDIATE: no deadlock when a reader upgrades), and a writer waits its turn for up
        # to 20 s instead of failing at once with "database is locked".
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
LOGIN_URL = "/admin/login/"

# Browsers use their session; API clients (the mobile app, the load test) simplejwt tokens.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Errors as {code, message}; a database that is away is 503 database_unavailable.
    "EXCEPTION_HANDLER": "ticketqueue.api.exceptions.exception_handler",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=30),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "UPDATE_LAST_LOGIN": False,
}

TICKETQUEUE = {
    "STORE": "ticketqueue.store.memory.MemoryStore",
    "EMBEDDED_TICKER": True,
    "WAITING_BASE_TEMPLATE": "shop/base.html",
}

LOG_LEVEL = os.environ.get("DEMO_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "ticketqueue": {"handlers": ["console"], "level": LOG_LEVEL},
        "demo_project": {"handlers": ["console"], "level": LOG_LEVEL},
        # Every 500 with its traceback, DEBUG or not (Django's own console handler speaks
        # only with DEBUG on; 4xx are warnings, left out: a sale refuses many on purpose).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
