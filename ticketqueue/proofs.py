"""What a queue may ask a new place to bring besides room in line: proof of work, a CAPTCHA.

Both are per queue (``Queue.work_difficulty``, ``Queue.captcha_required``) and asked only of a
join that would *start* an entry: someone already in line keeps their place without. A join
without what the queue asks is refused with ``proof_required`` and a challenge::

    {"work": "<token>", "difficulty": 18, "captcha": true}

The work token is minted here for this queue and identity: ``<difficulty>.<expires>.<salt>.<mac>``,
the mac an HMAC-SHA256 (key derived from SECRET_KEY for this use only) over the queue, the
identity and the rest. It costs no store call to mint; verifying is one HMAC and one SHA-256
(microseconds) and then one store call that spends it (``claim_use``): a token solves one join.
A token minted at a lower difficulty than the queue's current one no longer counts, so raising
the difficulty during an attack also voids the cheap puzzles bots gathered before.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .captcha import MAX_TOKEN, get_verifier
from .conf import queue_settings
from .core import CaptchaFailed, InvalidInput, ProofInvalid, ProofRequired, solves
from .invites import MAX_INVITE
from .keys import short_mac
from .store import get_store

if TYPE_CHECKING:
    from .models import Queue

__all__ = ["JoinProof", "challenge", "check", "demanded", "mint_work"]

#: A token is at most this long (a nonce is at most 32 characters: core.NONCE_PATTERN).
MAX_WORK_TOKEN = 128


@dataclass(frozen=True)
class JoinProof:
    """What a client brought to a join: a solved work token, a CAPTCHA token, an invite."""

    work: str = ""
    nonce: str = ""
    captcha: str = ""
    invite: str = ""

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> JoinProof | None:
        """From a join message or request body (``work``, ``nonce``, ``captcha``, ``invite``,
        all strings); None when it brings none of them, InvalidInput when they are malformed."""
        if not data:
            return None
        values = {}
        fields = (
            ("work", MAX_WORK_TOKEN),
            ("nonce", 32),
            ("captcha", MAX_TOKEN),
            ("invite", MAX_INVITE),
        )
        for name, longest in fields:
            value = data.get(name, "")
            if not isinstance(value, str) or len(value) > longest:
                raise InvalidInput(f"'{name}' must be a string of at most {longest} characters.")
            values[name] = value
        proof = cls(**values)
        return proof if proof.work or proof.captcha or proof.invite else None


def demanded(queue: Queue) -> bool:
    return bool(queue.work_difficulty) or queue.captcha_required


def challenge(queue: Queue, identity: str, now: float) -> dict[str, Any]:
    """What ``identity`` must bring to take a place in ``queue`` now."""
    difficulty = int(queue.work_difficulty)
    found: dict[str, Any] = {"difficulty": difficulty, "captcha": bool(queue.captcha_required)}
    if difficulty:
        expires = now + float(queue_settings.WORK_CHALLENGE_TTL)
        found["work"] = mint_work(queue.store_id, identity, difficulty, expires)
    return found


def mint_work(queue_id: str, identity: str, difficulty: int, expires: float) -> str:
    body = f"{difficulty}.{math.ceil(expires)}.{secrets.token_urlsafe(9)}"
    return f"{body}.{_mac(queue_id, identity, body)}"


def check(queue: Queue, identity: str, proof: JoinProof | None, address: str, now: float) -> None:
    """Refuse (``proof_required``, ``proof_invalid``, ``captcha_failed``, each with a new
    challenge) unless ``proof`` brings what ``queue`` asks; spends the work token. The CAPTCHA is
    asked last: a wrong or replayed work token costs the provider nothing."""
    if proof is None or not (proof.work or proof.captcha):
        raise ProofRequired(challenge(queue, identity, now))
    if queue.work_difficulty and not _work_holds(queue, identity, proof, now):
        raise ProofInvalid(challenge(queue, identity, now))
    if queue.captcha_required and not get_verifier().verify(proof.captcha, address):
        raise CaptchaFailed(challenge(queue, identity, now))


def _work_holds(queue: Queue, identity: str, proof: JoinProof, now: float) -> bool:
    parts = proof.work.split(".")
    if len(parts) != 4 or not all(part.isdigit() for part in parts[:2]):
        return False
    difficulty, expires, salt, mac = int(parts[0]), int(parts[1]), parts[2], parts[3]
    body = proof.work[: -len(mac) - 1]
    if not hmac.compare_digest(mac, _mac(queue.store_id, identity, body)):
        return False  # not ours, or another queue's or identity's
    if expires <= now or difficulty < queue.work_difficulty:
        return False
    if not solves(proof.work, proof.nonce, difficulty):
        return False
    return get_store().claim_use(queue.store_id, f"work:{salt}", 1, expires - now + 1, now)


def _mac(queue_id: str, identity: str, body: str) -> str:
    return short_mac("proofs", f"{queue_id}|{identity}|{body}")
