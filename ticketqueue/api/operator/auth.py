"""Who calls the operator API, what they may do, and how often.

Two credentials, both ``Authorization: Bearer ...``:

- an operator API key (``tqk_...``, ``ticketqueue.apikeys``): acts as itself within its tenant;
  a ``read`` key only reads, an ``operate`` key also changes, and only a key that lists no
  queues may create one;
- a simplejwt access token of a staff member, who needs the model permissions the admin asks
  for (view, add or change queue; ``operate_queue`` to move, admit and close).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle
from rest_framework_simplejwt.authentication import JWTAuthentication

from ... import apikeys, limits, tenancy
from ...core import QueueNotFound
from ...identity import client_address
from ...models import OperatorKey, Queue

__all__ = [
    "OPERATOR_LIMITS",
    "KeyUser",
    "OperatorKeyAuthentication",
    "OperatorPermission",
    "OperatorThrottle",
    "StaffTokenAuthentication",
    "check_address",
    "find_queue",
    "reached_queues",
]

#: The store counts the operator API's limits under this name, beside no queue of its own.
OPERATOR_LIMITS = "operator"


class KeyUser:
    """``request.user`` of a request made with a key: authenticated, no person, no staff."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, key: OperatorKey) -> None:
        self.key = key

    def get_username(self) -> str:
        return f"key:{self.key.name}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False  # a key's rights are its access, checked by OperatorPermission


class OperatorKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer tqk_...``; any other bearer token is left to the next class."""

    def authenticate(self, request: Any) -> tuple[KeyUser, OperatorKey] | None:
        scheme, _sep, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(apikeys.KEY_START):
            return None
        key = apikeys.authenticate(token)
        if key is None:
            raise exceptions.AuthenticationFailed(
                _("The API key is unknown or revoked."), code="api_key_invalid"
            )
        return KeyUser(key), key

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="ticketqueue"'


class OperatorKeyScheme(OpenApiAuthenticationExtension):
    """The keys in the OpenAPI schema (simplejwt's tokens have drf-spectacular's own)."""

    target_class = OperatorKeyAuthentication
    name = "operatorKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tqk_<prefix>_<secret>",
            "description": "An operator API key (admin: Operator API keys).",
        }


#: simplejwt's access tokens, as the site's SIMPLE_JWT settings make them: the algorithm is
#: pinned there, and simplejwt checks the signature, token type, expiry and user.
StaffTokenAuthentication = JWTAuthentication


def _key(request: Any) -> OperatorKey | None:
    return request.auth if isinstance(request.auth, OperatorKey) else None


#: What a staff member needs for each kind of request.
_STAFF_PERMS = {
    "view": ("ticketqueue.view_queue", "ticketqueue.change_queue"),
    "add": ("ticketqueue.add_queue",),
    "change": ("ticketqueue.change_queue",),
    "operate": ("ticketqueue.operate_queue",),
}


class OperatorPermission(BasePermission):
    """The caller may do all the view's ``needs(request)`` says: view, add, change,
    operate."""

    def has_permission(self, request: Any, view: Any) -> bool:
        needs = view.needs(request)
        key = _key(request)
        if key is not None:
            if needs - {"view"} and key.access != OperatorKey.Access.OPERATE:
                self.message = _("This key may only read.")
                return False
            if "add" in needs and key.queues.exists():
                self.message = _("A key that names its queues cannot create one.")
                return False
            return True
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            self.message = _("The operator API is for staff and operator API keys.")
            return False
        if not all(any(user.has_perm(p) for p in _STAFF_PERMS[need]) for need in needs):
            self.message = _("Your account lacks the permission this needs.")
            return False
        return True


def reached_queues(request: Any) -> Any:
    """The queues the caller reaches (``ticketqueue.tenancy``)."""
    key = _key(request)
    if key is not None:
        return tenancy.queues_for_key(key)
    return tenancy.queues_for_user(request.user)


def check_address(request: Any, *scopes: str) -> None:
    """Count the request against ``operator_ip`` (and ``scopes``) before anything looks at its
    credential, so wrong keys and passwords are limited like the rest (raises Throttled)."""
    address = client_address(request.META)
    limits.check(OPERATOR_LIMITS, [(scope, address) for scope in ("operator_ip", *scopes)])


class OperatorThrottle(BaseThrottle):
    """``operator_client``: requests per key or per staff member."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        key = _key(request)
        who = f"key:{key.pk}" if key is not None else f"user:{request.user.pk}"
        self._wait = limits.wait_for(OPERATOR_LIMITS, [("operator_client", who)])
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait


def find_queue(request: Any, slug: str) -> Queue:
    """The caller's queue ``slug``; another tenant's is as unknown as one that does not
    exist (404 either way: nobody learns what another tenant runs)."""
    queue = reached_queues(request).filter(slug=slug).select_related("tenant").first()
    if queue is None:
        raise QueueNotFound()
    return queue
