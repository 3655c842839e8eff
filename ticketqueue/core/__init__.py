"""The pure core of ticketqueue: state machines, outflow policy, ETA, pass claims, shuffle.

No Django here; time and randomness come in as arguments.
"""

from ._errors import *  # noqa: F403
from ._errors import __all__ as _errors_all
from ._eta import (
    FLOW_SAMPLE_EVERY,
    FLOW_WINDOW,
    estimate_eta,
    flow_in_window,
    line_rate,
    mean_hold,
    measured_rate,
)
from ._group_commit import GroupCommit
from ._limits import LIMIT_SLACK, LimitWindow, limit_check
from ._line import LineMove, moved_place
from ._outflow import BURST_SECONDS, Bucket, OutflowPolicy
from ._passes import REQUIRED_CLAIMS, PassClaims, pass_audience, pass_jti
from ._prequeue import shuffle_order
from ._priority import MAX_PRIORITY, PRIORITY_BAND, priority_of, priority_order
from ._states import (
    ENDED_STATES,
    ENTRY_MOVES,
    LIVE_STATES,
    EntryState,
    QueueMode,
    QueueState,
    check_queue_transition,
    moved_from,
)
from ._work import MAX_DIFFICULTY, NONCE_PATTERN, solve, solves

__all__ = [
    *_errors_all,
    "BURST_SECONDS",
    "ENDED_STATES",
    "ENTRY_MOVES",
    "LIVE_STATES",
    "FLOW_SAMPLE_EVERY",
    "FLOW_WINDOW",
    "LIMIT_SLACK",
    "MAX_DIFFICULTY",
    "MAX_PRIORITY",
    "NONCE_PATTERN",
    "REQUIRED_CLAIMS",
    "Bucket",
    "EntryState",
    "GroupCommit",
    "LimitWindow",
    "LineMove",
    "OutflowPolicy",
    "PRIORITY_BAND",
    "PassClaims",
    "QueueMode",
    "QueueState",
    "check_queue_transition",
    "moved_from",
    "moved_place",
    "estimate_eta",
    "line_rate",
    "mean_hold",
    "flow_in_window",
    "limit_check",
    "measured_rate",
    "pass_audience",
    "pass_jti",
    "priority_of",
    "priority_order",
    "shuffle_order",
    "solve",
    "solves",
]
