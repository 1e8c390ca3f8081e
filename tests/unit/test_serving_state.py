"""ServingState: a request that breaks scoring fails alone (issue 12, 1); the token check takes
any bytes in constant time (4); "not ready" says nothing of the internals to clients (4)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from infra.settings import Settings
from serving.errors import NotReady, OpportunityNotFound, StoreUnavailable
from serving.state import ScoreJob, ServingState

POISON = datetime(1, 1, 1, tzinfo=UTC)


class FakeEngine:
    """Scores ids; an as_of of year 1 breaks the whole call, as OverflowError once did."""

    def __init__(self, down: bool = False, model_s: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.down = down
        self.model_s = model_s  # the model's native work: a sleep releases the GIL as it does

    async def score_ids_async(
        self,
        ids: list[str],
        as_ofs: list[Any],
        top_ks: list[int],
        io: Any,
        *,
        cpu: Any = None,
        collected: Any = None,
    ) -> list[Any]:
        self.calls.append(list(ids))
        if self.model_s:
            await cpu(functools.partial(time.sleep, self.model_s))
        if self.down:
            raise StoreUnavailable("Online store unreachable")
        if POISON in as_ofs:
            raise OverflowError("date value out of range")
        return [OpportunityNotFound(i) if i == "UNKNOWN" else {"id": i} for i in ids]

    def close(self) -> None:
        pass


def state(
    engine: FakeEngine | None = None, token: str | None = None, **settings: Any
) -> ServingState:
    s = ServingState(
        Settings(_env_file=None, **settings), token=token, opener=lambda *_: FakeEngine()
    )
    s.engine = engine  # type: ignore[assignment]
    return s


def test_a_poisoned_request_fails_alone_and_its_batch_mates_are_scored() -> None:
    engine = FakeEngine()
    jobs = [ScoreJob([f"G{n}"], None, 5) for n in range(9)]
    jobs.insert(4, ScoreJob(["P"], POISON, 5))
    jobs.append(ScoreJob(["UNKNOWN", "G9"], None, 5))
    results = asyncio.run(state(engine)._score_jobs(jobs))
    assert isinstance(results[4], OverflowError)
    good = [r for n, r in enumerate(results) if n != 4]
    assert good[:9] == [[{"id": f"G{n}"}] for n in range(9)]
    assert isinstance(good[9][0], OpportunityNotFound) and good[9][1] == {"id": "G9"}  # type: ignore[index]
    assert len(engine.calls) == 1 + len(jobs)  # the batch, then each request alone


def test_a_store_outage_is_the_same_503_for_the_whole_batch_without_retrying_each() -> None:
    engine = FakeEngine(down=True)
    with pytest.raises(StoreUnavailable):
        asyncio.run(state(engine)._score_jobs([ScoreJob(["A"], None, 5), ScoreJob(["B"], None, 5)]))
    assert len(engine.calls) == 1


def test_through_the_batcher_only_the_poisoned_caller_gets_the_error() -> None:
    s = state(FakeEngine())

    async def main() -> list[Any]:
        submits = [s.batcher.submit(ScoreJob([f"G{n}"], None, 5)) for n in range(10)]
        submits.insert(3, s.batcher.submit(ScoreJob(["P"], POISON, 5)))
        return await asyncio.gather(*submits, return_exceptions=True)

    results = asyncio.run(main())
    s.stop()
    assert [type(r) for r in results].count(OverflowError) == 1
    assert isinstance(results[3], OverflowError)
    assert all(isinstance(r, list) for n, r in enumerate(results) if n != 3)


def test_a_request_larger_than_a_batch_is_scored_in_slices_in_order() -> None:
    engine = FakeEngine()
    ids = [f"G{n}" for n in range(10)]
    s = state(engine, serving_batch_max_ids=4)
    results = asyncio.run(s._score_jobs([ScoreJob(ids, None, 5), ScoreJob(["H"], None, 5)]))
    s.stop()
    assert results == [[{"id": i} for i in ids], [{"id": "H"}]]
    assert engine.calls == [ids[:4], ids[4:8], [*ids[8:], "H"]]


def test_the_loop_keeps_answering_while_the_model_works() -> None:
    """The model's work runs on the model thread: a probe (or a 429) is not kept waiting."""
    s = state(FakeEngine(model_s=0.3))

    async def main() -> float:
        scoring = asyncio.ensure_future(s.batcher.submit(ScoreJob(["A"], None, 5)))
        await asyncio.sleep(0.05)  # the batch is in the model now
        started = time.perf_counter()
        await asyncio.sleep(0.001)  # e.g. a 429: served by the loop meanwhile
        waited = time.perf_counter() - started
        assert not scoring.done()
        assert await scoring == [{"id": "A"}]
        return waited

    waited = asyncio.run(main())
    s.stop()
    assert waited < 0.1


@pytest.mark.parametrize(
    "presented",
    [
        "t\u00e9st",  # what Starlette hands over for non-ASCII bytes (latin-1 decoded)
        "\u2603 snowman",  # not even latin-1
        b"\xff\xfe\x00",
        "",
        "sесret",  # Cyrillic look-alike
        "secret ",
    ],
)
def test_any_presented_token_is_compared_without_raising(presented: str | bytes) -> None:
    assert state(token="secret").authorized(presented) is False


def test_the_right_token_is_accepted_also_when_it_is_not_ascii() -> None:
    s = state(token="s\u00e9cret")
    # a client sends UTF-8 bytes; Starlette decodes header bytes as latin-1
    assert s.authorized("s\u00e9cret".encode().decode("latin-1"))
    assert s.authorized("s\u00e9cret".encode())
    assert not s.authorized(None)
    assert state(token=None).authorized(None)  # no token configured: open


def test_not_ready_answers_say_nothing_internal_but_the_log_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing(*_: Any) -> Any:
        raise ConnectionError("could not connect to 10.1.2.3:5432 as crm_admin")

    s = ServingState(Settings(_env_file=None), opener=failing)
    with caplog.at_level(logging.WARNING, logger="bentoml.crm_serving"):
        s._try_load()
    with pytest.raises(NotReady) as caught:
        s.ready_engine()
    assert "10.1.2.3" not in str(caught.value) and "crm_admin" not in str(caught.value)
    assert "log" in str(caught.value)
    assert "10.1.2.3:5432" in caplog.text
