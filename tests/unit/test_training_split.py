"""The time split: later as-of dates in test, no opportunity in two slices, no future labels."""

from __future__ import annotations

import pandas as pd
import pytest

from feature_repo.entities import OPPORTUNITY_ID
from tests.support.training_data import generator_examples
from training.errors import ExamplesError
from training.features import LABEL_TIMESTAMP, TIMESTAMP
from training.split import time_split


@pytest.fixture(scope="module")
def examples() -> pd.DataFrame:
    return generator_examples(4000, seed=3)


def test_slices_are_disjoint_by_opportunity(examples: pd.DataFrame) -> None:
    split = time_split(examples)
    ids = [set(s[OPPORTUNITY_ID]) for s in (split.train, split.valid, split.test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    kept = sum(len(s) for s in ids)
    assert kept + split.purged_opportunities == examples[OPPORTUNITY_ID].nunique()


def test_test_window_is_later_and_training_labels_were_known_before_it(examples) -> None:
    split = time_split(examples, test_fraction=0.2)
    assert split.test[TIMESTAMP].min() >= split.test_start
    train_first = split.train.groupby(OPPORTUNITY_ID)[TIMESTAMP].min()
    assert train_first.max() < split.valid_start <= split.valid[TIMESTAMP].min()
    assert split.train[TIMESTAMP].max() < split.test_start
    assert split.valid[TIMESTAMP].max() < split.test_start
    assert split.train[LABEL_TIMESTAMP].max() < split.test_start
    assert split.valid[LABEL_TIMESTAMP].max() < split.test_start
    share = split.test[OPPORTUNITY_ID].nunique() / examples[OPPORTUNITY_ID].nunique()
    assert 0.17 < share < 0.23


def test_missing_label_timestamp_is_a_clear_error(examples: pd.DataFrame) -> None:
    with pytest.raises(ExamplesError, match="label_timestamp"):
        time_split(examples.drop(columns=[LABEL_TIMESTAMP]))
