"""The errors a caller of ticketqueue can cause, each with a stable machine-readable code.

    TicketQueueError
    ├── QueueError
    │   ├── QueueNotFound        queue_not_found
    │   ├── QueueClosed          queue_closed
    │   ├── QueueFull            queue_full
    │   ├── LoginRequired        login_required
    │   ├── InviteRequired       invite_required
    │   │   └── InviteInvalid    invite_invalid
    │   ├── DeviceRequired       device_required
    │   ├── DeviceInUse          device_in_use
    │   ├── DeviceReplaced       device_replaced
    │   ├── ProofRequired        proof_required
    │   │   ├── ProofInvalid     proof_invalid
    │   │   └── CaptchaFailed    captcha_failed
    │   ├── PassLimitReached     pass_limit_reached
    │   ├── QueueUnavailable     queue_unavailable
    │   │   ├── StoreUnreachable store_unreachable
    │   │   ├── DatabaseUnavailable database_unavailable
    │   │   └── CaptchaUnavailable captcha_unavailable
    │   └── InvalidTransition    invalid_transition
    ├── EntryNotFound            entry_not_found
    ├── PushDeviceNotFound       push_device_not_found
    ├── PassError
    │   ├── PassInvalid          pass_invalid
    │   │   └── PassNotYetValid  pass_not_yet_valid
    │   ├── PassMissing          pass_missing
    │   ├── PassExpired          pass_expired
    │   ├── PassWrongQueue       pass_wrong_queue
    │   ├── PassWrongIdentity    pass_wrong_identity
    │   ├── PassWrongDevice      pass_wrong_device
    │   └── PassNotActive        pass_not_active
    ├── Throttled                throttled
    └── InvalidInput             invalid_input

Codes never change once published; docs/errors.md is the table users read.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "CaptchaFailed",
    "CaptchaUnavailable",
    "DatabaseUnavailable",
    "DeviceInUse",
    "DeviceReplaced",
    "DeviceRequired",
    "EntryNotFound",
    "InvalidInput",
    "InvalidTransition",
    "InviteInvalid",
    "InviteRequired",
    "LoginRequired",
    "PassError",
    "PassExpired",
    "PassInvalid",
    "PassLimitReached",
    "PassMissing",
    "PassNotActive",
    "PassNotYetValid",
    "PassWrongDevice",
    "PassWrongIdentity",
    "PassWrongQueue",
    "ProofInvalid",
    "ProofRequired",
    "PushDeviceNotFound",
    "QueueClosed",
    "QueueError",
    "QueueFull",
    "QueueNotFound",
    "QueueUnavailable",
    "StoreUnreachable",
    "Throttled",
    "TicketQueueError",
]


def gettext_noop(message: str) -> str:
    """Marks a message for the translation catalogs (makemessages extracts this name); the
    Django side translates it when it answers (``ticketqueue.errors``). The core stays pure."""
    return message


class TicketQueueError(Exception):
    """Base class: every error carries a stable ``code`` and a human ``message``."""

    code: str = "ticketqueue_error"
    default_message: str = gettext_noop("The waiting room could not handle this request.")
    #: The HTTP status an adapter should answer with.
    status: int = 400

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def details(self) -> dict[str, Any]:
        """Fields a client needs beside code and message (when to retry, what to bring)."""
        return {}


class QueueError(TicketQueueError):
    code = "queue_error"


class QueueNotFound(QueueError):
    code = "queue_not_found"
    default_message = gettext_noop("There is no such queue.")
    status = 404


class QueueClosed(QueueError):
    code = "queue_closed"
    default_message = gettext_noop("This queue is closed: the sale has ended or sold out.")
    status = 409


class QueueFull(QueueError):
    code = "queue_full"
    default_message = gettext_noop("This queue is full; no more people can join it.")
    status = 409


class LoginRequired(QueueError):
    code = "login_required"
    default_message = gettext_noop("Log in to take a place in this line.")
    status = 403


class InviteRequired(QueueError):
    code = "invite_required"
    default_message = gettext_noop("This line is by invitation: open your invite link.")
    status = 403


class InviteInvalid(InviteRequired):
    code = "invite_invalid"
    default_message = gettext_noop(
        "This invite cannot be used: it is for another sale, has expired or was used up."
    )


class DeviceRequired(QueueError):
    code = "device_required"
    default_message = gettext_noop(
        "This line keeps one device per person: send your device id (the tq_device cookie the "
        "waiting page sets, or X-Queue-Device)."
    )
    status = 400


class DeviceInUse(QueueError):
    code = "device_in_use"
    default_message = gettext_noop(
        "Your turn came on another of your devices: finish your purchase there."
    )
    status = 409


class DeviceReplaced(QueueError):
    code = "device_replaced"
    default_message = gettext_noop(
        "You opened this line on another device; your place moved there."
    )
    status = 409


class ProofRequired(QueueError):
    """The queue asks a new place for proof (work, a CAPTCHA): ``challenge`` says what to bring,
    and comes with every refusal of this family, so the client can try again at once."""

    code = "proof_required"
    default_message = gettext_noop("Solve the challenge to take a place in this line.")
    status = 403

    def __init__(self, challenge: dict[str, Any], message: str | None = None) -> None:
        super().__init__(message)
        self.challenge = challenge

    def details(self) -> dict[str, Any]:
        return {"challenge": self.challenge}


class ProofInvalid(ProofRequired):
    code = "proof_invalid"
    default_message = gettext_noop(
        "The proof is not valid (wrong, used, expired or too easy); solve the new challenge."
    )


class CaptchaFailed(ProofRequired):
    code = "captcha_failed"
    default_message = gettext_noop("The CAPTCHA was not accepted; please try again.")


class PassLimitReached(QueueError):
    code = "pass_limit_reached"
    default_message = gettext_noop("You already had your turn in this queue.")
    status = 409


class QueueUnavailable(QueueError):
    code = "queue_unavailable"
    default_message = gettext_noop(
        "The waiting room is briefly unavailable; try again in a moment."
    )
    status = 503


class StoreUnreachable(QueueUnavailable):
    code = "store_unreachable"
    default_message = gettext_noop(
        "The waiting room's store cannot be reached; try again in a moment."
    )


class DatabaseUnavailable(QueueUnavailable):
    code = "database_unavailable"
    default_message = gettext_noop(
        "The waiting room's database cannot be reached; try again in a moment."
    )


class CaptchaUnavailable(QueueUnavailable):
    code = "captcha_unavailable"
    default_message = gettext_noop("The CAPTCHA check cannot be reached; try again in a moment.")


class InvalidTransition(QueueError):
    code = "invalid_transition"
    default_message = gettext_noop("The queue cannot move to that state from its current one.")
    status = 409


class EntryNotFound(TicketQueueError):
    code = "entry_not_found"
    default_message = gettext_noop("You have no place in this queue.")
    status = 404


class PushDeviceNotFound(TicketQueueError):
    code = "push_device_not_found"
    default_message = gettext_noop("This device is not registered for this queue.")
    status = 404


class PassError(TicketQueueError):
    code = "pass_error"
    status = 403


class PassMissing(PassError):
    code = "pass_missing"
    default_message = gettext_noop("A queue pass is required.")


class PassInvalid(PassError):
    code = "pass_invalid"
    default_message = gettext_noop("The queue pass is not valid.")


class PassNotYetValid(PassInvalid):
    code = "pass_not_yet_valid"
    default_message = gettext_noop(
        "The queue pass is not valid yet (issued in the future: check the clocks)."
    )


class PassExpired(PassError):
    code = "pass_expired"
    default_message = gettext_noop("The queue pass has expired: the purchase window is over.")


class PassWrongQueue(PassError):
    code = "pass_wrong_queue"
    default_message = gettext_noop("The queue pass is for another queue.")


class PassWrongIdentity(PassError):
    code = "pass_wrong_identity"
    default_message = gettext_noop("The queue pass belongs to someone else.")


class PassWrongDevice(PassError):
    code = "pass_wrong_device"
    default_message = gettext_noop(
        "The queue pass belongs to another of your devices: buy on the device that was admitted."
    )


class PassNotActive(PassError):
    code = "pass_not_active"
    default_message = gettext_noop("The queue pass is no longer active (released or revoked).")


class Throttled(TicketQueueError):
    """Over a per-address or per-identity limit (joins, new visitors, connections): the same
    code as the REST API's throttles. ``wait``: seconds until the limit has room again."""

    code = "throttled"
    default_message = gettext_noop("Too many requests from here; try again in a moment.")
    status = 429

    def __init__(self, message: str | None = None, wait: float = 1.0) -> None:
        super().__init__(message)
        self.wait = wait

    def details(self) -> dict[str, Any]:
        return {"retry_after": max(1, math.ceil(self.wait))}


class InvalidInput(TicketQueueError):
    code = "invalid_input"
    default_message = gettext_noop("The request is not valid.")
