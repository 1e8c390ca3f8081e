"""Running the project's own CLI as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from infra.settings import PROJECT_ROOT

ROOT: Path = PROJECT_ROOT
BIN = Path(sys.executable).parent


def run(
    args: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """A command as a user's shell runs it; `env` is its whole environment (default: ours)."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def crm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`crm ARGS...` in a subprocess with this environment plus `env`."""
    return run([BIN / "crm", *args], env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def crm_json(env: dict[str, str], *args: str) -> Any:
    """`crm ARGS... --json`, which must succeed; its JSON summary."""
    result = crm(*args, "--json", env=env, timeout=900)
    if result.returncode != 0:
        pytest.fail(
            f"`crm {' '.join(args)}` failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return json.loads(result.stdout[result.stdout.index("{") :])
