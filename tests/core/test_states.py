"""Entry moves: the rows follow the store along ENTRY_MOVES, never back."""

from ticketqueue.core import ENDED_STATES, ENTRY_MOVES, LIVE_STATES, EntryState, moved_from

W, A = EntryState.WAITING, EntryState.ADMITTED


def test_a_row_reaches_a_state_from_every_state_that_leads_to_it():
    assert moved_from(A) == {W}
    # The journal keeps an entry's latest state only: a waiting row may skip the admission.
    assert moved_from(EntryState.COMPLETED) == moved_from(EntryState.EXPIRED) == {W, A}
    assert moved_from(EntryState.REVOKED) == moved_from(EntryState.ABANDONED) == {W, A}
    assert moved_from(EntryState.LEFT) == {W}  # only a waiting entry leaves
    assert moved_from(W) == frozenset()  # nothing goes back to the line


def test_ended_states_end_everything_and_live_ones_move_on():
    assert set(LIVE_STATES) == set(ENTRY_MOVES) == {W, A}
    assert set(LIVE_STATES) | set(ENDED_STATES) == set(EntryState)
    for state in map(EntryState, ENDED_STATES):
        assert not any(state in moved_from(other) for other in EntryState)
