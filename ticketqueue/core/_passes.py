"""Queue pass claims: what a pass says, independent of how it is signed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._errors import PassInvalid

__all__ = ["REQUIRED_CLAIMS", "PassClaims", "pass_audience", "pass_jti"]

REQUIRED_CLAIMS = ("iss", "aud", "sub", "idn", "jti", "iat", "exp")


def pass_audience(queue_id: str) -> str:
    """The ``aud`` of passes for one queue: a pass for queue A never opens queue B."""
    return f"ticketqueue:queue:{queue_id}"


def pass_jti(queue_id: str, seq: int) -> str:
    """One admission, one pass: the entry's seq is unique in its queue and admitted once."""
    return f"{queue_id}.{seq}"


@dataclass(frozen=True)
class PassClaims:
    issuer: str
    queue_id: str
    seq: int
    identity: str
    issued_at: int
    expires_at: int
    #: The device the pass is bound to (``dev``: a digest of its device id), for queues with
    #: one device per person; None: any device of the identity may present it.
    device: str | None = None

    @property
    def audience(self) -> str:
        return pass_audience(self.queue_id)

    @property
    def jti(self) -> str:
        return pass_jti(self.queue_id, self.seq)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(self.seq),
            "idn": self.identity,
            "jti": self.jti,
            "iat": self.issued_at,
            "exp": self.expires_at,
        }
        if self.device is not None:
            payload["dev"] = self.device
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PassClaims:
        """Rebuild claims from a payload whose signature and times were already checked."""
        try:
            aud = payload["aud"]
            prefix = pass_audience("")
            if not isinstance(aud, str) or not aud.startswith(prefix):
                raise PassInvalid()
            claims = cls(
                issuer=str(payload["iss"]),
                queue_id=aud[len(prefix) :],
                seq=int(payload["sub"]),
                identity=str(payload["idn"]),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
                device=_device(payload.get("dev")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PassInvalid() from exc
        if payload.get("jti") != claims.jti:
            raise PassInvalid()
        return claims


def _device(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError("dev")
    return value
