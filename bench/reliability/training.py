"""Reliability scenario of training (issue 12): the MLflow server down while `crm train` runs.

The profile's own MLflow server (started by `crm stack up`) is stopped, `crm train` runs against
it, and the server is started again. Passed when the run fails with a one-line error naming the
registry (no traceback), within MLflow's retry budget, and the champion alias has not moved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.reliability.context import Context
from infra.settings import Profile
from infra.stack import Stack
from training.registry import CHAMPION, alias_version

BIN = Path(sys.executable).parent


def mlflow_down_during_train(ctx: Context, timeout_s: float = 600) -> dict[str, Any]:
    """Stop MLflow, train, start MLflow: no promotion, and an error that says what happened."""
    settings = ctx.settings
    if settings.profile is not Profile.STACK:
        return {"passed": False, "skipped": "needs the stack profile (`crm stack up`)"}
    stack = Stack(settings)
    champion_before = alias_version(settings, CHAMPION)
    stack.down(only=["mlflow"])
    started = time.perf_counter()
    try:
        result = subprocess.run(  # nosec B603  # our own console script, no shell
            [str(BIN / "crm"), "train"],
            env={**os.environ, **settings.env_exports(), **ctx.env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    finally:
        failed_after_s = time.perf_counter() - started
        stack.up(only=["mlflow"])
    champion_after = alias_version(settings, CHAMPION)
    error = result.stderr.strip().splitlines()
    one_line = len(error) == 1 and "Traceback" not in result.stderr + result.stdout
    passed = (
        result.returncode != 0
        and one_line
        and "registry" in result.stderr
        and champion_after == champion_before
    )
    return {
        "scenario": "MLflow down during `crm train`",
        "exit_code": result.returncode,
        "failed_after_s": round(failed_after_s, 1),
        "error": error[-1] if error else "",
        "one_line_error": one_line,
        "champion_before": champion_before,
        "champion_after": champion_after,
        "passed": passed,
    }


SCENARIOS = {"training_mlflow_down": mlflow_down_during_train}
