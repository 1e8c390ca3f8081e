"""`crm bench reliability`: every fault, load and fuzz scenario, one after the other.

Each scenario (bench/reliability/{serving,data,training}.py) runs against real servers of the
active profile and returns its figures and `passed`; a scenario that raises is recorded as
failed with its error. The results go to bench/results/reliability.json.

Before running: the stack profile with its services up and a champion (`export
CRM_PROFILE=stack; crm stack up; crm pipeline`).
"""

from __future__ import annotations

import json
import os
import platform
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.reliability import data, serving, training
from bench.reliability.context import Context
from infra.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "bench" / "results" / "reliability.json"
WORKDIR = PROJECT_ROOT / "bench" / "results" / "logs" / "reliability"

Scenario = Callable[[Context], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {**serving.SCENARIOS, **data.SCENARIOS, **training.SCENARIOS}


def run(settings: Settings, only: Iterable[str] = (), out: Path = RESULTS) -> dict[str, Any]:
    """Run the scenarios (all, or `only` those named) and write the results to `out`."""
    names = list(only) or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"No scenario {', '.join(unknown)}; there are {', '.join(SCENARIOS)}.")
    outcomes: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()[0]  # a shared machine: its load is part of every figure
    for name in names:
        print(f"reliability: {name} ...", flush=True)
        ctx = Context(settings=settings, workdir=WORKDIR / name)
        started = time.perf_counter()
        try:
            outcome = SCENARIOS[name](ctx)
        except Exception as exc:  # a scenario that breaks is a failed scenario, not a crash
            outcome = {"passed": False, "error": f"{type(exc).__name__}: {exc}"}
            outcome["traceback"] = traceback.format_exc().splitlines()[-12:]
        outcome["seconds"] = round(time.perf_counter() - started, 1)
        outcomes[name] = outcome
        print(f"  {'passed' if outcome.get('passed') else 'FAILED'} in {outcome['seconds']} s")
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": settings.profile.value,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # start, end
        },
        "passed": all(o.get("passed") for o in outcomes.values()),
        "scenarios": outcomes,
    }
    if only and out.exists():  # a partial run updates the committed results, scenario by one
        previous = json.loads(out.read_text())
        merged = {**previous.get("scenarios", {}), **outcomes}
        results["scenarios"] = merged
        results["passed"] = all(o.get("passed") for o in merged.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results
