"""Services over the real store and database: joining, ticking, passes, operator actions."""

import pytest

from ticketqueue import passes, services, signals
from ticketqueue.conf import min_disconnect_grace
from ticketqueue.core import (
    EntryNotFound,
    InvalidTransition,
    LoginRequired,
    PassExpired,
    PassInvalid,
    PassNotActive,
    PassWrongIdentity,
    QueueClosed,
    QueueFull,
    QueueNotFound,
)
from ticketqueue.models import Admission, Entry, Queue
from ticketqueue.rows import as_datetime as _dt

from ..conftest import commands_sent

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_800_000_000.0


def rows(queue, **filters):
    return list(
        Entry.objects.filter(queue=queue, **filters).order_by("seq").values_list("seq", "state")
    )


def test_join_commits_the_row_before_answering(make_queue):
    queue = make_queue(mode="always", capacity=2)
    status = services.join(queue, "user:1", T0)
    assert (status.state, status.position, status.waiting) == ("waiting", 1, 1)
    assert rows(queue) == [(1, "waiting")]
    again = services.join(queue, "user:1", T0 + 1)
    assert again.seq == status.seq and rows(queue) == [(1, "waiting")]


def test_joins_of_one_moment_each_commit_their_row_before_answering(make_queue):
    queue = make_queue(mode="auto", capacity=1, purchase_window=60, who_may_join="users")
    answers = services.join_many(queue, ["user:1", "visitor:x", "user:2", "user:1"], T0)
    first, visitor, second, again = answers
    assert first.state == "admitted" and first.pass_token  # with its admission's row
    assert isinstance(visitor, LoginRequired)  # refused alone
    assert (second.state, second.position, second.seq) == ("waiting", 1, 2)
    assert (again.seq, again.state) == (first.seq, "admitted")  # the same identity: one place
    assert rows(queue) == [(1, "admitted"), (2, "waiting")]
    assert Admission.objects.filter(queue=queue).count() == 1
    assert services.join_many(queue, [], T0) == []


@pytest.mark.parametrize("people", [3, 12])  # PostgreSQL gets 10 rows and more as arrays
def test_a_join_whose_row_fails_is_taken_back_out_alone(make_queue, people):
    queue = make_queue(mode="always", capacity=1)
    # Another place's row holds seq 2 already, and the store does not know it (as if the
    # store had lost it; the next tick or join repairs the line from the rows).
    Entry.objects.create(
        queue=queue, identity="user:lost", seq=2, order=2.0, state="waiting", joined_at=_dt(T0)
    )
    answers = services.join_many(queue, [f"user:{i}" for i in range(1, people + 1)], T0)
    assert [a.state for a in answers] == ["waiting"] * people
    # user:2 joins again once the line is loaded from the rows: behind every committed row.
    seqs = [1, people + 1, *range(3, people + 1)]
    assert [a.seq for a in answers] == seqs
    assert [a.position for a in answers] == seqs
    assert rows(queue) == [(seq, "waiting") for seq in range(1, people + 2)]
    assert services.status(queue, "user:lost", T0).position == 2


def test_auto_mode_join_gets_a_pass_at_once(make_queue):
    queue = make_queue(mode="auto", capacity=1, purchase_window=60)
    first = services.join(queue, "user:1", T0)
    assert first.state == "admitted" and first.pass_token
    claims = passes.verify(first.pass_token, queue_id=queue.store_id, now=T0 + 1)
    assert (claims.identity, claims.seq) == ("user:1", first.seq)
    assert services.join(queue, "user:2", T0).position == 1
    assert rows(queue) == [(1, "admitted"), (2, "waiting")]
    assert Admission.objects.filter(queue=queue).count() == 1


