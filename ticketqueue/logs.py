"""Structured logs: ticketqueue logs its events with their fields as ``extra``; this formatter
writes each record as one JSON object.

Following one entry in the logs: ``entry joined`` (queue, seq), ``passes granted`` (queue,
seqs), ``turn notified`` (queue, seqs), ``pass released`` (queue, seq): queue + seq name it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter"]

_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and every ``extra`` field.

    LOGGING = {"formatters": {"json": {"()": "ticketqueue.logs.JsonFormatter"}}, ...}
    """

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
