"""What an operator does to a queue, each step audited: the admin and the operator API both
act through here, so a change made either way leaves the same ``OperatorAction`` row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import notifications, services
from .core import InvalidTransition, QueueState, check_queue_transition
from .models import OperatorAction, OperatorKey, Queue

__all__ = [
    "KNOBS",
    "Actor",
    "admit",
    "created",
    "edited",
    "groups",
    "knobs",
    "move",
    "record",
    "run",
    "sell_out",
]

#: The knobs an operator may change while a sale runs; each save pushes them to the store.
KNOBS = (
    "mode",
    "capacity",
    "rate_per_minute",
    "purchase_window",
    "disconnect_grace",
    "pass_idle_grace",
    "notify_within",
    "notify_minutes_left",
    "notify_pass_ending",
    "passes_per_identity",
    "max_size",
    "who_may_join",
    "device_policy",
    "work_difficulty",
    "captcha_required",
    "stock",
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a person (the admin, a staff token), an operator API key, or ticketqueue itself
    (``label``: closing a sold-out queue)."""

    user: Any = None
    key: OperatorKey | None = None
    label: str = ""

    @classmethod
    def of(cls, request: Any) -> Actor:
        key = getattr(request, "auth", None)
        if isinstance(key, OperatorKey):
            return cls(key=key)
        user = getattr(request, "user", None)
        return cls(user=user if getattr(user, "is_authenticated", False) else None)

    @property
    def name(self) -> str:
        if self.key is not None:
            return f"key:{self.key.name}"[:150]
        return self.user.get_username() if self.user is not None else self.label


def knobs(queue: Queue) -> dict[str, Any]:
    return {"state": queue.state, **{k: getattr(queue, k) for k in KNOBS}}


def groups(queue: Queue) -> list[list[Any]]:
    return [[g.name, g.priority] for g in queue.priority_groups.order_by("-priority", "name")]


def record(
    actor: Actor,
    queue: Queue,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    count: int | None = None,
) -> OperatorAction:
    row = OperatorAction(
        queue=queue,
        queue_name=queue.name,
        user=actor.user,
        key=actor.key,
        username=actor.name,
        action=action,
        at=timezone.now(),
        before=before,
        after=after,
        count=count,
    )
    row.save()
    return row


#: Who closes a queue whose stock ran out, in the audit log.
SOLD_OUT = Actor(label="ticketqueue: sold out")


def _push(queue: Queue) -> None:
    # A queue the store lost is rebuilt first: configuring it bare would hide its line.
    services.ensure_loaded(queue)
    services.configure(queue)  # the next tick admits by the new outflow (and the stock)


def sell_out(queue: Queue) -> bool:
    """Close ``queue`` because nothing is left to sell (audited as ``SOLD_OUT``); False when
    it was closed already (by another process, or an operator)."""
    if queue.state == QueueState.CLOSED.value:
        return False
    try:
        move(SOLD_OUT, queue, "close")
    except InvalidTransition:
        queue.refresh_from_db()
        return False
    return True


def created(actor: Actor, queue: Queue) -> None:
    """``queue`` was just saved for the first time."""
    _push(queue)
    record(actor, queue, OperatorAction.Kind.CREATE, {}, knobs(queue))
    if queue.stock == 0:
        sell_out(queue)


def edited(actor: Actor, queue: Queue, before: dict[str, Any]) -> None:
    """``queue``'s knobs were just saved; ``before`` is ``knobs()`` of the row before."""
    _push(queue)
    after = knobs(queue)
    changed = [k for k in after if before.get(k) != after[k]]
    if changed:
        record(
            actor,
            queue,
            OperatorAction.Kind.EDIT,
            {k: before.get(k) for k in changed},
            {k: after[k] for k in changed},
        )
    if queue.stock == 0:
        sell_out(queue)


def run(
    actor: Actor, queue: Queue, kind: str, operate: Callable[[Queue], int | None]
) -> int | None:
    """``operate(queue)``, then its audit row; a refusal (a TicketQueueError) records nothing."""
    before = knobs(queue)
    count = operate(queue)
    queue.refresh_from_db()
    record(actor, queue, kind, before, knobs(queue), count)
    return count


def _admit(queue: Queue, n: int) -> int:
    result = services.tick(queue, limit=n, use_rate=False)
    notifications.notify_turn(queue, result.admitted)
    return len(result.admitted)


def admit(actor: Actor, queue: Queue, n: int) -> int:
    """Admit up to ``n`` from the head of the line now: past the rate, never past capacity."""
    return run(actor, queue, OperatorAction.Kind.ADMIT, lambda q: _admit(q, n)) or 0


def _resume(queue: Queue) -> None:
    if queue.state != QueueState.PAUSED.value:
        raise InvalidTransition(_("Only a paused queue can be resumed."))
    services.resume(queue)


#: Each operator move: (the audit kind, what it does).
MOVES: dict[str, tuple[str, Callable[[Queue], int | None]]] = {
    "open": (OperatorAction.Kind.OPEN, lambda q: services.open_queue(q) and None),
    "pause": (OperatorAction.Kind.PAUSE, lambda q: services.pause(q) and None),
    "resume": (OperatorAction.Kind.RESUME, _resume),
    "close": (OperatorAction.Kind.CLOSE, services.close),
    "rebuild": (OperatorAction.Kind.REBUILD, services.rebuild),
}


def move(actor: Actor, queue: Queue, op: str) -> int | None:
    """One of ``MOVES`` (open, pause, resume, close, rebuild), audited; close returns how many
    waiting entries were turned away, rebuild how many live entries were loaded."""
    kind, operate = MOVES[op]
    return run(actor, queue, kind, operate)


def to_state(queue: Queue, state: str) -> str | None:
    """The move that takes ``queue`` to ``state`` (None: it is there already); raises
    InvalidTransition for a move no queue makes (back to scheduled, out of closed)."""
    current, target = QueueState(queue.state), QueueState(state)
    if target is current:
        return None
    check_queue_transition(current, target)
    if target is QueueState.OPEN:
        return "resume" if current is QueueState.PAUSED else "open"
    return "pause" if target is QueueState.PAUSED else "close"


def revoke(actor: Actor, queue: Queue, seqs: Sequence[int]) -> int:
    changes = services.revoke(queue, sorted(seqs), reason="operator")
    record(
        actor,
        queue,
        OperatorAction.Kind.REVOKE,
        {"seqs": sorted(seqs)},
        {"revoked": sorted(c.seq for c in changes)},
        len(changes),
    )
    return len(changes)
