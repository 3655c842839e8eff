"""The operator API's views: thin, each change through ``ticketqueue.operations``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from ... import analytics, metrics, operations
from ...models import Entry, OperatorKey, Queue, Tenant
from ...operations import Actor
from ...tenancy import tenants_for_user
from ..views import QueueAPIView, _errors, described
from .auth import (
    OperatorKeyAuthentication,
    OperatorPermission,
    OperatorThrottle,
    StaffTokenAuthentication,
    check_address,
    find_queue,
    reached_queues,
)
from .serializers import (
    ActionSerializer,
    AdmissionSerializer,
    AdmitSerializer,
    AdmittedSerializer,
    ClosedSerializer,
    EntrySerializer,
    HistorySerializer,
    QueueChangeSerializer,
    QueueCreateSerializer,
    QueueSerializer,
)

__all__ = [
    "ActionsView",
    "AdmissionsView",
    "AdmitView",
    "CloseView",
    "EntriesView",
    "HistoryView",
    "OperatorQueueView",
    "OperatorQueuesView",
]


class _Page(CursorPagination):
    """Cursor pages: stable while a long line keeps changing, and cheap at any depth."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


class OperatorAPIView(QueueAPIView):
    authentication_classes = [OperatorKeyAuthentication, StaffTokenAuthentication]
    permission_classes = [OperatorPermission]
    throttle_classes = [OperatorThrottle]
    #: What each method needs (``auth.OperatorPermission``); any other needs "operate".
    method_needs = {"GET": "view", "HEAD": "view", "OPTIONS": "view"}

    def needs(self, request: Request) -> set[str]:
        return {self.method_needs.get(request.method or "", "operate")}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        check_address(request)  # before the credential is even looked at
        super().initial(request, *args, **kwargs)


_QUEUE_ERRORS = _errors(401, 403, 404, 429)


