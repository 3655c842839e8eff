"""A tiny client of the access check, for Python services that are not the Django site.

Standard library only (no Django needed)::

    from ticketqueue.client import AccessClient

    access = AccessClient("https://tickets.example.com/queue/api/access/", queue="gig")
    verdict = access.check(token)   # the buyer's pass, as their app sent it
    if not verdict.allowed:
        return 403, verdict.code    # pass_expired, pass_not_active, pass_invalid, ...
    assert verdict.claims["identity"] == f"user:{user_id}"   # yours to compare

Answers are kept for the seconds the server's ``Cache-Control`` allows (2 by default), so a
backend checking every request asks at most once per pass every two seconds. A server that
cannot be reached gives ``allowed=False`` with ``code="access_unavailable"`` (fail closed),
never an exception.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Access", "AccessClient"]

_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True)
class Access:
    status: int  # 200, 401, 404, 410, 503; 0 when the server could not be reached
    code: str | None = None  # the error code when refused (docs/errors.md)
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.status == 200


class AccessClient:
    """Checks passes against ``url`` (the site's ``ticketqueue:api:access``), pinned to one
    queue's slug if given, caching each answer as long as the server says."""

    def __init__(
        self, url: str, *, queue: str | None = None, timeout: float = 2.0, max_cached: int = 10_000
    ) -> None:
        self.url = url if queue is None else f"{url}?{urllib.parse.urlencode({'queue': queue})}"
        self.timeout = timeout
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, Access]] = {}
        self._lock = threading.Lock()

    def check(self, token: str) -> Access:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
            if hit is not None and hit[0] > now:
                return hit[1]
        verdict, max_age = self._ask(token)
        if max_age:
            with self._lock:
                if len(self._cache) >= self.max_cached:
                    self._cache.clear()  # simpler than an LRU; refilled within seconds
                self._cache[token] = (now + max_age, verdict)
        return verdict

    def _ask(self, token: str) -> tuple[Access, int]:
        request = urllib.request.Request(  # noqa: S310 - the site's own URL, from the caller
            self.url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return self._read(response.status, response.headers, response.read())
        except urllib.error.HTTPError as refused:
            return self._read(refused.code, refused.headers, refused.read())
        except (OSError, ValueError):
            return Access(0, "access_unavailable"), 0

    @staticmethod
    def _read(status: int, headers: Any, raw: bytes) -> tuple[Access, int]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        found = _MAX_AGE.search(headers.get("Cache-Control") or "")
        max_age = int(found.group(1)) if found else 0
        if status == 200:
            return Access(200, None, body), max_age
        return Access(status, str(body.get("code") or "access_refused")), max_age