def test_tick_admits_in_order_writes_rows_and_logs_each_admission_once(make_queue):
    queue = make_queue(mode="always", capacity=2, purchase_window=60)
    for i in range(5):
        services.join(queue, f"user:{i}", T0)
    result = services.tick(queue, T0 + 1)
    assert [a.seq for a in result.admitted] == [1, 2]
    assert len(result.passes) == 2
    assert rows(queue, state="admitted") == [(1, "admitted"), (2, "admitted")]
    assert services.status(queue, "user:3", T0 + 1).position == 2
    services.tick(queue, T0 + 2)
    assert Admission.objects.filter(queue=queue).count() == 2
    # Expiry frees the slots on the next tick and the next in line go through.
    result = services.tick(queue, T0 + 61)
    assert sorted(c.seq for c in result.expired) == [1, 2]
    assert [a.seq for a in result.admitted] == [3, 4]
    assert rows(queue, state="expired") == [(1, "expired"), (2, "expired")]


def test_status_returns_the_pass_once_granted(make_queue):
    queue = make_queue(mode="always", capacity=5)
    services.join(queue, "anon:abc", T0)
    services.tick(queue, T0 + 1)
    status = services.status(queue, "anon:abc", T0 + 2)
    assert status.state == "admitted" and status.position == 0
    assert passes.verify(status.pass_token, queue_id=queue.store_id, now=T0 + 2).seq == 1
    nobody = services.status(queue, "anon:nobody", T0 + 2)
    assert nobody.state is None and nobody.waiting == 0


def test_release_frees_the_slot_at_once_and_only_once(make_queue):
    queue = make_queue(mode="always", capacity=1, purchase_window=60)
    services.join(queue, "user:1", T0)
    services.join(queue, "user:2", T0)
    token = services.tick(queue, T0).passes[0][1]
    with pytest.raises(PassWrongIdentity):
        services.release(token, identity="user:2", now=T0 + 1)
    change = services.release(token, identity="user:1", now=T0 + 1)
    assert change.state.value == "completed"
    # The freed slot went to the next in line with the release, not at the next tick.
    assert services.status(queue, "user:2", T0 + 1).state == "admitted"
    with pytest.raises(PassNotActive):
        services.release(token, now=T0 + 1)
    assert services.tick(queue, T0 + 1).admitted == []  # the tick finds the slot taken
    assert rows(queue) == [(1, "completed"), (2, "admitted")]  # its rows follow the journal


def test_without_refill_the_freed_slot_waits_for_the_tick(make_queue, settings):
    settings.TICKETQUEUE = {**settings.TICKETQUEUE, "REFILL_ON_RELEASE": False}
    queue = make_queue(mode="always", capacity=1, purchase_window=60)
    services.join(queue, "user:1", T0)
    services.join(queue, "user:2", T0)
    token = services.tick(queue, T0).passes[0][1]
    services.release(token, identity="user:1", now=T0 + 1)
    assert services.status(queue, "user:2", T0 + 1).state == "waiting"
    assert [a.seq for a in services.tick(queue, T0 + 1).admitted] == [2]


def test_refill_keeps_to_the_rate_and_to_capacity(make_queue):
    # Two a minute: the first tick spends the bucket.
    queue = make_queue(mode="always", capacity=5, rate_per_minute=2, purchase_window=60)
    for i in range(4):
        services.join(queue, f"user:{i}", T0)
    first = services.tick(queue, T0).passes
    assert len(first) == 1
    services.release(first[0][1], now=T0 + 1)
    assert services.status(queue, "user:1", T0 + 1).state == "waiting"  # the rate says no
    later = services.tick(queue, T0 + 31).passes  # half a minute: one more by the rate
    assert [a.seq for a, _ in later] == [2]
    services.release(later[0][1], now=T0 + 61)  # another half minute: the bucket has one
    assert services.status(queue, "user:2", T0 + 61).state == "admitted"
    assert services.status(queue, "user:3", T0 + 61).state == "waiting"


def test_release_refuses_forged_and_expired_passes_and_changes_nothing(make_queue):
    queue = make_queue(mode="always", capacity=1, purchase_window=60)
    services.join(queue, "user:1", T0)
    token = services.tick(queue, T0).passes[0][1]
    with pytest.raises(PassInvalid) as err:
        services.release(token[:-2] + "xx", now=T0)
    assert err.value.code == "pass_invalid"
    with pytest.raises(PassExpired):
        services.release(token, now=T0 + 61)
    assert rows(queue) == [(1, "admitted")]