class OperatorQueuesView(OperatorAPIView):
    method_needs = {**OperatorAPIView.method_needs, "POST": "add"}

    @described(
        operation_id="operator_queues",
        summary="The queues you operate, newest first.",
        responses={200: QueueSerializer(many=True), **_errors(401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        queues = list(reached_queues(request).select_related("tenant")[:1000])
        live = {n.queue_id: n for n in metrics.snapshot(queues)}  # one tally query for all
        return Response(QueueSerializer(queues, many=True, context={"live": live}).data)

    @described(
        operation_id="operator_queue_create",
        summary="Create a queue (open at once, or scheduled with opens_at).",
        request=QueueCreateSerializer,
        responses={201: QueueSerializer, **_errors(400, 401, 403, 429)},
    )
    def post(self, request: Request) -> Response:
        body = QueueCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        data["tenant"] = self._tenant(request, data.get("tenant"), "tenant" in request.data)
        with transaction.atomic():
            queue = Queue.objects.create(**data)
        operations.created(Actor.of(request), queue)
        return Response(QueueSerializer(queue).data, status=201)

    def _tenant(self, request: Request, named: Tenant | None, given: bool) -> Tenant | None:
        """The new queue's tenant: a key's own; for staff the one named, which must be
        theirs (one of several must be named; a superuser's queue may belong to none)."""
        if isinstance(request.auth, OperatorKey):
            if given and named != request.auth.tenant:
                raise exceptions.PermissionDenied(_("A key creates queues in its own tenant."))
            return request.auth.tenant
        user = request.user
        if user.is_superuser:
            return named
        mine = list(tenants_for_user(user))
        if not mine:
            if named is not None:
                raise exceptions.PermissionDenied(_("You belong to no tenant."))
            return None
        if named is None:
            if len(mine) > 1:
                raise exceptions.ValidationError({"tenant": [_("Say which of your tenants.")]})
            return mine[0]
        if named not in mine:
            raise exceptions.PermissionDenied(_("That is not one of your tenants."))
        return named


class OperatorQueueView(OperatorAPIView):
    method_needs = {**OperatorAPIView.method_needs, "PATCH": "change"}

    def needs(self, request: Request) -> set[str]:
        """A PATCH of knobs needs "change"; of the state, "operate" (as the admin's open,
        pause and close actions do); of both, both."""
        if request.method != "PATCH" or not isinstance(request.data, Mapping):
            return super().needs(request)
        fields = set(request.data)
        return ({"operate"} if "state" in fields else set()) | (
            {"change"} if fields - {"state"} or not fields else set()
        )

    @described(
        operation_id="operator_queue",
        summary="One queue: its knobs, state and live numbers.",
        responses={200: QueueSerializer, **_QUEUE_ERRORS},
    )
    def get(self, request: Request, queue: str) -> Response:
        return Response(QueueSerializer(find_queue(request, queue)).data)

    @described(
        operation_id="operator_queue_change",
        summary="Change a queue's knobs or state (open, paused, closed), audited.",
        description=(
            "A state change needs operate access (operate_queue for staff). Everything "
            "asked is checked before anything changes."
        ),
        request=QueueChangeSerializer,
        responses={200: QueueSerializer, **_errors(400, 401, 403, 404, 409, 429, 503)},
    )
    def patch(self, request: Request, queue: str) -> Response:
        row = find_queue(request, queue)
        body = QueueChangeSerializer(row, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        state = changes.pop("state", None)
        move = operations.to_state(row, state) if state is not None else None
        if changes:
            before = operations.knobs(row)
            for name, value in changes.items():
                setattr(row, name, value)
            row.save(update_fields=[*changes, "updated_at"])
            operations.edited(Actor.of(request), row, before)
        if move is not None:
            operations.move(Actor.of(request), row, move)
        return Response(QueueSerializer(row).data)


class AdmitView(OperatorAPIView):
    @described(
        operation_id="operator_admit",
        summary="Admit N from the head of the line now: past the rate, never past capacity.",
        request=AdmitSerializer,
        responses={200: AdmittedSerializer, **_errors(400, 401, 403, 404, 429, 503)},
    )
    def post(self, request: Request, queue: str) -> Response:
        row = find_queue(request, queue)
        body = AdmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        admitted = operations.admit(Actor.of(request), row, body.validated_data["count"])
        return Response({"queue": row.slug, "admitted": admitted})


class CloseView(OperatorAPIView):
    @described(
        operation_id="operator_close",
        summary="Close the queue (sold out): everyone waiting is told; passes stay valid.",
        request=None,
        responses={200: ClosedSerializer, **_errors(401, 403, 404, 409, 429, 503)},
    )
    def post(self, request: Request, queue: str) -> Response:
        row = find_queue(request, queue)
        turned_away = operations.move(Actor.of(request), row, "close")
        return Response({"queue": row.slug, "turned_away": turned_away or 0})


class HistoryCSVRenderer(BaseRenderer):
    """``?format=csv``: the minutes as CSV (an error stays JSON-shaped text)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, context: Any = None) -> Any:
        if isinstance(data, Mapping) and "minutes" in data:
            return analytics.as_csv(data["minutes"])
        return json.dumps(data)


def _when(request: Request, name: str) -> datetime | None:
    try:
        return analytics.moment(request.query_params.get(name))
    except ValueError:
        raise exceptions.ValidationError({name: [_("An ISO 8601 time.")]}) from None


class HistoryView(OperatorAPIView):
    renderer_classes = [JSONRenderer, HistoryCSVRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="From this minute."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Up to this minute."),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ]
    )
    @described(
        operation_id="operator_history",
        summary="The queue's history, one row a minute (JSON, or CSV with ?format=csv).",
        responses={200: HistorySerializer, **_QUEUE_ERRORS},
    )
    def get(self, request: Request, queue: str) -> Response:
        row = find_queue(request, queue)
        since, until = _when(request, "since"), _when(request, "until")
        minutes = analytics.history(row, since=since, until=until)
        return Response(
            {"queue": row.slug, "minutes": [m.as_dict() for m in minutes]},
            headers={"Content-Disposition": f'inline; filename="{row.slug}-history"'},
        )


class _LogView(OperatorAPIView):
    """A cursor-paged list of one of the queue's logs."""

    serializer_class: Any = None
    ordering = ""

    def rows(self, request: Request, queue: Queue) -> Any:
        raise NotImplementedError

    def get(self, request: Request, queue: str) -> Response:
        row = find_queue(request, queue)
        paginator = _Page()
        paginator.ordering = self.ordering
        page = paginator.paginate_queryset(self.rows(request, row), request, view=self)
        return paginator.get_paginated_response(self.serializer_class(page, many=True).data)


_PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="The next or previous page's cursor."),
    OpenApiParameter("limit", int, description="Rows a page (100; at most 1000)."),
]


def _paged(serializer: Any, operation_id: str, summary: str, *parameters: Any) -> Any:
    """A ``_LogView``'s GET, described: its rows in cursor pages."""

    def get(self: _LogView, request: Request, queue: str) -> Response:
        return _LogView.get(self, request, queue)

    return described(
        operation_id=operation_id,
        summary=summary,
        parameters=[*parameters, *_PAGE_PARAMETERS],
        responses={200: serializer(many=True), **_QUEUE_ERRORS},
    )(get)


class EntriesView(_LogView):
    serializer_class = EntrySerializer
    ordering = "seq"
    get = _paged(
        EntrySerializer,
        "operator_entries",
        "The queue's entries in join order.",
        OpenApiParameter("state", str, enum=list(Entry.State.values)),
    )

    def rows(self, request: Request, queue: Queue) -> Any:
        rows = Entry.objects.filter(queue=queue)
        state = request.query_params.get("state")
        if state:
            if state not in Entry.State.values:
                raise exceptions.ValidationError({"state": [_("Not an entry state.")]})
            rows = rows.filter(state=state)
        return rows


class AdmissionsView(_LogView):
    serializer_class = AdmissionSerializer
    ordering = "number"
    get = _paged(AdmissionSerializer, "operator_admissions", "The admission log, in order.")

    def rows(self, request: Request, queue: Queue) -> Any:
        return queue.admissions.all()


class ActionsView(_LogView):
    serializer_class = ActionSerializer
    ordering = "-at"
    get = _paged(ActionSerializer, "operator_actions", "The queue's audit log, newest first.")

    def rows(self, request: Request, queue: Queue) -> Any:
        return queue.operator_actions.all()
