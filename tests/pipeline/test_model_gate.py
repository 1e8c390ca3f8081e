"""`crm pipeline` end to end through the CLI, as a user runs it: with no signal in the data it
completes with "no champion" and the gate's reason (exit 0); with the default signal the model
earns the champion alias. Small data (3,000 opportunities) keeps each run near a minute."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import crm

SNAPSHOT = "2017-12-31"


def env_for(tmp_path: Path) -> dict[str, str]:
    """An embedded profile in a temporary home (its own lake, Feast stores and MLflow)."""
    return {"CRM_PROFILE": "local", "CRM_HOME": str(tmp_path / ".crm"), "HOME": str(tmp_path)}


def test_no_signal_ends_with_no_champion_then_the_default_signal_promotes(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    args = ("pipeline", "--snapshot", SNAPSHOT, "--opportunities", "3000")
    no_signal = crm(*args, "--signal", "0", env=env, cwd=tmp_path, timeout=600)
    assert no_signal.returncode == 0, no_signal.stderr[-3000:]
    assert "Traceback" not in no_signal.stdout + no_signal.stderr
    out = " ".join(no_signal.stdout.split())  # the terminal wraps long lines
    assert "Source `synthetic:signal=0`" in out
    assert "**no champion: no skill: Brier " in out and "vs base rate" in out
    assert "Brier skill" in out and "— not promoted**" in out
    assert "| base rate | 0.5000 |" in out

    signal = crm(*args, "--json", env=env, cwd=tmp_path, timeout=600)
    assert signal.returncode == 0, signal.stderr[-3000:]
    summary = json.loads(signal.stdout[signal.stdout.index("{") :])
    assert summary["source"] == "synthetic"
    decision = summary["model"]
    assert decision["promoted"] is True and decision["outcome"] == "first_champion", decision
    assert decision["version"] == "2" and decision["champion_version"] is None
    assert decision["skill"]["brier_skill"]["low"] > 0
    assert summary["champion"].startswith(f"champion: v2 ({decision['candidate']}) — first")
    skill = summary["skill"][decision["candidate"]]
    assert skill["brier_skill_low"] > 0 and skill["log_loss_skill_low"] > 0


def test_signal_with_a_real_source_is_refused_in_one_line(tmp_path: Path) -> None:
    result = crm("land", "--source", "kaggle", "--signal", "0.3", env=env_for(tmp_path))
    assert result.returncode == 1
    stderr = result.stderr.strip()
    assert stderr.splitlines() == [
        "land failed: --signal only applies to `--source synthetic`, not to 'kaggle': drop it."
    ]
    result = crm("pipeline", "--signal", "1.5", env=env_for(tmp_path))
    assert result.returncode == 1
    assert "pipeline failed: --signal must lie between 0 (no signal) and 1" in result.stderr
