"""Create (or, with reset, recreate) the demo's PostgreSQL database and empty its Redis database.

Run by run_production.py and bench/ci_sale.sh before migrating; reads the production settings.
"""

from __future__ import annotations

import django
import psycopg
import redis
from django.conf import settings
from psycopg import sql


def provision(*, reset: bool = False) -> None:
    django.setup()
    db = settings.DATABASES["default"]
    name = db["NAME"]
    conninfo = {
        "dbname": "postgres",
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
    }
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        if reset:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")
    if reset:
        # The demo has a Redis database of its own (settings_production.REDIS_URL): the store,
        # the channel layer, the cache and Celery's broker all start empty.
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
        print(f"emptied Redis {settings.REDIS_URL}")
