"""The control room: each queue's live numbers and last hour, the operator actions (open,
pause, resume, close, admit now, rebuild, revoke), live edits of the outflow, and an audit row
for every one of them. Acting needs the ``operate_queue`` / ``revoke_pass`` permissions.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import analytics, apikeys, charts, metrics, operations, services, tenancy
from .core import QueueState, TicketQueueError
from .models import (
    Admission,
    Entry,
    OperatorAction,
    OperatorKey,
    PriorityGroup,
    Queue,
    QueueSample,
    Tenant,
)
from .operations import Actor

log = logging.getLogger("ticketqueue")


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


class _TenantOwned(admin.ModelAdmin):
    """A model with a ``tenant`` (queues, API keys): an operator picks one of their tenants,
    and one who belongs to tenants must pick one, never the installation's."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "tenant":
            kwargs["queryset"] = tenancy.tenants_for_user(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        tenant = form.base_fields.get("tenant")
        if tenant is not None and not request.user.is_superuser:
            tenant.required = tenancy.tenants_for_user(request.user).exists()
        return form


@admin.register(Queue)
class QueueAdmin(_TenantOwned):
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
    list_filter = ["state", "mode", ("tenant", admin.RelatedOnlyFieldListFilter)]
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
        (None, {"fields": ["name", "slug", "tenant", "state", "opens_at"]}),
        (
            _("Outflow (takes effect on the next tick)"),
            {
                "fields": [
                    "mode",
                    "capacity",
                    "rate_per_minute",
                    "purchase_window",
                    "max_size",
                    "stock",
                ]
            },
        ),
        (
            _("People"),
            {
                "fields": [
                    "who_may_join",
                    "device_policy",
                    "disconnect_grace",
                    "pass_idle_grace",
                    "passes_per_identity",
                ]
            },
        ),
        (
            _("People away from the page"),
            {"fields": ["notify_within", "notify_minutes_left", "notify_pass_ending"]},
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
        queryset = tenancy.scoped(super().get_queryset(request), request.user)
        queryset = queryset.select_related("content_type", "tenant")
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
        before = operations.knobs(Queue.objects.get(pk=obj.pk)) if change else {}
        super().save_model(request, obj, form, change)
        if change:
            operations.edited(Actor.of(request), obj, before)
        else:
            operations.created(Actor.of(request), obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The priority groups (the inline) are audited like the knobs: one EDIT row when
        they changed, with every group before and after."""
        before = operations.groups(form.instance) if change else []
        super().save_related(request, form, formsets, change)
        after = operations.groups(form.instance)
        if before != after:
            operations.record(
                Actor.of(request),
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
        operate: Callable[[Actor, Queue], int | None],
    ) -> list[tuple[Queue, int | None]]:
        """Run one audited operation per queue, report each refusal."""
        done = []
        for queue in queryset.order_by("pk"):
            try:
                count = operate(Actor.of(request), queue)
            except TicketQueueError as exc:
                self.message_user(request, f"{queue}: {exc.message}", messages.ERROR)
                continue
            done.append((queue, count))
        return done

    def _moved(self, request: HttpRequest, message: str) -> None:
        self.message_user(request, message)

    @admin.action(description=_("Open the selected queues"), permissions=["operate"])
    def open_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        done = self._each(request, queryset, _move("open"))
        if done:
            n = len(done)
            self._moved(
                request,
                ngettext("%(count)d queue opened.", "%(count)d queues opened.", n) % {"count": n},
            )

    @admin.action(description=_("Pause admission of the selected queues"), permissions=["operate"])
    def pause_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        done = self._each(request, queryset, _move("pause"))
        if done:
            n = len(done)
            self._moved(
                request,
                ngettext("%(count)d queue paused.", "%(count)d queues paused.", n) % {"count": n},
            )

    @admin.action(description=_("Resume admission of the selected queues"), permissions=["operate"])
    def resume_queues(self, request: HttpRequest, queryset: QuerySet[Queue]) -> None:
        done = self._each(request, queryset, _move("resume"))
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
        done = self._each(request, queryset, _move("close"))
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
        done = self._each(request, queryset, lambda a, q: operations.admit(a, q, n))
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
        done = self._each(request, queryset, _move("rebuild"))
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
            path(
                "<path:object_id>/history.<str:fmt>",
                wrap(self.history_view),
                name="ticketqueue_queue_history",
            ),
            *super().get_urls(),
        ]

    def _get_for_view(self, request: HttpRequest, object_id: str) -> Queue:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(self.get_queryset(request), pk=object_id)

    def live_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        queue = self._get_for_view(request, object_id)
        return JsonResponse(self._live(queue).as_dict())

    def history_view(self, request: HttpRequest, object_id: str, fmt: str) -> HttpResponse:
        """The queue's minutes as CSV or JSON (``?since=``/``?until=``, ISO 8601; default:
        all that are kept)."""
        queue = self._get_for_view(request, object_id)
        if fmt not in ("csv", "json"):
            raise Http404
        try:
            since, until = (analytics.moment(request.GET.get(k)) for k in ("since", "until"))
        except ValueError:
            return HttpResponseBadRequest("since and until are ISO 8601 times")
        minutes = [m.as_dict() for m in analytics.history(queue, since=since, until=until)]
        name = f"{queue.slug}-history.{fmt}"
        if fmt == "csv":
            response = HttpResponse(analytics.as_csv(minutes), content_type="text/csv")
        else:
            response = JsonResponse({"queue": queue.slug, "minutes": minutes})
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def control_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        queue = self._get_for_view(request, object_id)
        hours = int(h) if (h := request.GET.get("hours", "")).isdigit() else charts.WINDOWS[0]
        hours = hours if hours in charts.WINDOWS else charts.WINDOWS[0]
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
            "charts": charts.charts(queue, hours, services.clock()),
            "hours": hours,
            "windows": charts.WINDOWS,
            "audit": [
                (row, _changes(row))
                for row in OperatorAction.objects.filter(queue=queue).select_related("user")[:10]
            ],
            **{
                f"history_{fmt}": reverse(
                    f"{self.admin_site.name}:ticketqueue_queue_history", args=[queue.pk, fmt]
                )
                for fmt in ("csv", "json")
            },
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


def _move(op: str) -> Callable[[Actor, Queue], int | None]:
    return lambda actor, queue: operations.move(actor, queue, op)


def _changes(row: OperatorAction) -> list[str]:
    """An audit row as "field: before -> after", one per field that changed (the knobs a
    queue was created with, as "field: value")."""
    before, after = row.before or {}, row.after or {}
    if not before:
        return [f"{k}: {_shown(v)}" for k, v in after.items()]
    keys = [k for k in after if before.get(k) != after.get(k)]
    keys += [k for k in before if k not in after]
    return [f"{k}: {_shown(before.get(k))} → {_shown(after.get(k))}" for k in keys]


def _shown(value: Any) -> str:
    return "—" if value is None else str(value)


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
    list_filter = ["state", ("queue", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=identity"]
    list_select_related = ["queue"]
    actions = ["revoke_entries"]
    show_full_result_count = False  # a long line makes COUNT(*) slow on every page

    def get_queryset(self, request: HttpRequest) -> QuerySet[Entry]:
        return tenancy.scoped(super().get_queryset(request), request.user).select_related("queue")

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
                revoked += operations.revoke(Actor.of(request), queue, seqs)
            except TicketQueueError as exc:
                self.message_user(request, f"{queue}: {exc.message}", messages.ERROR)
        self.message_user(
            request,
            ngettext("%(count)d entry revoked.", "%(count)d entries revoked.", revoked)
            % {"count": revoked},
        )


class _ReadOnly(admin.ModelAdmin):
    """A log: nothing added, changed or deleted here; each operator sees their queues' rows."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return tenancy.scoped(super().get_queryset(request), request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Admission)
class AdmissionAdmin(_ReadOnly):
    list_display = ["number", "queue", "seq", "identity", "admitted_at", "expires_at"]
    list_filter = [("queue", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=identity"]
    list_select_related = ["queue"]
    show_full_result_count = False


@admin.register(OperatorAction)
class OperatorActionAdmin(_ReadOnly):
    list_display = ["at", "username", "action", "queue_name", "count", "before", "after"]
    list_filter = ["action", ("queue", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["username", "queue_name"]
    list_select_related = ["queue", "user"]
    date_hierarchy = "at"


# -- tenants and operator API keys ------------------------------------------------------------


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).filter(pk__in=tenancy.tenants_for_user(request.user))


class OperatorKeyForm(forms.ModelForm):
    class Meta:
        model = OperatorKey
        fields = ["name", "tenant", "access", "queues"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        tenant = data.get("tenant")
        strays = [q for q in data.get("queues") or () if q.tenant_id != getattr(tenant, "pk", None)]
        if strays:
            raise forms.ValidationError(
                _("A key reaches only queues of its own tenant: %(queues)s.")
                % {"queues": ", ".join(q.name for q in strays)}
            )
        return data


@admin.register(OperatorKey)
class OperatorKeyAdmin(_TenantOwned):
    """Keys for the operator API (docs/api.md): made here or by ``manage.py
    ticketqueue_keys``, shown once, revoked by the action."""

    form = OperatorKeyForm
    list_display = [
        "name",
        "prefix",
        "tenant",
        "access",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["access", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "=prefix"]
    filter_horizontal = ["queues"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[OperatorKey]:
        return tenancy.owned(super().get_queryset(request), request.user).select_related("tenant")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Sequence[str]:
        # A key stays in the tenant it was made for.
        return [*self.readonly_fields, "tenant"] if obj is not None else self.readonly_fields

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "queues":
            kwargs["queryset"] = tenancy.queues_for_user(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: OperatorKey, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
            obj._raw_key = apikeys.mint(obj)  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: OperatorKey, *args: Any) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": _("Operator API key made"),
            "opts": self.opts,
            "key": obj,
            "raw_key": obj._raw_key,  # type: ignore[attr-defined]
        }
        # The admin's views are never cached (no-store): the key is not kept on the way.
        return TemplateResponse(request, "admin/ticketqueue/operatorkey/created.html", context)

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[OperatorKey]) -> None:
        revoked = sum(apikeys.revoke(key) for key in queryset)
        self.message_user(
            request,
            ngettext("%(count)d key revoked.", "%(count)d keys revoked.", revoked)
            % {"count": revoked},
        )
