"""The system of record: queues, their entries and the append-only admission log; the tenants
queues belong to and the operator API's keys.

Redis (or the in-process store) holds the hot state; these rows are what it is rebuilt from.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .conf import min_disconnect_grace
from .core import (
    LIVE_STATES,
    MAX_DIFFICULTY,
    MAX_PRIORITY,
    EntryState,
    OutflowPolicy,
    QueueMode,
    QueueState,
)
from .querysets import EntryQuerySet, QueueQuerySet


class Tenant(models.Model):
    """An organisation one installation serves: its queues, its operators (members) and its API
    keys are its own, and none of them reaches another tenant's queues. A site that serves one
    organisation needs none: queues without a tenant are the installation's own."""

    slug = models.SlugField(_("slug"), unique=True, help_text=_("Names the tenant in the API."))
    name = models.CharField(_("name"), max_length=200)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="ticketqueue_tenants",
        verbose_name=_("operators"),
        help_text=_(
            "Staff who see and run this tenant's queues. Staff who belong to no tenant see the "
            "queues that belong to none; superusers see all."
        ),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Queue(models.Model):
    """One waiting room, usually one per sale."""

    class State(models.TextChoices):
        SCHEDULED = QueueState.SCHEDULED.value, _("scheduled (pre-queue)")
        OPEN = QueueState.OPEN.value, _("open")
        PAUSED = QueueState.PAUSED.value, _("paused")
        CLOSED = QueueState.CLOSED.value, _("closed")

    class Mode(models.TextChoices):
        AUTO = QueueMode.AUTO.value, _("auto: queue only when demand exceeds outflow")
        ALWAYS = QueueMode.ALWAYS.value, _("always: everyone waits in line")
        OFF = QueueMode.OFF.value, _("off: admit everyone at once")

    class DevicePolicy(models.TextChoices):
        SHARED = "shared", _("shared: every device of a person shows the same place")
        ONE = "one", _("one device per person: the newest takes the place while it waits")

    class WhoMayJoin(models.TextChoices):
        ANYONE = "anyone", _("anyone (visitors and logged-in users)")
        USERS = "users", _("logged-in users only")
        INVITED = "invited", _("holders of an invite (link or code)")

    slug = models.SlugField(
        _("slug"), unique=True, help_text=_("Names the queue in URLs and WebSocket paths.")
    )
    name = models.CharField(_("name"), max_length=200, help_text=_("Shown to people in line."))
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="queues",
        verbose_name=_("tenant"),
        help_text=_("The organisation the queue belongs to; empty: the installation's own."),
    )
    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("event type"),
        help_text=_("Type of the site's own object this queue sells (optional)."),
    )
    object_id = models.CharField(
        _("event id"),
        max_length=64,
        blank=True,
        help_text=_("Primary key of the site's own object this queue sells (optional)."),
    )
    event = GenericForeignKey("content_type", "object_id")
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=State.choices,
        default=State.OPEN,
        help_text=_("Scheduled queues take joins before opening; closed queues take none."),
    )
    mode = models.CharField(
        _("mode"),
        max_length=16,
        choices=Mode.choices,
        default=Mode.AUTO,
        help_text=_("When people wait in line and when they are admitted at once."),
    )
    capacity = models.PositiveIntegerField(
        _("capacity"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Most passes active at once; empty for no limit."),
    )
    rate_per_minute = models.PositiveIntegerField(
        _("rate per minute"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Most admissions per minute; empty for no limit."),
    )
    purchase_window = models.PositiveIntegerField(
        _("purchase window (seconds)"),
        default=900,
        validators=[MinValueValidator(1)],
        help_text=_("How long a pass stays valid after admission."),
    )
    disconnect_grace = models.PositiveIntegerField(
        _("disconnect grace (seconds)"),
        default=1800,
        validators=[MinValueValidator(1)],
        help_text=_("How long a waiting entry may go unseen before it is abandoned."),
    )
    pass_idle_grace = models.PositiveIntegerField(
        _("pass idle grace (seconds)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_(
            "An admitted person whose every connection to the queue has been gone this long "
            "gives the slot back (the pass ends as abandoned). Empty: off, for sites that hand "
            "passes to apps that hold no connection."
        ),
    )
    notify_within = models.PositiveIntegerField(
        _("tell people within"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Tell each person once when they are this many places from the front."),
    )
    notify_minutes_left = models.PositiveIntegerField(
        _("tell people minutes before"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Tell each person once when their turn is about this many minutes away."),
    )
    notify_pass_ending = models.PositiveIntegerField(
        _("remind seconds before the pass ends"),
        null=True,
        blank=True,
        default=120,
        validators=[MinValueValidator(1)],
        help_text=_("Remind each pass holder once, this long before the pass ends. Empty: never."),
    )
    who_may_join = models.CharField(
        _("who may join"),
        max_length=16,
        choices=WhoMayJoin.choices,
        default=WhoMayJoin.ANYONE,
        help_text=_(
            "Logged-in users only: an anonymous visitor is asked to log in first. Invites: "
            "manage.py ticketqueue_invites makes the links."
        ),
    )
    device_policy = models.CharField(
        _("devices"),
        max_length=8,
        choices=DevicePolicy.choices,
        default=DevicePolicy.SHARED,
        help_text=_(
            "One device per person: opening the line on another device moves the place there "
            "(the old one is told); once admitted, the pass works on that device only."
        ),
    )
    work_difficulty = models.PositiveSmallIntegerField(
        _("proof of work"),
        default=0,
        validators=[MaxValueValidator(MAX_DIFFICULTY)],
        help_text=_(
            "Zero bits a new place's puzzle must find (0: none). Each step doubles the work: "
            "16 is a moment in a browser, 20 about a second; raise it during an attack."
        ),
    )
    captcha_required = models.BooleanField(
        _("CAPTCHA"),
        default=False,
        help_text=_("A new place needs a solved CAPTCHA (TICKETQUEUE['CAPTCHA_SECRET'])."),
    )
    passes_per_identity = models.PositiveIntegerField(
        _("passes per person"),
        null=True,
        blank=True,
        default=1,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Most passes one person (user or visitor) gets in this queue: someone who had their "
            "turn is not queued again by reloading the page. Empty: no limit."
        ),
    )
    stock = models.PositiveIntegerField(
        _("tickets left"),
        null=True,
        blank=True,
        help_text=_(
            "What is left to sell: each ticketqueue.release(..., tickets=n) takes n off, the "
            "site's STOCK_RESOLVER may set it each tick, and at 0 the queue closes by itself. "
            "People too far back are told the tickets will likely run out first. Empty: unknown."
        ),
    )
    max_size = models.PositiveIntegerField(
        _("maximum size"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Most entries waiting at once; joins beyond it are refused. Empty: no limit."),
    )
    opens_at = models.DateTimeField(
        _("opens at"),
        null=True,
        blank=True,
        help_text=_("When a scheduled queue opens; joins before it form the shuffled pre-queue."),
    )
    prequeue_seed = models.BigIntegerField(
        _("pre-queue seed"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "Seed of the pre-queue shuffle, recorded at opening so the draw can be audited."
        ),
    )
    opened_at = models.DateTimeField(
        _("opened at"), null=True, blank=True, editable=False, help_text=_("When the queue opened.")
    )
    closed_at = models.DateTimeField(
        _("closed at"), null=True, blank=True, editable=False, help_text=_("When the queue closed.")
    )
    created_at = models.DateTimeField(
        _("created at"), auto_now_add=True, help_text=_("When the queue was created.")
    )
    updated_at = models.DateTimeField(
        _("updated at"), auto_now=True, help_text=_("When the queue was last changed.")
    )

    objects = QueueQuerySet.as_manager()

    class Meta:
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        ordering = ["-created_at"]
        permissions = [
            ("operate_queue", _("Can open, pause, resume, close, rebuild and admit now")),
            ("revoke_pass", _("Can revoke passes and places in line")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(capacity__isnull=True) | models.Q(capacity__gte=1),
                name="ticketqueue_queue_capacity_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def store_id(self) -> str:
        """The queue's key in the store (its primary key, stable across slug edits)."""
        return str(self.pk)

    @property
    def policy(self) -> OutflowPolicy:
        return OutflowPolicy(self.capacity, self.rate_per_minute)

    def clean(self) -> None:
        if self.state == self.State.SCHEDULED and self.opens_at is None:
            raise ValidationError({"opens_at": _("A scheduled queue needs an opening time.")})
        floor = min_disconnect_grace()
        if self.disconnect_grace is not None and self.disconnect_grace < floor:
            raise ValidationError(
                {
                    "disconnect_grace": _(
                        "The disconnect grace must be at least %(floor)d seconds: three "
                        "heartbeats of an open page (HEARTBEAT_INTERVAL), or people whose page "
                        "is open would lose their place."
                    )
                    % {"floor": math.ceil(floor)}
                },
                code="grace_below_heartbeat",
            )
        if self.pass_idle_grace is not None and self.pass_idle_grace < floor:
            raise ValidationError(
                {
                    "pass_idle_grace": _(
                        "The pass idle grace must be at least %(floor)d seconds (three "
                        "heartbeats), or a page reloading would lose its pass."
                    )
                    % {"floor": math.ceil(floor)}
                },
                code="grace_below_heartbeat",
            )


class PriorityGroup(models.Model):
    """People who stand ahead of the public in one queue (a presale list, members): their
    entries wait in the group's own part of the line, first come first served within it, and
    a higher priority is admitted first. People join a group with an invite made for it
    (``manage.py ticketqueue_invites --group``) or by the site's ``PRIORITY_RESOLVER``."""

    queue = models.ForeignKey(
        Queue, on_delete=models.CASCADE, related_name="priority_groups", verbose_name=_("queue")
    )
    name = models.CharField(_("name"), max_length=100)
    priority = models.PositiveSmallIntegerField(
        _("priority"),
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PRIORITY)],
        help_text=_("Higher goes first; the public line is 0."),
    )

    class Meta:
        verbose_name = _("priority group")
        verbose_name_plural = _("priority groups")
        ordering = ["-priority"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "name"], name="tq_group_name_unique"),
            models.UniqueConstraint(fields=["queue", "priority"], name="tq_group_priority_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.priority})"


class Entry(models.Model):
    """One identity's place in one queue, from joining to its end."""

    class State(models.TextChoices):
        WAITING = EntryState.WAITING.value, _("waiting")
        ADMITTED = EntryState.ADMITTED.value, _("admitted")
        COMPLETED = EntryState.COMPLETED.value, _("completed")
        EXPIRED = EntryState.EXPIRED.value, _("expired")
        REVOKED = EntryState.REVOKED.value, _("revoked")
        LEFT = EntryState.LEFT.value, _("left")
        ABANDONED = EntryState.ABANDONED.value, _("abandoned")

    queue = models.ForeignKey(
        Queue,
        on_delete=models.CASCADE,
        related_name="entries",
        verbose_name=_("queue"),
        help_text=_("The queue this entry waits in."),
    )
    identity = models.CharField(
        _("identity"),
        max_length=100,
        help_text=_("Who holds the place: 'user:<id>' or 'anon:<visitor id>'."),
    )
    seq = models.BigIntegerField(
        _("sequence"), help_text=_("Join number within the queue; never reused.")
    )
    order = models.FloatField(
        _("line order"),
        help_text=_("Place in line: the sequence, except for a shuffled pre-queue."),
    )
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=State.choices,
        default=State.WAITING,
        help_text=_("Where the entry is in its lifecycle."),
    )
    joined_at = models.DateTimeField(_("joined at"), help_text=_("When the entry joined."))
    admitted_at = models.DateTimeField(
        _("admitted at"), null=True, blank=True, help_text=_("When the entry was given its pass.")
    )
    pass_expires_at = models.DateTimeField(
        _("pass expires at"),
        null=True,
        blank=True,
        help_text=_("End of the entry's purchase window."),
    )
    admission_number = models.PositiveBigIntegerField(
        _("admission number"),
        null=True,
        blank=True,
        help_text=_("1 for the queue's first admission, 2 for the next, and so on."),
    )
    ended_at = models.DateTimeField(
        _("ended at"),
        null=True,
        blank=True,
        help_text=_("When the entry completed, expired, was revoked, left or was abandoned."),
    )

    objects = EntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("entry")
        verbose_name_plural = _("entries")
        ordering = ["queue", "order"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "seq"], name="ticketqueue_entry_seq"),
            # One live place per identity and queue: the database backs up the store.
            models.UniqueConstraint(
                fields=["queue", "identity"],
                condition=models.Q(state__in=LIVE_STATES),
                name="ticketqueue_entry_one_live_per_identity",
            ),
        ]
        indexes = [
            models.Index(fields=["queue", "state", "order"], name="ticketqueue_entry_line"),
            models.Index(fields=["identity"], name="ticketqueue_entry_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id}#{self.seq} ({self.state})"

    @property
    def pass_jti(self) -> str:
        from .core import pass_jti

        return pass_jti(str(self.queue_id), self.seq)


class Admission(models.Model):
    """Append-only log: one row per admission, written exactly once."""

    queue = models.ForeignKey(
        Queue,
        on_delete=models.CASCADE,
        related_name="admissions",
        verbose_name=_("queue"),
        help_text=_("The queue the entry was admitted from."),
    )
    seq = models.BigIntegerField(_("sequence"), help_text=_("The admitted entry's sequence."))
    number = models.PositiveBigIntegerField(
        _("admission number"),
        help_text=_("1 for the queue's first admission, 2 for the next: the order of admission."),
    )
    identity = models.CharField(_("identity"), max_length=100, help_text=_("Who was admitted."))
    admitted_at = models.DateTimeField(_("admitted at"), help_text=_("When the pass was issued."))
    expires_at = models.DateTimeField(_("expires at"), help_text=_("When the pass expires."))

    class Meta:
        verbose_name = _("admission")
        verbose_name_plural = _("admissions")
        ordering = ["queue", "number"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "seq"], name="ticketqueue_admission_once"),
        ]
        # The log in order (the operator API's pages), and a minute's admissions by number
        # (the history's wait percentiles).
        indexes = [models.Index(fields=["queue", "number"], name="ticketqueue_admission_num")]

    def __str__(self) -> str:
        return f"{self.queue_id}#{self.seq} at {self.admitted_at:%H:%M:%S}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("The admission log is append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("The admission log is append-only.")


class OperatorAction(models.Model):
    """Append-only audit of the control room: who did what to which queue, when, and the
    knobs or state before and after."""

    class Kind(models.TextChoices):
        CREATE = "create", _("create")
        EDIT = "edit", _("edit")
        OPEN = "open", _("open")
        PAUSE = "pause", _("pause")
        RESUME = "resume", _("resume")
        CLOSE = "close", _("close")
        ADMIT = "admit", _("admit now")
        REVOKE = "revoke", _("revoke")
        REBUILD = "rebuild", _("rebuild")

    queue = models.ForeignKey(
        Queue,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="operator_actions",
        verbose_name=_("queue"),
        help_text=_("The queue acted on (empty once the queue is deleted)."),
    )
    queue_name = models.CharField(
        _("queue name"), max_length=200, help_text=_("The queue's name when the action happened.")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("operator"),
        help_text=_("Who acted (empty once the account is deleted)."),
    )
    username = models.CharField(
        _("operator name"),
        max_length=150,
        help_text=_("The operator's username at the time (or key:<name> for an API key)."),
    )
    key = models.ForeignKey(
        "OperatorKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("API key"),
        help_text=_("The operator API key that acted (empty for people, or once it is deleted)."),
    )
    action = models.CharField(
        _("action"), max_length=16, choices=Kind.choices, help_text=_("What the operator did.")
    )
    at = models.DateTimeField(_("at"), help_text=_("When the action happened."))
    before = models.JSONField(
        _("before"), default=dict, blank=True, help_text=_("State and knobs before the action.")
    )
    after = models.JSONField(
        _("after"), default=dict, blank=True, help_text=_("State and knobs after the action.")
    )
    count = models.PositiveIntegerField(
        _("entries affected"),
        null=True,
        blank=True,
        help_text=_("How many entries the action admitted, revoked or loaded."),
    )

    class Meta:
        verbose_name = _("operator action")
        verbose_name_plural = _("operator actions")
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["queue", "at"], name="ticketqueue_opaction_queue")]

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.queue_name} at {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("The operator audit log is append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("The operator audit log is append-only.")


class QueueSample(models.Model):
    """The line once a minute (written by the tick): the control room's charts and the history
    export (``ticketqueue.analytics``). Totals are cumulative, so a minute's joins, admissions,
    abandons and completions are the difference from the minute before."""

    queue = models.ForeignKey(
        Queue,
        on_delete=models.CASCADE,
        related_name="samples",
        verbose_name=_("queue"),
        help_text=_("The queue sampled."),
    )
    at = models.DateTimeField(_("minute"), help_text=_("Start of the minute sampled."))
    waiting = models.PositiveIntegerField(_("waiting"), help_text=_("Entries waiting in line."))
    active = models.PositiveIntegerField(_("active passes"), help_text=_("Passes active."))
    admitted_total = models.PositiveBigIntegerField(
        _("admitted so far"), help_text=_("Admissions since the queue was created.")
    )
    joined_total = models.PositiveBigIntegerField(
        _("joined so far"), default=0, help_text=_("Entries that ever joined.")
    )
    abandoned_total = models.PositiveBigIntegerField(
        _("abandoned so far"),
        default=0,
        help_text=_(
            "Waiting entries abandoned (unseen past the grace), as counted beside the store."
        ),
    )
    completed_total = models.PositiveBigIntegerField(
        _("completed so far"),
        default=0,
        help_text=_("Passes released by a completed order, as counted beside the store."),
    )
    wait_p50 = models.FloatField(
        _("wait, median (s)"),
        null=True,
        blank=True,
        help_text=_("Of the people admitted since the sample before: their wait in line."),
    )
    wait_p90 = models.FloatField(_("wait, 90th percentile (s)"), null=True, blank=True)
    wait_p99 = models.FloatField(_("wait, 99th percentile (s)"), null=True, blank=True)

    class Meta:
        verbose_name = _("queue sample")
        verbose_name_plural = _("queue samples")
        ordering = ["queue", "at"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "at"], name="ticketqueue_sample_once"),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id} at {self.at:%H:%M}: {self.waiting} waiting"


