"""The REST side of the waiting room: thin views over the services.

Identity: the logged-in user (whatever DRF authentication the site uses), else the signed
visitor id of the ``tq_visitor`` cookie or the ``X-Queue-Visitor`` header. Join and status
give a new visitor its id (cookie and header) when the request has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import __version__, gate, passes, proofs, push, services
from ..core import (
    EntryNotFound,
    InvalidInput,
    PassMissing,
    PassWrongIdentity,
    ProofRequired,
    PushDeviceNotFound,
)
from ..identity import (
    client_address,
    device_of,
    device_or_new,
    ensure_device,
    new_visitor_cookie,
    set_device_cookie,
    set_visitor_cookie,
)
from ..live.protocol import IdentityRequired
from ..models import Queue
from .exceptions import exception_handler
from .negotiation import JSONNegotiation
from .parsers import JSONParser
from .queue_rows import queue_row
from .serializers import (
    DeviceSerializer,
    ErrorSerializer,
    HeartbeatSerializer,
    JoinRequestSerializer,
    LeaveSerializer,
    QueueInfoSerializer,
    ReleaseRequestSerializer,
    ReleaseSerializer,
    StatusSerializer,
)
from .throttling import DeviceThrottle, StatusThrottle

__all__ = [
    "DevicesView",
    "HeartbeatView",
    "JoinView",
    "JWKSView",
    "LeaveView",
    "QueueInfoView",
    "QueueSchemaView",
    "ReleaseView",
    "StatusView",
]


def described(**kwargs: Any) -> Any:
    """``extend_schema`` on a view method, based on drf-spectacular's AutoSchema whatever the
    site's DEFAULT_SCHEMA_CLASS (it need not use drf-spectacular at all)."""

    def decorate(method: Any) -> Any:
        method.kwargs = {"schema": AutoSchema}
        return extend_schema(**kwargs)(method)

    return decorate


def _errors(*statuses: int) -> dict[int, OpenApiResponse]:
    described = OpenApiResponse(ErrorSerializer, description="See docs/errors.md.")
    return dict.fromkeys(statuses, described)


class QueueAPIView(APIView):
    """The API's base: JSON in and out, errors as ``{"code", "message"}``, open to anyone
    (a waiting room serves anonymous visitors; subclass to require login)."""

    schema = AutoSchema()
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    content_negotiation_class = JSONNegotiation

    def get_exception_handler(self) -> Any:
        return exception_handler


# -- identity and cookies ---------------------------------------------------------------------


def _identity(request: Request, *, mint: bool) -> tuple[str | None, str | None]:
    """(identity, signed visitor value if one was made for this request)."""
    identities = gate.request_identities(request)
    if identities:
        return identities[0], None
    if not mint:
        return None, None
    visitor, signed = new_visitor_cookie()
    return f"anon:{visitor}", signed


def _join_body(request: Request) -> Mapping[str, Any]:
    """The join's body (proofs, an invite). Most joins send none: then DRF's parsing of nothing
    (~10 us on the sale's hottest path) is skipped, as Django reads no body without a length."""
    if request.META.get("CONTENT_LENGTH") in (None, "", "0"):
        return {}
    if not isinstance(request.data, Mapping):
        raise InvalidInput("The body must be a JSON object.")
    return request.data


def _device(request: Request, queue: Queue) -> tuple[str | None, str | None]:
    """(the digest of the request's device id, a new device id to give it): a new one only for
    a queue with one device per person, the one kind that needs it."""
    if queue.device_policy != Queue.DevicePolicy.ONE:
        return device_of(request.META, request.COOKIES), None
    return device_or_new(request)


def _set_visitor(response: Response, request: Request, signed: str) -> None:
    set_visitor_cookie(response, request, signed)
    # For API clients that keep no cookies: send it back as X-Queue-Visitor.
    response["X-Queue-Visitor"] = signed


def _status_data(status: services.Status) -> dict[str, Any]:
    return {
        "queue": status.queue,
        "queue_state": status.queue_state,
        "state": status.state,
        "seq": status.seq,
        "position": status.position,
        "order": status.order,
        "waiting": status.waiting,
        "active": status.active,
        "eta_seconds": status.eta_seconds,
        "sold_out_likely": status.sold_out_likely,
        "pass": status.pass_token,
        "pass_expires_at": status.pass_expires_at,
    }


