"""The pre-queue shuffle: at opening, everyone who joined early gets a random, recorded order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import groupby

from ._priority import priority_of

__all__ = ["shuffle_order"]


def shuffle_order(ranked: Sequence[tuple[int, float]], seed: int) -> dict[int, float]:
    """New line orders for ``(seq, order)`` pairs: the same set of orders, dealt out at random.

    Reusing the existing orders keeps everyone who joins after the shuffle behind the pre-queue,
    and the same seed always deals the same way, so the draw can be audited and replayed. A
    priority group is drawn within its own band (``core._priority``): the draw never moves
    anyone into another group's part of the line.
    """
    ordered = sorted(ranked, key=lambda pair: pair[1])
    rng = random.Random(seed)
    dealt: dict[int, float] = {}
    for _, band in groupby(ordered, key=lambda pair: priority_of(pair[1])):
        pairs = list(band)
        seqs = [seq for seq, _ in pairs]
        rng.shuffle(seqs)
        dealt.update({seq: order for seq, (_, order) in zip(seqs, pairs, strict=True)})
    return dealt