class OperatorKey(models.Model):
    """A key for the operator API (``ticketqueue.operator``): only its digest is stored, it acts
    within one tenant (or the installation's own queues), on all of them or the ones listed,
    and it stops working the moment it is revoked."""

    class Access(models.TextChoices):
        READ = "read", _("read: queues, entries, admissions and the audit log")
        OPERATE = "operate", _("operate: also create, change, admit and close")

    name = models.CharField(_("name"), max_length=100, help_text=_("What uses the key."))
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="keys",
        verbose_name=_("tenant"),
        help_text=_("Whose queues the key reaches; empty: the queues that belong to no tenant."),
    )
    queues = models.ManyToManyField(
        Queue,
        blank=True,
        related_name="+",
        verbose_name=_("queues"),
        help_text=_(
            "The queues it reaches; empty: every queue of its tenant, and it may create queues."
        ),
    )
    access = models.CharField(
        _("access"), max_length=8, choices=Access.choices, default=Access.READ
    )
    prefix = models.CharField(
        _("prefix"),
        max_length=16,
        unique=True,
        editable=False,
        help_text=_("The key's public start, to tell keys apart; the rest is never stored."),
    )
    digest = models.CharField(_("digest"), max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(
        _("revoked at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Set by the revoke action; a revoked key is refused."),
    )

    class Meta:
        verbose_name = _("operator API key")
        verbose_name_plural = _("operator API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"


class PushDevice(models.Model):
    """A phone that asked to hear one queue's milestones while its app is in the background:
    the push token its platform gave it (Firebase Cloud Messaging or Apple Push), under the
    identity that registered it (``ticketqueue.push``)."""

    class Platform(models.TextChoices):
        FCM = "fcm", _("Firebase Cloud Messaging")
        APNS = "apns", _("Apple Push Notification service")

    queue = models.ForeignKey(
        Queue, on_delete=models.CASCADE, related_name="push_devices", verbose_name=_("queue")
    )
    identity = models.CharField(_("identity"), max_length=200)
    platform = models.CharField(_("platform"), max_length=8, choices=Platform.choices)
    token = models.CharField(_("push token"), max_length=1024)
    created_at = models.DateTimeField(_("registered at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("last registered at"), auto_now=True)

    class Meta:
        verbose_name = _("push device")
        verbose_name_plural = _("push devices")
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "platform", "token"], name="ticketqueue_pushdevice_unique"
            ),
        ]
        indexes = [models.Index(fields=["queue", "identity"], name="ticketqueue_push_who")]

    def __str__(self) -> str:
        return f"{self.platform} {self.token[:12]}…"