def test_leave_and_unknown_entry(make_queue):
    queue = make_queue(mode="always")
    services.join(queue, "user:1", T0)
    services.join(queue, "user:2", T0)
    services.leave(queue, "user:1", T0)
    assert services.status(queue, "user:2", T0).position == 1
    with pytest.raises(EntryNotFound) as err:
        services.leave(queue, "user:1", T0)
    assert err.value.code == "entry_not_found"
    assert rows(queue) == [(1, "left"), (2, "waiting")]


def test_unknown_queue_is_a_typed_error():
    with pytest.raises(QueueNotFound) as err:
        services.get_queue("no-such-sale")
    assert (err.value.code, err.value.status) == ("queue_not_found", 404)


def test_close_turns_everyone_waiting_away_and_refuses_joins(make_queue):
    queue = make_queue(mode="always", capacity=1)
    for i in range(3):
        services.join(queue, f"user:{i}", T0)
    services.tick(queue, T0)
    assert services.close(queue, T0 + 1) == 2
    with pytest.raises(QueueClosed):
        services.join(queue, "user:9", T0 + 2)
    assert rows(queue) == [(1, "admitted"), (2, "revoked"), (3, "revoked")]
    assert Entry.objects.filter(queue=queue).count() == 3
    with pytest.raises(InvalidTransition):
        services.pause(queue, T0 + 3)


def test_full_queue_refuses_a_clear_way(make_queue):
    queue = make_queue(mode="always", max_size=1)
    services.join(queue, "user:1", T0)
    with pytest.raises(QueueFull):
        services.join(queue, "user:2", T0)
    assert rows(queue) == [(1, "waiting")]


def test_pause_stops_admission_and_resume_restarts_it(make_queue):
    queue = make_queue(mode="always", capacity=5)
    services.join(queue, "user:1", T0)
    services.pause(queue, T0)
    assert services.tick(queue, T0 + 1).admitted == []
    assert services.join(queue, "user:2", T0 + 1).position == 2
    services.resume(queue, T0 + 2)
    assert len(services.tick(queue, T0 + 3).admitted) == 2


def test_prequeue_is_shuffled_once_with_a_recorded_seed(make_queue):
    from datetime import UTC, datetime

    queue = make_queue(
        state="scheduled",
        opens_at=datetime.fromtimestamp(T0 + 60, UTC),
        mode="always",
        capacity=100,
    )
    for i in range(30):
        services.join(queue, f"user:{i}", T0)
    assert services.tick(queue, T0 + 1).admitted == []
    services.open_queue(queue, T0 + 60, seed=42)
    queue.refresh_from_db()
    assert queue.prequeue_seed == 42 and queue.state == "open"
    late = services.join(queue, "user:late", T0 + 61)
    assert late.position == 31
    admitted = [a.seq for a in services.tick(queue, T0 + 62).admitted]
    assert admitted[-1] == late.seq
    assert sorted(admitted[:30]) == list(range(1, 31)) and admitted[:30] != list(range(1, 31))
    # The rows carry the drawn order, so a rebuild restores it.
    line = list(Entry.objects.filter(queue=queue).order_by("order").values_list("seq", flat=True))
    assert line == admitted


def test_revoke_by_operator(make_queue):
    queue = make_queue(mode="always", capacity=1)
    services.join(queue, "user:1", T0)
    services.join(queue, "user:2", T0)
    services.tick(queue, T0)
    changes = services.revoke(queue, [1, 2], now=T0 + 1)
    assert len(changes) == 2
    assert rows(queue) == [(1, "revoked"), (2, "revoked")]


def test_abandon_unseen_after_grace(make_queue):
    queue = make_queue(mode="always", disconnect_grace=100)
    services.join(queue, "user:1", T0)
    services.join(queue, "user:2", T0)
    services.heartbeat(queue, "user:2", T0 + 25)
    gone = services.abandon_unseen(queue, T0 + 110)
    assert [c.seq for c in gone] == [1]
    assert rows(queue) == [(1, "abandoned"), (2, "waiting")]


