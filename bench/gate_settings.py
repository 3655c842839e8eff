"""Throwaway settings for bench/gate_bench.py: PostgreSQL + RedisStore, a typical middleware
stack, DEBUG off. Not a deployment example (see demo_project.settings_production)."""

import os

SECRET_KEY = "bench-only-not-secret-bench-only-not-secret"  # noqa: S105 - never deployed
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "gate_site"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "ticketqueue",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("GATE_BENCH_DB", "ticketqueue_gate_bench"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        # WSGI workers keep one connection each. Under ASGI Django closes its connections
        # after each request (persistent ones would pile up per thread), so uvicorn runs with
        # Django's psycopg pool instead, as Django's docs advise: no connect per request.
        **(
            {"CONN_MAX_AGE": None}
            if os.environ.get("GATE_BENCH_ASGI") != "1"
            else {"CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"min_size": 2, "max_size": 8}}}
        ),
    }
}
TICKETQUEUE = {
    "STORE": "ticketqueue.store.redis.RedisStore",
    "REDIS_URL": os.environ.get("GATE_BENCH_REDIS", "redis://127.0.0.1:6379/10"),
    "KEY_PREFIX": "tqgatebench",
    # The throttles stay at their defaults. The site sits behind one proxy (as docs/deploy
    # has it) and the load generator sends each request's X-Forwarded-For as that proxy would:
    # a crowd of buyers, each from its own address.
    "TRUSTED_PROXIES": 1,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Errors (a 500's traceback) on stderr; the 4xx warnings of a load test are noise.
    "handlers": {"console": {"class": "logging.StreamHandler", "level": "ERROR"}},
    "root": {"handlers": ["console"], "level": "ERROR"},
}
