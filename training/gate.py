"""The promotion gate as a pure function of numbers: skill first, then a paired improvement.

1. Skill, for every candidate (the first model included): on the test window its Brier skill
   and its log-loss skill against the base rate (the training win rate) must both be at least
   `margin`, and both bootstrap intervals over opportunities must lie above 0. A model that
   does not beat a constant is registered but never promoted.
2. A champion exists: it is re-scored on the candidate's test window (same examples, same
   features) and the candidate must be better on both Brier and log loss, with both paired
   bootstrap intervals of the difference above 0. Otherwise the champion stays.

`training.registry.promote` gathers the numbers (and moves the alias); everything decided here
is tested without MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from infra.settings import Settings
from training.skill import Interval

# Outcomes of `decide`, as tagged on the run and the model version.
NO_SKILL = "no_skill"
FIRST_CHAMPION = "first_champion"
BEATS_CHAMPION = "beats_champion"
CHAMPION_KEPT = "champion_kept"
ALREADY_CHAMPION = "already_champion"
CHAMPION_CANNOT_SCORE = "champion_cannot_score"
PROMOTING = frozenset({FIRST_CHAMPION, BEATS_CHAMPION, ALREADY_CHAMPION})


@dataclass(frozen=True)
class GatePolicy:
    """How sure the gate must be: the skill margin, the interval's confidence, its resamples."""

    margin: float = 0.005
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 42

    @classmethod
    def from_settings(cls, settings: Settings, seed: int = 42) -> GatePolicy:
        return cls(
            margin=settings.gate_skill_margin,
            confidence=settings.gate_confidence,
            resamples=settings.gate_bootstrap_resamples,
            seed=seed,
        )


@dataclass(frozen=True)
class SkillEvidence:
    """One model on one test window against the base rate (the training win rate)."""

    base_rate: float
    brier: float
    base_rate_brier: float
    log_loss: float
    base_rate_log_loss: float
    brier_skill: Interval
    log_loss_skill: Interval

    @classmethod
    def from_metrics(cls, metrics: dict[str, float]) -> SkillEvidence:
        """From `training.run`'s per-model test metrics (`brier_skill_low`, ...)."""

        def interval(name: str) -> Interval:
            return Interval(metrics[name], metrics[f"{name}_low"], metrics[f"{name}_high"])

        return cls(
            base_rate=metrics["base_rate"],
            brier=metrics["brier"],
            base_rate_brier=metrics["base_rate_brier"],
            log_loss=metrics["log_loss"],
            base_rate_log_loss=metrics["base_rate_log_loss"],
            brier_skill=interval("brier_skill"),
            log_loss_skill=interval("log_loss_skill"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedEvidence:
    """Candidate vs champion on the same examples: positive gains = the candidate is better."""

    champion_brier: float
    champion_log_loss: float
    brier_gain: Interval
    log_loss_gain: Interval

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkillCheck:
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    promoted: bool
    outcome: str
    reason: str


@dataclass(frozen=True)
class Selection:
    """Which candidate is registered, and why: validation metrics only, never the test window."""

    winner: str
    reason: str
    valid: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_candidate(valid: dict[str, dict[str, float]]) -> Selection:
    """The candidate with the lowest validation log loss (a tie goes to the one listed first).

    `valid` maps each candidate to its validation `log_loss` and `brier` (of its cross-fitted
    calibrated probabilities, so that no calibrator is judged on the rows it was fitted on).
    """
    order = list(valid)
    if not order:
        raise ValueError("choose_candidate needs at least one candidate.")
    winner = min(order, key=lambda name: (valid[name]["log_loss"], order.index(name)))
    w = valid[winner]
    others = sorted((n for n in order if n != winner), key=lambda n: valid[n]["log_loss"])
    if not others:
        return Selection(winner, f"{winner}: the only candidate", valid)
    runner = others[0]
    r = valid[runner]
    reason = (
        f"{winner} won on validation: log loss {w['log_loss']:.4f} vs {runner} "
        f"{r['log_loss']:.4f} ({w['log_loss'] - r['log_loss']:+.4f}), Brier {w['brier']:.4f} vs "
        f"{r['brier']:.4f} ({w['brier'] - r['brier']:+.4f})"
    )
    return Selection(winner, reason, valid)


def check_skill(evidence: SkillEvidence, policy: GatePolicy) -> SkillCheck:
    """Does the model beat the base rate by at least the margin, beyond the interval's doubt?"""
    level = f"{policy.confidence:.0%}"
    parts = {
        "Brier skill": evidence.brier_skill,
        "log-loss skill": evidence.log_loss_skill,
    }
    shown = "; ".join(f"{name} {_percent_interval(i, level)}" for name, i in parts.items())
    passed = all(i.estimate >= policy.margin and i.above_zero for i in parts.values())
    head = f"Brier {evidence.brier:.4f} vs base rate {evidence.base_rate_brier:.4f}"
    if not passed:
        need = f"a champion needs both at least {policy.margin:+.1%} with the interval above 0"
        return SkillCheck(False, f"no skill: {head} ({shown}); {need}")
    return SkillCheck(True, f"skill: {head} ({shown})")


def decide(
    check: SkillCheck,
    *,
    version: str,
    champion_version: str | None,
    paired: PairedEvidence | None = None,
    champion_error: str | None = None,
    confidence: float = 0.95,
) -> Verdict:
    """The gate's decision for candidate `version`, with the reason written for people."""
    if champion_version is not None and champion_version == version:
        return Verdict(True, ALREADY_CHAMPION, f"v{version} is already champion")
    kept = f"; champion v{champion_version} kept" if champion_version else ""
    if not check.passed:
        return Verdict(False, NO_SKILL, f"{check.reason} — not promoted{kept}")
    if champion_version is None:
        return Verdict(True, FIRST_CHAMPION, f"first champion: {check.reason}")
    if champion_error is not None or paired is None:
        why = champion_error or "it was not re-scored"
        return Verdict(
            False,
            CHAMPION_CANNOT_SCORE,
            f"champion v{champion_version} cannot score this test window ({why}); champion "
            "kept. Promote by hand (`mlflow` alias) if the feature change is intended.",
        )
    level = f"{confidence:.0%}"
    detail = (
        f"Brier gain {_number_interval(paired.brier_gain, level)} "
        f"(champion {paired.champion_brier:.4f}), "
        f"log-loss gain {_number_interval(paired.log_loss_gain, level)} "
        f"(champion {paired.champion_log_loss:.4f})"
    )
    if paired.brier_gain.above_zero and paired.log_loss_gain.above_zero:
        return Verdict(
            True,
            BEATS_CHAMPION,
            f"beats champion v{champion_version} on the same test window: {detail}; {check.reason}",
        )
    return Verdict(
        False,
        CHAMPION_KEPT,
        f"champion v{champion_version} kept: no paired improvement on the same test window "
        f"({detail})",
    )


def _percent_interval(interval: Interval, level: str) -> str:
    return f"{interval.estimate:+.1%} [{level} {interval.low:+.1%}, {interval.high:+.1%}]"


def _number_interval(interval: Interval, level: str) -> str:
    return f"{interval.estimate:+.4f} [{level} {interval.low:+.4f}, {interval.high:+.4f}]"