def test_a_grace_below_the_floor_counts_as_the_floor(make_queue):
    # Three heartbeats (75 s at the defaults): a row's 15 s must not abandon open sockets.
    queue = make_queue(mode="always", disconnect_grace=15)
    services.join(queue, "user:1", T0)
    assert services.abandon_unseen(queue, T0 + 70) == []
    assert [c.seq for c in services.abandon_unseen(queue, T0 + 76)] == [1]


def test_nobody_counted_as_present_is_abandoned(make_queue):
    """One definition: sockets that opened and then fell silent (frozen tabs) are present until
    PRESENCE_TIMEOUT; all that while their entries are kept, by the cleanup and by the
    admission that reaches them; once they are no longer present, the grace takes them."""
    queue = make_queue(mode="always", capacity=1, disconnect_grace=1)  # the floor counts
    people = ["user:a", "user:b"]
    for person in people:
        services.join(queue, person, T0)
    services.open_connections(queue, people, T0 + 10)  # what a socket does on opening
    t = T0 + 10
    while services.connected(queue, people, t + 1) == set(people):
        t += 1
        assert services.abandon_unseen(queue, t) == []
    assert t > T0 + 10 + 60  # present for a while: the test saw something
    admitted = services.tick(queue, t).admitted  # the last moment they are present
    assert [a.identity for a in admitted] == ["user:a"]
    later = max(t + 1, T0 + 10 + min_disconnect_grace() + 1)
    assert [c.seq for c in services.abandon_unseen(queue, later)] == [2]


def test_admission_abandons_a_head_unseen_past_its_grace(make_queue):
    queue = make_queue(mode="always", capacity=1, disconnect_grace=100)
    departed = []
    signals.entries_departed.connect(
        lambda sender, changes, **kw: departed.extend(changes), weak=False, dispatch_uid="t"
    )
    try:
        services.join(queue, "user:gone", T0)
        services.join(queue, "user:here", T0)
        services.heartbeat(queue, "user:here", T0 + 90)
        # No cleanup ran: the tick itself passes over the one who left long ago.
        result = services.tick(queue, T0 + 150)
    finally:
        signals.entries_departed.disconnect(dispatch_uid="t")
    assert [a.identity for a in result.admitted] == ["user:here"]
    assert [(c.seq, c.state.value) for c in departed] == [(1, "abandoned")]
    assert result.departed_total is not None and len(result.departed) == 1
    assert rows(queue) == [(1, "abandoned"), (2, "admitted")]


def test_a_heartbeat_that_crosses_its_admission_is_still_seen(make_queue):
    queue = make_queue(mode="always", capacity=1)
    services.join(queue, "user:1", T0)
    services.tick(queue, T0 + 1)
    assert services.heartbeat(queue, "user:1", T0 + 2) is True
    assert services.heartbeat(queue, "user:nobody", T0 + 2) is False


def test_a_scheduled_queue_opens_on_the_first_tick_after_its_time(make_queue):
    from datetime import UTC, datetime

    queue = make_queue(
        state="scheduled", opens_at=datetime.fromtimestamp(T0 + 60, UTC), mode="always", capacity=10
    )
    for i in range(5):
        services.join(queue, f"user:{i}", T0)
    assert services.tick(queue, T0 + 59).admitted == []
    assert len(services.tick(queue, T0 + 60).admitted) == 5
    queue.refresh_from_db()
    assert queue.state == "open" and queue.prequeue_seed is not None
    # Another worker holding a stale copy ticks too: no error, no second draw.
    stale = Queue.objects.get(pk=queue.pk)
    stale.state = "scheduled"
    services.tick(stale, T0 + 61)
    assert Queue.objects.get(pk=queue.pk).prequeue_seed == queue.prequeue_seed


