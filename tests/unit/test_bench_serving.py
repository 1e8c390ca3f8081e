"""bench/serving.py's reading of the log's cost: paired blocks beside the pooled p99."""

from __future__ import annotations

from typing import Any

from bench.serving import CONTROL, NOLOG, SERVICE, goals, ratios


def _target(pooled_p99: float, blocks: list[float]) -> dict[str, Any]:
    run = {"req_per_s": 100.0, "p50_ms": 1.0, "p99_ms": pooled_p99}
    return {
        "runs": {"sequential": run, "c16": run},
        "block_p99_ms": {"sequential": blocks, "c16": blocks},
    }


def test_one_burst_decides_the_pooled_ratio_not_the_paired_median() -> None:
    # Block 3 of the logged scorer met a burst from elsewhere on the machine (40 ms): the pooled
    # p99 shows it as a 60% cost; paired with the no-log scorer's blocks, the median is 1.02.
    found = {
        SERVICE: _target(16.0, [10.2, 10.2, 40.0, 10.2, 10.2]),
        NOLOG: _target(10.0, [10.0, 10.0, 10.0, 10.0, 10.0]),
        CONTROL: _target(10.5, [9.9, 10.1, 10.0, 10.3, 9.8]),
    }
    ratio = ratios(found, [16])
    assert ratio["c16 p99 with log / without"] == 1.6
    assert ratio["c16 p99 with log / without, median of paired blocks"] == 1.02
    assert ratio["c16 p99 control / without, median of paired blocks"] == 1.0
    verdict = goals(found, ratio, None)["p99_log_over_nolog"]
    assert verdict["estimator"] == "median of paired blocks"
    assert verdict["worst"] == 1.02 and verdict["worst_pooled"] == 1.6
    assert verdict["met"] is True and verdict["control_worst"] == 1.0


def test_a_cost_in_every_block_fails_the_goal() -> None:
    found = {
        SERVICE: _target(13.0, [13.0, 12.5, 13.5, 13.0]),
        NOLOG: _target(10.0, [10.0, 10.0, 10.0, 10.0]),
    }
    verdict = goals(found, ratios(found, [16]), None)["p99_log_over_nolog"]
    assert verdict["worst"] == 1.3 and verdict["met"] is False
