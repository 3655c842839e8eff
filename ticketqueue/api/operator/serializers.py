"""The operator API's shapes: a queue with its knobs and live numbers, an entry, an admission,
an audit row."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from ... import metrics
from ...models import Admission, Entry, OperatorAction, Queue, Tenant
from ...operations import KNOBS

__all__ = [
    "ActionSerializer",
    "AdmissionSerializer",
    "AdmitSerializer",
    "EntrySerializer",
    "QueueChangeSerializer",
    "QueueCreateSerializer",
    "QueueSerializer",
]

_TIMES = ["opens_at", "opened_at", "closed_at", "created_at", "updated_at"]


class _Strict(serializers.Serializer):
    """Refuses fields it does not take: a misspelt knob is an error, not a silent no-op."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        takes = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(self.initial_data) - takes)
        if unknown:
            raise serializers.ValidationError(dict.fromkeys(unknown, "Not a field this takes."))
        return attrs


class LiveSerializer(serializers.Serializer):
    loaded = serializers.BooleanField(help_text="The store holds the queue.")
    waiting = serializers.IntegerField(allow_null=True)
    active = serializers.IntegerField(allow_null=True, help_text="Passes active now.")
    admitted_total = serializers.IntegerField(allow_null=True)
    joined_total = serializers.IntegerField(allow_null=True)
    admitted_per_minute = serializers.FloatField(allow_null=True)
    eta_last_seconds = serializers.IntegerField(allow_null=True)
    abandon_rate = serializers.FloatField(allow_null=True)


class QueueSerializer(serializers.ModelSerializer):
    """A queue as its operator sees it."""

    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    live = serializers.SerializerMethodField()

    class Meta:
        model = Queue
        fields = ["slug", "name", "tenant", "state", *KNOBS, *_TIMES, "live"]
        read_only_fields = fields

    def get_live(self, queue: Queue) -> dict[str, Any]:
        # A list reads every queue's numbers at once (``context["live"]``, metrics.snapshot).
        found = self.context.get("live", {}).get(queue.store_id)
        numbers = (found or metrics.live_numbers(queue)).as_dict()
        return {k: numbers[k] for k in LiveSerializer().fields}

    get_live.output_field = LiveSerializer()  # type: ignore[attr-defined]


def _model_errors(exc: DjangoValidationError) -> serializers.ValidationError:
    return serializers.ValidationError(
        exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
    )


class _QueueWrite(_Strict, serializers.ModelSerializer):
    """Checked by the model's own rules too (a scheduled queue's opening time, the grace's
    floor), as the admin checks them."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        queue = Queue(**{**self._current(), **{k: v for k, v in attrs.items()}})
        try:
            queue.full_clean(exclude=["slug", "tenant"], validate_unique=False)
        except DjangoValidationError as exc:
            raise _model_errors(exc) from None
        return attrs

    def _current(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        return {f: getattr(self.instance, f) for f in ["name", "state", "opens_at", *KNOBS]}


class QueueCreateSerializer(_QueueWrite):
    tenant = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        required=False,
        allow_null=True,
        help_text="The tenant's slug: needed only by staff of several tenants.",
    )
    state = serializers.ChoiceField(
        choices=[Queue.State.OPEN, Queue.State.SCHEDULED, Queue.State.PAUSED],
        default=Queue.State.OPEN,
    )

    class Meta:
        model = Queue
        fields = ["slug", "name", "tenant", "state", "opens_at", *KNOBS]


class QueueChangeSerializer(_QueueWrite):
    """PATCH: name, opening time, knobs and state (the state moves as the admin's actions do:
    open, pause, resume, close)."""

    class Meta:
        model = Queue
        fields = ["name", "state", "opens_at", *KNOBS]


class AdmitSerializer(_Strict):
    count = serializers.IntegerField(
        min_value=1, max_value=100_000, help_text="How many, from the head of the line."
    )


class AdmittedSerializer(serializers.Serializer):
    queue = serializers.CharField()
    admitted = serializers.IntegerField()


class ClosedSerializer(serializers.Serializer):
    queue = serializers.CharField()
    turned_away = serializers.IntegerField(help_text="Waiting entries turned away.")


class EntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = Entry
        fields = [
            "seq",
            "identity",
            "state",
            "order",
            "joined_at",
            "admitted_at",
            "pass_expires_at",
            "admission_number",
            "ended_at",
        ]
        read_only_fields = fields


class AdmissionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Admission
        fields = ["number", "seq", "identity", "admitted_at", "expires_at"]
        read_only_fields = fields


class ActionSerializer(serializers.ModelSerializer):
    operator = serializers.CharField(source="username")

    class Meta:
        model = OperatorAction
        fields = ["at", "operator", "action", "before", "after", "count"]
        read_only_fields = fields


class MinuteSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text="The minute's start (UTC).")
    waiting = serializers.IntegerField(help_text="In line at the minute's start.")
    active = serializers.IntegerField(help_text="Passes active at the minute's start.")
    joins = serializers.IntegerField(allow_null=True, help_text="During the minute before.")
    admissions = serializers.IntegerField(allow_null=True)
    abandons = serializers.IntegerField(allow_null=True)
    completions = serializers.IntegerField(allow_null=True)
    wait_p50 = serializers.FloatField(allow_null=True, help_text="Seconds, of those admitted.")
    wait_p90 = serializers.FloatField(allow_null=True)
    wait_p99 = serializers.FloatField(allow_null=True)


class HistorySerializer(serializers.Serializer):
    queue = serializers.CharField()
    minutes = MinuteSerializer(many=True)
