"""System checks for nonsense ``TICKETQUEUE`` settings (ids ticketqueue.E001 ...)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.module_loading import import_string

from .conf import DEFAULTS, GRACE_HEARTBEATS

ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")


class Codes:
    UNKNOWN_KEY = "ticketqueue.E001"
    STORE = "ticketqueue.E002"
    POSITIVE = "ticketqueue.E003"
    ALGORITHM = "ticketqueue.E004"
    SIGNING_KEYS = "ticketqueue.E005"
    STORE_FAILURE = "ticketqueue.E006"
    HEARTBEAT = "ticketqueue.E007"
    PRESENCE_OVER_GRACE = "ticketqueue.E010"
    LIVE_BROADCAST = "ticketqueue.E020"
    UNUSABLE_KEYS = "ticketqueue.E040"
    GATED_URLS = "ticketqueue.E041"
    THROTTLE_RATES = "ticketqueue.E042"
    GATE_NUMBER = "ticketqueue.E043"
    MEMORY_IN_PRODUCTION = "ticketqueue.W001"
    NOBODY_TICKS = "ticketqueue.W002"
    NO_ASGI = "ticketqueue.W003"
    WAITING_BASE = "ticketqueue.W004"
    EMBEDDED_TICKER = "ticketqueue.E008"
    ASGI_APPLICATION = "ticketqueue.E009"
    # operations (issue 5)
    NOTIFIERS = "ticketqueue.E060"
    IMPORTABLE = "ticketqueue.E061"
    RETENTION = "ticketqueue.E062"
    METRICS_AUTH = "ticketqueue.E063"
    WEBHOOK = "ticketqueue.E064"
    PUSH = "ticketqueue.E065"


class Messages:
    UNKNOWN_KEY = "TICKETQUEUE has an unknown key {key!r}."
    STORE = "TICKETQUEUE['STORE'] = {value!r} is not an importable QueueStore subclass."
    POSITIVE = "TICKETQUEUE[{key!r}] must be a positive number, not {value!r}."
    ALGORITHM = "TICKETQUEUE['PASS_ALGORITHM'] must be one of {choices}, not {value!r}."
    SIGNING_KEYS = "PASS_ALGORITHM {value!r} needs PASS_PRIVATE_KEYS: [{{'kid': ..., 'pem': ...}}]."
    STORE_FAILURE = "TICKETQUEUE['STORE_FAILURE'] must be 'closed' or 'open', not {value!r}."
    HEARTBEAT = (
        "TICKETQUEUE[{key!r}] = {value!r} is shorter than {times} heartbeats "
        "(HEARTBEAT_INTERVAL = {interval!r}): people whose page is open would count as gone."
    )
    PRESENCE_OVER_GRACE = (
        "TICKETQUEUE['PRESENCE_TIMEOUT'] = {value!r} is longer than the shortest disconnect grace, "
        "{times} heartbeats ({floor!r} s): someone still counted as connected could be abandoned."
    )
    LIVE_BROADCAST = "TICKETQUEUE['LIVE_BROADCAST'] must be one of {choices}, not {value!r}."
    UNUSABLE_KEYS = "The pass keys are unusable: {error}"
    GATED_URLS = "TICKETQUEUE['GATED_URLS'] must be [(regex, queue slug or None)]: {error}"
    THROTTLE_RATES = "TICKETQUEUE['THROTTLE_RATES'][{key!r}] = {value!r} is not like '20/min'."
    GATE_NUMBER = "TICKETQUEUE[{key!r}] must be a number >= 0, not {value!r}."
    MEMORY_IN_PRODUCTION = "ticketqueue runs on the in-process MemoryStore with DEBUG off."
    NOBODY_TICKS = (
        "Nothing admits anyone: the in-process MemoryStore is ticked only by the web process "
        "itself, and EMBEDDED_TICKER is off."
    )
    EMBEDDED_TICKER = "TICKETQUEUE['EMBEDDED_TICKER'] must be True, False or 'auto', not {value!r}."
    ASGI_APPLICATION = (
        "'daphne' is in INSTALLED_APPS but ASGI_APPLICATION is not set: runserver cannot start."
    )
    NO_ASGI = (
        "ASGI_APPLICATION is not set: the widget's WebSocket has no server, so nobody sees "
        "their place live."
    )
    WAITING_BASE = "The waiting page's base template {name!r} {problem}."
    NOTIFIERS = "TICKETQUEUE['NOTIFIERS'] must be a list of Notifier classes: {problem}."
    IMPORTABLE = "TICKETQUEUE[{key!r}] = {value!r} is not an importable callable."
    RETENTION = "TICKETQUEUE['ENTRY_RETENTION'] must be None or a positive number, not {value!r}."
    METRICS_AUTH = "TICKETQUEUE['METRICS_TOKEN'] must be None or a non-empty string."
    WEBHOOK = "WebhookNotifier needs {problem}."
    PUSH = "{notifier} needs {problem}."


class Hints:
    UNKNOWN_KEY = "Known keys: " + ", ".join(sorted(DEFAULTS)) + "."
    STORE = "Use 'ticketqueue.store.redis.RedisStore' or 'ticketqueue.store.memory.MemoryStore'."
    MEMORY_IN_PRODUCTION = (
        "MemoryStore keeps the line inside one process; with several workers each sees its own "
        "line. Use RedisStore in production."
    )
    NOBODY_TICKS = (
        "Leave EMBEDDED_TICKER at 'auto' (or True). A ticker in another process (Celery, "
        "manage.py ticketqueue_ticker) needs RedisStore: it cannot see this process's line."
    )
    ASGI_APPLICATION = (
        "Set ASGI_APPLICATION = '<project>.asgi.application' and route the queue's sockets "
        "there (README, 'Install into your site')."
    )
    NO_ASGI = (
        "Add 'daphne' first in INSTALLED_APPS, set ASGI_APPLICATION and use "
        "ticketqueue.asgi.with_queue_sockets in asgi.py (README, 'Install into your site')."
    )
    WAITING_BASE = (
        "Set TICKETQUEUE['WAITING_BASE_TEMPLATE'] to a template with {% block content %}, or "
        "to a small one of yours that extends your base and defines it (docs/waiting-page.md)."
    )


POSITIVE_KEYS = (
    "PURCHASE_WINDOW",
    "DISCONNECT_GRACE",
    "TICK_INTERVAL",
    "TICK_BATCHES",
    "RESYNC_INTERVAL",
    "HEARTBEAT_INTERVAL",
    "WS_MAX_MESSAGE",
    "WS_MESSAGE_RATE",
    "WS_MESSAGE_BURST",
    "PRESENCE_TIMEOUT",
    "SAMPLE_RETENTION",
)
LIVE_BROADCASTS = ("store", "local")


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from .store.base import QueueStore

    user = dict(getattr(settings, "TICKETQUEUE", {}) or {})
    merged = {**DEFAULTS, **user}
    errors: list[Any] = []
    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(
                Messages.UNKNOWN_KEY.format(key=key), hint=Hints.UNKNOWN_KEY, id=Codes.UNKNOWN_KEY
            )
        )
    store = merged["STORE"]
    try:
        backend = import_string(store) if isinstance(store, str) else store
        valid_store = isinstance(backend, type) and issubclass(backend, QueueStore)
    except ImportError:
        backend, valid_store = None, False
    if not valid_store:
        errors.append(Error(Messages.STORE.format(value=store), hint=Hints.STORE, id=Codes.STORE))
    elif backend.in_process and merged["EMBEDDED_TICKER"] is False:
        errors.append(
            Warning(Messages.NOBODY_TICKS, hint=Hints.NOBODY_TICKS, id=Codes.NOBODY_TICKS)
        )
    elif backend.in_process and not settings.DEBUG and merged["EMBEDDED_TICKER"] is not True:
        errors.append(
            Warning(
                Messages.MEMORY_IN_PRODUCTION,
                hint=Hints.MEMORY_IN_PRODUCTION,
                id=Codes.MEMORY_IN_PRODUCTION,
            )
        )
    if merged["EMBEDDED_TICKER"] not in (True, False, "auto"):
        errors.append(
            Error(
                Messages.EMBEDDED_TICKER.format(value=merged["EMBEDDED_TICKER"]),
                id=Codes.EMBEDDED_TICKER,
            )
        )
    if not getattr(settings, "ASGI_APPLICATION", None):
        if "daphne" in settings.INSTALLED_APPS:
            errors.append(
                Error(
                    Messages.ASGI_APPLICATION,
                    hint=Hints.ASGI_APPLICATION,
                    id=Codes.ASGI_APPLICATION,
                )
            )
        else:
            errors.append(Warning(Messages.NO_ASGI, hint=Hints.NO_ASGI, id=Codes.NO_ASGI))
    for key in POSITIVE_KEYS:
        if not _positive(merged[key]):
            errors.append(
                Error(Messages.POSITIVE.format(key=key, value=merged[key]), id=Codes.POSITIVE)
            )
    interval = merged["HEARTBEAT_INTERVAL"]
    # A grace or presence shorter than a few heartbeats lapses while the page is open.
    for key, times in (("DISCONNECT_GRACE", GRACE_HEARTBEATS), ("PRESENCE_TIMEOUT", 2)):
        value = merged[key]
        if _positive(value) and _positive(interval) and value < times * interval:
            errors.append(
                Error(
                    Messages.HEARTBEAT.format(key=key, value=value, times=times, interval=interval),
                    id=Codes.HEARTBEAT,
                )
            )
    # Presence and abandonment agree: every presence event of a waiting entry marks it seen,
    # so whoever presence still counts was seen within the grace.
    timeout = merged["PRESENCE_TIMEOUT"]
    if _positive(timeout) and _positive(interval) and timeout > GRACE_HEARTBEATS * interval:
        errors.append(
            Error(
                Messages.PRESENCE_OVER_GRACE.format(
                    value=timeout, times=GRACE_HEARTBEATS, floor=GRACE_HEARTBEATS * interval
                ),
                id=Codes.PRESENCE_OVER_GRACE,
            )
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
    if merged["LIVE_BROADCAST"] not in LIVE_BROADCASTS:
        errors.append(
            Error(
                Messages.LIVE_BROADCAST.format(
                    choices=", ".join(LIVE_BROADCASTS), value=merged["LIVE_BROADCAST"]
                ),
                id=Codes.LIVE_BROADCAST,
            )
        )
    if merged["STORE_FAILURE"] not in ("closed", "open"):
        errors.append(
            Error(
                Messages.STORE_FAILURE.format(value=merged["STORE_FAILURE"]),
                id=Codes.STORE_FAILURE,
            )
        )
    return errors


def _gated_url_error(rules: Any) -> str | None:
    import re

    if not isinstance(rules, list | tuple):
        return f"not a list: {rules!r}"
    for rule in rules:
        if not isinstance(rule, list | tuple) or len(rule) != 2:
            return f"{rule!r} is not a (regex, queue) pair"
        pattern, queue = rule
        try:
            compiled = re.compile(pattern)
        except (re.error, TypeError) as exc:
            return f"{pattern!r}: {exc}"
        if queue is None and "queue" not in compiled.groupindex:
            return f"{pattern!r} names no queue and has no (?P<queue>...) group"
    return None


@register(Tags.security)
def check_gate_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The pass keys load, the gated URLs compile, the throttle rates parse."""
    from .passes import PassKeyError, load_keys

    user = dict(getattr(settings, "TICKETQUEUE", {}) or {})
    merged = {**DEFAULTS, **user}
    errors: list[Any] = []
    algorithm = merged["PASS_ALGORITHM"]
    if algorithm in ALGORITHMS and (algorithm == "HS256" or merged["PASS_PRIVATE_KEYS"]):
        try:
            load_keys()
        except PassKeyError as exc:
            errors.append(Error(Messages.UNUSABLE_KEYS.format(error=exc), id=Codes.UNUSABLE_KEYS))
    problem = _gated_url_error(merged["GATED_URLS"])
    if problem:
        errors.append(Error(Messages.GATED_URLS.format(error=problem), id=Codes.GATED_URLS))
    rates = merged["THROTTLE_RATES"]
    for key, value in rates.items() if isinstance(rates, dict) else [("?", rates)]:
        unit = value.split("/")[-1][:1] if isinstance(value, str) and "/" in value else ""
        valid = value is None or (
            isinstance(value, str) and value.split("/")[0].isdigit() and unit in "smhd" and unit
        )
        if not valid:
            errors.append(
                Error(Messages.THROTTLE_RATES.format(key=key, value=value), id=Codes.THROTTLE_RATES)
            )
    for key in ("PASS_LEEWAY", "GATE_RECHECK", "GATE_RETRY_AFTER", "VISITOR_COOKIE_AGE"):
        value = merged[key]
        if not (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
            errors.append(
                Error(Messages.GATE_NUMBER.format(key=key, value=value), id=Codes.GATE_NUMBER)
            )
    for key in ("TRUSTED_PROXIES",):  # a count of proxies: a whole number
        value = merged[key]
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            errors.append(
                Error(Messages.GATE_NUMBER.format(key=key, value=value), id=Codes.GATE_NUMBER)
            )
    return errors


@register(Tags.compatibility)
def check_operations_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Notifiers, resolvers, retention and the metrics token (the operations knobs)."""
    from .notifications import Notifier

    merged = {**DEFAULTS, **dict(getattr(settings, "TICKETQUEUE", {}) or {})}
    errors: list[Any] = []
    notifiers = merged["NOTIFIERS"]
    problem = None
    if not isinstance(notifiers, list | tuple):
        problem = f"{notifiers!r} is not a list"
    else:
        for path in notifiers:
            try:
                cls = import_string(path) if isinstance(path, str) else path
            except ImportError:
                problem = f"{path!r} cannot be imported"
                break
            if not (isinstance(cls, type) and issubclass(cls, Notifier)):
                problem = f"{path!r} is not a Notifier subclass"
                break
    if problem:
        errors.append(Error(Messages.NOTIFIERS.format(problem=problem), id=Codes.NOTIFIERS))
    for key, optional in (("EMAIL_RESOLVER", False), ("ENTRY_ARCHIVER", True)):
        value = merged[key]
        if value is None and optional:
            continue
        try:
            ok = callable(import_string(value) if isinstance(value, str) else value)
        except ImportError:
            ok = False
        if not ok:
            errors.append(
                Error(Messages.IMPORTABLE.format(key=key, value=value), id=Codes.IMPORTABLE)
            )
    retention = merged["ENTRY_RETENTION"]
    if retention is not None and not _positive(retention):
        errors.append(Error(Messages.RETENTION.format(value=retention), id=Codes.RETENTION))
    token = merged["METRICS_TOKEN"]
    if token is not None and not (isinstance(token, str) and token):
        errors.append(Error(Messages.METRICS_AUTH, id=Codes.METRICS_AUTH))
    errors += _webhook_errors(merged)
    errors += _push_errors(merged)
    return errors


def _block_names(template: Any) -> set[str] | None:
    """The blocks a Django template and the templates it extends define (None: not a Django
    template, or a parent chosen at render time: nothing to check)."""
    from django.template.loader import get_template
    from django.template.loader_tags import BlockNode, ExtendsNode

    inner = getattr(template, "template", None)
    if inner is None:
        return None
    names = {node.name for node in inner.nodelist.get_nodes_by_type(BlockNode)}
    extends = inner.nodelist.get_nodes_by_type(ExtendsNode)
    if extends:
        parent = extends[0].parent_name.var
        if not isinstance(parent, str):
            return None
        above = _block_names(get_template(parent.strip("\"'")))
        return None if above is None else names | above
    return names


@register(Tags.templates)
def check_waiting_page(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The waiting page fills the 'content' block of its base template: a base without one
    would show a page with no waiting room on it."""
    from django.template import TemplateDoesNotExist, TemplateSyntaxError
    from django.template.loader import get_template

    from .views import base_template

    name = base_template()
    try:
        blocks = _block_names(get_template(name))
    except TemplateDoesNotExist:
        problem = "does not exist"
    except TemplateSyntaxError as error:
        problem = f"does not load: {error}"
    else:
        if blocks is None or "content" in blocks:
            return []
        problem = "has no {% block content %}"
    return [
        Warning(
            Messages.WAITING_BASE.format(name=name, problem=problem),
            hint=Hints.WAITING_BASE,
            id=Codes.WAITING_BASE,
        )
    ]


def _named(merged: dict[str, Any], base: type) -> bool:
    """Whether NOTIFIERS names ``base`` or a subclass of it."""
    notifiers = merged["NOTIFIERS"] if isinstance(merged["NOTIFIERS"], list | tuple) else []
    for path in notifiers:
        try:
            cls = import_string(path) if isinstance(path, str) else path
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, base):
            return True
    return False


