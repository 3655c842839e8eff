"""Content negotiation for an API that speaks JSON only.

DRF parses the Accept header of every request and matches it against each renderer. The
queue's API has one renderer (JSON), and nearly every client asks for it plainly: no Accept,
``*/*`` or ``application/json``. For those the answer is known without parsing: JSON, with
the media type DRF itself would pick. That parse was 40-53 us of a fresh request, on the
sale's hottest path (a new visitor's join). Anything else (another media type, parameters
such as ``indent``, a ``?format=`` override, several renderers) goes to DRF as before,
including its 406.
"""

from __future__ import annotations

from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation

__all__ = ["JSONNegotiation"]

JSON = "application/json"
#: Accept headers whose answer is plain JSON without parsing them.
PLAIN_ACCEPT = frozenset({"*/*", JSON})


class JSONNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Any, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        override = self.settings.URL_FORMAT_OVERRIDE
        if (
            len(renderers) == 1
            and renderers[0].media_type == JSON
            and not format_suffix
            and request.META.get("HTTP_ACCEPT", "*/*") in PLAIN_ACCEPT
            and not (override and override in request.query_params)
        ):
            return renderers[0], JSON
        return super().select_renderer(request, renderers, format_suffix)
