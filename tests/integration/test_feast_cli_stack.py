"""`feast apply` / `feast materialize-incremental` typed in a shell, on the stack profile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.cli import crm, run

YAML = "feature_repo/stack/feature_store.yaml"


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["bash", "-c", command], env=env)


def user_env(home: Path, stack_env: dict[str, str]) -> dict[str, str]:
    """A user's shell: a fresh HOME (no DuckDB secrets yet) and the venv on PATH."""
    return {
        **os.environ,
        **stack_env,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }


def test_feast_cli_applies_and_materializes_from_s3(
    stack_features: dict[str, Any], stack_env: dict[str, str], tmp_path: Path
) -> None:
    env = user_env(tmp_path, stack_env)
    exports = crm("env", env=env)
    assert exports.returncode == 0, exports.stderr
    assert "export AWS_ENDPOINT_URL=" in exports.stdout
    run = shell(
        'eval "$(crm env)" && '
        f"feast -f {YAML} apply && "
        f"feast -f {YAML} materialize-incremental 2018-01-02T00:00:00",
        env,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "sales_agent_daily_stats" in run.stdout


def test_without_the_duckdb_secret_the_cli_cannot_read_s3(
    stack_features: dict[str, Any], stack_env: dict[str, str], tmp_path: Path
) -> None:
    """Proves the test above exercises the secret: Feast alone ignores the S3 endpoint."""
    env = user_env(tmp_path, stack_env)
    exports = crm("env", env={**env, "HOME": str(tmp_path / "elsewhere")})
    script = "\n".join(line for line in exports.stdout.splitlines() if line.startswith("export "))
    run = shell(
        f"{script}\nfeast -f {YAML} materialize 2017-01-01T00:00:00 2017-12-31T23:59:59 "
        "--views sales_agent_daily_stats",
        env,
    )
    assert run.returncode != 0
