"""Opportunistic micro-batching: concurrent requests share one online read and one predict.

No timer: when nothing runs, a request starts at once (no added latency when alone); requests
that arrive while a batch runs are queued and go together in the next one, up to `max_items`.
Batches run one at a time on the event loop; the handler awaits its store reads and its model
calls on other threads (`serving.state`), so the loop keeps serving other requests, probes and
429s included, while a batch waits on the network or the model.

A request whose caller went away (its awaiting task was cancelled) is dropped before its batch
runs. Each item gets its own result or exception: the handler decides what fails alone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_items: int = 1_000,
        size: Callable[[T], int] = lambda _: 1,
    ) -> None:
        """`handle` gets a batch and returns one result (or exception) per item, in order."""
        self._handle = handle
        self._max_items = max_items
        self._size = size
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._draining = False
        self.batches = 0
        self.items = 0
        self.dropped = 0  # items whose caller had gone before their batch ran

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not counting the one running)."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await future  # cancelling the caller cancels the future: the item is dropped

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        taken: list[tuple[T, asyncio.Future[R]]] = []
        total = 0
        while self._queue:
            item, future = self._queue[0]
            if future.done():  # cancelled: the caller has gone
                self._queue.popleft()
                self.dropped += 1
                continue
            total += self._size(item)
            if taken and total > self._max_items:
                break
            taken.append(self._queue.popleft())
        return taken

    async def _drain(self) -> None:
        try:
            while batch := self._take():
                try:
                    results = await self._handle([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
                except asyncio.CancelledError:  # the loop is shutting down: nobody is left
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # the whole batch failed (e.g. store unreachable)
                    results = [exc] * len(batch)
                self.batches += 1
                self.items += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # the caller went away meanwhile
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                await asyncio.sleep(0)  # let the loop read requests that came meanwhile
        finally:
            self._draining = False