def _status_response(
    request: Request, queue: Queue, status: services.Status, minted: str | None
) -> Response:
    response = Response(_status_data(status))
    response["Cache-Control"] = "no-store"
    if minted:
        _set_visitor(response, request, minted)
    if status.pass_token and status.pass_expires_at:
        response.set_cookie(
            gate.pass_cookie_name(queue.store_id),
            status.pass_token,
            max_age=max(1, int(status.pass_expires_at - passes.timer())),
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )
    return response


# -- the endpoints ----------------------------------------------------------------------------


class QueueInfoView(QueueAPIView):
    @described(
        operation_id="queue_info",
        summary="The queue as anyone sees it: state, people waiting, the wait of a join now.",
        responses={200: QueueInfoSerializer, **_errors(404, 503)},
    )
    def get(self, request: Request, queue: str) -> Response:
        row = queue_row(queue)
        info = services.queue_info(row)
        return Response(
            {
                "queue": row.slug,
                "name": row.name,
                "queue_state": info.queue_state,
                "waiting": info.waiting,
                "active": info.active,
                "eta_seconds": info.eta_seconds,
                "sold_out_likely": info.sold_out_likely,
                "opens_at": row.opens_at.isoformat() if row.opens_at else None,
            }
        )


class JoinView(QueueAPIView):
    """Its limits (``join_ip``, and ``join_identity`` or a new visitor's ``visitor_ip``) are
    counted by ``services.join``: in the store's join step itself where the place needs
    nothing but the identity, so a new visitor's join is one store round trip."""

    @described(
        operation_id="queue_join",
        summary="Take a place in line (or a pass at once); idempotent per identity.",
        description=(
            "A queue that asks for proof refuses a new place with 403 proof_required and a "
            "challenge; join again with the solved work token and/or the CAPTCHA token."
        ),
        request=JoinRequestSerializer,
        responses={200: StatusSerializer, **_errors(400, 403, 404, 409, 429, 503)},
    )
    def post(self, request: Request, queue: str) -> Response:
        row = queue_row(queue)
        identity, minted = _identity(request, mint=True)
        assert identity is not None
        proof = proofs.JoinProof.from_data(_join_body(request))
        device, new_device = _device(request, row)
        address = client_address(request.META)
        hits = [
            ("join_ip", address),
            ("visitor_ip", address) if minted else ("join_identity", identity),
        ]
        try:
            status = services.join(
                row, identity, proof=proof, address=address, device=device, hits=hits
            )
        except ProofRequired as exc:
            if not minted:
                raise
            # The challenge is this visitor's: it keeps the id minted for it.
            refusal = exception_handler(exc, {})
            assert refusal is not None
            _set_visitor(refusal, request, minted)
            if new_device:
                set_device_cookie(refusal, request, new_device)
            return refusal
        response = _status_response(request, row, status, minted)
        if new_device:
            set_device_cookie(response, request, new_device)
        return response


class StatusView(QueueAPIView):
    throttle_classes = [StatusThrottle]

    @described(
        operation_id="queue_status",
        summary="Your position and wait, or your pass once admitted.",
        responses={200: StatusSerializer, **_errors(404, 429, 503)},
    )
    def get(self, request: Request, queue: str) -> Response:
        row = queue_row(queue)
        identity, minted = _identity(request, mint=True)
        assert identity is not None
        response = _status_response(request, row, services.status(row, identity), minted)
        if row.device_policy == Queue.DevicePolicy.ONE:
            ensure_device(request, response)  # what a socket of a one-device line needs
        return response


class LeaveView(QueueAPIView):
    @described(
        operation_id="queue_leave",
        summary="Give up your place in line.",
        request=None,
        responses={200: LeaveSerializer, **_errors(404, 503)},
    )
    def post(self, request: Request, queue: str) -> Response:
        row = queue_row(queue)
        identity, _ = _identity(request, mint=False)
        if identity is None:
            raise EntryNotFound()
        change = services.leave(row, identity)
        return Response({"queue": row.slug, "seq": change.seq, "state": change.state.value})

    @described(
        operation_id="queue_leave_delete",
        summary="Give up your place in line (DELETE, the same as POST).",
        request=None,
        responses={200: LeaveSerializer, **_errors(404, 503)},
    )
    def delete(self, request: Request, queue: str) -> Response:
        return self.post(request, queue)


