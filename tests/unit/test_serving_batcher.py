"""Concurrent requests share batches; results and errors go back to the right caller."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from serving.batcher import MicroBatcher


@pytest.mark.parametrize("inline", [False, True])
def test_concurrent_submissions_are_batched_in_order(inline: bool) -> None:
    seen: list[list[int]] = []

    def handle(items: list[int]) -> list[int | BaseException]:
        seen.append(items)
        time.sleep(0.01)  # while this runs, the other requests queue up
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def main() -> list[object]:
        batcher: MicroBatcher[int, int] = MicroBatcher(handle, inline=inline)
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


@pytest.mark.parametrize("inline", [False, True])
def test_a_failing_batch_fails_each_of_its_requests_and_the_next_batch_runs(inline: bool) -> None:
    calls = {"n": 0}

    def handle(items: list[str]) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("store down")
        return [s.upper() for s in items]

    async def main() -> tuple[object, str]:
        batcher: MicroBatcher[str, str] = MicroBatcher(handle, inline=inline)
        first = await asyncio.gather(batcher.submit("a"), return_exceptions=True)
        return first[0], await batcher.submit("b")

    failed, recovered = asyncio.run(main())
    assert isinstance(failed, ConnectionError)
    assert recovered == "B"


def test_batches_respect_max_items_and_run_on_one_thread() -> None:
    threads: set[int] = set()
    sizes: list[int] = []

    def handle(items: list[list[int]]) -> list[int]:
        threads.add(threading.get_ident())
        sizes.append(sum(len(i) for i in items))
        time.sleep(0.005)
        return [len(i) for i in items]

    async def main() -> list[int]:
        batcher: MicroBatcher[list[int], int] = MicroBatcher(
            handle, max_items=10, size=lambda item: len(item)
        )
        return await asyncio.gather(*(batcher.submit([0] * 4) for _ in range(12)))

    assert asyncio.run(main()) == [4] * 12
    assert max(sizes) <= 10
    assert len(threads) == 1
