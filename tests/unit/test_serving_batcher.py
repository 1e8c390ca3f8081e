"""Concurrent requests share batches; results and errors go back to the right caller; callers
that have gone are dropped; the event loop stays free while a batch waits on its store."""

from __future__ import annotations

import asyncio
import threading
import time

from serving.batcher import MicroBatcher


def _off_loop(seconds: float) -> asyncio.Future[None]:
    """A store read: blocking work on another thread, awaited by the batch."""
    return asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)


def test_concurrent_submissions_are_batched_in_order() -> None:
    seen: list[list[int]] = []

    async def handle(items: list[int]) -> list[int | BaseException]:
        seen.append(items)
        await _off_loop(0.01)  # while this waits, the other requests queue up
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def main() -> list[object]:
        batcher: MicroBatcher[int, int] = MicroBatcher(handle)
        first = asyncio.ensure_future(batcher.submit(0))
        await asyncio.sleep(0.002)  # the first batch is running: the others queue behind it
        rest = await asyncio.gather(
            *(batcher.submit(i) for i in range(1, 50)), return_exceptions=True
        )
        return [await first, *rest]

    results = asyncio.run(main())
    assert [r for r in results if not isinstance(r, BaseException)] == [
        i * 10 for i in range(0, 50, 2)
    ]
    assert all(
        isinstance(results[i], ValueError) and str(results[i]) == f"odd {i}"
        for i in range(1, 50, 2)
    )
    assert sum(len(b) for b in seen) == 50
    assert seen[0] == [0]  # the first request did not wait for company
    assert seen[1] == list(range(1, 50))  # the rest went together


def test_a_failing_batch_fails_each_of_its_requests_and_the_next_batch_runs() -> None:
    calls = {"n": 0}

    async def handle(items: list[str]) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("store down")
        return [s.upper() for s in items]

    async def main() -> tuple[object, str]:
        batcher: MicroBatcher[str, str] = MicroBatcher(handle)
        first = await asyncio.gather(batcher.submit("a"), return_exceptions=True)
        return first[0], await batcher.submit("b")

    failed, recovered = asyncio.run(main())
    assert isinstance(failed, ConnectionError)
    assert recovered == "B"


def test_batches_respect_max_items() -> None:
    sizes: list[int] = []

    async def handle(items: list[list[int]]) -> list[int]:
        sizes.append(sum(len(i) for i in items))
        await _off_loop(0.005)
        return [len(i) for i in items]

    async def main() -> list[int]:
        batcher: MicroBatcher[list[int], int] = MicroBatcher(
            handle, max_items=10, size=lambda item: len(item)
        )
        return await asyncio.gather(*(batcher.submit([0] * 4) for _ in range(12)))

    assert asyncio.run(main()) == [4] * 12
    assert max(sizes) <= 10


def test_a_request_whose_caller_went_away_is_dropped_before_its_batch() -> None:
    seen: list[list[int]] = []
    gate = threading.Event()

    async def handle(items: list[int]) -> list[int]:
        seen.append(items)
        if len(seen) == 1:  # the first batch waits until the caller below has gone
            await asyncio.get_running_loop().run_in_executor(None, gate.wait, 5)
        return [i * 10 for i in items]

    async def main() -> tuple[int, int, bool]:
        batcher: MicroBatcher[int, int] = MicroBatcher(handle)
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.02)
        gone = asyncio.ensure_future(batcher.submit(2))  # queued behind the running batch
        kept = asyncio.ensure_future(batcher.submit(3))
        await asyncio.sleep(0.02)
        gone.cancel()  # its caller hung up
        gate.set()
        return await first, await kept, gone.cancelled()

    assert asyncio.run(main()) == (10, 30, True)
    assert seen == [[1], [3]]  # 2 was never scored


def test_a_handler_breaking_its_contract_fails_its_batch_instead_of_hanging_it() -> None:
    async def handle(items: list[int]) -> list[int]:
        return items[:-1]  # one result short

    async def main() -> list[object]:
        batcher: MicroBatcher[int, int] = MicroBatcher(handle)
        return await asyncio.gather(batcher.submit(1), return_exceptions=True)

    (result,) = asyncio.run(main())
    assert isinstance(result, RuntimeError) and "gave 0 results" in str(result)


def test_the_loop_stays_free_while_a_batch_waits_on_its_store() -> None:
    """While a batch's store read is stuck (a stalled PostgreSQL), /livez still answers."""
    release = threading.Event()

    async def handle(items: list[int]) -> list[int]:
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return items

    async def main() -> float:
        batcher: MicroBatcher[int, int] = MicroBatcher(handle)
        stuck = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        await asyncio.sleep(0.001)  # e.g. /livez: served by the loop meanwhile
        waited = time.perf_counter() - started
        release.set()
        await stuck
        return waited

    assert asyncio.run(main()) < 0.05
