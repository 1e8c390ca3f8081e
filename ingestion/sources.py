"""Where the four CRM tables come from: a CSV folder, Kaggle, or the synthetic generator.

Every source returns the same `SourceData`: the tables typed exactly as `ingestion.tables.SCHEMAS`
plus checksums of what was read. Business rules — negative values, unknown stages, duplicate ids,
close before engage — are validation's job: such rows land as they are, and so do the data's
quirks (`GTXPro`, `technolgy`, `Philipines`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ingestion import kaggle_source, synthetic
from ingestion.csv_files import check_csv_folder, read_csv_folder
from ingestion.drift import Drift, DriftSpecError
from ingestion.errors import SourceError
from ingestion.source_data import SourceData

SOURCES_HELP = (
    "`synthetic` (or `synthetic:drift=YYYY-MM-DD[/kind+kind]`), `kaggle` or `dir:PATH` "
    "(a folder with the four CSV files)"
)
SYNTHETIC_DRIFT = "synthetic:drift="


def is_synthetic(spec: str) -> bool:
    spec = spec.strip()
    return spec == synthetic.SOURCE or spec.startswith(SYNTHETIC_DRIFT)


def synthetic_drift(spec: str) -> Drift | None:
    """The drift a synthetic spec asks for (None: plain `synthetic`); one line if unreadable."""
    spec = spec.strip()
    if not spec.startswith(SYNTHETIC_DRIFT):
        return None
    try:
        return Drift.parse(spec[len(SYNTHETIC_DRIFT) :])
    except DriftSpecError as exc:
        raise SourceError(f"Source {spec!r}: {exc}") from None


def check_source(spec: str, opportunities: int | None = None, signal: float | None = None) -> None:
    """Refuse a source that cannot work before anything starts: an unknown name, a folder that
    is not there, Kaggle without credentials, `--opportunities` or `--signal` where they do not
    apply (None: not given)."""
    spec = spec.strip()
    if is_synthetic(spec):
        synthetic_drift(spec)
        if opportunities is not None and opportunities < 1:
            raise SourceError(f"--opportunities must be at least 1, got {opportunities}.")
        if signal is not None:
            try:
                synthetic.check_signal(signal)
            except ValueError:
                raise SourceError(
                    f"--signal must lie between 0 (no signal) and 1 (the default), got {signal}."
                ) from None
        return
    for option, value in (("--opportunities", opportunities), ("--signal", signal)):
        if value is not None:
            raise SourceError(
                f"{option} only applies to `--source synthetic`, not to {spec!r}: drop it."
            )
    if spec == "kaggle":
        kaggle_source.check_credentials()
        return
    if spec.startswith("dir:") and spec[4:].strip():
        check_csv_folder(Path(spec[4:].strip()).expanduser())
        return
    raise SourceError(f"Unknown source {spec!r}: use {SOURCES_HELP}.")


def load_source(
    spec: str,
    *,
    opportunities: int | None = None,
    seed: int = 42,
    signal: float | None = None,
    as_of: date | None = None,
) -> SourceData:
    """Read the source named by `spec`: `synthetic`, `kaggle` or `dir:PATH`.

    `synthetic:drift=2017-08-01[/kinds]` plants a drift from that day (ingestion.drift).

    `signal` (synthetic only): the planted signal's strength in [0, 1]; None is the default 1.
    `as_of` (synthetic only): the generated history as the CRM showed it at the end of that day
    (the snapshot's date: daily snapshots of one history); None is the whole history. A real
    source is what it is on the day it is read.
    """
    check_source(spec, opportunities, signal)
    spec = spec.strip()
    if is_synthetic(spec):
        data = synthetic.generate(
            opportunities or synthetic.DEFAULT_OPPORTUNITIES,
            seed,
            signal=synthetic.DEFAULT_SIGNAL if signal is None else signal,
            drift=synthetic_drift(spec),
        )
        return synthetic.as_of(data, as_of) if as_of else data
    if spec == "kaggle":
        return kaggle_source.load_kaggle()
    return read_csv_folder(Path(spec[4:].strip()).expanduser())