class HeartbeatView(QueueAPIView):
    @described(
        operation_id="queue_heartbeat",
        summary="Say you are still there (a waiting entry unseen too long is abandoned).",
        request=None,
        responses={200: HeartbeatSerializer, **_errors(404, 503)},
    )
    def post(self, request: Request, queue: str) -> Response:
        row = queue_row(queue)
        identity, _ = _identity(request, mint=False)
        seen = identity is not None and services.heartbeat(row, identity)
        return Response({"seen": seen})


class ReleaseView(QueueAPIView):
    @described(
        operation_id="pass_release",
        summary="The order is done: end your pass and free its slot at once.",
        request=ReleaseRequestSerializer,
        responses={200: ReleaseSerializer, **_errors(400, 403, 404, 429, 503)},
    )
    def post(self, request: Request, queue: str) -> Response:
        row = queue_row(queue)
        body = ReleaseRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tokens = gate.tokens_from(request, row.store_id)
        token = tokens[0] if tokens else body.validated_data.get("pass")
        if not token:
            raise PassMissing()
        claims = passes.verify(token, queue_id=row.store_id)
        if not gate.holds(request, claims.identity):
            raise PassWrongIdentity()
        change = services.release_entry(row, claims.seq)
        response = Response({"queue": row.slug, "seq": change.seq, "state": change.state.value})
        response.delete_cookie(gate.pass_cookie_name(row.store_id), samesite="Lax")
        return response


class DevicesView(QueueAPIView):
    """A mobile app's push token for this queue: its milestones reach the phone while the app
    is in the background (docs/notifications.md). The identity is the one that joins."""

    throttle_classes = [DeviceThrottle]

    def _device(self, request: Request, queue: str) -> tuple[Queue, str, str, str]:
        """(queue row, identity, platform, token) of the request, or its error."""
        row = queue_row(queue)
        identity, _ = _identity(request, mint=False)
        if identity is None:
            raise IdentityRequired()
        if not isinstance(request.data, Mapping):
            raise InvalidInput("The body must be a JSON object.")
        unknown = set(request.data) - {"platform", "token"}
        if unknown:
            raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.")
        body = DeviceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        platform, token = body.validated_data["platform"], body.validated_data["token"]
        return row, identity, platform, push.check_token(platform, token)

    @described(
        operation_id="device_register",
        summary="Send this queue's milestones to a phone (FCM or APNs push token).",
        request=DeviceSerializer,
        responses={201: DeviceSerializer, **_errors(400, 401, 404, 429)},
    )
    def post(self, request: Request, queue: str) -> Response:
        row, identity, platform, token = self._device(request, queue)
        push.register(row, identity, platform, token)
        return Response({"platform": platform, "token": token}, status=201)

    @described(
        operation_id="device_unregister",
        summary="Stop sending this queue's milestones to a phone.",
        request=DeviceSerializer,
        responses={204: None, **_errors(400, 401, 404, 429)},
    )
    def delete(self, request: Request, queue: str) -> Response:
        row, identity, platform, token = self._device(request, queue)
        if not push.unregister(row, identity, platform, token):
            raise PushDeviceNotFound()
        return Response(status=204)


class JWKSView(QueueAPIView):
    """The public keys that verify passes (empty under HS256), for services that check passes
    without the secret."""

    @described(
        operation_id="pass_jwks",
        summary="The JWK Set of the keys that verify passes.",
        responses={200: OpenApiResponse(description="A JWK Set (RFC 7517).")},
    )
    def get(self, request: Request) -> Response:
        response = Response(passes.jwks())
        response["Cache-Control"] = "public, max-age=300"
        return response


class QueueSchemaView(SpectacularAPIView):
    """The OpenAPI schema of this API alone (not of the rest of the site)."""

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []
    custom_settings = {
        "TITLE": "ticketqueue",
        "DESCRIPTION": "The waiting room's REST API. Errors are {code, message}: docs/errors.md.",
        "VERSION": __version__,
        "PREPROCESSING_HOOKS": ["ticketqueue.api.schema.only_ticketqueue"],
        "COMPONENT_SPLIT_REQUEST": True,
        "ENUM_NAME_OVERRIDES": {
            "QueueStateEnum": "ticketqueue.models.Queue.State",
            "EntryStateEnum": "ticketqueue.models.Entry.State",
        },
    }
