"""The promotion gate as a pure function of numbers: no MLflow, no model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.settings import Settings
from training.gate import (
    ALREADY_CHAMPION,
    BEATS_CHAMPION,
    CHAMPION_CANNOT_SCORE,
    CHAMPION_KEPT,
    FIRST_CHAMPION,
    NO_SKILL,
    GatePolicy,
    PairedEvidence,
    SkillEvidence,
    check_skill,
    choose_candidate,
    decide,
)
from training.skill import Interval

POLICY = GatePolicy(margin=0.005, confidence=0.95)


def evidence(skill: Interval, log_loss_skill: Interval | None = None) -> SkillEvidence:
    base_brier, base_log_loss = 0.2320, 0.6550
    ll = log_loss_skill or skill
    return SkillEvidence(
        base_rate=0.63,
        brier=base_brier * (1 - skill.estimate),
        base_rate_brier=base_brier,
        log_loss=base_log_loss * (1 - ll.estimate),
        base_rate_log_loss=base_log_loss,
        brier_skill=skill,
        log_loss_skill=ll,
    )


SKILLED = evidence(Interval(0.12, 0.09, 0.16))
NO_SIGNAL = evidence(Interval(-0.009, -0.021, 0.003))


def paired(low: float, estimate: float = 0.004, high: float = 0.008) -> PairedEvidence:
    return PairedEvidence(0.21, 0.61, Interval(estimate, low, high), Interval(estimate, low, high))


def test_no_skill_is_never_promoted_not_even_the_first_model() -> None:
    check = check_skill(NO_SIGNAL, POLICY)
    assert not check.passed
    assert check.reason.startswith("no skill: Brier 0.2341 vs base rate 0.2320 (Brier skill -0.9%")
    assert "[95% -2.1%, +0.3%]" in check.reason and "log-loss skill" in check.reason
    verdict = decide(check, version="1", champion_version=None)
    assert (verdict.promoted, verdict.outcome) == (False, NO_SKILL)
    assert verdict.reason.endswith("— not promoted")


def test_a_model_with_skill_becomes_the_first_champion() -> None:
    check = check_skill(SKILLED, POLICY)
    assert check.passed and check.reason.startswith("skill: Brier 0.2042 vs base rate 0.2320")
    verdict = decide(check, version="1", champion_version=None)
    assert (verdict.promoted, verdict.outcome) == (True, FIRST_CHAMPION)
    assert verdict.reason.startswith("first champion: skill:")


@pytest.mark.parametrize(
    ("skill", "passed"),
    [
        (Interval(0.012, 0.002, 0.022), True),  # weak but real: above the margin, interval > 0
        (Interval(0.012, -0.002, 0.026), False),  # same estimate, the interval reaches 0
        (Interval(0.004, 0.001, 0.007), False),  # sure, but below the margin
        (Interval(0.005, 0.0001, 0.01), True),  # exactly the margin
    ],
)
def test_a_weak_signal_promotes_only_when_the_interval_says_so(
    skill: Interval, passed: bool
) -> None:
    assert check_skill(evidence(skill), POLICY).passed is passed


def test_both_skills_are_needed() -> None:
    overconfident = evidence(Interval(0.05, 0.02, 0.08), Interval(-0.04, -0.17, 0.06))
    check = check_skill(overconfident, POLICY)
    assert not check.passed and "log-loss skill -4.0%" in check.reason


def test_a_challenger_needs_a_paired_improvement_over_the_champion() -> None:
    check = check_skill(SKILLED, POLICY)
    better = decide(check, version="3", champion_version="2", paired=paired(low=0.001))
    assert (better.promoted, better.outcome) == (True, BEATS_CHAMPION)
    assert better.reason.startswith("beats champion v2 on the same test window: Brier gain +0.0040")
    unsure = decide(check, version="3", champion_version="2", paired=paired(low=-0.0005))
    assert (unsure.promoted, unsure.outcome) == (False, CHAMPION_KEPT)
    assert unsure.reason.startswith("champion v2 kept: no paired improvement")
    assert "[95% -0.0005, +0.0080]" in unsure.reason


def test_a_challenger_without_skill_keeps_the_champion() -> None:
    verdict = decide(
        check_skill(NO_SIGNAL, POLICY), version="3", champion_version="2", paired=paired(0.01)
    )
    assert (verdict.promoted, verdict.outcome) == (False, NO_SKILL)
    assert verdict.reason.endswith("not promoted; champion v2 kept")


def test_a_champion_that_cannot_score_stays_and_the_same_version_is_already_champion() -> None:
    check = check_skill(SKILLED, POLICY)
    verdict = decide(check, version="3", champion_version="2", champion_error="lacks ['x']")
    assert (verdict.promoted, verdict.outcome) == (False, CHAMPION_CANNOT_SCORE)
    assert "cannot score this test window (lacks ['x']); champion kept" in verdict.reason
    same = decide(check, version="2", champion_version="2")
    assert (same.promoted, same.outcome) == (True, ALREADY_CHAMPION)


def test_the_candidate_with_the_lower_validation_log_loss_is_registered() -> None:
    valid = {
        "baseline": {"log_loss": 0.6049, "brier": 0.2084},
        "xgboost": {"log_loss": 0.6017, "brier": 0.2074},
    }
    selection = choose_candidate(valid)
    assert selection.winner == "xgboost"
    assert selection.reason == (
        "xgboost won on validation: log loss 0.6017 vs baseline 0.6049 (-0.0032), "
        "Brier 0.2074 vs 0.2084 (-0.0010)"
    )
    valid["baseline"]["log_loss"] = 0.5990
    assert choose_candidate(valid).winner == "baseline"  # a baseline that wins is registered
    tie = {"baseline": {"log_loss": 0.6, "brier": 0.2}, "xgboost": {"log_loss": 0.6, "brier": 0.2}}
    assert choose_candidate(tie).winner == "baseline"  # the simpler model on a tie
    assert choose_candidate({"xgboost": valid["xgboost"]}).winner == "xgboost"


def test_the_policy_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_GATE_SKILL_MARGIN", "0.01")
    monkeypatch.setenv("CRM_GATE_CONFIDENCE", "0.9")
    monkeypatch.setenv("CRM_GATE_BOOTSTRAP_RESAMPLES", "500")
    policy = GatePolicy.from_settings(Settings(_env_file=None), seed=7)
    assert policy == GatePolicy(margin=0.01, confidence=0.9, resamples=500, seed=7)
    monkeypatch.setenv("CRM_GATE_CONFIDENCE", "1.5")
    with pytest.raises(ValidationError, match="gate_confidence"):
        Settings(_env_file=None)
