"""Proof of work: the puzzle a queue can set before it gives out a place (hashcash-style).

A nonce solves a challenge at difficulty ``d`` when SHA-256 of ``"<challenge>:<nonce>"`` (UTF-8)
starts with ``d`` zero bits: about ``2**d`` tries to find, one hash to check. The widget's worker
(``static/ticketqueue/work.js``) computes the same thing.
"""

from __future__ import annotations

import hashlib
import itertools
import re

__all__ = ["MAX_DIFFICULTY", "NONCE_PATTERN", "solve", "solves"]

#: 2**32 tries is hours in a browser: no sale needs more.
MAX_DIFFICULTY = 32

#: What a nonce may be: short, and nothing a log or a URL must escape.
NONCE_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,32}")


def solves(challenge: str, nonce: str, difficulty: int) -> bool:
    """Whether ``nonce`` solves ``challenge`` at ``difficulty`` (a malformed nonce never does)."""
    if not 0 <= difficulty <= MAX_DIFFICULTY or NONCE_PATTERN.fullmatch(nonce) is None:
        return False
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return difficulty == 0 or int.from_bytes(digest[:4], "big") >> (32 - difficulty) == 0


def solve(challenge: str, difficulty: int) -> str:
    """The first decimal nonce that solves ``challenge``: what a client does, in Python."""
    for n in itertools.count():
        if solves(challenge, str(n), difficulty):
            return str(n)
    raise AssertionError("unreachable")
