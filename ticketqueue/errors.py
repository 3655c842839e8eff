"""What a client is told about a ``TicketQueueError``: its stable code and its message in the
active language (the core's messages are marked for the catalogs, never translated there)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext

from .core import TicketQueueError

__all__ = ["error_body", "error_message"]


def error_message(exc: TicketQueueError) -> str:
    return gettext(str(exc.message))


def error_body(exc: TicketQueueError) -> dict[str, Any]:
    """``{"code", "message"}`` and the error's details (``retry_after``, ``challenge``): the
    body of every refusal, REST, socket and gate alike."""
    return {"code": exc.code, "message": error_message(exc), **exc.details()}
