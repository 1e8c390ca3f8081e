"""The scorer under faults and hostile input (issue 12): the fast reliability scenarios.

The same functions `crm bench reliability` runs (bench/reliability/serving.py), here on the test
stack with smaller sizes: a few hundred schemathesis cases, poisoned requests among 50 good ones,
and the online store stalled then killed under load. Load and long scenarios stay in the bench.
Each scenario starts its own `bentoml serve` and stops it (its whole process tree) at the end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.reliability import serving as scenarios
from bench.reliability.context import Context
from infra.settings import Settings


@pytest.fixture(scope="module")
def context(
    stack_pipeline: Settings, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Context:
    """Scorers on the test stack (its env, not this process's); a champion is registered."""
    return Context(
        settings=stack_pipeline,
        workdir=tmp_path_factory.mktemp("serving-faults"),
        env={**stack_env, "CRM_SERVING_RETRY_SECONDS": "2"},
    )


def _shown(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1, default=str)


def _logs(context: Context) -> str:
    return "\n".join(
        f"--- {log.name} ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        for log in sorted(Path(context.workdir).glob("*.log"))
    )


def test_poisoned_requests_fail_alone_and_their_connection_stays_usable(context: Context) -> None:
    """Each poisoned request (year-1 as_of at +14:00, 1e39, Infinity, a non-ASCII token) sent
    with 50 good ones: it gets a 4xx JSON answer, the 50 get 200, its connection still works.
    Before: all ten requests of a micro-batch got a plain-text 500."""
    result = scenarios.poisoned_request(context, good=50)
    assert result["passed"], _shown(result) + _logs(context)
    statuses = {label: r["poisoned_status"] for label, r in result["rounds"].items()}
    assert statuses["non-ASCII token"] == 401
    assert {s for label, s in statuses.items() if label != "non-ASCII token"} == {422}


def test_fuzzing_every_route_finds_no_server_error_and_no_text_body(context: Context) -> None:
    result = scenarios.fuzz(context, cases=300)
    assert result["passed"], _shown(result) + _logs(context)
    assert result["cases"] >= 300 and result["server_errors"] == 0
    assert {"/score", "/score_batch", "/score_features", "/model_features", "/readyz"} <= set(
        result["routes"]
    )
    assert result["statuses"].get("200", 0) > 30  # the generated bodies reached the model


def test_a_stalled_then_killed_store_gives_quick_503s_and_recovers_without_restart(
    context: Context,
) -> None:
    """PostgreSQL frozen (accepts, never answers), then cut, under load. Before: the first
    frozen read blocked the event loop, /livez included, for as long as the freeze lasted."""
    result = scenarios.store_stall(context, outage_s=4, settle_s=6, concurrency=6)
    assert result["passed"], _shown(result) + _logs(context)
    assert result["livez_max_s"] < 1
    assert result["stall_answer_max_s"] < 2 and result["kill_answer_max_s"] < 2
    assert result["stall_recovery_s"] < 5 and result["kill_recovery_s"] < 5
    assert set(result["statuses"]) == {"200", "503"}