def test_a_status_reads_its_place_and_the_totals_together(make_queue):
    queue = make_queue(mode="always", capacity=1)
    for i in range(5):
        services.join(queue, f"user:{i}", T0)
    services.leave(queue, "user:1", T0)
    services.leave(queue, "user:3", T0)
    services.tick(queue, T0 + 1)  # admits user:0, drains the two departures
    status = services.status(queue, "user:4", T0 + 1)
    assert (status.position, status.admitted_total, status.departed_total) == (2, 1, 2)
    assert services.join(queue, "user:4", T0 + 1) == status
    services.leave(queue, "user:2", T0 + 2)
    result = services.tick(queue, T0 + 2)
    # The tick hands on the departures in the order they left, with the number of the last.
    assert (result.departed, result.departed_total) == ([3.0], 3)
    assert services.status(queue, "user:4", T0 + 2).departed_total == 3


def test_status_join_and_queue_info_cost_one_store_round_trip_and_no_sql(
    make_queue, live_store, monkeypatch, django_assert_num_queries
):
    if not hasattr(live_store, "client"):
        pytest.skip("counts the commands sent to Redis")
    queue = make_queue(mode="always", capacity=2)
    for i in range(4):
        services.join(queue, f"user:{i}", T0)
    services.tick(queue, T0 + 1)
    services.status(queue, "user:3", T0 + 2)  # the scripts are loaded
    services.queue_info(queue, T0 + 2)
    sent = commands_sent(monkeypatch, live_store.client)
    with django_assert_num_queries(0):
        waiting = services.status(queue, "user:3", T0 + 2)
        assert sent == ["EVALSHA"]
        assert services.join(queue, "user:3", T0 + 2) == waiting  # returning: no row to write
        admitted = services.status(queue, "user:0", T0 + 2)
        info = services.queue_info(queue, T0 + 2)
    assert sent == ["EVALSHA"] * 4
    assert (waiting.position, waiting.waiting, waiting.active, waiting.admitted_total) == (
        2,
        2,
        2,
        2,
    )
    assert admitted.state == "admitted" and admitted.pass_token
    # No pass has ended yet: how fast the line moves is unknown to both.
    assert (info.waiting, info.active, info.eta_seconds, waiting.eta_seconds) == (2, 2, None, None)


def test_the_wait_estimate_follows_the_pace_of_passes_not_an_idle_spell(make_queue):
    """Capacity 2, passes held 10 s: the line moves 0.2 a second whenever people wait. A quiet
    spell between two rushes does not make the second rush's estimate longer, and passes still
    held far longer than the ended ones' mean lengthen it."""
    queue = make_queue(mode="always", capacity=2)
    for i in range(4):
        services.join(queue, f"user:{i}", T0)
    services.tick(queue, T0)  # user:0 and user:1
    for seq, end in ((1, T0 + 10), (2, T0 + 10)):
        services.release_entry(queue, seq, end)
    services.tick(queue, T0 + 10)  # user:2 and user:3; the line is empty
    for seq in (3, 4):
        services.release_entry(queue, seq, T0 + 20)
    # Ten quiet minutes, then a new rush.
    later = T0 + 620
    for i in range(10, 20):
        services.join(queue, f"user:{i}", later)
    services.tick(queue, later)
    last = services.status(queue, "user:19", later + 5)
    assert last.position == 8
    assert last.eta_seconds == 40  # 8 places at 2 per 10 s
    # The two holders of the rush are 300 s into their passes: the slots are slower now.
    slow = services.status(queue, "user:19", later + 300)
    assert slow.eta_seconds == pytest.approx(8 * (4 * 10 + 2 * 300) / 6 / 2, abs=1)


def test_a_queue_for_logged_in_users_refuses_visitors(make_queue):
    queue = make_queue(mode="always", who_may_join="users")
    with pytest.raises(LoginRequired):
        services.join(queue, "anon:" + "a" * 32, T0)
    assert services.join(queue, "user:7", T0).state == "waiting"
    assert services.queue_info(queue, T0).waiting == 1  # the visitor took nothing
