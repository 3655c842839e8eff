"""The control room: each queue's live numbers and last hour, the operator actions (open,
pause, resume, close, admit now, rebuild, revoke), live edits of the outflow, and an audit row
for every one of them. Acting needs the ``operate_queue`` / ``revoke_pass`` permissions.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import metrics, notifications, services
from .core import QueueState, TicketQueueError
from .models import Admission, Entry, OperatorAction, PriorityGroup, Queue, QueueSample

log = logging.getLogger("ticketqueue")

#: The knobs an operator may change while a sale runs; each save pushes them to the store.
KNOBS = (
    "mode",
    "capacity",
    "rate_per_minute",
    "purchase_window",
    "disconnect_grace",
    "passes_per_identity",
    "max_size",
    "who_may_join",
    "device_policy",
    "work_difficulty",
    "captcha_required",
)
#: How far back the control room's chart looks.
CHART_MINUTES = 60


def _knobs(queue: Queue) -> dict[str, Any]:
    return {"state": queue.state, **{k: getattr(queue, k) for k in KNOBS}}


def _groups(queue: Queue) -> list[list[Any]]:
    return [[g.name, g.priority] for g in queue.priority_groups.order_by("-priority", "name")]


def _record(
    request: HttpRequest,
    queue: Queue,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    count: int | None = None,
) -> OperatorAction:
    user = request.user if request.user.is_authenticated else None
    row = OperatorAction(
        queue=queue,
        queue_name=queue.name,
        user=user,
        username=user.get_username() if user else "",
        action=action,
        at=timezone.now(),
        before=before,
        after=after,
        count=count,
    )
    row.save()
    return row


class AdmitForm(forms.Form):
    count = forms.IntegerField(
        label=_("How many"),
        min_value=1,
        max_value=100_000,
        initial=100,
        help_text=_("Admitted from the head of the line now, past the rate but never capacity."),
    )


class ConfirmForm(forms.Form):
    pass


class PriorityGroupInline(admin.TabularInline):
    """A queue's priority groups: who stands ahead of the public (docs/protection.md)."""

    model = PriorityGroup
    extra = 0


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "state",
        "waiting",
        "active",
        "admitted_per_minute",
        "eta_last",
        "abandon_rate",
        "control_room_link",
    ]
    list_filter = ["state", "mode"]
    inlines = [PriorityGroupInline]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    actions = [
        "open_queues",
        "pause_queues",
        "resume_queues",
        "close_queues",
        "admit_now",
        "rebuild_queues",
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "state", "opens_at"]}),
        (
            _("Outflow (takes effect on the next tick)"),
            {"fields": ["mode", "capacity", "rate_per_minute", "purchase_window", "max_size"]},
        ),
        (
            _("People"),
            {
                "fields": [
                    "who_may_join",
                    "device_policy",
                    "disconnect_grace",
                    "passes_per_identity",
                ]
            },
        ),
        (
            _("Bot defence (asked of a new place only)"),
            {"fields": ["work_difficulty", "captcha_required"]},
        ),
        (_("Event"), {"fields": ["content_type", "object_id"], "classes": ["collapse"]}),
        (
            _("History"),
            {"fields": ["prequeue_seed", "opened_at", "closed_at", "created_at", "updated_at"]},
        ),
    ]

    # -- permissions ------------------------------------------------------------------
    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.operate_queue")

    def get_readonly_fields(self, request: HttpRequest, obj: Queue | None = None) -> Sequence[str]:
        history = ["prequeue_seed", "opened_at", "closed_at", "created_at", "updated_at"]
        # The state moves only through the actions: they shuffle, revoke and notify.
        return [*history, "state"] if obj is not None else history

    # -- live numbers -----------------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet[Queue]:
        queryset = super().get_queryset(request).select_related("content_type")
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "ticketqueue_queue_changelist":
            queryset = queryset.annotate(
                tq_entries=Count("entries"),
                tq_abandoned=Count("entries", filter=Q(entries__state="abandoned")),
            )
        return queryset

    def _live(self, obj: Queue) -> metrics.LiveNumbers:
        cached = getattr(obj, "_tq_live", None)
        if cached is None:
            tally = None
            if hasattr(obj, "tq_entries"):
                tally = (obj.tq_entries, obj.tq_abandoned)
            cached = obj._tq_live = metrics.live_numbers(obj, tally=tally)
        return cached

    @admin.display(description=_("waiting"))
    def waiting(self, obj: Queue) -> Any:
        return _or_dash(self._live(obj).waiting)

    @admin.display(description=_("active passes"))
    def active(self, obj: Queue) -> Any:
        return _or_dash(self._live(obj).active)

    @admin.display(description=_("admitted / min"))
    def admitted_per_minute(self, obj: Queue) -> Any:
        value = self._live(obj).admitted_per_minute
        return "-" if value is None else f"{value:.0f}"

    @admin.display(description=_("ETA, last in line"))
    def eta_last(self, obj: Queue) -> Any:
        return _duration(self._live(obj).eta_last_seconds)

    @admin.display(description=_("abandon rate"))
    def abandon_rate(self, obj: Queue) -> Any:
        value = self._live(obj).abandon_rate
        return "-" if value is None else f"{value:.1%}"

    @admin.display(description=_("control room"))
    def control_room_link(self, obj: Queue) -> str:
        url = reverse(f"{self.admin_site.name}:ticketqueue_queue_control", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("open"))

    # -- live edits -------------------------------------------------------------------
    def save_model(self, request: HttpRequest, obj: Queue, form: Any, change: bool) -> None:
        before = _knobs(Queue.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)
        # A queue the store lost is rebuilt first: configuring it bare would hide its line.
        services.ensure_loaded(obj)
        services.configure(obj)  # the next tick admits by the new outflow
        after = _knobs(obj)
        if not change:
            _record(request, obj, OperatorAction.Kind.CREATE, {}, after)
        elif before != after:
            changed = [k for k in after if before.get(k) != after[k]]
            _record(
                request,
                obj,
                OperatorAction.Kind.EDIT,
                {k: before.get(k) for k in changed},
                {k: after[k] for k in changed},
            )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The priority groups (the inline) are audited like the knobs: one EDIT row when
        they changed, with every group before and after."""
        before = _groups(form.instance) if change else []
        super().save_related(request, form, formsets, change)
        after = _groups(form.instance)
        if before != after:
            _record(
                request,
                form.instance,
                OperatorAction.Kind.EDIT,
                {"priority_groups": before},
                {"priority_groups": after},
            )

    # -- deletion ---------------------------------------------------------------------
    def get_deleted_objects(
        self, objs: Sequence[Queue] | QuerySet[Queue], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """The confirmation page counts what goes with each queue (entries, admissions,
        samples) instead of listing every entry of a long line. Those records go with their
        queue, so deleting a queue needs the permission to delete queues only (entries and
        admissions cannot be deleted on their own: the store is rebuilt from them). The
        audit log stays (its queue is emptied); the store forgets the queue on commit."""
        queues = list(objs)
        deleted: list[Any] = [f"{Queue._meta.verbose_name}: {q}".capitalize() for q in queues]
        counts = {str(Queue._meta.verbose_name_plural): len(queues)}
        for model in (Entry, Admission, QueueSample):
            n = model._base_manager.filter(queue__in=queues).count()
            if n:
                counts[str(model._meta.verbose_name_plural)] = n
                deleted.append(f"{model._meta.verbose_name_plural}: {n}".capitalize())
        protected: list[Any] = []
        for rel in Queue._meta.related_objects:
            if getattr(rel.on_delete, "__name__", "") in ("PROTECT", "RESTRICT"):
                found = rel.related_model._base_manager.filter(**{f"{rel.field.name}__in": queues})
                protected += [str(obj) for obj in found[:20]]
        return deleted, counts, set(), protected

    # -- actions ----------------------------------------------------------------------
    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Queue],
        kind: str,
        operate: Callable[[Queue], int | None],
    ) -> list[tuple[Queue, int | None]]:
        """Run one operation per queue, audit each success, report each refusal."""
        done = []
        for queue in queryset.order_by("pk"):
            before = _knobs(queue)
            try:
                count = operate(queue)
            except TicketQueueError as exc:
                self.message_user(request, f"{queue}: {exc.message}", messages.ERROR)
                continue
            queue.refresh_from_db()
            _record(request, queue, kind, before, _knobs(queue), count)
            done.append((queue, count))
        return done

    def _moved(self, request: HttpRequest, message: str) -> None:
        self.message_user(request, message)

    @admin.action(description=_("Open the selected queues"), permissions=["operate"])
    def open_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        done = self._each(request, queryset, OperatorAction.Kind.OPEN, _open)
        if done:
            n = len(done)
            self._moved(
                request,
                ngettext("%(count)d queue opened.", "%(count)d queues opened.", n) % {"count": n},
            )

    @admin.action(description=_("Pause admission of the selected queues"), permissions=["operate"])
    def pause_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        done = self._each(request, queryset, OperatorAction.Kind.PAUSE, _pause)
        if done:
            n = len(done)
            self._moved(
                request,
                ngettext("%(count)d queue paused.", "%(count)d queues paused.", n) % {"count": n},
            )

    @admin.action(description=_("Resume admission of the selected queues"), permissions=["operate"])
    def resume_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        done = self._each(request, queryset, OperatorAction.Kind.RESUME, _resume)
        if done:
            n = len(done)
            self._moved(
                request,
                ngettext("%(count)d queue resumed.", "%(count)d queues resumed.", n) % {"count": n},
            )

    @admin.action(
        description=_("Close the selected queues (sold out: turn everyone waiting away)"),
        permissions=["operate"],
    )
    def close_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> Any:
        if "apply" not in request.POST:
            return self._action_form(
                request,
                queryset,
                "close_queues",
                ConfirmForm(),
                _("Close these queues? Everyone waiting is turned away; passes stay valid."),
            )
        done = self._each(request, queryset, OperatorAction.Kind.CLOSE, services.close)
        if done:
            n, turned_away = len(done), sum(c or 0 for _q, c in done)
            self.message_user(
                request,
                ngettext(
                    "%(count)d queue closed, %(away)d waiting entries turned away.",
                    "%(count)d queues closed, %(away)d waiting entries turned away.",
                    n,
                )
                % {"count": n, "away": turned_away},
            )
        return None

    @admin.action(
        description=_("Admit N now (past the rate, never past capacity)"),
        permissions=["operate"],
    )
    def admit_now(self, request: HttpRequest, queryset: QuerySet[Queue]) -> Any:
        form = AdmitForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return self._action_form(
                request, queryset, "admit_now", form, _("Admit people from these queues now.")
            )
        n = form.cleaned_data["count"]
        done = self._each(request, queryset, OperatorAction.Kind.ADMIT, lambda q: _admit(q, n))
        admitted = sum(c or 0 for _q, c in done)
        self.message_user(
            request,
            ngettext("%(count)d entry admitted.", "%(count)d entries admitted.", admitted)
            % {"count": admitted},
        )
        return None

    @admin.action(
        description=_("Rebuild the selected queues in the store from the database"),
        permissions=["operate"],
    )
    def rebuild_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        done = self._each(request, queryset, OperatorAction.Kind.REBUILD, services.rebuild)
        live = sum(c or 0 for _q, c in done)
        self.message_user(
            request,
            ngettext(
                "%(count)d queue rebuilt (%(live)d live entries).",
                "%(count)d queues rebuilt (%(live)d live entries).",
                len(done),
            )
            % {"count": len(done), "live": live},
        )

    def _action_form(
        self,
        request: HttpRequest,
        queryset: QuerySet[Queue],
        action: str,
        form: forms.Form,
        question: str,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": question,
            "question": question,
            "opts": self.opts,
            "queues": queryset,
            "form": form,
            "action": action,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/ticketqueue/queue/action_form.html", context)

    # -- the control room ---------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/control/",
                wrap(self.control_view),
                name="ticketqueue_queue_control",
            ),
            path(
                "<path:object_id>/live/",
                wrap(self.live_view),
                name="ticketqueue_queue_live",
            ),
            *super().get_urls(),
        ]

    def _get_for_view(self, request: HttpRequest, object_id: str) -> Queue:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(Queue, pk=object_id)

    def live_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        queue = self._get_for_view(request, object_id)
        return JsonResponse(self._live(queue).as_dict())

    def control_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        queue = self._get_for_view(request, object_id)
        admit_form = AdmitForm()
        if request.method == "POST":
            if not self.has_operate_permission(request):
                raise PermissionDenied
            op = request.POST.get("op", "")
            queryset = Queue.objects.filter(pk=queue.pk)
            here = reverse(f"{self.admin_site.name}:ticketqueue_queue_control", args=[queue.pk])
            if op == "admit":
                admit_form = AdmitForm(request.POST)
                if admit_form.is_valid():
                    self.admit_now(_applied(request), queryset)
                    return HttpResponseRedirect(here)
            elif op in CONTROL_ACTIONS:
                getattr(self, CONTROL_ACTIONS[op])(_applied(request), queryset)
                return HttpResponseRedirect(here)
            else:
                self.message_user(request, _("Unknown action."), messages.ERROR)
                return HttpResponseRedirect(here)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Control room: %(queue)s") % {"queue": queue.name},
            "opts": self.opts,
            "original": queue,
            "queue": queue,
            "live": self._live(queue),
            "can_operate": self.has_operate_permission(request),
            "admit_form": admit_form,
            "operations": _operations(queue),
            "chart": chart(queue),
            "audit": OperatorAction.objects.filter(queue=queue).select_related("user")[:10],
            "live_url": reverse(f"{self.admin_site.name}:ticketqueue_queue_live", args=[queue.pk]),
        }
        return TemplateResponse(request, "admin/ticketqueue/queue/control_room.html", context)


#: Control-room buttons -> the changelist action they run on the one queue.
CONTROL_ACTIONS = {
    "open": "open_queues",
    "pause": "pause_queues",
    "resume": "resume_queues",
    "close": "close_queues",
    "rebuild": "rebuild_queues",
}


def _applied(request: HttpRequest) -> HttpRequest:
    """The control room's POST already is the confirmation the actions ask for."""
    post = request.POST.copy()
    post["apply"] = "1"
    request.POST = post  # type: ignore[assignment]
    return request


