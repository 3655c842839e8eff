"""CAPTCHA verifiers: is the token a client brought to a join one the provider issued?

Turnstile, hCaptcha and reCAPTCHA verify alike: the server POSTs ``secret``, ``response`` (the
token) and ``remoteip`` as a form to the provider's ``siteverify`` URL and reads ``success`` from
the JSON answer; a token verifies once. ``SiteverifyCaptcha`` does that; the three classes below
differ only in their URL. Another provider is a subclass of ``CaptchaVerifier`` named in
``TICKETQUEUE['CAPTCHA_VERIFIER']``.

A verifier that cannot get an answer (timeout, an error status, a body that is not JSON) raises
``CaptchaUnavailable`` (503, retry): the join is refused, never let through unchecked.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from django.utils.module_loading import import_string

from .conf import on_change, queue_settings
from .core import CaptchaUnavailable

__all__ = [
    "CaptchaVerifier",
    "browser_side",
    "HCaptcha",
    "MAX_TOKEN",
    "ReCaptcha",
    "SiteverifyCaptcha",
    "Turnstile",
    "get_verifier",
]

log = logging.getLogger(__name__)

#: Longer tokens are refused without asking (Turnstile's are at most 2048 characters).
MAX_TOKEN = 4096


class CaptchaVerifier:
    """Says whether a token is good. ``verify`` runs in the join's thread (a request thread, or
    a socket's worker thread), so keep it to one bounded call.

    ``script_url`` and ``js_api``: the provider's browser script and the global it defines
    (with ``render(element, {sitekey, callback})``), which the widget uses to show the CAPTCHA
    when ``CAPTCHA_SITE_KEY`` is set; empty: the page brings its own (the tag's ``captcha=``).
    """

    script_url = ""
    js_api = ""

    def verify(self, token: str, address: str) -> bool:
        raise NotImplementedError


class SiteverifyCaptcha(CaptchaVerifier):
    """The ``siteverify`` protocol Turnstile, hCaptcha and reCAPTCHA share."""

    url = ""

    def __init__(
        self,
        secret: str,
        url: str | None = None,
        timeout: float = 5.0,
        hostnames: tuple[str, ...] = (),
    ) -> None:
        self.secret = secret
        self.url = url or self.url
        self.timeout = timeout
        #: When set, a token must have been solved on one of these hosts (the answer's
        #: ``hostname``): a token harvested on another site does not count.
        self.hostnames = frozenset(hostnames)

    def verify(self, token: str, address: str) -> bool:
        if not token or len(token) > MAX_TOKEN:
            return False
        form = {"secret": self.secret, "response": token}
        if address:
            form["remoteip"] = address
        request = urllib.request.Request(  # noqa: S310 - the provider's https URL from settings
            self.url,
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with _opener.open(request, timeout=self.timeout) as response:
                answer = json.loads(response.read(65_536))
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts; bad JSON
            log.warning("captcha: no answer from %s (%s)", self.url, exc)
            raise CaptchaUnavailable() from exc
        if not isinstance(answer, dict):
            raise CaptchaUnavailable()
        return self.accepts(answer)

    def accepts(self, answer: dict[str, Any]) -> bool:
        """The verdict on a provider's answer (subclasses add their own fields)."""
        if answer.get("success") is not True:
            return False
        return not self.hostnames or answer.get("hostname") in self.hostnames


class Turnstile(SiteverifyCaptcha):
    """Cloudflare Turnstile."""

    url = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
    script_url = "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit"
    js_api = "turnstile"


class HCaptcha(SiteverifyCaptcha):
    url = "https://api.hcaptcha.com/siteverify"
    script_url = "https://js.hcaptcha.com/1/api.js?render=explicit"
    js_api = "hcaptcha"


class ReCaptcha(SiteverifyCaptcha):
    """Google reCAPTCHA; with ``min_score``, a v3 answer's ``score`` must reach it."""

    url = "https://www.google.com/recaptcha/api/siteverify"
    script_url = "https://www.google.com/recaptcha/api.js?render=explicit"
    js_api = "grecaptcha"

    def __init__(self, secret: str, *, min_score: float | None = None, **kwargs: Any) -> None:
        super().__init__(secret, **kwargs)
        self.min_score = min_score

    def accepts(self, answer: dict[str, Any]) -> bool:
        if not super().accepts(answer):
            return False
        score = answer.get("score")
        return self.min_score is None or (
            isinstance(score, int | float) and score >= self.min_score
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a POST is never replayed elsewhere


_opener = urllib.request.build_opener(_NoRedirect)

_verifier: CaptchaVerifier | None = None
_lock = threading.Lock()


def get_verifier() -> CaptchaVerifier:
    """The verifier the settings name, made once per process; CaptchaUnavailable (logged) when
    no ``CAPTCHA_SECRET`` is set: a queue asks for a CAPTCHA nobody can check."""
    global _verifier
    with _lock:
        if _verifier is None:
            secret = queue_settings.CAPTCHA_SECRET
            if not secret:
                log.error("captcha: a queue asks for a CAPTCHA but CAPTCHA_SECRET is not set")
                raise CaptchaUnavailable()
            cls = import_string(str(queue_settings.CAPTCHA_VERIFIER))
            options: dict[str, Any] = {"timeout": float(queue_settings.CAPTCHA_TIMEOUT)}
            if queue_settings.CAPTCHA_VERIFY_URL:
                options["url"] = str(queue_settings.CAPTCHA_VERIFY_URL)
            if queue_settings.CAPTCHA_HOSTNAMES:
                options["hostnames"] = tuple(queue_settings.CAPTCHA_HOSTNAMES)
            _verifier = cls(str(secret), **options)
        return _verifier


def browser_side() -> dict[str, str]:
    """What the widget needs to show the provider's CAPTCHA itself: site key, script, global
    (empty without ``CAPTCHA_SITE_KEY``)."""
    site_key = queue_settings.CAPTCHA_SITE_KEY
    if not site_key:
        return {}
    cls = import_string(str(queue_settings.CAPTCHA_VERIFIER))
    script = queue_settings.CAPTCHA_SCRIPT_URL or getattr(cls, "script_url", "")
    api = getattr(cls, "js_api", "")
    return {"site_key": str(site_key), "script": str(script), "api": api} if script else {}


@on_change("TICKETQUEUE")
def _forget() -> None:
    global _verifier
    with _lock:
        _verifier = None
