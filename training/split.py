"""Split examples by time, by opportunity, so that nothing from the future reaches training.

Choice (documented in docs/training.md): an opportunity belongs to exactly one slice, by its
first as-of time (engagement), so its examples never straddle two slices. Test = the
opportunities engaged in the last `test_fraction` of the timeline (all their as-of examples, all
later than any training example). The backtest retrains at `test_start`: training and validation
may only use opportunities whose outcome was known by then (`label_timestamp` < `test_start`);
deals still open across the cutoff are dropped ("purged") instead of being trained on with a label
from the future. Validation = the latest `valid_fraction` of those, by engagement (early stopping,
tuning, calibration). The test window is scored once, for the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pandas as pd

from feature_repo.entities import OPPORTUNITY_ID
from training.errors import ExamplesError
from training.features import LABEL, LABEL_TIMESTAMP, TIMESTAMP


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    purged_opportunities: int

    def summary(self) -> dict[str, object]:
        return {
            "train_examples": len(self.train),
            "valid_examples": len(self.valid),
            "test_examples": len(self.test),
            "train_opportunities": int(self.train[OPPORTUNITY_ID].nunique()),
            "valid_opportunities": int(self.valid[OPPORTUNITY_ID].nunique()),
            "test_opportunities": int(self.test[OPPORTUNITY_ID].nunique()),
            "valid_start": self.valid_start.isoformat(),
            "test_start": self.test_start.isoformat(),
            "purged_opportunities": self.purged_opportunities,
        }


def time_split(
    examples: pd.DataFrame, *, test_fraction: float = 0.2, valid_fraction: float = 0.15
) -> TimeSplit:
    """Train / validation / test slices of the as-of timeline (see module docstring)."""
    needed = {OPPORTUNITY_ID, TIMESTAMP, LABEL, LABEL_TIMESTAMP}
    missing = needed - set(examples.columns)
    if missing:
        raise ExamplesError(
            f"Examples lack {sorted(missing)}: build them with training.examples.build_examples "
            "(label_timestamp is the close date, needed to split without leaking the future)."
        )
    first = examples.groupby(OPPORTUNITY_ID)[TIMESTAMP].transform("min")
    opp_first = examples.groupby(OPPORTUNITY_ID)[TIMESTAMP].min()
    test_start = opp_first.quantile(1.0 - test_fraction, interpolation="higher")
    known = examples[LABEL_TIMESTAMP]
    usable = examples[(first < test_start) & (known < test_start)]
    usable_first = usable.groupby(OPPORTUNITY_ID)[TIMESTAMP].min()
    if usable_first.empty:
        raise ExamplesError(
            "No opportunity closed before the test window: too little history to train on; "
            "land more history (or a larger --opportunities)."
        )
    valid_start = usable_first.quantile(1.0 - valid_fraction / (1.0 - test_fraction), "higher")

    test_mask = first >= test_start
    valid_mask = (first >= valid_start) & (first < test_start) & (known < test_start)
    train_mask = (first < valid_start) & (known < test_start)
    kept = examples[test_mask | valid_mask | train_mask][OPPORTUNITY_ID].nunique()
    split = TimeSplit(
        train=examples[train_mask].reset_index(drop=True),
        valid=examples[valid_mask].reset_index(drop=True),
        test=examples[test_mask].reset_index(drop=True),
        valid_start=cast(pd.Timestamp, valid_start),
        test_start=cast(pd.Timestamp, test_start),
        purged_opportunities=int(examples[OPPORTUNITY_ID].nunique() - kept),
    )
    for name in ("train", "valid", "test"):
        frame = getattr(split, name)
        if len(frame) == 0 or frame[LABEL].nunique() < 2:
            raise ExamplesError(
                f"The {name} slice has {len(frame)} examples and not both outcomes: too few "
                "closed deals to train on; land more history (or a larger --opportunities)."
            )
    return split
