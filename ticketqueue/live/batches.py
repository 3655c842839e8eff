"""Requests of one moment answered together: a socket process's connects and joins.

At 10:00:00 a process receives a thousand handshakes and then a thousand joins within a
second. Answered one by one, each pays its own thread hop and store round trips, and the
worker threads take turns for the GIL with the event loop on every reply. ``Batches`` queues
each request on the event loop and answers all those of the moment with one call (in the thread
pool); what arrives during that call makes the next batch. No timer: a request alone is
answered at once, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Batches"]

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class Batches(Generic[Request, Answer]):
    """Answers ``ask``-ed requests with ``answer_many``, up to ``limit`` at a time.

    ``answer_many`` returns one result per request, in order: its answer, or the exception
    that request raises in its own caller. An exception it raises is raised in every caller of
    the batch.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        answer_many: Callable[[list[Request]], Awaitable[Sequence[Answer | BaseException]]],
        limit: int,
    ) -> None:
        self._loop = loop
        self._answer_many = answer_many
        self._limit = limit
        self._waiting: list[tuple[Request, asyncio.Future[Answer]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def ask(self, request: Request) -> Answer:
        future: asyncio.Future[Answer] = self._loop.create_future()
        self._waiting.append((request, future))
        if self._worker is None:
            self._worker = self._loop.create_task(self._work())
        return await future

    async def _work(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # the other requests of this moment join the batch
                batch = self._waiting[: self._limit]
                del self._waiting[: self._limit]
                try:
                    results = await self._answer_many([request for request, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each caller hears it as its own
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller went away (the socket closed)
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._worker = None
