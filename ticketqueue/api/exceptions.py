"""Every API error as ``{"code": ..., "message": ...}`` with the status of its exception."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from ..conf import queue_settings
from ..core import DatabaseUnavailable, InvalidInput, PassMissing, TicketQueueError
from ..errors import error_body

__all__ = ["QueueAPIError", "exception_handler", "not_found"]

log = logging.getLogger("ticketqueue.api")


class QueueAPIError(exceptions.APIException):
    """A TicketQueueError raised through DRF: any exception handler, DRF's own included,
    renders its detail as ``{"code", "message"}`` and its ``wait`` as Retry-After."""

    def __init__(
        self, error: TicketQueueError, status_code: int | None = None, *, gate: bool = False
    ) -> None:
        self.error = error
        self.status_code = status_code or error.status
        super().__init__(detail=error_body(error), code=error.code)
        # docs/errors.md: 429 and 503 always, and every refusal of the purchase gate.
        if self.status_code in (429, 503) or gate or isinstance(error, PassMissing):
            own = getattr(error, "wait", None)  # a limit knows when it has room again
            self.wait = math.ceil(own) if own else int(queue_settings.GATE_RETRY_AFTER)


def _message(detail: Any) -> str:
    if isinstance(detail, list | tuple) and detail:
        return _message(detail[0])
    if isinstance(detail, dict) and detail:
        return _message(next(iter(detail.values())))
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's handler (set on its views; usable as REST_FRAMEWORK['EXCEPTION_HANDLER'])."""
    if isinstance(exc, TicketQueueError):
        exc = QueueAPIError(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, OperationalError | InterfaceError):
        # The database is away (down, restarting, the connection cut): worth a retry, and
        # nothing the client did. Logged with its traceback for the operator.
        log.warning("database unavailable", exc_info=exc)
        exc = QueueAPIError(DatabaseUnavailable())
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django answer 500 and log it
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    if isinstance(exc, QueueAPIError):
        data: dict[str, Any] = error_body(exc.error)  # its details keep their JSON types
    elif isinstance(exc, exceptions.ValidationError):
        data = {
            "code": InvalidInput.code,
            "message": _message(exc.detail),
            "errors": exc.detail,
        }
    else:
        codes = exc.get_codes()
        data = {
            "code": codes if isinstance(codes, str) else exc.default_code,
            "message": _message(exc.detail),
        }
    set_rollback()
    return Response(data, status=exc.status_code or status.HTTP_400_BAD_REQUEST, headers=headers)


@csrf_exempt  # a POST to a URL that names nothing is 404 too, not the CSRF failure page
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any URL under the API that names nothing: the documented JSON ``not_found``."""
    error = exceptions.NotFound()
    return JsonResponse({"code": error.default_code, "message": str(error.detail)}, status=404)
