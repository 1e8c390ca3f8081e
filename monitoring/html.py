"""The HTML report: Evidently's data-drift preset over the same rows the JSON report judges.

Evidently is the field's standard drift report; it is given the champion's reference sample and
today's rows with the columns typed as the model's `FeatureSpec` types them, and the same tests
(KS for numbers, chi-square for categories) at the same p-value, so its page and our JSON agree
on what drifted, plus the scores (`win_probability`: today's against the reference rows'). A
column empty on either side is left out (Evidently refuses it; report.json still lists it).
The PSI and the alarm rule (PSI and p-value together, judged features only) are ours: they are
in report.json, which is what the flow acts on.
"""

from __future__ import annotations

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from monitoring.reference import Reference
from training.reference import PROBABILITY


def _typed(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(frame)))
    for name in numeric:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64").to_numpy()
    for name in categorical:
        out[name] = frame[name].astype("string").astype(object).to_numpy()
    return out


def drift_html(
    reference: Reference, current: pd.DataFrame, scores: pd.Series, p_value: float
) -> str:
    """A standalone HTML page of Evidently's drift report: `current` (scored `scores`) against
    the reference sample and its scores."""
    frames = [
        current.assign(**{PROBABILITY: scores.to_numpy()}),
        reference.sample.assign(**{PROBABILITY: reference.probabilities.to_numpy()}),
    ]

    def present(name: str) -> bool:
        return all(frame[name].notna().any() for frame in frames)

    numeric = [n for n in [*reference.profile["numeric"], PROBABILITY] if present(n)]
    categorical = [n for n in reference.profile["categorical"] if present(n)]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    datasets = [
        Dataset.from_pandas(_typed(frame, numeric, categorical), data_definition=definition)
        for frame in frames
    ]
    report = Report(
        [
            DataDriftPreset(
                num_method="ks",
                cat_method="chisquare",
                num_threshold=p_value,
                cat_threshold=p_value,
            )
        ]
    )
    snapshot = report.run(datasets[0], datasets[1])
    return str(snapshot.get_html_str(as_iframe=False))
