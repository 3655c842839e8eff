"""``HasQueuePass``: a DRF permission that lets a view run only for the holder of an active pass.

class CheckoutView(APIView):
    permission_classes = [HasQueuePass]
    queue_pass_queue = "summer-sale"      # or a <slug:queue> URL argument, or the object
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

from .. import gate
from ..core import PassMissing, PassWrongQueue, QueueNotFound, TicketQueueError
from .exceptions import QueueAPIError

__all__ = ["HasQueuePass"]


def _view_queue(request: Any, view: Any) -> Any:
    """The queue a view names: ``queue_pass_queue`` (a slug, pk, Queue, or a callable taking
    the request and the view), else its ``queue_pass_url_kwarg`` URL argument (default
    ``queue``, a slug); None when only the object will tell."""
    ref = getattr(view, "queue_pass_queue", None)
    if callable(ref):
        ref = ref(request, view)
        if ref is None:  # never "any queue": a callable that finds none means no such queue
            raise QueueNotFound()
        return ref
    if ref is not None:
        return ref
    kwargs = getattr(view, "kwargs", None) or {}
    return kwargs.get(getattr(view, "queue_pass_url_kwarg", "queue"))


def _object_queue_id(obj: Any) -> str | None:
    """A Queue, or an object with a ``queue`` (Queue) or ``queue_id`` attribute."""
    from ..models import Queue

    if isinstance(obj, Queue):
        return obj.store_id
    queue_id = getattr(obj, "queue_id", None)
    if queue_id is not None:
        return str(queue_id)
    queue = getattr(obj, "queue", None)
    return queue.store_id if isinstance(queue, Queue) else None


class HasQueuePass(BasePermission):
    """The request carries an active pass for the view's queue, held by the requester.

    Refusals are raised, not returned, so they keep their own status (403, 429 for no pass,
    503 while the store is unreachable under STORE_FAILURE='closed') and ``Retry-After``;
    ``message`` and ``code`` say why. The view reads the claims from ``request.queue_pass``.
    """

    message = PassMissing.default_message
    code = PassMissing.code

    def _refuse(self, error: TicketQueueError) -> None:
        self.message, self.code = error.message, error.code
        raise QueueAPIError(error, gate.gate_status(error), gate=True)

    def has_permission(self, request: Any, view: Any) -> bool:
        try:
            ref = _view_queue(request, view)
        except TicketQueueError as error:
            self._refuse(error)
        if ref is None and not hasattr(view, "get_object"):
            raise ImproperlyConfigured(
                f"{type(view).__name__} uses HasQueuePass but names no queue: set "
                "queue_pass_queue, or take a 'queue' URL argument."
            )
        try:
            claims = gate.check_request(request, ref)
        except TicketQueueError as error:
            self._refuse(error)
        gate.attach(request, claims)
        request._queue_pass_pinned = ref is not None
        return True

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        queue_id = _object_queue_id(obj)
        claims = getattr(request, "queue_pass", None)
        if queue_id is None:
            if not getattr(request, "_queue_pass_pinned", False):
                raise ImproperlyConfigured(
                    f"HasQueuePass: neither {type(view).__name__} nor its "
                    f"{type(obj).__name__} object names a queue (queue, queue_id)."
                )
            return claims is not None
        if claims is not None and claims.queue_id == queue_id:
            return True
        try:  # another pass the request carries may be for this object's queue
            claims = gate.check_pass(request, queue_id)
        except PassMissing:
            self._refuse(PassWrongQueue())
        except TicketQueueError as error:
            self._refuse(error)
        gate.attach(request, claims)
        return True