def _operations(queue: Queue) -> list[tuple[str, str]]:
    """The buttons the queue's state allows, as (op, label)."""
    state = QueueState(queue.state)
    ops = []
    if state is QueueState.SCHEDULED:
        ops.append(("open", _("Open now (draw the pre-queue)")))
    if state is QueueState.OPEN:
        ops.append(("pause", _("Pause admission")))
    if state is QueueState.PAUSED:
        ops.append(("resume", _("Resume admission")))
    if state is not QueueState.CLOSED:
        ops.append(("close", _("Close (sold out)")))
    ops.append(("rebuild", _("Rebuild from the database")))
    return ops


def _open(queue: Queue) -> None:
    services.open_queue(queue)


def _pause(queue: Queue) -> None:
    services.pause(queue)


def _resume(queue: Queue) -> None:
    if queue.state != QueueState.PAUSED.value:
        raise TicketQueueError(_("Only a paused queue can be resumed."))
    services.resume(queue)


def _admit(queue: Queue, n: int) -> int:
    result = services.tick(queue, limit=n, use_rate=False)
    notifications.notify_turn(queue, result.admitted)
    return len(result.admitted)


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


# -- the chart ------------------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 600, 160, 24


def chart(queue: Queue, now: float | None = None) -> dict[str, Any]:
    """Queue length and outflow per minute over the last hour, as SVG polyline points."""
    now = services.clock() if now is None else now
    end = math.floor(now / 60) * 60
    start = end - CHART_MINUTES * 60
    samples = list(
        QueueSample.objects.filter(
            queue=queue,
            at__gte=datetime.fromtimestamp(start - 60, tz=UTC),
            at__lte=datetime.fromtimestamp(end, tz=UTC),
        )
        .order_by("at")
        .values_list("at", "waiting", "admitted_total")
    )
    waiting: list[tuple[float, float]] = []
    outflow: list[tuple[float, float]] = []
    previous: tuple[datetime, int] | None = None
    for at, line, total in samples:
        minute = at.timestamp()
        if minute >= start:
            waiting.append((minute, line))
            if previous is not None and at - previous[0] == timedelta(minutes=1):
                outflow.append((minute, max(0, total - previous[1])))
        previous = (at, total)
    top_waiting = max((v for _t, v in waiting), default=0)
    top_outflow = max((v for _t, v in outflow), default=0)

    def points(series: list[tuple[float, float]], top: float) -> str:
        width = CHART_WIDTH - 2 * CHART_PAD
        height = CHART_HEIGHT - 2 * CHART_PAD
        return " ".join(
            f"{CHART_PAD + (t - start) / (end - start) * width:.1f},"
            f"{CHART_HEIGHT - CHART_PAD - (v / top if top else 0) * height:.1f}"
            for t, v in series
        )

    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "pad": CHART_PAD,
        "waiting_points": points(waiting, top_waiting),
        "outflow_points": points(outflow, top_outflow),
        "top_waiting": top_waiting,
        "top_outflow": top_outflow,
        "samples": len(waiting),
        "minutes": CHART_MINUTES,
    }


