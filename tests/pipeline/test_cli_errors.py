"""Errors through the `crm` CLI as a user sees them: one line on stderr, no traceback.

A user error raised before the flow starts, one raised inside a Prefect task (which Prefect
logs with its traceback unless the CLI keeps it out), and settings that do not validate.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.cli import crm


def clean_env(tmp_path: Path) -> dict[str, str]:
    """An embedded profile in a temporary home, with no Kaggle credentials anywhere."""
    return {"CRM_PROFILE": "local", "CRM_HOME": str(tmp_path / ".crm"), "HOME": str(tmp_path)}


def assert_one_line_error(result: object, *expected: str) -> str:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode != 0, result  # type: ignore[attr-defined]
    assert "Traceback" not in stderr + result.stdout, stderr  # type: ignore[attr-defined]
    assert len(stderr.splitlines()) == 1, stderr
    for text in expected:
        assert text in stderr, stderr
    return stderr


def test_kaggle_without_credentials_says_what_to_do_at_once(tmp_path: Path) -> None:
    started = time.perf_counter()
    result = crm("land", "--source", "kaggle", env=clean_env(tmp_path), cwd=tmp_path)
    elapsed = time.perf_counter() - started
    assert result.returncode == 1
    assert_one_line_error(result, "land failed: No Kaggle credentials found", "--source synthetic")
    assert elapsed < 15, f"{elapsed:.1f} s"


def test_a_user_error_inside_a_flow_is_one_line_without_retries(tmp_path: Path) -> None:
    result = crm("features", env=clean_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    line = assert_one_line_error(result, "features failed: No validated snapshot", "crm land")
    assert "Retrying" not in result.stdout + line


def test_invalid_settings_name_the_variable(tmp_path: Path) -> None:
    env = clean_env(tmp_path) | {"CRM_QUALITY_THRESHOLD": "2"}
    result = crm("validate", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "Invalid settings: CRM_QUALITY_THRESHOLD")
