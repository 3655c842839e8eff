"""GroupCommit: concurrent callers share writes, and each returns only once its item is written."""

import threading
import time

import pytest

from ticketqueue.core import GroupCommit

WAIT = 10  # seconds before a stuck test fails rather than hangs


class Disk:
    """A write function whose first call blocks until the test lets it go, so that the other
    callers provably arrive while a write is in flight."""

    def __init__(self, fail_on=(), refuse=()) -> None:
        self.writes: list[list[str]] = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        self.fail_on = set(fail_on)
        self.refuse = set(refuse)

    def __call__(self, items):
        items = list(items)
        if not self.writes:
            self.writes.append(items)
            self.first_started.set()
            assert self.release_first.wait(WAIT)
        else:
            self.writes.append(items)
        if self.fail_on & set(items):
            raise OSError(f"disk full while writing {items}")
        return {
            i: ValueError(f"{item} refused") for i, item in enumerate(items) if item in self.refuse
        }

    def written(self) -> list[str]:
        return [item for batch in self.writes for item in batch]


def submit_in_thread(group, item, outcomes):
    def run():
        try:
            group.submit(item)
            outcomes[item] = ("written", item in written_before(group))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            outcomes[item] = ("raised", exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def written_before(group):
    return group._write.written()  # noqa: SLF001 - the Disk behind it


def wait_queued(group, n):
    deadline = time.monotonic() + WAIT
    while group.queued < n:
        assert time.monotonic() < deadline, f"only {group.queued} of {n} queued"
        time.sleep(0.001)


def submit_behind_a_held_write(group, disk, followers, *, one_by_one=False):
    """ "a" starts a write that the disk holds; ``followers`` submit meanwhile (``one_by_one``:
    each queued before the next starts). Then the disk lets go; returns each caller's
    outcome once all have returned."""
    outcomes: dict[str, tuple] = {}
    threads = [submit_in_thread(group, "a", outcomes)]
    assert disk.first_started.wait(WAIT)
    for item in followers:
        threads.append(submit_in_thread(group, item, outcomes))
        if one_by_one:
            wait_queued(group, len(threads) - 1)
    wait_queued(group, len(followers))
    assert outcomes == {}  # nobody has returned: "a" is still being written
    disk.release_first.set()
    for thread in threads:
        thread.join(WAIT)
    return outcomes


def test_a_caller_alone_writes_alone():
    disk = Disk()
    disk.release_first.set()
    group = GroupCommit(disk)
    group.submit("a")
    group.submit("b")
    assert disk.writes == [["a"], ["b"]]


def test_callers_arriving_during_a_write_share_the_next_one_and_return_after_it():
    disk = Disk()
    group = GroupCommit(disk)
    outcomes = submit_behind_a_held_write(group, disk, "bcd")
    assert disk.writes[0] == ["a"]
    assert sorted(disk.writes[1]) == ["b", "c", "d"] and len(disk.writes) == 2
    # Each caller's item was written when its submit returned.
    assert outcomes == {item: ("written", True) for item in "abcd"}
    assert group.queued == 0


def test_a_batch_is_at_most_limit_items():
    disk = Disk()
    outcomes = submit_behind_a_held_write(GroupCommit(disk, limit=2), disk, "bcde", one_by_one=True)
    assert disk.writes == [["a"], ["b", "c"], ["d", "e"]]
    assert all(outcome == ("written", True) for outcome in outcomes.values())


def test_every_caller_of_a_failed_write_raises_and_the_next_writes_go_on():
    disk = Disk(fail_on={"c"})
    group = GroupCommit(disk)
    outcomes = submit_behind_a_held_write(group, disk, "bc")
    assert outcomes["a"] == ("written", True)
    for item in "bc":  # the leader of the batch and the caller it wrote for
        kind, error = outcomes[item]
        assert kind == "raised" and isinstance(error, OSError) and "disk full" in str(error)
    group.submit("d")  # nothing is left stuck
    assert disk.writes[-1] == ["d"]


def test_an_item_the_write_refused_raises_for_its_caller_alone():
    disk = Disk(refuse={"c"})
    group = GroupCommit(disk)
    outcomes = submit_behind_a_held_write(group, disk, "bcd")
    assert sorted(disk.writes[1]) == ["b", "c", "d"]  # one write for the three
    kind, error = outcomes["c"]
    assert kind == "raised" and isinstance(error, ValueError) and "c refused" in str(error)
    assert {item: outcomes[item] for item in "abd"} == {item: ("written", True) for item in "abd"}


def test_an_interrupted_write_strands_nobody_and_its_followers_get_an_error_of_their_own():
    class Interrupted(BaseException):  # a KeyboardInterrupt, say: the leading thread's own
        pass

    class InterruptedDisk(Disk):
        def __call__(self, items):
            super().__call__(items)
            if "b" in items:
                raise Interrupted

    disk = InterruptedDisk()
    group = GroupCommit(disk)
    outcomes = submit_behind_a_held_write(group, disk, "bc")
    assert sorted(disk.writes[1]) == ["b", "c"]
    leader, follower = ("b", "c") if disk.writes[1][0] == "b" else ("c", "b")
    assert isinstance(outcomes[leader][1], Interrupted)
    error = outcomes[follower][1]
    assert isinstance(error, RuntimeError) and isinstance(error.__cause__, Interrupted)
    group.submit("d")
    assert disk.writes[-1] == ["d"]


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(print, limit=0)
