"""The pre-queue shuffle: at opening, everyone who joined early gets a random, recorded order."""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["shuffle_order"]


def shuffle_order(ranked: Sequence[tuple[int, float]], seed: int) -> dict[int, float]:
    """New line orders for ``(seq, order)`` pairs: the same set of orders, dealt out at random.

    Reusing the existing orders keeps everyone who joins after the shuffle behind the pre-queue,
    and the same seed always deals the same way, so the draw can be audited and replayed.
    """
    ordered = sorted(ranked, key=lambda pair: pair[1])
    seqs = [seq for seq, _ in ordered]
    random.Random(seed).shuffle(seqs)
    return {seq: order for seq, (_, order) in zip(seqs, ordered, strict=True)}
