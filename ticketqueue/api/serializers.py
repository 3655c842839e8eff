"""What the API answers, described for the OpenAPI schema (and used to shape the replies)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..core import EntryState, QueueState

__all__ = [
    "ErrorSerializer",
    "HeartbeatSerializer",
    "JoinRequestSerializer",
    "QueueInfoSerializer",
    "ReleaseRequestSerializer",
    "ReleaseSerializer",
    "StatusSerializer",
]

_QUEUE_STATES = [s.value for s in QueueState]


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code (docs/errors.md).")
    message = serializers.CharField(help_text="What went wrong, for people.")


class JoinRequestSerializer(serializers.Serializer):
    """Only for a queue that asks for proof (its challenge says what) or takes invited people
    only; otherwise no body."""

    work = serializers.CharField(
        required=False, max_length=128, help_text="The challenge's work token, as given."
    )
    nonce = serializers.CharField(
        required=False,
        max_length=32,
        help_text="SHA-256('<work>:<nonce>') starts with 'difficulty' zero bits ([0-9A-Za-z_-]).",
    )
    captcha = serializers.CharField(
        required=False, max_length=4096, help_text="The token the CAPTCHA widget gave."
    )
    invite = serializers.CharField(
        required=False,
        max_length=128,
        help_text="An invite token, for a queue of invited people (the link's ?invite=).",
    )


class QueueInfoSerializer(serializers.Serializer):
    queue = serializers.SlugField(help_text="The queue's slug.")
    name = serializers.CharField()
    queue_state = serializers.ChoiceField(choices=_QUEUE_STATES)
    waiting = serializers.IntegerField(help_text="Entries waiting in line now.")
    active = serializers.IntegerField(help_text="Passes active now.")
    eta_seconds = serializers.IntegerField(
        allow_null=True, help_text="Estimated wait of someone joining now; null if unknown."
    )
    sold_out_likely = serializers.BooleanField(
        help_text="Someone joining now would likely find the tickets gone before their turn."
    )
    opens_at = serializers.DateTimeField(allow_null=True)


class StatusSerializer(serializers.Serializer):
    queue = serializers.SlugField()
    queue_state = serializers.ChoiceField(choices=_QUEUE_STATES)
    state = serializers.ChoiceField(
        choices=[EntryState.WAITING.value, EntryState.ADMITTED.value],
        allow_null=True,
        help_text="waiting, admitted (a pass is given), or null: no live entry.",
    )
    seq = serializers.IntegerField(allow_null=True, help_text="The entry's number in the queue.")
    position = serializers.IntegerField(
        allow_null=True, help_text="People ahead plus one; 0 once admitted."
    )
    order = serializers.FloatField(allow_null=True, help_text="Place in line (live updates).")
    waiting = serializers.IntegerField()
    active = serializers.IntegerField()
    eta_seconds = serializers.IntegerField(allow_null=True)
    sold_out_likely = serializers.BooleanField(
        help_text="The tickets will likely run out before this place's turn (the site's stock)."
    )
    pass_expires_at = serializers.FloatField(
        allow_null=True, help_text="End of the purchase window (Unix time) once admitted."
    )

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        # "pass" is a Python keyword, so it cannot be declared as a class attribute.
        fields["pass"] = serializers.CharField(
            allow_null=True,
            help_text="The signed pass (JWT) once admitted: send it as 'Authorization: "
            "QueuePass <pass>' or 'X-Queue-Pass'. Browsers also get it as an HttpOnly cookie.",
        )
        return fields


class ReleaseRequestSerializer(serializers.Serializer):
    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        fields["pass"] = serializers.CharField(
            required=False,
            max_length=4096,
            help_text="The pass, unless it travels in a header or the pass cookie.",
        )
        return fields


class ReleaseSerializer(serializers.Serializer):
    queue = serializers.SlugField()
    seq = serializers.IntegerField()
    state = serializers.ChoiceField(choices=[EntryState.COMPLETED.value])


class LeaveSerializer(serializers.Serializer):
    queue = serializers.SlugField()
    seq = serializers.IntegerField()
    state = serializers.ChoiceField(choices=[EntryState.LEFT.value])


class HeartbeatSerializer(serializers.Serializer):
    seen = serializers.BooleanField(help_text="False when the identity has no live entry.")


class DeviceSerializer(serializers.Serializer):
    """A phone's push token for this queue's milestones (``ticketqueue.push``)."""

    platform = serializers.ChoiceField(
        choices=["fcm", "apns"], help_text="fcm (Firebase Cloud Messaging) or apns (Apple)."
    )
    token = serializers.CharField(
        max_length=1024, help_text="The push token the platform gave the app."
    )
