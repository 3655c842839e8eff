"""Demo ticket shop, production topology: PostgreSQL, Redis, Celery beat, pub/sub layer.

Everything secret or host-specific comes from the environment.
"""

import os

from .settings import *  # noqa: F403

DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "ticketqueue_demo"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "CONN_MAX_AGE": 60,
    }
}

# One publish per message, fanned out inside each ASGI process (see DESIGN: scaling out).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL]},
    }
}

TICKETQUEUE = {
    "STORE": "ticketqueue.store.redis.RedisStore",
    "REDIS_URL": REDIS_URL,
    "EMBEDDED_TICKER": False,  # Celery beat (or manage.py ticketqueue_ticker) ticks
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
