"""What every chained run shares: one run at a time per lake, and a report when one fails.

The chains (`crm-daily`, `crm-pipeline`, `train-weekly`) each write several stages; two of them
on one lake would interleave their snapshots' steps. So a chain holds the lake's pipeline-run
lease (`infra.layout.PIPELINE_RUN_LEASE`) from start to end, renewed in the background; a second
chain waits `CRM_RUN_WAIT_S` for it, then fails with a message naming the run that holds it.
A lease in the lake rather than a Prefect concurrency limit: it holds on every profile, for runs
started by a deployment, the CLI or a test alike, and it needs no server-side set-up.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from infra.lake import Lake
from infra.layout import PIPELINE_RUN_LEASE
from infra.settings import Settings, get_settings

log = logging.getLogger("crm.runs")
T = TypeVar("T")


class Steps:
    """Runs a chain's steps one after the other and keeps each one's wall time."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    def run(self, name: str, call: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        result = call()
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        self.logger.info("%s done in %.1f s", name, self.seconds[name])
        return result

    def timings(self) -> dict[str, float]:
        """Seconds per step, and the total so far."""
        return {**self.seconds, "total": round(time.perf_counter() - self.started, 1)}


def run_owner() -> str | None:
    """`flow run crm-daily/brave-otter (<id>)` inside a Prefect flow run, else None (the lake
    then names the process: user@host, pid and command)."""
    from prefect.runtime import flow_run

    if not flow_run.id:
        return None
    return f"flow run {flow_run.flow_name}/{flow_run.name} ({flow_run.id})"


@contextlib.contextmanager
def one_run_at_a_time(settings: Settings | None = None) -> Iterator[None]:
    """Hold the lake's pipeline-run lease for the block (`LeaseHeldError` if another run has it
    for longer than `CRM_RUN_WAIT_S`)."""
    settings = settings or get_settings()
    lake = Lake.from_settings(settings)
    with lake.held_for_a_run(PIPELINE_RUN_LEASE, owner=run_owner(), wait_s=settings.run_wait_s):
        yield


def alert_message(flow_name: str, run_name: str, state_name: str, message: str | None) -> str:
    """One line a person can act on: which run, what state, and why."""
    reason = (message or "no message").strip().splitlines()[0]
    return f"crm-feature-platform: {flow_name} run '{run_name}' ended {state_name}: {reason}"


def post_alert(settings: Settings, payload: dict[str, Any]) -> bool:
    """POST the alert to `CRM_ALERT_WEBHOOK_URL` (if set), within `CRM_ALERT_TIMEOUT_S`.

    Never raises: a report that cannot be delivered is logged, the run's own state stays what
    it is. Returns whether the webhook accepted it.
    """
    url = settings.alert_webhook_url
    if not url:
        return False
    try:
        response = httpx.post(url, json=payload, timeout=settings.alert_timeout_s)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("Could not deliver the alert to %s: %s", url, exc)
        return False
    return True


def alert_on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect `on_failure`/`on_crashed` hook: report the failed run (Slack-compatible `text`)."""
    text = alert_message(flow.name, flow_run.name, state.name, state.message)
    log.error("%s", text)
    post_alert(
        get_settings(),
        {
            "text": text,
            "flow": flow.name,
            "flow_run": flow_run.name,
            "flow_run_id": str(flow_run.id),
            "state": state.name,
            "message": state.message,
        },
    )
