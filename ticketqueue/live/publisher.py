"""Signal receivers that turn what the services did into live broadcasts, one per event.

Whatever process changed the queue (a Celery worker's tick, a WSGI worker's join) publishes;
every socket process applies. A tick is ONE message per queue, however many sockets listen.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.dispatch import receiver

from .. import services, signals
from ..core import EntryState
from . import transport

__all__ = ["publish"]

log = logging.getLogger("ticketqueue.live")


def publish(queue: Any, message: dict[str, Any]) -> None:
    """Broadcast one message about ``queue``; a failure is logged, never raised: the
    operation that triggered it has already happened, and sockets resync from the store."""
    try:
        transport.publish(queue.store_id, json.dumps(message, separators=(",", ":")).encode())
    except Exception:
        log.warning("live: publish failed", extra={"queue": queue.slug}, exc_info=True)


@receiver(signals.queue_ticked, dispatch_uid="ticketqueue.live.ticked")
def _ticked(sender: Any, queue: Any, result: services.TickResult, **kwargs: Any) -> None:
    counts = result.counts
    if counts is None:
        return
    publish(
        queue,
        {
            "k": "tick",
            "n": len(result.admitted),
            "t": counts.admitted_total,
            # Departures in the order they left; the last is number "dt" (the departed total).
            "d": result.departed,
            "dt": result.departed_total,
            "w": counts.waiting,
            "a": counts.active,
            "s": counts.state.value,
            "r": result.eta_rate,
            "st": counts.stock,
        },
    )


@receiver(signals.entries_admitted, dispatch_uid="ticketqueue.live.admitted")
def _admitted(sender: Any, queue: Any, admissions: list[Any], **kwargs: Any) -> None:
    # Passes are deterministic per admission: signing here gives the same token the tick made.
    signed = kwargs.get("passes") or {}
    items = [
        [
            a.identity,
            a.seq,
            signed.get(a.seq)
            or services.issue_pass(queue, a.seq, a.identity, a.admitted_at, a.expires_at),
            a.expires_at,
        ]
        for a in admissions
    ]
    if items:
        publish(queue, {"k": "granted", "items": items})


@receiver(signals.device_moved, dispatch_uid="ticketqueue.live.device")
def _device_moved(sender: Any, queue: Any, identity: str, device: str, **kwargs: Any) -> None:
    publish(queue, {"k": "device", "identity": identity, "device": device})


@receiver(signals.entry_joined, dispatch_uid="ticketqueue.live.joined")
def _joined(sender: Any, queue: Any, placement: Any, **kwargs: Any) -> None:
    # Other tabs and devices of the identity learn their place (with the totals read with it);
    # an admission at once is announced by entries_admitted. A RedisStore that announced the
    # join from its script (RedisStore.announce_joins) sent this same message already.
    if placement.state is EntryState.WAITING and not kwargs.get("announced"):
        counts = kwargs.get("counts")
        publish(
            queue,
            {
                "k": "joined",
                "identity": placement.identity,
                "seq": placement.seq,
                "order": placement.order,
                "position": placement.position,
                "t": None if counts is None else counts.admitted_total,
                "dt": None if counts is None else counts.departed_total,
            },
        )


def _ended(queue: Any, kind: str, reason: str, changes: list[Any]) -> None:
    if changes:
        items = [[c.identity, c.seq] for c in changes]
        publish(queue, {"k": kind, "reason": reason, "items": items})


@receiver(signals.passes_expired, dispatch_uid="ticketqueue.live.expired")
def _expired(sender: Any, queue: Any, changes: list[Any], **kwargs: Any) -> None:
    _ended(queue, "revoked", "expired", changes)


@receiver(signals.pass_released, dispatch_uid="ticketqueue.live.released")
def _released(sender: Any, queue: Any, change: Any, **kwargs: Any) -> None:
    _ended(queue, "revoked", "released", [change])


@receiver(signals.entries_revoked, dispatch_uid="ticketqueue.live.revoked")
def _revoked(
    sender: Any, queue: Any, changes: list[Any], reason: str = "operator", **kwargs: Any
) -> None:
    _ended(queue, "revoked", reason, changes)


@receiver(signals.entries_departed, dispatch_uid="ticketqueue.live.departed")
def _departed(sender: Any, queue: Any, changes: list[Any], **kwargs: Any) -> None:
    left = [c for c in changes if c.state is EntryState.LEFT]
    abandoned = [c for c in changes if c.state is EntryState.ABANDONED]
    _ended(queue, "left", "left", left)
    _ended(queue, "left", "abandoned", abandoned)


@receiver(signals.queue_closed, dispatch_uid="ticketqueue.live.closed")
def _closed(sender: Any, queue: Any, **kwargs: Any) -> None:
    publish(queue, {"k": "closed"})


@receiver(signals.queue_state_changed, dispatch_uid="ticketqueue.live.state")
def _state(sender: Any, queue: Any, previous: str, state: str, **kwargs: Any) -> None:
    if state != "closed":  # queue_closed says more
        publish(queue, {"k": "state", "state": state, "previous": previous})
