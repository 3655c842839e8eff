"""Demo ticket shop, production topology: PostgreSQL, Redis, Celery beat, pub/sub layer.

Everything secret or host-specific comes from the environment.
"""

import os

from .settings import *  # noqa: F403

DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
# Behind nginx (deploy/nginx.conf) on one port.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Database 1: the demo's own, so `run_production.py --reset` may empty it whole.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/1")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "ticketqueue_demo"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "CONN_MAX_AGE": 60,
        # A kept connection the database dropped (a restart, a failover) is replaced at the
        # next request instead of failing it.
        "CONN_HEALTH_CHECKS": True,
    }
}

TICKETQUEUE = {
    "STORE": "ticketqueue.store.redis.RedisStore",
    # The store may live on a Redis Cluster (TICKETQUEUE_REDIS_CLUSTER=1, the URL naming one or
    # more of its nodes, comma-separated); Celery's broker and the cache stay on REDIS_URL.
    "REDIS_URL": os.environ.get("TICKETQUEUE_REDIS_URL", REDIS_URL),
    "REDIS_CLUSTER": os.environ.get("TICKETQUEUE_REDIS_CLUSTER", "0") == "1",
    "EMBEDDED_TICKER": False,  # Celery beat (or manage.py ticketqueue_ticker) ticks
    # Admit in 2 rounds a second. A slot freed by a purchase is refilled by the purchase itself
    # (REFILL_ON_RELEASE; TICKETQUEUE_REFILL=0 leaves it to these rounds, for comparison). More
    # rounds send more broadcasts, and each one visits every socket of every socket process:
    # at 10 rounds and 10,000 sockets that starved the purchases of CPU on this 2-core machine
    # (docs/benchmarks.md, "End-to-end sale").
    "TICK_BATCHES": 2,
    "REFILL_ON_RELEASE": os.environ.get("TICKETQUEUE_REFILL", "1") == "1",
    # nginx (deploy/nginx.conf) appends the address it saw to X-Forwarded-For: the per-address
    # limits count that one, never what a client wrote before it.
    # nginx in front; the end-to-end sale sets 2 (a CDN in front of it: each simulated buyer
    # then comes from its own address, as real buyers do).
    "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "1")),
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
