"""Group commit: callers that wait for the same kind of write at the same moment share one.

The first caller writes its item at once. Items submitted while that write is in flight queue
up; when it returns, the oldest of them leads: it writes all that queued (up to ``limit``) in
one call, and so on. There is no timer, so nobody waits longer than before: a caller alone
writes alone, and under load a batch is whatever arrived during the previous write. A write
runs on the thread of the caller that leads it (so with that thread's database connection).
Every caller returns only once the write holding its item has returned, and raises what that
write raised, or what the write refused its item with (``write`` may return a mapping from an
item's position in the batch to an error for that item's caller alone).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


class _Waiter(Generic[T]):
    """A queued item and its caller, asleep until its batch is written or it is to lead."""

    __slots__ = ("batch", "done", "error", "item")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done: threading.Event | None = None  # made when it queues: a leader never waits
        self.batch: list[_Waiter[T]] | None = None  # set when this caller is to write it
        self.error: BaseException | None = None

    def wake(self) -> None:
        if self.done is not None:
            self.done.set()


class GroupCommit(Generic[T]):
    """Batches the items of concurrent ``submit`` calls into calls of ``write``."""

    def __init__(
        self,
        write: Callable[[Sequence[T]], Mapping[int, BaseException] | None],
        limit: int = 100,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._write = write
        self._limit = limit
        self._lock = threading.Lock()
        self._queued: list[_Waiter[T]] = []
        self._writing = False

    @property
    def queued(self) -> int:
        """Items waiting for the write in flight to finish."""
        with self._lock:
            return len(self._queued)

    def submit(self, item: T) -> None:
        """Return once ``item`` is written, or raise what its write raised."""
        me = _Waiter(item)
        with self._lock:
            lead = not self._writing
            if lead:
                self._writing = True
            else:
                me.done = threading.Event()
                self._queued.append(me)
        if me.done is not None:  # queued
            me.done.wait()
            if me.batch is None:  # another caller wrote it
                if isinstance(me.error, Exception):
                    raise me.error
                if me.error is not None:  # e.g. KeyboardInterrupt: that thread's, not ours
                    raise RuntimeError("the write holding this item was interrupted") from me.error
                return
        self._lead(me.batch or [me])
        if me.error is not None:
            raise me.error

    def _lead(self, batch: list[_Waiter[T]]) -> None:
        error: BaseException | None = None
        refused: Mapping[int, BaseException] = {}
        try:
            refused = self._write([waiter.item for waiter in batch]) or {}
        except BaseException as exc:  # every caller in the batch must hear of it, then go on
            error = exc
        finally:
            with self._lock:
                following = self._queued[: self._limit]
                del self._queued[: self._limit]
                self._writing = bool(following)
            for position, waiter in enumerate(batch):
                waiter.error = error or refused.get(position)
                waiter.batch = None
                waiter.wake()
            if following:
                following[0].batch = following
                following[0].wake()
