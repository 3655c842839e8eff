"""System checks for nonsense ``TICKETQUEUE`` settings (ids ticketqueue.E001 ...)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import DEFAULTS

ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")


class Codes:
    UNKNOWN_KEY = "ticketqueue.E001"
    STORE = "ticketqueue.E002"
    POSITIVE = "ticketqueue.E003"
    ALGORITHM = "ticketqueue.E004"
    SIGNING_KEYS = "ticketqueue.E005"
    STORE_FAILURE = "ticketqueue.E006"
    MEMORY_IN_PRODUCTION = "ticketqueue.W001"


class Messages:
    UNKNOWN_KEY = "TICKETQUEUE has an unknown key {key!r}."
    STORE = "TICKETQUEUE['STORE'] = {value!r} is not an importable QueueStore subclass."
    POSITIVE = "TICKETQUEUE[{key!r}] must be a positive number, not {value!r}."
    ALGORITHM = "TICKETQUEUE['PASS_ALGORITHM'] must be one of {choices}, not {value!r}."
    SIGNING_KEYS = "PASS_ALGORITHM {value!r} needs PASS_PRIVATE_KEYS: [{{'kid': ..., 'pem': ...}}]."
    STORE_FAILURE = "TICKETQUEUE['STORE_FAILURE'] must be 'closed' or 'open', not {value!r}."
    MEMORY_IN_PRODUCTION = "ticketqueue runs on the in-process MemoryStore with DEBUG off."


class Hints:
    UNKNOWN_KEY = "Known keys: " + ", ".join(sorted(DEFAULTS)) + "."
    STORE = "Use 'ticketqueue.store.redis.RedisStore' or 'ticketqueue.store.memory.MemoryStore'."
    MEMORY_IN_PRODUCTION = (
        "MemoryStore keeps the line inside one process; with several workers each sees its own "
        "line. Use RedisStore in production."
    )


POSITIVE_KEYS = ("PURCHASE_WINDOW", "DISCONNECT_GRACE", "TICK_INTERVAL", "TICK_BATCHES")


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from .store.base import QueueStore
    from .store.memory import MemoryStore

    user = dict(getattr(settings, "TICKETQUEUE", {}) or {})
    merged = {**DEFAULTS, **user}
    errors: list[Any] = []
    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(Messages.UNKNOWN_KEY.format(key=key), hint=Hints.UNKNOWN_KEY, id=Codes.UNKNOWN_KEY)
        )
    store = merged["STORE"]
    try:
        backend = import_string(store) if isinstance(store, str) else store
        valid_store = isinstance(backend, type) and issubclass(backend, QueueStore)
    except ImportError:
        backend, valid_store = None, False
    if not valid_store:
        errors.append(
            Error(Messages.STORE.format(value=store), hint=Hints.STORE, id=Codes.STORE)
        )
    elif backend is MemoryStore and not settings.DEBUG and not merged["EMBEDDED_TICKER"]:
        errors.append(
            Warning(
                Messages.MEMORY_IN_PRODUCTION,
                hint=Hints.MEMORY_IN_PRODUCTION,
                id=Codes.MEMORY_IN_PRODUCTION,
            )
        )
    for key in POSITIVE_KEYS:
        if not _positive(merged[key]):
            errors.append(
                Error(Messages.POSITIVE.format(key=key, value=merged[key]), id=Codes.POSITIVE)
            )
    if not (isinstance(merged["UPDATE_INTERVAL"], int | float) and merged["UPDATE_INTERVAL"] >= 0):
        errors.append(
            Error(
                Messages.POSITIVE.format(key="UPDATE_INTERVAL", value=merged["UPDATE_INTERVAL"]),
                id=Codes.POSITIVE,
            )
        )
    algorithm = merged["PASS_ALGORITHM"]
    if algorithm not in ALGORITHMS:
        errors.append(
            Error(
                Messages.ALGORITHM.format(choices=", ".join(ALGORITHMS), value=algorithm),
                id=Codes.ALGORITHM,
            )
        )
    elif algorithm != "HS256" and not merged["PASS_PRIVATE_KEYS"]:
        errors.append(Error(Messages.SIGNING_KEYS.format(value=algorithm), id=Codes.SIGNING_KEYS))
    if merged["STORE_FAILURE"] not in ("closed", "open"):
        errors.append(
            Error(
                Messages.STORE_FAILURE.format(value=merged["STORE_FAILURE"]),
                id=Codes.STORE_FAILURE,
            )
        )
    return errors