# -- entries, admissions, audit ---------------------------------------------------------------


class _EntryChangeList(ChangeList):
    """Entries with whether their identity is connected now: one presence read per queue on
    the page, not one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        by_queue: dict[Queue, list[Entry]] = defaultdict(list)
        for entry in self.result_list:
            if entry.state in (Entry.State.WAITING, Entry.State.ADMITTED):
                by_queue[entry.queue].append(entry)
        for queue, entries in by_queue.items():
            try:
                here = services.connected(queue, [e.identity for e in entries])
            except Exception:  # the store is away: say nothing rather than fail the page
                log.warning("admin: presence unreadable", extra={"queue": queue.slug})
                continue
            for entry in entries:
                entry.tq_connected = entry.identity in here


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = [
        "seq",
        "queue",
        "identity",
        "state",
        "connected",
        "joined_at",
        "admitted_at",
        "pass_expires_at",
        "ended_at",
    ]
    list_filter = ["state", "queue"]
    search_fields = ["=identity"]
    list_select_related = ["queue"]
    actions = ["revoke_entries"]
    show_full_result_count = False  # a long line makes COUNT(*) slow on every page

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entry]:
        return super().get_queryset(request).select_related("queue")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _EntryChangeList

    @admin.display(description=_("connected"), boolean=True)
    def connected(self, obj: Entry) -> bool | None:
        """A live entry's identity has a socket open now (the same presence that spares it a
        "your turn" notification); blank for ended entries."""
        return getattr(obj, "tq_connected", None)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # entries come from joins

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the store decides; operators revoke

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the record the store is rebuilt from

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.revoke_pass")

    @admin.action(
        description=_("Revoke the selected passes and places in line"), permissions=["revoke"]
    )
    def revoke_entries(self, request: HttpRequest, queryset: QuerySet[Entry]) -> None:
        by_queue: dict[Queue, list[int]] = defaultdict(list)
        for entry in queryset.live().select_related("queue"):
            by_queue[entry.queue].append(entry.seq)
        revoked = 0
        for queue, seqs in by_queue.items():
            try:
                changes = services.revoke(queue, sorted(seqs), reason="operator")
            except TicketQueueError as exc:
                self.message_user(request, f"{queue}: {exc.message}", messages.ERROR)
                continue
            _record(
                request,
                queue,
                OperatorAction.Kind.REVOKE,
                {"seqs": sorted(seqs)},
                {"revoked": sorted(c.seq for c in changes)},
                len(changes),
            )
            revoked += len(changes)
        self.message_user(
            request,
            ngettext("%(count)d entry revoked.", "%(count)d entries revoked.", revoked)
            % {"count": revoked},
        )


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Admission)
class AdmissionAdmin(_ReadOnly):
    list_display = ["number", "queue", "seq", "identity", "admitted_at", "expires_at"]
    list_filter = ["queue"]
    search_fields = ["=identity"]
    list_select_related = ["queue"]
    show_full_result_count = False


@admin.register(OperatorAction)
class OperatorActionAdmin(_ReadOnly):
    list_display = ["at", "username", "action", "queue_name", "count", "before", "after"]
    list_filter = ["action", "queue"]
    search_fields = ["username", "queue_name"]
    list_select_related = ["queue", "user"]
    date_hierarchy = "at"
