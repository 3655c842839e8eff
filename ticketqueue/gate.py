"""The purchase gate: find the pass on a request and decide, with no SQL and at most one store
round trip, whether it may buy. Shared by ``HasQueuePass`` (DRF), the decorator and the middleware.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import NoReverseMatch, reverse

from . import passes, revocation
from .conf import on_change, queue_settings
from .core import (
    PassClaims,
    PassError,
    PassMissing,
    PassWrongDevice,
    PassWrongIdentity,
    QueueNotFound,
    TicketQueueError,
)
from .errors import error_body
from .identity import VISITOR_COOKIE, device_of, user_identity, visitor_id_from_cookie

__all__ = [
    "VISITOR_HEADER",
    "QueuePassMiddleware",
    "attach",
    "check_pass",
    "check_request",
    "gate_status",
    "holds",
    "pass_cookie_name",
    "queue_id_for",
    "queue_pass_required",
    "refusal_response",
    "request_identities",
    "tokens_from",
]

#: Header an API client without cookies sends its signed visitor id in (the tq_visitor value).
VISITOR_HEADER = "HTTP_X_QUEUE_VISITOR"
_AUTH_SCHEME = "queuepass "


# -- which queue ----------------------------------------------------------------------------

#: Seconds a slug -> queue id answer is kept per process (slugs are rarely edited; an edit in
#: this process drops it at once). Unknown slugs are kept briefly, so a flood of them costs
#: one query each per NEGATIVE_TTL, not one per request.
QUEUE_ID_TTL = 300.0
NEGATIVE_TTL = 5.0
_queue_ids: dict[str, tuple[str | None, float]] = {}
_slugs: dict[str, str] = {}
_ids_lock = threading.Lock()


def queue_id_for(ref: Any) -> str:
    """The store id of a queue given as a Queue, a primary key (int) or a slug (str).

    A slug costs one query per process every QUEUE_ID_TTL seconds, never one per request.
    """
    now = time.monotonic()
    if type(ref) is str:  # the hot path: a slug seen before
        hit = _queue_ids.get(ref)
        if hit is not None and now < hit[1]:
            if hit[0] is None:
                raise QueueNotFound()
            return hit[0]
    from .models import Queue

    if isinstance(ref, Queue):
        _slugs.setdefault(ref.store_id, ref.slug)
        return ref.store_id
    if isinstance(ref, int) and not isinstance(ref, bool):
        return str(ref)
    if not isinstance(ref, str) or not ref:
        raise ImproperlyConfigured(f"A queue is a Queue, its pk or its slug, not {ref!r}.")
    pk = Queue.objects.filter(slug=ref).values_list("pk", flat=True).first()
    with _ids_lock:
        if len(_queue_ids) > 10_000:
            _queue_ids.clear()
        if pk is None:
            _queue_ids[ref] = (None, now + NEGATIVE_TTL)
            raise QueueNotFound()
        _queue_ids[ref] = (str(pk), now + QUEUE_ID_TTL)
        _slugs[str(pk)] = ref
    return str(pk)


def _slug_of(queue_id: str | None) -> str | None:
    """The slug to send a browser to; only on the refusal path, so a query is affordable."""
    if queue_id is None:
        return None
    if queue_id not in _slugs:
        from .models import Queue

        slug = Queue.objects.filter(pk=queue_id).values_list("slug", flat=True).first()
        if slug is None:
            return None
        _slugs[queue_id] = slug
    return _slugs[queue_id]


@receiver(post_save, sender="ticketqueue.Queue", dispatch_uid="ticketqueue.gate.queue_saved")
@receiver(post_delete, sender="ticketqueue.Queue", dispatch_uid="ticketqueue.gate.queue_deleted")
def _forget_queue(sender: Any, instance: Any, **kwargs: Any) -> None:
    with _ids_lock:
        for slug, (pk, _) in list(_queue_ids.items()):
            if pk == instance.store_id or slug == instance.slug:
                _queue_ids.pop(slug, None)
        _slugs.pop(instance.store_id, None)


def forget_queues() -> None:
    """Drop every cached slug (tests; a site that renamed queues in bulk)."""
    with _ids_lock:
        _queue_ids.clear()
        _slugs.clear()


# -- what the request carries ---------------------------------------------------------------


def pass_cookie_name(queue_id: str) -> str:
    """Browsers hold one HttpOnly pass cookie per queue, so two sales at once do not clash."""
    return f"{queue_settings.PASS_COOKIE}_{queue_id}"


def tokens_from(request: HttpRequest, queue_id: str | None) -> list[str]:
    """The pass(es) a request presents: ``Authorization: QueuePass <jwt>``, else
    ``X-Queue-Pass``, else the queue's pass cookie (every pass cookie if the queue is not
    known yet)."""
    meta = request.META
    auth = meta.get("HTTP_AUTHORIZATION")
    if auth and auth[:10].lower() == _AUTH_SCHEME:
        token = auth[10:].strip()
        return [token] if token else []
    header = meta.get("HTTP_X_QUEUE_PASS")
    if header:
        return [header.strip()]
    cookies = request.COOKIES
    if queue_id is not None:
        token = cookies.get(pass_cookie_name(queue_id))
        return [token] if token else []
    prefix = f"{queue_settings.PASS_COOKIE}_"
    return [value for name, value in cookies.items() if name.startswith(prefix) and value]


#: Signed visitor values already checked in this process: unsigning is an HMAC with a key
#: derivation each time, and the same browser sends the same value on every request.
_visitors: dict[str, str | None] = {}


def _visitor_identity(request: HttpRequest) -> str | None:
    value = request.COOKIES.get(VISITOR_COOKIE) or request.META.get(VISITOR_HEADER)
    if not value:
        return None
    identity = _visitors.get(value, "")
    if identity == "":
        visitor = visitor_id_from_cookie(value)
        identity = f"anon:{visitor}" if visitor else None
        if len(_visitors) >= 10_000:
            _visitors.clear()
        _visitors[value] = identity
    return identity


def _user_identity(request: Any) -> str | None:
    # DRF's Request authenticates on first access; a plain request has what the
    # AuthenticationMiddleware put there, or nothing.
    return user_identity(getattr(request, "user", None))


def request_identities(request: Any) -> list[str]:
    """Every identity the request proves: its logged-in user and its signed visitor id."""
    return [i for i in (_user_identity(request), _visitor_identity(request)) if i]


def _device(request: Any) -> str | None:
    return device_of(request.META, request.COOKIES)


def holds(request: Any, identity: str) -> bool:
    """Whether the request proves ``identity``: the visitor id is checked first, so an
    anonymous pass never makes the gate load a user (no session read, no SQL)."""
    if identity.startswith("anon:"):
        return _visitor_identity(request) == identity
    return _user_identity(request) == identity


# -- the check ------------------------------------------------------------------------------


def check_request(request: Any, queue: Any = None, *, now: float | None = None) -> PassClaims:
    """The claims of the pass that lets this request buy on ``queue``, or a TicketQueueError.

    Local signature and claims, then identity, then one question to the pass tracker (which
    mostly answers from memory). ``queue=None`` accepts a pass of any queue: the caller must
    pin the queue itself (HasQueuePass does so on the object).
    """
    return check_pass(request, None if queue is None else queue_id_for(queue), now=now)


def check_pass(request: Any, queue_id: str | None, *, now: float | None = None) -> PassClaims:
    """``check_request`` for a queue already given by its store id."""
    tokens = tokens_from(request, queue_id)
    if not tokens:
        raise PassMissing()
    now = passes.timer() if now is None else now
    refusal: PassError | None = None
    for token in tokens:  # one, except for cookies of several queues
        try:
            claims = passes.verify(token, queue_id=queue_id, now=now)
            if not holds(request, claims.identity):
                raise PassWrongIdentity()
            if claims.device is not None and claims.device != _device(request):
                raise PassWrongDevice()  # one device per person: the admitted one buys
            revocation.check_active(claims, now)
        except PassError as exc:
            refusal = refusal or exc
            continue
        return claims
    assert refusal is not None
    raise refusal


def attach(request: Any, claims: PassClaims) -> None:
    """Give the view ``request.queue_pass`` (on the DRF request and the Django one)."""
    request.queue_pass = claims
    inner = getattr(request, "_request", None)
    if inner is not None:
        inner.queue_pass = claims


# -- refusals -------------------------------------------------------------------------------


def gate_status(exc: TicketQueueError) -> int:
    """No pass at all is 429 (go wait in line, then retry); a bad pass 403; an outage 503."""
    if isinstance(exc, PassMissing):
        return 429
    return exc.status


def retry_after(exc: TicketQueueError) -> str:
    return str(int(queue_settings.GATE_RETRY_AFTER))


def wants_html(request: HttpRequest) -> bool:
    """A browser navigating (Accept: text/html), not a script asking for JSON."""
    accept = request.META.get("HTTP_ACCEPT", "")
    if "application/json" in accept or request.headers.get("x-requested-with") == "XMLHttpRequest":
        return False
    return "text/html" in accept


def waiting_url(slug: str | None, request: HttpRequest) -> str | None:
    if slug is None:
        return None
    template = queue_settings.WAITING_URL
    if template:
        url = str(template).format(queue=slug)
    else:
        try:
            url = reverse("ticketqueue:waiting", args=[slug])
        except NoReverseMatch:
            return None
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'next': request.get_full_path()})}"


def refusal_response(
    request: HttpRequest, exc: TicketQueueError, queue_id: str | None
) -> HttpResponse:
    """Browsers go to the waiting page; everyone else gets ``{"code", "message"}``."""
    if wants_html(request) and isinstance(exc, PassError):
        url = waiting_url(_slug_of(queue_id), request)
        if url is not None:
            response: HttpResponse = HttpResponseRedirect(url)
            if request.method not in ("GET", "HEAD"):
                response.status_code = 303
            return response
    response = JsonResponse(error_body(exc), status=gate_status(exc))
    response["Retry-After"] = retry_after(exc)
    response["Cache-Control"] = "no-store"
    return response


# -- plain Django views ---------------------------------------------------------------------


def _resolve(queue: Any, url_kwarg: str, request: Any, args: Any, kwargs: Any) -> Any:
    if callable(queue):
        ref = queue(request, *args, **kwargs)
        if ref is None:  # never "any queue": a callable that finds none means no such queue
            raise QueueNotFound()
        return ref
    if queue is not None:
        return queue
    if url_kwarg in kwargs:
        return kwargs[url_kwarg]
    raise ImproperlyConfigured(
        f"queue_pass_required needs queue=... or a {url_kwarg!r} URL argument."
    )


def _guard_view(
    queue: Any, url_kwarg: str, request: Any, args: Any, kwargs: Any
) -> HttpResponse | None:
    try:
        ref = _resolve(queue, url_kwarg, request, args, kwargs)
    except TicketQueueError as exc:
        return refusal_response(request, exc, None)
    return _guard(request, ref)


def _guard(request: Any, ref: Any) -> HttpResponse | None:
    queue_id = None
    try:
        queue_id = queue_id_for(ref)
        attach(request, check_pass(request, queue_id))
    except TicketQueueError as exc:
        return refusal_response(request, exc, queue_id)
    return None


def queue_pass_required(
    view: Callable[..., Any] | None = None, *, queue: Any = None, url_kwarg: str = "queue"
) -> Any:
    """Let a plain view run only with an active pass for ``queue`` held by the requester.

    ``queue`` is a slug, a primary key, a Queue, or a callable ``(request, *args, **kwargs)``
    returning one; by default the ``url_kwarg`` URL argument names the queue (a slug).
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
                refused = await sync_to_async(_guard_view)(queue, url_kwarg, request, args, kwargs)
                return refused if refused is not None else await func(request, *args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            refused = _guard_view(queue, url_kwarg, request, args, kwargs)
            return refused if refused is not None else func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


_rules: list[tuple[re.Pattern[str], str | None]] | None = None


def gated_urls() -> list[tuple[re.Pattern[str], str | None]]:
    """TICKETQUEUE['GATED_URLS'], compiled once."""
    global _rules
    if _rules is None:
        _rules = [(re.compile(pattern), queue) for pattern, queue in queue_settings.GATED_URLS]
    return _rules


@on_change("TICKETQUEUE")
def _forget_rules() -> None:
    global _rules
    _rules = None


@on_change("SECRET_KEY", "SECRET_KEY_FALLBACKS")
def _forget_visitors() -> None:
    _visitors.clear()


class QueuePassMiddleware:
    """Gates the paths in TICKETQUEUE['GATED_URLS']: ``[(regex, queue slug or None)]``, where
    None takes the slug from the regex's ``(?P<queue>...)`` group. Put it after
    AuthenticationMiddleware, so passes of logged-in users can be matched to them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        for pattern, queue in gated_urls():
            match = pattern.match(path)
            if match is None:
                continue
            ref = queue if queue is not None else match.groupdict().get("queue")
            if not ref:
                raise ImproperlyConfigured(
                    f"GATED_URLS rule {pattern.pattern!r} names no queue and has no (?P<queue>)."
                )
            refused = _guard(request, ref)
            if refused is not None:
                return refused
            break
        return self.get_response(request)
