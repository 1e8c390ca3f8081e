"""The generator's signal knob: 0 = outcomes independent of every feature, quirks kept; the
default 1 = the documented signal, byte for byte what the generator gave before the knob."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ingestion.errors import SourceError
from ingestion.sources import check_source, load_source
from ingestion.synthetic import generate
from ingestion.tables import ACCOUNTS, PRODUCTS, SALES_PIPELINE, SALES_TEAMS

# What the generator gave for (3000, seed 5) before the knob existed: the parameters' checksum,
# the sha256 of "id:stage|id:stage|..." and the sum of the true probabilities.
DEFAULT_PARAMETERS = {"generator": "ingestion.synthetic", "n": 3000, "seed": 5, "version": 1}
DEFAULT_STAGES = "f6b28fa1fc2b6cffe248e8b0c19ccb402e9d3d81f5ad593b59b6f1c778b8f473"
DEFAULT_PROBABILITY_SUM = 1879.7248861722114


def test_the_default_is_unchanged() -> None:
    default, explicit = generate(3000, seed=5), generate(3000, seed=5, signal=1.0)
    assert default.checksums == explicit.checksums and default.source == "synthetic"
    parameters = json.dumps(DEFAULT_PARAMETERS, sort_keys=True).encode()
    assert default.checksums["parameters.json"] == hashlib.sha256(parameters).hexdigest()
    pipeline = default.tables[SALES_PIPELINE]
    stages = zip(
        pipeline["opportunity_id"].to_pylist(), pipeline["deal_stage"].to_pylist(), strict=True
    )
    joined = "|".join(f"{i}:{s}" for i, s in stages)
    assert hashlib.sha256(joined.encode()).hexdigest() == DEFAULT_STAGES
    assert default.ground_truth is not None
    probability = default.ground_truth["win_probability"].to_numpy()
    assert float(probability.sum()) == DEFAULT_PROBABILITY_SUM


def test_signal_zero_keeps_every_deal_and_quirk_and_only_changes_outcomes() -> None:
    full, none = generate(3000, seed=5), generate(3000, seed=5, signal=0.0)
    for name in (ACCOUNTS, PRODUCTS, SALES_TEAMS):
        assert full.tables[name].equals(none.tables[name]), name
    a, b = (d.tables[SALES_PIPELINE].to_pandas() for d in (full, none))
    same = ["opportunity_id", "sales_agent", "product", "account", "engage_date", "close_date"]
    assert a[same].equals(b[same])
    assert (a["deal_stage"].isin(["Won", "Lost"]) == b["deal_stage"].isin(["Won", "Lost"])).all()
    assert (a["deal_stage"] != b["deal_stage"]).any()  # outcomes redrawn without the signal
    truth = none.ground_truth.to_pandas()
    assert truth["win_probability"].nunique() == 1  # one probability for every deal
    closed = truth.dropna(subset=["won"])
    assert 0.60 < closed["won"].astype(bool).mean() < 0.66  # the same win rate


@pytest.mark.parametrize(("signal", "low", "high"), [(0.3, 0.55, 0.65), (1.0, 0.70, 0.85)])
def test_the_signal_scales_the_oracle(signal: float, low: float, high: float) -> None:
    truth = generate(8800, seed=42, signal=signal).ground_truth.to_pandas().dropna()
    auc = roc_auc_score(truth["won"].astype(bool), truth["win_probability"])
    assert low <= auc <= high, auc


def test_a_non_default_signal_is_recorded_as_a_generator_parameter() -> None:
    weak = generate(500, seed=1, signal=0.3)
    assert weak.source == "synthetic:signal=0.3"  # what the landing manifest records
    params = {"generator": "ingestion.synthetic", "n": 500, "seed": 1, "version": 1}
    expected = hashlib.sha256(json.dumps({**params, "signal": 0.3}, sort_keys=True).encode())
    assert weak.checksums["parameters.json"] == expected.hexdigest()
    assert weak.checksums["parameters.json"] != generate(500, seed=1).checksums["parameters.json"]


@pytest.mark.parametrize("signal", [-0.1, 1.5, float("nan")])
def test_a_signal_outside_zero_to_one_is_refused(signal: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        generate(100, seed=1, signal=signal)
    with pytest.raises(SourceError, match=r"--signal must lie between 0 \(no signal\) and 1"):
        check_source("synthetic", None, signal)


def test_the_signal_only_applies_to_the_synthetic_source(tmp_path) -> None:
    for spec in ("kaggle", f"dir:{tmp_path}"):
        with pytest.raises(SourceError) as info:
            check_source(spec, None, 0.3)
        assert str(info.value) == (
            f"--signal only applies to `--source synthetic`, not to {spec!r}: drop it."
        )
    data = load_source("synthetic", opportunities=400, seed=2, signal=0.0)
    assert data.source == "synthetic:signal=0" and data.tables[SALES_PIPELINE].num_rows == 400
    assert load_source("synthetic", opportunities=400, seed=2).source == "synthetic"
    probability = data.ground_truth.column("win_probability").to_numpy()
    assert np.unique(probability).size == 1
