"""`crm pipeline`'s summary says plainly whether there is a champion, and why not."""

from __future__ import annotations

from flows.pipeline import champion_line, summary_markdown

NO_SKILL = (
    "no skill: Brier 0.2343 vs base rate 0.2315 (Brier skill -1.2% [95% -2.3%, +0.1%]; "
    "log-loss skill -0.9% [95% -1.8%, +0.1%]) — not promoted"
)


def summary(decision: dict) -> dict:
    skill = {
        "base_rate_brier": 0.2315,
        "base_rate_log_loss": 0.6558,
        "brier_skill": -0.012,
        "brier_skill_low": -0.023,
        "brier_skill_high": 0.0005,
    }
    return {
        "snapshot": "2017-12-31",
        "source": "synthetic:signal=0",
        "rows": {"sales_pipeline": 3000},
        "quality_score": 0.97,
        "quality_passed": True,
        "metrics": {"xgboost": {"auc": 0.5, "brier": 0.2343, "log_loss": 0.6617}},
        "skill": {"xgboost": skill},
        "selection": "xgboost won on validation: log loss 0.6452 vs baseline 0.6502 (-0.0050)",
        "model": decision,
        "champion": champion_line(decision),
        "seconds": {"total": 60.0},
    }


def test_nothing_promoted_and_no_champion_says_no_champion() -> None:
    decision = {"version": "1", "promoted": False, "reason": NO_SKILL, "candidate": "xgboost"}
    text = summary_markdown(summary(decision))
    assert f"**no champion: {NO_SKILL}**" in text
    assert "| xgboost | 0.5000 | 0.2343 | 0.6617 | -1.2% [-2.3%, +0.1%] |" in text
    assert "| base rate | 0.5000 | 0.2315 | 0.6558 | 0 |" in text
    assert "Registered: xgboost won on validation" in text


def test_a_kept_champion_and_a_new_one_are_named() -> None:
    kept = {
        "version": "3",
        "promoted": False,
        "reason": "champion v2 kept: no paired improvement on the same test window (...)",
        "candidate": "baseline",
        "champion_version": "2",
    }
    assert champion_line(kept).startswith("not promoted: v3 (baseline); champion v2 stays — ")
    new = {
        "version": "2",
        "promoted": True,
        "reason": "first champion: skill: ...",
        "candidate": "xgboost",
    }
    assert champion_line(new) == "champion: v2 (xgboost) — first champion: skill: ..."
    assert champion_line({}) == "no model registered (training ran without the registry)"
