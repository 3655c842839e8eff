"""JSON bodies that cannot crash a view: nesting too deep for Python's decoder is a 400.

DRF's JSONParser turns a ValueError into ``parse_error`` but lets the RecursionError of a body
like ``[[[[...]]]]`` through as a 500. Sites can use this parser for their own views too (a
view's ``parser_classes``, as the demo's purchase view does, or
``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``).
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

__all__ = ["JSONParser"]


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
