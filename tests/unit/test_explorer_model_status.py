"""The Models page's first words: no champion, a champion without skill, or one with skill."""

from __future__ import annotations

from serving.explorer.runs import AliasedVersion, champion_status

MARGIN = 0.005


def version(alias: str, number: str, **tags: str) -> AliasedVersion:
    return AliasedVersion(alias, number, f"run-{number}", tags)


def skill(kind: str, brier: float, low: float) -> dict[str, float]:
    return {
        f"{kind}_test_brier_skill": brier,
        f"{kind}_test_brier_skill_low": low,
        f"{kind}_test_log_loss_skill": brier * 0.8,
        f"{kind}_test_log_loss_skill_low": low * 0.8,
    }


def test_no_champion_is_said_plainly_with_the_reason() -> None:
    reason = "no skill: Brier 0.2343 vs base rate 0.2315 (...) — not promoted"
    versions = {
        "challenger": version("challenger", "1", candidate="xgboost", promotion_reason=reason)
    }
    status = champion_status(versions, {"challenger": skill("xgboost", -0.012, -0.023)}, MARGIN)
    assert status.level == "error"
    assert status.message.startswith("**No champion.** No model has shown skill over the base rate")
    assert f"The latest version, v1 (xgboost), was not promoted: {reason}" in status.message


def test_a_champion_without_skill_is_flagged() -> None:
    versions = {"champion": version("champion", "2", candidate="baseline")}
    status = champion_status(versions, {"champion": skill("baseline", 0.01, -0.004)}, MARGIN)
    assert status.level == "error"
    assert "Champion v2 (baseline) has no skill over the base rate" in status.message
    assert "Brier skill +1.0% (interval from -0.4%)" in status.message


def test_a_champion_with_skill_and_one_from_before_the_gate() -> None:
    versions = {"champion": version("champion", "2", candidate="xgboost")}
    status = champion_status(versions, {"champion": skill("xgboost", 0.125, 0.09)}, MARGIN)
    assert status.level == "success"
    assert status.message == (
        "**Champion v2 (xgboost)**: Brier skill +12.5% (interval from +9.0%), "
        "log-loss skill +10.0% (from +7.2%)."
    )
    old = champion_status({"champion": version("champion", "1")}, {"champion": {}}, MARGIN)
    assert old.level == "warning" and "promoted before the skill gate" in old.message