def _push_errors(merged: dict[str, Any]) -> list[Any]:
    """FCM and APNs: their credentials are set, and httpx with HTTP/2 is installed."""
    from . import push

    problems: list[tuple[str, str]] = []
    for cls, keys in (
        (push.FCMNotifier, ("FCM_CREDENTIALS",)),
        (push.APNsNotifier, ("APNS_KEY", "APNS_KEY_ID", "APNS_TEAM_ID", "APNS_TOPIC")),
    ):
        if not _named(merged, cls):
            continue
        problems += [(cls.__name__, f"TICKETQUEUE[{key!r}]") for key in keys if not merged[key]]
        try:
            import h2  # noqa: F401
            import httpx  # noqa: F401
        except ImportError:
            problems.append((cls.__name__, 'httpx with HTTP/2: pip install "ticketqueue[push]"'))
    return [
        Error(Messages.PUSH.format(notifier=name, problem=problem), id=Codes.PUSH)
        for name, problem in problems
    ]


def _webhook_errors(merged: dict[str, Any]) -> list[Any]:
    from .notifications import WebhookNotifier

    if not _named(merged, WebhookNotifier):
        return []
    problems = []
    url = merged["WEBHOOK_URL"]
    if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        problems.append(f"WEBHOOK_URL to be an http(s) URL, not {url!r}")
    secret = merged["WEBHOOK_SECRET"]
    if not (isinstance(secret, str) and secret):
        problems.append("a non-empty WEBHOOK_SECRET")
    if not _positive(merged["WEBHOOK_TIMEOUT"]):
        problems.append(f"a positive WEBHOOK_TIMEOUT, not {merged['WEBHOOK_TIMEOUT']!r}")
    return [Error(Messages.WEBHOOK.format(problem=p), id=Codes.WEBHOOK) for p in problems]
